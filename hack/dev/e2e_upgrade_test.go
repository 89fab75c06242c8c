package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mesosk3s/mesosk3s/hack/hostguard"
	"github.com/mesosk3s/mesosk3s/hack/testenv"
)

// The two real K3s releases of the upgrade tests: hack/build-k3s.sh builds both.
const (
	previousVersion = "v1.25.2+k3s1" // bin/k3s-v1.25.2+k3s1, Kubernetes v1.25.2
	currentVersion  = "v1.25.4+k3s1" // bin/k3s, Kubernetes v1.25.4
)

// previousK3s is the older K3s binary; missing, the test skips (fails under make test).
func previousK3s(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(testenv.RepoRoot(), "bin", "k3s-"+previousVersion)
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("MESOSK3S_REQUIRE_K3S") != "" {
			t.Fatalf("%s is missing (hack/build-k3s.sh previous builds it): %v", bin, err)
		}
		t.Skipf("%s is missing; `make test` builds it (hack/build-k3s.sh previous)", bin)
	}
	return bin
}

// sampleAt writes a copy of a playground sample with another spec.version.
func sampleAt(t *testing.T, sample, version string) string {
	t.Helper()
	b, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "version: "+currentVersion) {
		t.Fatalf("%s does not say version: %s", sample, currentVersion)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(sample))
	if err := os.WriteFile(out, []byte(strings.Replace(string(b), "version: "+currentVersion, "version: "+version, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPlaygroundUpgrade upgrades a cluster of real K3s (one server, two agents) from
// v1.25.2+k3s1 to v1.25.4+k3s1 by changing spec.version and binaryURL, while a
// two-replica web server behind a NodePort is polled on every node; then a version whose
// binary does not match stops the rollout at the server (Stalled), and setting the
// version back rolls the server back.
func TestPlaygroundUpgrade(t *testing.T) {
	previous := previousK3s(t)
	root, k3s, assets, work, dev, manager := e2eSetup(t)
	state := filepath.Join(work, "state")
	pg := startPlayground(t, dev, "--state-dir", state, "--k3s", previous, "--manager", manager, "--assets", assets,
		"--node-assets", filepath.Join(root, "bin", "node"),
		"--sample", sampleAt(t, filepath.Join(root, "config/samples/playground/k3scluster.yaml"), previousVersion))
	ready := pg.waitOutput(t, "is Ready after", 4*time.Minute)
	pg.waitOutput(t, "answers at", 3*time.Minute)
	t.Logf("make dev at %s: %s", previousVersion, ready)
	mgmt := kubectlAt(filepath.Join(state, "kubeconfig"))
	clusterKC := filepath.Join(work, "playground.kubeconfig")
	writeKubeconfigFromSecret(t, mgmt, clusterKC)
	wl := kubectlAt(clusterKC)
	waitNodes(t, wl, []string{"playground-agent-0", "playground-agent-1"}, time.Minute)
	spreadDemo(t, wl, work)

	report := upgrade(t, mgmt, wl, clusterKC, currentVersion, "file://"+k3s)
	t.Logf("1 server + 2 agents, %s → %s: %s", previousVersion, currentVersion, report)
	if report.longestWorkloadGap > 5*time.Second {
		t.Errorf("the workload did not answer for %s during the upgrade", report.longestWorkloadGap)
	}
	report.inOrder(t, []string{"server-0", "agent-1", "agent-0"})
	checkDemo(t, wl)

	// A version whose binary is another release: the new server refuses to start (exit
	// 78), the rollout stops there with Stalled naming the task, the agents are left alone.
	agentsBefore := mgmt.run(t, "get", "k3sc", "playground", "-o", `jsonpath={.status.tasks[?(@.role=="agent")].taskID}`)
	mgmt.run(t, "patch", "k3sc", "playground", "--type=merge", "-p", `{"spec":{"version":"v1.25.5+k3s1"}}`)
	waitJSONPath(t, mgmt, `{.status.conditions[?(@.type=="Stalled")].status}`, "True", 3*time.Minute)
	msg := mgmt.run(t, "get", "k3sc", "playground", "-o", `jsonpath={.status.conditions[?(@.type=="Stalled")].message}`)
	if !strings.Contains(msg, "server-0") || !strings.Contains(msg, "spec.version") {
		t.Errorf("Stalled does not name the task and the version mismatch: %s", msg)
	}
	t.Logf("a step that fails: Stalled: %s", msg)
	if after := mgmt.run(t, "get", "k3sc", "playground", "-o", `jsonpath={.status.tasks[?(@.role=="agent")].taskID}`); after != agentsBefore {
		t.Errorf("the failed server step replaced agents: %s -> %s", agentsBefore, after)
	}
	// Back: the server returns to the version it ran; nothing else moves.
	start := time.Now()
	mgmt.run(t, "patch", "k3sc", "playground", "--type=merge", "-p", `{"spec":{"version":"`+currentVersion+`"}}`)
	waitJSONPath(t, mgmt, `{.status.conditions[?(@.type=="Stalled")].status}`, "False", 3*time.Minute)
	mgmt.run(t, "wait", "--for=condition=Ready", "k3sc/playground", "--timeout=180s")
	t.Logf("rolled back to %s in %.1fs", currentVersion, time.Since(start).Seconds())
	if v := apiVersion(t, wl); v != currentVersion {
		t.Errorf("/version after the rollback: %s", v)
	}
	if after := mgmt.run(t, "get", "k3sc", "playground", "-o", `jsonpath={.status.tasks[?(@.role=="agent")].taskID}`); after != agentsBefore {
		t.Errorf("the rollback replaced agents: %s -> %s", agentsBefore, after)
	}
	checkDemo(t, wl)

	instance := pg.instance(t)
	pg.stop(t)
	if left := hostguard.Leftovers(instance, state); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// spreadDemo runs the demo on two replicas, spread over the nodes where it can be, behind a
// budget that keeps one up, so a drained node's pod moves while the other serves. httpd
// runs as PID 1 and ignores SIGTERM: a short grace period keeps drains quick.
func spreadDemo(t *testing.T, wl kubectl, work string) {
	t.Helper()
	manifest := filepath.Join(work, "demo-spread.yaml")
	doc := `apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: ` + demoName + `
  namespace: default
spec:
  minAvailable: 1
  selector:
    matchLabels: {app: ` + demoName + `}
`
	if err := os.WriteFile(manifest, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	wl.run(t, "apply", "-f", manifest)
	wl.run(t, "patch", "deployment", demoName, "--type=merge", "-p",
		`{"spec":{"replicas":2,"template":{"spec":{"terminationGracePeriodSeconds":5,"topologySpreadConstraints":[{"maxSkew":1,"topologyKey":"kubernetes.io/hostname","whenUnsatisfiable":"ScheduleAnyway","labelSelector":{"matchLabels":{"app":"`+demoName+`"}}}]}}}}`)
	wl.run(t, "rollout", "status", "deployment/"+demoName, "--timeout=120s")
}

// upgradeReport is what was seen during an upgrade.
type upgradeReport struct {
	took time.Duration
	// longestWorkloadGap: the longest time no node answered on the demo's NodePort;
	// longestAPIGap: the longest time no server's /readyz answered 200.
	longestWorkloadGap, longestAPIGap time.Duration
	polls                             int
	// replaced is when each task's new incarnation first showed in status.tasks.
	replaced map[string]time.Duration
}

func (r upgradeReport) String() string {
	var order []string
	for _, n := range r.sortedReplacements() {
		order = append(order, fmt.Sprintf("%s@%.1fs", n, r.replaced[n].Seconds()))
	}
	return fmt.Sprintf("took %.1fs; longest workload gap %s, longest API gap %s (%d polls); replaced %s",
		r.took.Seconds(), r.longestWorkloadGap.Round(time.Millisecond), r.longestAPIGap.Round(time.Millisecond), r.polls, strings.Join(order, " "))
}

func (r upgradeReport) sortedReplacements() []string {
	var names []string
	for n := range r.replaced {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return r.replaced[names[i]] < r.replaced[names[j]] })
	return names
}

// inOrder checks the tasks were replaced one after the other in the order given.
func (r upgradeReport) inOrder(t *testing.T, want []string) {
	t.Helper()
	if got := r.sortedReplacements(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("tasks replaced in the order %v, want %v", got, want)
	}
}

// upgrade sets spec.version (and binaryURL) and waits until every task runs the new
// version and the cluster is Ready, polling the demo on every node, each server's API,
// and the tasks, and checks /version and every node's kubelet at the end.
func upgrade(t *testing.T, mgmt, wl kubectl, clusterKC, version, binaryURL string) upgradeReport {
	t.Helper()
	nodes := strings.Fields(wl.run(t, "get", "nodes", "-o", `jsonpath={.items[*].status.addresses[?(@.type=="InternalIP")].address}`))
	var servers []string
	for _, s := range serverAddresses(t, mgmt) {
		servers = append(servers, fmt.Sprintf("https://%s:%d/readyz", s.host, s.api))
	}
	apiClient := adminHTTPClient(t, clusterKC)
	before := taskIDs(mgmt)

	start := time.Now()
	mgmt.run(t, "patch", "k3sc", "playground", "--type=merge", "-p", fmt.Sprintf(`{"spec":{"version":%q,"binaryURL":%q}}`, version, binaryURL))
	report := upgradeReport{replaced: map[string]time.Duration{}}
	var mu sync.Mutex
	// record notes the tasks replaced since the last look, and when.
	record := func() {
		for name, id := range taskIDs(mgmt) {
			mu.Lock()
			if _, seen := report.replaced[name]; !seen && id != "" && before[name] != "" && id != before[name] {
				report.replaced[name] = time.Since(start)
			}
			mu.Unlock()
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the workload and the API
		defer wg.Done()
		lastWorkload, lastAPI := time.Now(), time.Now()
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			now := time.Now()
			if anyAnswers(nodes, func(host string) bool {
				b, err := tryGet(fmt.Sprintf("http://%s:%d/", host, demoNodePort))
				return err == nil && strings.Contains(b, "hello from")
			}) {
				lastWorkload = now
			}
			if anyAnswers(servers, func(u string) bool {
				resp, err := apiClient.Get(u)
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == http.StatusOK
			}) {
				lastAPI = now
			}
			mu.Lock()
			report.polls++
			report.longestWorkloadGap = max(report.longestWorkloadGap, now.Sub(lastWorkload))
			report.longestAPIGap = max(report.longestAPIGap, now.Sub(lastAPI))
			mu.Unlock()
		}
	}()
	go func() { // the order of the replacements
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			record()
		}
	}()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		v, _ := mgmt.try("get", "k3sc", "playground", "-o", `jsonpath={.status.version}|{.status.conditions[?(@.type=="Reconciling")].status}|{.status.conditions[?(@.type=="Ready")].status}|{.status.tasks[*].version}`)
		parts := strings.Split(strings.TrimSpace(v), "|")
		if len(parts) == 4 && parts[0] == version && parts[1] == "False" && parts[2] == "True" && allEqual(strings.Fields(parts[3]), version) {
			break
		}
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			out, _ := mgmt.try("get", "k3sc", "playground", "-o", "yaml")
			t.Fatalf("the upgrade to %s did not finish within 10 min (%s):\n%s", version, v, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	report.took = time.Since(start)
	close(stop)
	wg.Wait()
	record() // the last replacement may have finished between two looks

	if v := apiVersion(t, wl); v != version {
		t.Errorf("/version says %s after the upgrade to %s", v, version)
	}
	kubelets := strings.Fields(wl.run(t, "get", "nodes", "-o", `jsonpath={.items[*].status.nodeInfo.kubeletVersion}`))
	if len(kubelets) == 0 || !allEqual(kubelets, version) {
		t.Errorf("kubelet versions %v after the upgrade to %s", kubelets, version)
	}
	return report
}

func anyAnswers(targets []string, answers func(string) bool) bool {
	for _, x := range targets {
		if answers(x) {
			return true
		}
	}
	return false
}

func allEqual(vs []string, want string) bool {
	for _, v := range vs {
		if v != want {
			return false
		}
	}
	return len(vs) > 0
}

// taskIDs are the current task IDs by task name.
func taskIDs(mgmt kubectl) map[string]string {
	out, _ := mgmt.try("get", "k3sc", "playground", "-o", `jsonpath={range .status.tasks[*]}{.name}={.taskID}{"\n"}{end}`)
	ids := map[string]string{}
	for _, line := range strings.Fields(out) {
		if name, id, ok := strings.Cut(line, "="); ok {
			ids[name] = id
		}
	}
	return ids
}

// apiVersion is the workload API server's gitVersion.
func apiVersion(t *testing.T, wl kubectl) string {
	t.Helper()
	out := wl.run(t, "version", "-o", "json")
	i := strings.Index(out, `"serverVersion"`)
	if i < 0 {
		t.Fatalf("kubectl version: %s", out)
	}
	rest := out[i:]
	j := strings.Index(rest, `"gitVersion": "`)
	if j < 0 {
		t.Fatalf("kubectl version: %s", out)
	}
	v := rest[j+len(`"gitVersion": "`):]
	return v[:strings.IndexByte(v, '"')]
}

// adminHTTPClient is an HTTP client with the kubeconfig's CA and client certificate, for
// asking each server at its own address.
func adminHTTPClient(t *testing.T, kubeconfig string) *http.Client {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout = 2 * time.Second
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
