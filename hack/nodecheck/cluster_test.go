package nodecheck

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const imageRef = "docker.io/mesosk3s/busybox:1.35"

// clusterNet is a cluster's pod and service ranges.
type clusterNet struct{ cluster, service, dns string }

// testNet: not K3s's defaults (10.42/10.43), so routes to the test cluster's pods can
// never clash with another K3s on the same machine.
var testNet = clusterNet{cluster: "10.78.0.0/16", service: "10.79.0.0/16", dns: "10.79.0.10"}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// freePort returns a TCP port that is free on addr, and when pair is set, the next one
// too (a K3s server listens on its HTTPS port and the one after it).
func freePort(t *testing.T, addr string, pair bool) int {
	t.Helper()
	for i := 0; i < 100; i++ {
		l, err := net.Listen("tcp", addr+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !pair {
			return port
		}
		if l2, err := net.Listen("tcp", addr+":"+strconv.Itoa(port+1)); err == nil {
			l2.Close()
			return port
		}
	}
	t.Fatal("no free port pair")
	return 0
}

// server is a control-plane-only K3s server in the host's network namespace.
type server struct {
	url, kubeconfig, agentToken, log string
	kubectlPath                      string
	cmd                              *exec.Cmd
	exited                           chan struct{}
}

// startServer runs a K3s server with its files in dir, listening on the bridge.
func startServer(t *testing.T, k3s, dir, cniBin string, cn clusterNet) *server {
	t.Helper()
	dataDir := filepath.Join(dir, "data")
	port := freePort(t, bridgeIP, true)
	s := &server{
		url:        fmt.Sprintf("https://%s:%d", bridgeIP, port),
		kubeconfig: filepath.Join(dir, "kubeconfig.yaml"),
		log:        filepath.Join(dir, "server.log"),
		exited:     make(chan struct{}),
	}
	binDir := filepath.Join(dir, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The cmd/server build of K3s runs kubectl only under that name (argv[0]).
	s.kubectlPath = filepath.Join(binDir, "kubectl")
	if err := os.Symlink(k3s, s.kubectlPath); err != nil {
		t.Fatal(err)
	}
	args := []string{"server",
		"--data-dir", dataDir,
		"--token", randomHex(16),
		// Agents join with the agent token only (never the server token).
		"--agent-token", randomHex(16),
		"--https-listen-port", strconv.Itoa(port),
		"--bind-address", bridgeIP, "--advertise-address", bridgeIP, "--tls-san", bridgeIP,
		"--write-kubeconfig", s.kubeconfig, "--write-kubeconfig-mode", "0600",
		"--disable-agent",
		// metrics-server: its image (rancher/mirrored-metrics-server) cannot be pulled here.
		"--disable", "traefik,servicelb,local-storage,coredns,metrics-server",
		"--disable-network-policy",
		"--cluster-cidr", cn.cluster, "--service-cidr", cn.service, "--cluster-dns", cn.dns,
		"--kube-controller-manager-arg=secure-port=0",
		"--kube-cloud-controller-manager-arg=secure-port=0",
		"--kube-scheduler-arg=secure-port=0",
	}
	logFile, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	// A K3s server, even with --disable-agent and --write-kubeconfig, writes the host's
	// /etc/rancher/k3s/k3s.yaml (a symlink to the kubeconfig) and a node password in
	// /etc/rancher/node/: like an agent it gets a private mount namespace with its own
	// /etc/rancher.
	s.cmd = exec.Command("unshare", append([]string{"--mount", "--propagation", "slave", "--",
		"/bin/sh", "-c", `mkdir -p /etc/rancher "$RANCHER" && mount --bind "$RANCHER" /etc/rancher && exec "$0" "$@"`,
		k3s}, args...)...)
	// host-local on PATH: without it a --disable-agent server with flannel never starts
	// its scheduler (k3s-nodes-here.md, FIX 1).
	s.cmd.Env = append(os.Environ(), "PATH="+cniBin+":"+os.Getenv("PATH"), "RANCHER="+filepath.Join(dir, "rancher"))
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() { s.stop(t) })
	start := time.Now()
	if err := waitFor(2*time.Minute, func() error {
		select {
		case <-s.exited:
			return fmt.Errorf("k3s server exited:\n%s", tail(s.log, 30))
		default:
		}
		_, err := s.kubectl("get", "--raw", "/readyz")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(filepath.Join(dataDir, "server", "agent-token"))
	if err != nil {
		t.Fatal(err)
	}
	s.agentToken = strings.TrimSpace(string(tok))
	t.Logf("server %s ready in %s", s.url, time.Since(start).Round(100*time.Millisecond))
	return s
}

func (s *server) stop(t *testing.T) {
	pgid := s.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		t.Logf("k3s server ignored SIGTERM for 20s, killing it")
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-s.exited
}

func (s *server) kubectl(args ...string) (string, error) {
	return s.kubectlStdin(nil, args...)
}

func (s *server) kubectlStdin(stdin io.Reader, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(s.kubectlPath, append([]string{"--kubeconfig", s.kubeconfig, "--request-timeout", "20s"}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// --- Nodes and pods ------------------------------------------------------------------

type condition struct {
	Type, Status, Reason, Message string
	LastHeartbeatTime             time.Time `json:"lastHeartbeatTime"`
}

type node struct {
	Spec struct {
		PodCIDR string `json:"podCIDR"`
	} `json:"spec"`
	Status struct {
		Conditions      []condition `json:"conditions"`
		Addresses       []struct{ Type, Address string }
		DaemonEndpoints struct {
			KubeletEndpoint struct{ Port int } `json:"kubeletEndpoint"`
		} `json:"daemonEndpoints"`
		NodeInfo struct {
			ContainerRuntimeVersion string `json:"containerRuntimeVersion"`
			KubeletVersion          string `json:"kubeletVersion"`
		} `json:"nodeInfo"`
	} `json:"status"`
}

func (s *server) node(name string) (*node, error) {
	out, err := s.kubectl("get", "node", name, "-o", "json")
	if err != nil {
		return nil, err
	}
	var n node
	return &n, json.Unmarshal([]byte(out), &n)
}

func (n *node) ready() (condition, bool) {
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			return c, c.Status == "True"
		}
	}
	return condition{}, false
}

// waitNodeReady waits until the node reports Ready with a heartbeat not older than since
// (so a Ready left over from an earlier kubelet does not count).
func (s *server) waitNodeReady(name string, since time.Time, timeout time.Duration, alive func() error) (*node, error) {
	var n *node
	err := waitFor(timeout, func() error {
		if err := alive(); err != nil {
			return err
		}
		var err error
		if n, err = s.node(name); err != nil {
			return err
		}
		c, ok := n.ready()
		if !ok || c.LastHeartbeatTime.Before(since.Truncate(time.Second)) {
			return fmt.Errorf("node %s: Ready=%s (%s), heartbeat %s", name, c.Status, c.Reason, c.LastHeartbeatTime)
		}
		return nil
	})
	return n, err
}

type pod struct {
	Status struct {
		Phase             string `json:"phase"`
		PodIP             string `json:"podIP"`
		ContainerStatuses []struct {
			Ready        bool
			RestartCount int `json:"restartCount"`
			ContainerID  string
		} `json:"containerStatuses"`
	} `json:"status"`
	Spec struct {
		NodeName string `json:"nodeName"`
	} `json:"spec"`
}

func (s *server) pod(name string) (*pod, error) {
	out, err := s.kubectl("get", "pod", name, "-o", "json")
	if err != nil {
		return nil, err
	}
	var p pod
	return &p, json.Unmarshal([]byte(out), &p)
}

// webPod is a busybox httpd on port 8080 serving its own hostname (the pod name), pinned
// to a node through the scheduler (nodeSelector), image from the node's local store only.
func webPod(name, nodeName string) string {
	return fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":%q,"labels":{"app":%q}},
"spec":{"nodeSelector":{"kubernetes.io/hostname":%q},"terminationGracePeriodSeconds":1,
"containers":[{"name":"web","image":%q,"imagePullPolicy":"Never",
"command":["sh","-c","hostname > /tmp/index.html && exec httpd -f -v -p 8080 -h /tmp"],
"ports":[{"containerPort":8080}]}]}}`, name, name, nodeName, imageRef)
}

// waitPodReady waits until the pod runs with a ready container whose ID differs from
// notContainer (to see a pod come back after its node's kubelet was replaced).
func (s *server) waitPodReady(name, notContainer string, timeout time.Duration) (*pod, error) {
	var p *pod
	err := waitFor(timeout, func() error {
		var err error
		if p, err = s.pod(name); err != nil {
			return err
		}
		cs := p.Status.ContainerStatuses
		if p.Status.Phase != "Running" || p.Status.PodIP == "" || len(cs) == 0 || !cs[0].Ready || cs[0].ContainerID == notContainer {
			return fmt.Errorf("pod %s: phase %s, ip %q, containers %+v", name, p.Status.Phase, p.Status.PodIP, cs)
		}
		return nil
	})
	return p, err
}

// httpGet fetches url with a short timeout and returns the trimmed body.
func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return strings.TrimSpace(string(b)), err
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
