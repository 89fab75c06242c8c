package k3s

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testPKI has distinctive contents so a file in the wrong place is unmistakable.
func testPKI() *ServerPKI {
	pair := func(n string) KeyPair {
		return KeyPair{Cert: []byte(n + "-CERT\n"), Key: []byte("-----BEGIN EC PRIVATE KEY-----\n" + n + "-KEY 'quoted' $notavar\n")}
	}
	return &ServerPKI{
		ServerCA: pair("SERVER-CA"), ClientCA: pair("CLIENT-CA"), RequestHeaderCA: pair("RH-CA"),
		EtcdPeerCA: pair("PEER-CA"), EtcdServerCA: pair("ETCD-SERVER-CA"), ServiceAccountKey: []byte("SERVICE-KEY\n"),
	}
}

func testServer() Server {
	return Server{
		Common: Common{
			Executable: `"$MESOS_SANDBOX"/k3s`, NodeName: "demo-server-0",
			NodeLabels: map[string]string{"zone": "a", "mesosk3s.io/role": "server"},
			NodeTaints: []string{"node-role.kubernetes.io/control-plane=true:NoSchedule"},
			ExtraArgs:  []string{"--disable=traefik", "--kube-apiserver-arg=audit-log-path=/tmp/a b"},
			Env:        map[string]string{"HTTP_PROXY": "http://proxy:3128"},
		},
		ClusterInit: true,
		TLSSANs:     []string{"k3s.example.com", "10.0.0.5"},
		ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16", ClusterDNS: "10.43.0.10", ClusterDomain: "cluster.local",
		DatastoreEndpointSecret: []byte("mysql://root:DB-PASSWORD@tcp(db:3306)/k3s"),
		Token:                   "K10abc::server:TOKEN-SECRET-VALUE",
		PKI:                     testPKI(),
	}
}

