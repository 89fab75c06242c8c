package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/mesosk3s/mesosk3s/hack/hostguard"
	"github.com/mesosk3s/mesosk3s/hack/testenv"
)

// TestPlaygroundEndToEnd drives `make dev` the way a person would: start it, wait for
// Ready and the demo workload, use the kubeconfig from the Secret with the real kubectl
// against the real K3s cluster (nodes, pods, logs, exec), look for secrets in the process
// list, upgrade the operator, scale the agents up and down (drained, Nodes removed), kill
// an agent and the server (twice) and watch them come back working, delete the CA Secret,
// delete the cluster, stop, and check that nothing is left on the machine.
func TestPlaygroundEndToEnd(t *testing.T) {
	root, k3s, assets, work, dev, manager := e2eSetup(t)
	state := filepath.Join(work, "state")
	pg := startPlayground(t, dev, "--state-dir", state, "--k3s", k3s, "--manager", manager, "--assets", assets,
		"--node-assets", filepath.Join(root, "bin", "node"),
		"--sample", filepath.Join(root, "config/samples/playground/k3scluster.yaml"))
	ready := pg.waitOutput(t, "is Ready after", 4*time.Minute)
	answers := pg.waitOutput(t, "answers at", 3*time.Minute)
	t.Logf("make dev: %s; %s", ready, answers)

	// A second playground on the same state fails at once with a clear message.
	out, err := exec.Command(dev, "--state-dir", state, "--k3s", k3s, "--manager", manager, "--assets", assets).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another `make dev` is already running") {
		t.Fatalf("a second playground did not refuse clearly: %v\n%s", err, out)
	}

	mgmt := kubectlAt(filepath.Join(state, "kubeconfig"))
	mgmt.run(t, "wait", "--for=condition=Ready", "k3sc/playground", "--timeout=60s")

	// The admin kubeconfig from the Secret works against the real K3s server, and K3s
	// refuses a client certificate from another CA: the server runs with our CAs.
	clusterKC := filepath.Join(work, "playground.kubeconfig")
	writeKubeconfigFromSecret(t, mgmt, clusterKC)
	wl := kubectlAt(clusterKC)
	if got := wl.run(t, "get", "--raw", "/readyz"); strings.TrimSpace(got) != "ok" {
		t.Fatalf("/readyz through the kubeconfig answered %q", got)
	}
	foreign := filepath.Join(work, "foreign.kubeconfig")
	writeForeignKubeconfig(t, clusterKC, foreign)
	if out, err := kubectlAt(foreign).try("get", "--raw", "/readyz"); err == nil {
		t.Fatalf("K3s accepted a client certificate from another CA: %s", out)
	} else if !strings.Contains(out, "Unauthorized") && !strings.Contains(out, "unauthorized") {
		t.Fatalf("want Unauthorized for a foreign client certificate, got: %s", out)
	}

	// Real nodes: both agents Ready, the demo pod Running and answering from the machine,
	// kubectl logs and exec through K3s's tunnel to the kubelets.
	waitNodes(t, wl, []string{"playground-agent-0", "playground-agent-1"}, time.Minute)
	checkDemo(t, wl)
	logNodeMemory(t, state)
	noSecretsShown(t, mgmt, state, pg.mesosURL(t))

	// An upgrade of the operator alone relaunches nothing.
	upgradeOperatorInPlace(t, pg, root, manager, filepath.Join(state, "operator.log"), mgmt)

	// Scale to three agents: a third node joins. Back to one: the two leaving are
	// cordoned and drained while their tasks still run, then killed and their Nodes gone.
	mgmt.run(t, "scale", "k3scluster", "playground", "--replicas=3")
	waitNodes(t, wl, []string{"playground-agent-0", "playground-agent-1", "playground-agent-2"}, 3*time.Minute)
	mgmt.run(t, "wait", "--for=condition=Ready", "k3sc/playground", "--timeout=120s")
	scaleDownDrains(t, mgmt, wl)
	checkDemo(t, wl)

	// SIGKILL the agent: Mesos destroys its container (pods included), the operator
	// removes its Node and relaunches it, and the same node rejoins Ready.
	killAgentAndRejoin(t, mgmt, wl, state)
	checkDemo(t, wl)

	// Kill the K3s server twice: each time Mesos reports the task failed, the operator
	// relaunches it on the same data and CAs; then it must still work, not only answer:
	// an agent joins and a workload is scheduled and runs.
	for i := 1; i <= 2; i++ {
		pid := findProcess(t, state, "server", "")
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitJSONPath(t, mgmt, `{.status.tasks[?(@.name=="server-0")].restarts}`, strconv.Itoa(i), time.Minute)
		mgmt.run(t, "wait", "--for=condition=Ready", "k3sc/playground", "--timeout=180s")
	}
	writeKubeconfigFromSecret(t, mgmt, clusterKC)
	mgmt.run(t, "scale", "k3scluster", "playground", "--replicas=2")
	waitNodes(t, wl, []string{"playground-agent-0", "playground-agent-1"}, 3*time.Minute)
	wl.run(t, "scale", "deployment", demoName, "--replicas=2")
	wl.run(t, "rollout", "status", "deployment/"+demoName, "--timeout=120s")
	checkDemo(t, wl)

	// The CA Secret deleted under a running cluster: nothing is relaunched or re-keyed, and
	// the status says why the cluster is Stalled.
	before := mgmt.run(t, "get", "k3sc", "playground", "-o", "jsonpath={.status.tasks[*].taskID}")
	mgmt.run(t, "delete", "secret", "playground-ca")
	waitJSONPath(t, mgmt, `{.status.conditions[?(@.type=="Stalled")].reason}`, "SecretLost", time.Minute)
	if msg := mgmt.run(t, "get", "k3sc", "playground", "-o", `jsonpath={.status.conditions[?(@.type=="Stalled")].message}`); !strings.Contains(msg, "playground-ca") {
		t.Errorf("the Stalled message does not name the deleted Secret: %q", msg)
	}
	if after := mgmt.run(t, "get", "k3sc", "playground", "-o", "jsonpath={.status.tasks[*].taskID}"); after != before {
		t.Fatalf("deleting the CA Secret changed the tasks: %q -> %q", before, after)
	}
	if got := wl.run(t, "get", "--raw", "/readyz"); strings.TrimSpace(got) != "ok" {
		t.Fatalf("/readyz after the CA Secret was deleted: %q", got)
	}

	// Delete: nothing of the cluster remains in the emulator.
	mesosURL := pg.mesosURL(t)
	mgmt.run(t, "delete", "k3sc", "playground", "--timeout=120s")
	if left := emulatorLeftovers(t, mesosURL, "k3s:default/playground"); len(left) > 0 {
		t.Fatalf("the emulator still holds: %v", left)
	}

	instance := pg.instance(t)
	pg.stop(t)
	if left := hostguard.Leftovers(instance, state); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// emulatorLeftovers lists what the emulator's /state still holds of a framework: the
