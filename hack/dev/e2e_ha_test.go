package main

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mesosk3s/mesosk3s/hack/hostguard"
)

// TestPlaygroundHA runs `make dev --ha`: three real K3s servers on embedded etcd, each on
// a host of its own, and two real agents, at v1.25.2+k3s1. It checks that etcd has three
// healthy members, SIGKILLs the first server (the one the kubeconfig points at, which
// started etcd), sees the API answer through another server meanwhile, and waits until
// the killed server is back as a member and etcd has three healthy members again. Then it
// upgrades the cluster to v1.25.4+k3s1 while some server's API and the workload answer.
func TestPlaygroundHA(t *testing.T) {
	previous := previousK3s(t)
	root, k3s, assets, work, dev, manager := e2eSetup(t)
	state := filepath.Join(work, "state")
	pg := startPlayground(t, dev, "--state-dir", state, "--k3s", previous, "--manager", manager, "--assets", assets,
		"--node-assets", filepath.Join(root, "bin", "node"), "--ha", "--agents", "2",
		"--sample", sampleAt(t, filepath.Join(root, "config/samples/playground/k3scluster-ha.yaml"), previousVersion))
	ready := pg.waitOutput(t, "is Ready after", 6*time.Minute)
	answers := pg.waitOutput(t, "answers at", 3*time.Minute)
	t.Logf("make dev --ha: %s; %s", ready, answers)

	mgmt := kubectlAt(filepath.Join(state, "kubeconfig"))
	clusterKC := filepath.Join(work, "playground.kubeconfig")
	writeKubeconfigFromSecret(t, mgmt, clusterKC)
	wl := kubectlAt(clusterKC)
	waitNodes(t, wl, []string{"playground-agent-0", "playground-agent-1"}, time.Minute)

	etcd := newEtcdClient(t, mgmt)
	servers := serverAddresses(t, mgmt)
	etcd.waitHealthyMembers(t, servers, 3, time.Minute)
	logNodeMemory(t, state)

	// The first server dies: Mesos reports it failed and the operator relaunches it on its
	// data; meanwhile another server answers for the cluster.
	pid := findProcess(t, state, "server", servers["server-0"].host)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	other := fmt.Sprintf("https://%s:%d", servers["server-1"].host, servers["server-1"].api)
	deadline := killed.Add(30 * time.Second)
	for {
		out, err := wl.try("--server", other, "get", "nodes", "-o", "name")
		if err == nil && strings.Contains(out, "playground-agent-0") {
			t.Logf("server-0 killed; server-1 answered %.1fs later", time.Since(killed).Seconds())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with server-0 killed, server-1 (%s) did not answer: %v %s", other, err, out)
		}
		time.Sleep(time.Second)
	}
	waitJSONPath(t, mgmt, `{.status.tasks[?(@.name=="server-0")].restarts}`, "1", 2*time.Minute)
	mgmt.run(t, "wait", "--for=condition=Ready", "k3sc/playground", "--timeout=180s")
	t.Logf("server-0 relaunched and the cluster Ready %.1fs after the kill", time.Since(killed).Seconds())
	etcd.waitHealthyMembers(t, serverAddresses(t, mgmt), 3, 2*time.Minute)
	if got := wl.run(t, "get", "--raw", "/readyz"); strings.TrimSpace(got) != "ok" {
		t.Fatalf("/readyz through the kubeconfig after server-0 came back: %q", got)
	}
	checkDemo(t, wl)

	// The upgrade: servers one by one, each after etcd has its three members healthy,
	// then the agents; some server's API answers throughout the server phase.
	spreadDemo(t, wl, work)
	report := upgrade(t, mgmt, wl, clusterKC, currentVersion, "file://"+k3s)
	t.Logf("3 servers + 2 agents, %s → %s: %s", previousVersion, currentVersion, report)
	if report.longestAPIGap > 2*time.Second {
		t.Errorf("no server's API answered for %s during the upgrade", report.longestAPIGap)
	}
	if report.longestWorkloadGap > 5*time.Second {
		t.Errorf("the workload did not answer for %s during the upgrade", report.longestWorkloadGap)
	}
	report.inOrder(t, []string{"server-2", "server-1", "server-0", "agent-1", "agent-0"})
	// The leader's turn came for at least one server: its leadership was moved first.
	if events := mgmt.run(t, "get", "events.events.k8s.io", "--field-selector", "regarding.name=playground,reason=EtcdLeaderMoved", "-o", "name"); strings.TrimSpace(events) == "" {
		t.Errorf("no EtcdLeaderMoved event: no server was replaced after moving etcd's leadership away from it")
	}
	etcd.waitHealthyMembers(t, serverAddresses(t, mgmt), 3, time.Minute)
	checkDemo(t, wl)
	scaleServersDown(t, mgmt, wl, etcd)

	instance := pg.instance(t)
	pg.stop(t)
	if left := hostguard.Leftovers(instance, state); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// scaleServersDown takes the cluster from three servers to one: the operator removes
// server-2's etcd member, stops it, waits for etcd to be healthy with two members, then
// does the same for server-1. Killing servers without removing their members would leave
// one live member of three: no quorum, and no API.
func scaleServersDown(t *testing.T, mgmt, wl kubectl, etcd etcdClient) {
	t.Helper()
	start := time.Now()
	mgmt.run(t, "patch", "k3sc/playground", "--type", "merge", "-p", `{"spec":{"servers":{"replicas":1}}}`)
	waitJSONPath(t, mgmt, "{.status.servers.replicas}", "1", 3*time.Minute)
	servers := serverAddresses(t, mgmt)
	etcd.waitHealthyMembers(t, servers, 1, time.Minute)
	mgmt.run(t, "wait", "--for=condition=Ready", "k3sc/playground", "--timeout=120s")
	t.Logf("3 → 1 servers: etcd has one healthy member and the cluster is Ready %.1fs after the patch", time.Since(start).Seconds())
	removed := mgmt.run(t, "get", "events.events.k8s.io", "--field-selector", "regarding.name=playground,reason=EtcdMemberRemoved", "-o", "jsonpath={.items[*].note}")
	for _, server := range []string{"server-2", "server-1"} {
		if !strings.Contains(removed, server) {
			t.Errorf("no EtcdMemberRemoved event for %s: %q", server, removed)
		}
	}
	if got := wl.run(t, "get", "--raw", "/readyz"); strings.TrimSpace(got) != "ok" {
		t.Fatalf("/readyz with one server left: %q", got)
	}
	checkDemo(t, wl)
}

// serverAddress is where a server task runs: its host and K3s API port.
type serverAddress struct {
	host string
	api  int
}

// serverAddresses reads the server tasks' hosts and API ports from status.tasks.
func serverAddresses(t *testing.T, mgmt kubectl) map[string]serverAddress {
	t.Helper()
	out := mgmt.run(t, "get", "k3sc", "playground", "-o",
		`jsonpath={range .status.tasks[?(@.role=="server")]}{.name} {.agentHost} {.ports.api}{"\n"}{end}`)
	servers := map[string]serverAddress{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		port, _ := strconv.Atoi(f[2])
		servers[f[0]] = serverAddress{host: f[1], api: port}
	}
	return servers
}

// etcdClient talks to K3s's embedded etcd with a client certificate from the cluster's
// etcd server CA (in the <name>-ca Secret the operator issued), as K3s's own do.
type etcdClient struct{ http *http.Client }

func newEtcdClient(t *testing.T, mgmt kubectl) etcdClient {
	t.Helper()
	field := func(key string) []byte {
		v := mgmt.run(t, "get", "secret", "playground-ca", "-o", "jsonpath={.data."+strings.ReplaceAll(key, ".", `\.`)+"}")
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(b) == 0 {
			t.Fatalf("playground-ca has no %s: %v", key, err)
		}
		return b
	}
	caPair, err := tls.X509KeyPair(field("etcd-server-ca.crt"), field("etcd-server-ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caPair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	client, err := tls.X509KeyPair(clientCert(t, ca, caPair.PrivateKey, pkix.Name{CommonName: "e2e-etcd-client"}))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return etcdClient{http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{client}, RootCAs: roots},
	}}}
}