// run executes a process's script with sh the way a task runner does: the sandbox holds a
// fake k3s that records its argv and environment, $DATA_DIR and $PORT_* are set, and
// the process's variables (secrets resolved) are in the environment.
func run(t *testing.T, p Process, prepare func(dataDir string)) (argv []string, env string, dataDir string) {
	t.Helper()
	sandbox := t.TempDir()
	fake := "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$MESOS_SANDBOX/argv\"\nenv > \"$MESOS_SANDBOX/env\"\n"
	if err := os.WriteFile(filepath.Join(sandbox, "k3s"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	dataDir = filepath.Join(sandbox, "data")
	if prepare != nil {
		prepare(dataDir)
	}
	cmd := exec.Command("/bin/sh", "-c", p.Script)
	cmd.Env = []string{"MESOS_SANDBOX=" + sandbox, "DATA_DIR=" + dataDir, "PORT_API=31000", "PORT_APISERVER=31001", "HOST=node-1.example.com", "PATH=" + os.Getenv("PATH")}
	for k, v := range p.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for k, v := range p.BootstrapEnv {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for k, v := range p.Secrets {
		cmd.Env = append(cmd.Env, k+"="+string(v))
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("script failed: %v\n%s\n%s", err, out, p.Script)
	}
	a, _ := os.ReadFile(filepath.Join(sandbox, "argv"))
	e, _ := os.ReadFile(filepath.Join(sandbox, "env"))
	return strings.Split(strings.TrimSuffix(string(a), "\n"), "\n"), string(e), dataDir
}

// TestServerScriptRuns runs the rendered server script with sh and a fake k3s: the CAs
// land under <data-dir>/server/tls/ byte for byte, an existing file is kept, the TLS
// variables are gone by the time K3s starts, K3S_TOKEN is still there, and argv is exact.
func TestServerScriptRuns(t *testing.T) {
	s := testServer()
	p, err := s.Process()
	if err != nil {
		t.Fatal(err)
	}
	argv, env, dataDir := run(t, p, func(dataDir string) {
		tls := filepath.Join(dataDir, "server", "tls")
		if err := os.MkdirAll(tls, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tls, "client-ca.crt"), []byte("ALREADY THERE"), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	for _, f := range s.PKI.files() {
		got, err := os.ReadFile(filepath.Join(dataDir, "server", "tls", f.path))
		want := f.data
		if f.path == "client-ca.crt" {
			want = []byte("ALREADY THERE")
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: got %q (%v), want %q", f.path, got, err, want)
		}
	}
	wantArgv := []string{"server", "--data-dir=" + dataDir, "--write-kubeconfig=" + dataDir + "/kubeconfig.yaml",
		"--https-listen-port=31000", "--cluster-init",
		"--kube-controller-manager-arg=secure-port=0", "--kube-cloud-controller-manager-arg=secure-port=0", "--kube-scheduler-arg=secure-port=0",
		"--node-name=demo-server-0", "--tls-san=node-1.example.com", "--tls-san=k3s.example.com", "--tls-san=10.0.0.5",
		"--cluster-cidr=10.42.0.0/16", "--service-cidr=10.43.0.0/16", "--cluster-dns=10.43.0.10", "--cluster-domain=cluster.local",
		"--disable-agent",
		"--node-label=mesosk3s.io/role=server", "--node-label=zone=a",
		"--node-taint=node-role.kubernetes.io/control-plane=true:NoSchedule",
		"--disable=traefik", "--kube-apiserver-arg=audit-log-path=/tmp/a b",
	}
	if !slices.Equal(argv, wantArgv) {
		t.Errorf("argv\n got %q\nwant %q", argv, wantArgv)
	}
	if strings.Contains(env, TLSVariablePrefix) {
		t.Errorf("TLS secrets still in K3s's environment")
	}
	for _, want := range []string{"K3S_TOKEN=K10abc::server:TOKEN-SECRET-VALUE", "K3S_DATASTORE_ENDPOINT=mysql://", "HTTP_PROXY=http://proxy:3128"} {
		if !strings.Contains(env, want) {
			t.Errorf("%s missing from K3s's environment", want)
		}
	}
	if !slices.Equal(p.Ports, []string{PortAPI, PortAPIServer}) || p.Health == nil || p.Health.Path != "/ping" || p.Health.Port != PortAPI {
		t.Errorf("ports %v health %+v", p.Ports, p.Health)
	}
	for name, value := range p.Secrets {
		if strings.Contains(p.Script, string(value)) {
			t.Errorf("secret %s is in the script itself", name)
		}
	}
}

func TestJoiningServerAndAgent(t *testing.T) {
	s := testServer()
	s.ClusterInit, s.JoinURL, s.PKI, s.DatastoreEndpointSecret = false, "https://server-0:31000", nil, nil
	s.TLSSANs, s.ExtraArgs, s.NodeLabels, s.NodeTaints = nil, nil, nil, nil
	s.DatastoreEndpoint = "http://etcd-0:2379"
	p, err := s.Process()
	if err != nil {
		t.Fatal(err)
	}
	argv, _, _ := run(t, p, nil)
	if !slices.Contains(argv, "--server=https://server-0:31000") || !slices.Contains(argv, "--datastore-endpoint=http://etcd-0:2379") ||
		slices.Contains(argv, "--cluster-init") {
		t.Errorf("joining server argv %q", argv)
	}
	if strings.Contains(p.Script, "write_once") {
		t.Errorf("no PKI, nothing to write:\n%s", p.Script)
	}

	a := Agent{Common: Common{Executable: "k3s", NodeName: "demo-agent-3", NodeLabels: map[string]string{"pool": "default"}},
		ServerURL: "https://k3s.example.com:31000", Token: "K10abc::server:TOKEN-SECRET-VALUE"}
	ap, err := a.Process()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`exec k3s agent --data-dir="$DATA_DIR/k3s" --server=https://k3s.example.com:31000 --node-name=demo-agent-3 --lb-server-port="$PORT_LB" ` +
			`--kubelet-arg="port=$PORT_KUBELET" --kubelet-arg="healthz-port=$PORT_KUBELET_HEALTHZ" --kubelet-arg="cgroup-root=$cgroup_root" ` +
			`--kube-proxy-arg="metrics-bind-address=127.0.0.1:$PORT_KUBE_PROXY_METRICS" --kube-proxy-arg="healthz-bind-address=127.0.0.1:$PORT_KUBE_PROXY_HEALTHZ" `,
		`--node-label=pool=default` + "\n",
		`stream_server_port = "$PORT_CRI_STREAM"`,
		`mount --bind "$DATA_DIR"/rancher /etc/rancher`,
		`mount -t tmpfs -o mode=0755,nosuid,nodev k3s /run/k3s`,
		`exec unshare --mount --propagation slave -- /bin/sh -c `,
	} {
		if !strings.Contains(ap.Script, want) {
			t.Errorf("agent script lacks %q:\n%s", want, ap.Script)
		}
	}
	if ap.Health == nil || ap.Health.Port != PortKubeletHealthz || ap.Health.Path != "/healthz" || len(ap.Ports) != 6 ||
		string(ap.Secrets[EnvToken]) != a.Token || len(ap.Secrets) != 1 {
		t.Errorf("agent process %+v", ap)
	}
	if strings.Contains(ap.Script, a.Token) {
		t.Errorf("the token is in the script")
	}
}

func TestProcessRefusesWhatCannotRun(t *testing.T) {
	tests := []struct {
		name    string
		process func() (Process, error)
		want    string
	}{
		{"server without token", func() (Process, error) { s := testServer(); s.Token = ""; return s.Process() }, "join token"},
		{"server both inits and joins", func() (Process, error) { s := testServer(); s.JoinURL = "https://x"; return s.Process() }, "not both"},
		{"incomplete PKI", func() (Process, error) { s := testServer(); s.PKI.EtcdPeerCA.Key = nil; return s.Process() }, "etcd/peer-ca.key"},
		{"env shadows the token", func() (Process, error) {
			s := testServer()
			s.Env = map[string]string{"K3S_TOKEN": "x"}
			return s.Process()
		}, "reserved"},
		{"env shadows a TLS file", func() (Process, error) {
			s := testServer()
			s.Env = map[string]string{"MESOSK3S_TLS_SERVER_CA_KEY": "x"}
			return s.Process()
		}, "reserved"},
		{"no node name", func() (Process, error) { s := testServer(); s.NodeName = ""; return s.Process() }, "node name"},
		{"agent without server", func() (Process, error) {
			return Agent{Common: Common{Executable: "k3s", NodeName: "n"}, Token: "t"}.Process()
		}, "server URL"},
		{"agent without token", func() (Process, error) {
			return Agent{Common: Common{Executable: "k3s", NodeName: "n"}, ServerURL: "https://x"}.Process()
		}, "join token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.process()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestImage(t *testing.T) {
	tests := []struct{ image, version, want string }{
		{"rancher/k3s", "v1.31.4+k3s1", "rancher/k3s:v1.31.4-k3s1"},
		{"registry.local:5000/rancher/k3s", "v1.25.4+k3s1", "registry.local:5000/rancher/k3s:v1.25.4-k3s1"},
		{"rancher/k3s:v1.30.0-k3s1", "v1.31.4+k3s1", "rancher/k3s:v1.30.0-k3s1"},
		{"rancher/k3s@sha256:abcd", "v1.31.4+k3s1", "rancher/k3s@sha256:abcd"},
	}
	for _, tt := range tests {
		if got := Image(tt.image, tt.version); got != tt.want {
			t.Errorf("Image(%q, %q) = %q, want %q", tt.image, tt.version, got, tt.want)
		}
	}
}

// TestScriptRefusesAnotherK3sVersion: with Version set, the script asks the executable
// its version first and exits with ExitWrongVersion, saying both, unless they match.
func TestScriptRefusesAnotherK3sVersion(t *testing.T) {
	for _, tc := range []struct {
		name, binary string
		wantExit     int
	}{
		{"same release", "v1.25.4+k3s1", 0},
		{"another release", "v1.25.2+k3s1", ExitWrongVersion},
		{"not K3s at all", "", ExitWrongVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testServer()
			s.Version = "v1.25.4+k3s1"
			p, err := s.Process()
			if err != nil {
				t.Fatal(err)
			}
			sandbox := t.TempDir()
			fake := "#!/bin/sh\nif [ \"$1\" = --version ]; then\n"
			if tc.binary != "" {
				fake += "  echo 'k3s version " + tc.binary + " (0dc63334)'; echo 'go version go1.26'\n"
			}
			fake += "  exit 0\nfi\necho started > \"$MESOS_SANDBOX/started\"\n"
			if err := os.WriteFile(filepath.Join(sandbox, "k3s"), []byte(fake), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("/bin/sh", "-c", p.Script)
			cmd.Env = []string{"MESOS_SANDBOX=" + sandbox, "DATA_DIR=" + filepath.Join(sandbox, "data"), "PORT_API=31000", "PATH=" + os.Getenv("PATH")}
			for k, v := range p.Secrets {
				cmd.Env = append(cmd.Env, k+"="+string(v))
			}
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			_, startErr := os.Stat(filepath.Join(sandbox, "started"))
			if code != tc.wantExit || (startErr == nil) != (tc.wantExit == 0) {
				t.Fatalf("exit %d (want %d), K3s started: %v\n%s", code, tc.wantExit, startErr == nil, out)
			}
			if tc.wantExit != 0 && !strings.Contains(string(out), "not v1.25.4+k3s1 (spec.version)") {
				t.Errorf("the refusal does not say what was wanted: %s", out)
			}
		})
	}
}

// The first server of embedded etcd starts the cluster only on its own data: with its
// data gone (a lost volume) and another member named, it joins that member instead of
// starting a second etcd cluster beside the first.
func TestFirstServerRejoinsWhenItsDataIsGone(t *testing.T) {
	s := testServer()
	s.RejoinURL = "https://node-2.example.com:31000"
	p, err := s.Process()
	if err != nil {
		t.Fatal(err)
	}
	if p.BootstrapEnv[RejoinEnv] != s.RejoinURL || p.Env[RejoinEnv] != "" {
		t.Fatalf("rejoin URL must be bootstrap environment only: env %v bootstrap %v", p.Env, p.BootstrapEnv)
	}
	argv, _, _ := run(t, p, nil)
	if slices.Contains(argv, "--cluster-init") || !slices.Contains(argv, "--server="+s.RejoinURL) {
		t.Errorf("empty data dir with a member to rejoin: argv %q", argv)
	}
	argv, _, _ = run(t, p, func(dataDir string) {
		if err := os.MkdirAll(filepath.Join(dataDir, "server", "db", "etcd", "member", "wal"), 0o700); err != nil {
			t.Fatal(err)
		}
	})
	if !slices.Contains(argv, "--cluster-init") || slices.Contains(argv, "--server="+s.RejoinURL) {
		t.Errorf("its own member's data: argv %q, want --cluster-init (a restart)", argv)
	}
	s.ClusterInit = false
	if _, err := s.Process(); err == nil {
		t.Error("a joining server with a rejoin URL was rendered")
	}
}