// framework registered (a torn-down one is under completed_frameworks, as on a real
// master), resources used or reserved on any agent.
func emulatorLeftovers(t *testing.T, mesosURL, framework string) []string {
	t.Helper()
	var st struct {
		Frameworks []struct {
			Name string `json:"name"`
		} `json:"frameworks"`
		Slaves []struct {
			Hostname string                     `json:"hostname"`
			Used     map[string]json.RawMessage `json:"used_resources"`
			Reserved map[string]json.RawMessage `json:"reserved_resources"`
		} `json:"slaves"`
	}
	if err := json.Unmarshal([]byte(httpGet(t, mesosURL+"/state")), &st); err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, f := range st.Frameworks {
		if f.Name == framework {
			left = append(left, "framework "+f.Name+" registered")
		}
	}
	for _, a := range st.Slaves {
		for _, r := range []string{"cpus", "mem", "disk"} {
			if v := string(a.Used[r]); v != "" && v != "0" {
				left = append(left, fmt.Sprintf("%s uses %s %s", a.Hostname, r, v))
			}
		}
		if len(a.Reserved) > 0 {
			left = append(left, fmt.Sprintf("%s has reservations %v", a.Hostname, a.Reserved))
		}
	}
	return left
}

// e2eSetup skips without what real nodes need (root, bin/k3s: a failure with
// MESOSK3S_REQUIRE_K3S), and builds the playground and the operator into a temporary
// directory.
func e2eSetup(t *testing.T) (root, k3s, assets, work, dev, manager string) {
	t.Helper()
	root = testenv.RepoRoot()
	k3s = filepath.Join(root, "bin", "k3s")
	if _, err := os.Stat(k3s); err != nil {
		if os.Getenv("MESOSK3S_REQUIRE_K3S") != "" {
			t.Fatalf("bin/k3s is missing (hack/build-k3s.sh builds it): %v", err)
		}
		t.Skip("bin/k3s is missing; `make test` builds it (hack/build-k3s.sh)")
	}
	if os.Geteuid() != 0 {
		t.Skip("real K3s nodes need root")
	}
	assets = os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test`")
	}
	work = t.TempDir()
	dev, manager = filepath.Join(work, "dev"), filepath.Join(work, "manager")
	goBuild(t, root, dev, "./hack/dev")
	goBuild(t, root, manager, ".")
	return root, k3s, assets, work, dev, manager
}

// upgradeOperatorInPlace swaps the operator binary for a build with another version,
// restarts it, waits until the new operator has resubscribed and reconciled, and checks
// that no task was killed or launched.
func upgradeOperatorInPlace(t *testing.T, pg *playgroundProcess, root, manager, opLog string, mgmt kubectl) {
	t.Helper()
	before := mgmt.run(t, "get", "k3sc", "playground", "-o", "jsonpath={.status.tasks[*].taskID}")
	goBuild(t, root, manager+".next", ".", "-ldflags=-X main.version=e2e-upgrade")
	if err := os.Rename(manager+".next", manager); err != nil {
		t.Fatal(err)
	}
	if err := pg.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	pg.waitOutput(t, "restarting the operator", 30*time.Second)
	waitFileLine(t, opLog, "e2e-upgrade", "reconciliation answered", time.Minute)
	// Kills and launches follow within the first passes of the new operator: give them
	// time to show, then compare.
	time.Sleep(3 * time.Second)
	after := mgmt.run(t, "get", "k3sc", "playground", "-o", "jsonpath={.status.tasks[*].taskID}")
	if before == "" || after != before {
		t.Fatalf("the operator upgrade relaunched tasks: %q -> %q", before, after)
	}
	if logged := readAfter(t, opLog, "e2e-upgrade"); strings.Contains(logged, "kill sent") || strings.Contains(logged, "launched task") {
		t.Fatalf("the upgraded operator killed or launched tasks:\n%s", logged)
	}
	mgmt.run(t, "wait", "--for=condition=Ready", "k3sc/playground", "--timeout=60s")
}

// waitFileLine waits until the file, from the first line containing after onwards, has a
// line containing want.
func waitFileLine(t *testing.T, path, after, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(readAfter(t, path, after), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q after %q within %s:\n%s", path, want, after, timeout, readAfter(t, path, after))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// readAfter is the file's content from the first line containing marker ("" if none).
func readAfter(t *testing.T, path, marker string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, marker)
	if i < 0 {
		return ""
	}
	if j := strings.LastIndexByte(s[:i], '\n'); j >= 0 {
		i = j + 1
	}
	return s[i:]
}

func goBuild(t *testing.T, dir, out, pkg string, flags ...string) {
	t.Helper()
	cmd := exec.Command("go", append(append([]string{"build", "-o", out}, flags...), pkg)...)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// playgroundProcess is a running `make dev`.
type playgroundProcess struct {
	cmd    *exec.Cmd
	lines  chan string
	output *bytes.Buffer
	done   chan error
}

func startPlayground(t *testing.T, binary string, args ...string) *playgroundProcess {
	t.Helper()
	cmd := exec.Command(binary, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &playgroundProcess{cmd: cmd, lines: make(chan string, 1024), output: &bytes.Buffer{}, done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		close(p.lines)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState != nil {
			return
		}
		// A failed test still stops the playground the way a person would (Ctrl-C), so the
		// emulator kills its tasks' processes; only if that hangs, everything is killed.
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(60 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			// Nothing removed the emulator's hosts and cgroups: sweep them.
			for _, line := range strings.Split(p.output.String(), "\n") {
				if _, rest, ok := strings.Cut(line, "(instance "); ok {
					for _, done := range hostguard.Sweep(strings.SplitN(rest, ")", 2)[0]) {
						t.Logf("sweep: %s", done)
					}
				}
			}
		}
		for _, dir := range stateDirs(args) {
			for _, left := range hostguard.Processes(dir) {
				t.Logf("killing a process the playground left: %d: %s", left.PID, left.Cmdline)
				_ = syscall.Kill(left.PID, syscall.SIGKILL)
			}
		}
	})
	return p
}

// stateDirs is the --state-dir among the playground's arguments.
func stateDirs(args []string) []string {
	for i, a := range args {
		if a == "--state-dir" && i+1 < len(args) {
			return []string{args[i+1]}
		}
	}
	return nil
}

func (p *playgroundProcess) waitOutput(t *testing.T, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("make dev exited before %q:\n%s", want, p.output)
			}
			p.output.WriteString(line + "\n")
			if strings.Contains(line, want) {
				return strings.TrimSpace(line)
			}
		case <-deadline:
			t.Fatalf("no %q from make dev within %s:\n%s", want, timeout, p.output)
		}
	}
}

// instance reads the emulator's instance (what names its namespaces, links and cgroups)
// from the playground's output.
func (p *playgroundProcess) instance(t *testing.T) string {
	for _, line := range strings.Split(p.output.String(), "\n") {
		if _, rest, ok := strings.Cut(line, "(instance "); ok {
			return strings.SplitN(rest, ")", 2)[0]
		}
	}
	t.Fatalf("no emulator instance in:\n%s", p.output)
	return ""
}

// mesosURL reads the emulator's address from the playground's output.
func (p *playgroundProcess) mesosURL(t *testing.T) string {
	for _, line := range strings.Split(p.output.String(), "\n") {
		if i := strings.Index(line, "Mesos master emulator at "); i >= 0 {
			return strings.Fields(line[i+len("Mesos master emulator at "):])[0]
		}
	}
	t.Fatalf("no emulator address in:\n%s", p.output)
	return ""
}

// stop sends Ctrl-C and waits for the playground to exit cleanly.
func (p *playgroundProcess) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(os.Interrupt)
	go func() {
		for line := range p.lines {
			p.output.WriteString(line + "\n")
		}
	}()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("make dev exited with %v:\n%s", err, p.output)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("make dev did not stop within 60s of Ctrl-C:\n%s", p.output)
	}
}

type kubectl struct{ kubeconfig string }

func kubectlAt(kubeconfig string) kubectl { return kubectl{kubeconfig} }

func (k kubectl) try(args ...string) (string, error) {
	out, err := exec.Command("kubectl", append([]string{"--kubeconfig", k.kubeconfig}, args...)...).CombinedOutput()
	return string(out), err
}

func (k kubectl) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := k.try(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func waitJSONPath(t *testing.T, k kubectl, path, want string, timeout time.Duration) {
	t.Helper()
	waitClusterJSONPath(t, k, "default", "playground", path, want, timeout)
}

// waitClusterJSONPath waits until a K3sCluster's jsonpath is want.
func waitClusterJSONPath(t *testing.T, k kubectl, namespace, name, path, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got string
	for time.Now().Before(deadline) {
		got, _ = k.try("get", "k3sc", name, "-n", namespace, "-o", "jsonpath="+path)
		if strings.TrimSpace(got) == want {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	out, _ := k.try("get", "k3sc", name, "-n", namespace, "-o", "yaml")
	t.Fatalf("%s = %q, want %q after %s\n%s", path, got, want, timeout, out)
}

func writeKubeconfigFromSecret(t *testing.T, k kubectl, path string) {
	t.Helper()
	writeKubeconfigFrom(t, k, "default", "playground-kubeconfig", path)
}

// writeKubeconfigFrom writes the kubeconfig in a Secret's key value to path.
func writeKubeconfigFrom(t *testing.T, k kubectl, namespace, secret, path string) {
	t.Helper()
	encoded := k.run(t, "get", "secret", secret, "-n", namespace, "-o", "jsonpath={.data.value}")
	data, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeForeignKubeconfig copies a kubeconfig but swaps its client certificate for one from
// a CA K3s does not know.
func writeForeignKubeconfig(t *testing.T, from, to string) {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(from)
	if err != nil {
		t.Fatal(err)
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "impostor-ca"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	certPEM, keyPEM := clientCert(t, caCert, caKey, pkix.Name{CommonName: "mesosk3s-admin", Organization: []string{"system:masters"}})
	for _, u := range cfg.AuthInfos {
		u.ClientCertificateData, u.ClientKeyData = certPEM, keyPEM
	}
	if err := clientcmd.WriteToFile(*cfg, to); err != nil {
		t.Fatal(err)
	}
}

// clientCert issues a client certificate for subject from a CA, valid for an hour, as
// PEM certificate and key.
func clientCert(t *testing.T, ca *x509.Certificate, caKey any, subject pkix.Name) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: subject,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// findProcess finds the K3s process of a role (server, agent) in the playground's
// sandboxes; on host when host is set (its environment's HOST: the agent's host name, as
// Mesos tasks get it).
func findProcess(t *testing.T, state, role, host string) int {
	t.Helper()
	for _, p := range hostguard.Processes(filepath.Join(state, "sandboxes")) {
		if strings.Contains(p.Cmdline, "k3s "+role) && (host == "" || processEnv(p.PID, "HOST") == host) {
			return p.PID
		}
	}
	t.Fatalf("no k3s %s process (host %q) under %s: %v", role, host, state, hostguard.ProcessesUnder(state))
	return 0
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(body)
}