// members lists the etcd members through one server's etcd (the gRPC gateway's JSON API).
func (e etcdClient) members(host string) ([]string, error) {
	resp, err := e.http.Post("https://"+host+":2379/v3/cluster/member/list", "application/json", strings.NewReader("{}"))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("member list: %d %s", resp.StatusCode, body)
	}
	var list struct {
		Members []struct {
			Name       string   `json:"name"`
			ClientURLs []string `json:"clientURLs"`
		} `json:"members"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, err
	}
	var names []string
	for _, m := range list.Members {
		names = append(names, m.Name)
	}
	sort.Strings(names)
	return names, nil
}

// healthy asks one member's /health.
func (e etcdClient) healthy(host string) error {
	resp, err := e.http.Get("https://" + host + ":2379/health")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"health":"true"`) {
		return fmt.Errorf("/health answered %d %s", resp.StatusCode, body)
	}
	return nil
}

// waitHealthyMembers waits until every server's etcd lists want members and says healthy.
func (e etcdClient) waitHealthyMembers(t *testing.T, servers map[string]serverAddress, want int, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	var problem string
	for time.Since(start) < timeout {
		problem = ""
		for name, s := range servers {
			members, err := e.members(s.host)
			if err == nil && len(members) != want {
				err = fmt.Errorf("members %v, want %d", members, want)
			}
			if err == nil {
				err = e.healthy(s.host)
			}
			if err != nil {
				problem = fmt.Sprintf("%s (%s): %v", name, s.host, err)
				break
			}
		}
		if problem == "" && len(servers) == want {
			members, _ := e.members(servers["server-0"].host)
			t.Logf("etcd: %d healthy members %v after %.1fs", want, members, time.Since(start).Seconds())
			return
		}
		if problem == "" {
			problem = fmt.Sprintf("%d servers in status, want %d", len(servers), want)
		}
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("etcd not %d healthy members within %s: %s", want, timeout, problem)
}
