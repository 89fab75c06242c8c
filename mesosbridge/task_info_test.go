package mesosbridge

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func testFramework() FrameworkConfig {
	return FrameworkConfig{
		ClusterNamespace: "team-a", ClusterName: "dev", ClusterUID: "uid-1234",
		Role: "k3s", Principal: "mesosk3s", FailoverTimeout: 7 * 24 * time.Hour,
		Masters: []string{"http://master:5050"},
	}
}

// testSecrets are distinctive so a leak is unmistakable.
func testSecrets() map[string][]byte {
	return map[string][]byte{
		SecretToken:               []byte("K10abc::server:TOKEN-SECRET-VALUE"),
		SecretServerCACert:        []byte("-----BEGIN CERTIFICATE-----\nSERVER-CA-CERT\n-----END CERTIFICATE-----\n"),
		SecretServerCAKey:         []byte("-----BEGIN EC PRIVATE KEY-----\nSERVER-CA-KEY\n-----END EC PRIVATE KEY-----\n"),
		SecretClientCACert:        []byte("CLIENT-CA-CERT\n"),
		SecretClientCAKey:         []byte("CLIENT-CA-KEY\n"),
		SecretRequestHeaderCACert: []byte("RH-CA-CERT\n"),
		SecretRequestHeaderCAKey:  []byte("RH-CA-KEY\n"),
		SecretEtcdPeerCACert:      []byte("PEER-CA-CERT\n"),
		SecretEtcdPeerCAKey:       []byte("PEER-CA-KEY 'quoted' $notavar\n"),
		SecretEtcdServerCACert:    []byte("ETCD-SERVER-CA-CERT\n"),
		SecretEtcdServerCAKey:     []byte("ETCD-SERVER-CA-KEY\n"),
		SecretServiceKey:          []byte("SERVICE-KEY\n"),
		SecretDatastoreEndpoint:   []byte("mysql://root:DB-PASSWORD@tcp(db:3306)/k3s"),
	}
}

func serverSpec(rt Runtime) TaskSpec {
	s := TaskSpec{
		Name: "server-0", Role: RoleServer, Index: 0,
		Resources: Resources{CPUs: 1, MemMiB: 2048, DiskMiB: 1024},
		Ports:     []string{PortAPI},
		Runtime:   rt, Image: "rancher/k3s", BinaryURL: "file:///opt/k3s/k3s",
		K3s: K3sSettings{
			Version: "v1.31.4+k3s1", ClusterInit: true, NodeName: "server-0",
			TLSSANs:     []string{"k3s.example.com", "10.0.0.5"},
			ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16", ClusterDNS: "10.43.0.10", ClusterDomain: "cluster.local",
			NodeLabels: map[string]string{"zone": "a", "mesosk3s.io/role": "server"},
			NodeTaints: []string{"node-role.kubernetes.io/control-plane=true:NoSchedule"},
			ExtraArgs:  []string{"--disable=traefik", "--kube-apiserver-arg=audit-log-path=/tmp/a b"},
		},
		Env:         map[string]string{"HTTP_PROXY": "http://proxy:3128"},
		Secrets:     testSecrets(),
		NetworkMode: NetworkHost,
		SpecHash:    "abc123",
	}
	return s
}

func agentSpec(rt Runtime) TaskSpec {
	return TaskSpec{
		Name: "agent-3", Role: RoleAgent, Index: 3,
		Resources: Resources{CPUs: 2, MemMiB: 4096},
		Runtime:   rt, Image: "rancher/k3s", BinaryURL: "https://github.com/k3s-io/k3s/releases/download/v1.31.4%2Bk3s1/k3s",
		K3s: K3sSettings{
			Version: "v1.31.4+k3s1", ServerURL: "https://k3s.example.com:31000",
			NodeLabels: map[string]string{"pool": "default"},
		},
		Secrets:     map[string][]byte{SecretToken: []byte("K10abc::server:TOKEN-SECRET-VALUE")},
		NetworkMode: NetworkHost,
		SpecHash:    "def456",
	}
}

func testPlacement(ports map[string]uint32) placement {
	return placement{
		TaskID: "server-0.0123456789abcdef", AgentID: "agent-1", Hostname: "node-1",
		Resources: []mesos.Resource{{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 1}}},
		Ports:     ports,
	}
}

func TestK3sArgs(t *testing.T) {
	tests := []struct {
		name string
		spec TaskSpec
		want []string
	}{
		{"server", serverSpec(RuntimeDocker), []string{
			"--https-listen-port=31000", "--cluster-init",
			"--kube-controller-manager-arg=secure-port=0", "--kube-cloud-controller-manager-arg=secure-port=0", "--kube-scheduler-arg=secure-port=0",
			"--node-name=server-0",
			"--tls-san=k3s.example.com", "--tls-san=10.0.0.5",
			"--cluster-cidr=10.42.0.0/16", "--service-cidr=10.43.0.0/16", "--cluster-dns=10.43.0.10", "--cluster-domain=cluster.local",
			"--node-label=mesosk3s.io/role=server", "--node-label=zone=a",
			"--node-taint=node-role.kubernetes.io/control-plane=true:NoSchedule",
			"--disable=traefik", "--kube-apiserver-arg=audit-log-path=/tmp/a b",
		}},
		{"joining server with external datastore", func() TaskSpec {
			s := serverSpec(RuntimeBinary)
			s.K3s = K3sSettings{ServerURL: "https://server-0:31000", DatastoreEndpoint: "http://etcd-0:2379"}
			return s
		}(), []string{"--https-listen-port=31000",
			"--kube-controller-manager-arg=secure-port=0", "--kube-cloud-controller-manager-arg=secure-port=0", "--kube-scheduler-arg=secure-port=0",
			"--server=https://server-0:31000", "--datastore-endpoint=http://etcd-0:2379"}},
		{"agent", agentSpec(RuntimeDocker), []string{"--server=https://k3s.example.com:31000", "--node-label=pool=default"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := k3sArgs(tt.spec, map[string]uint32{PortAPI: 31000})
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("args\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestBuildTaskInfoServerDocker(t *testing.T) {
	info, err := buildTaskInfo(testFramework(), serverSpec(RuntimeDocker), testPlacement(map[string]uint32{PortAPI: 31000}))
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "server-0" || info.TaskID.Value != "server-0.0123456789abcdef" || info.AgentID.Value != "agent-1" {
		t.Errorf("identity: %s %s %s", info.Name, info.TaskID.Value, info.AgentID.Value)
	}
	d := info.GetContainer().GetDocker()
	if info.GetContainer().GetType() != mesos.ContainerInfo_DOCKER || d.Image != "rancher/k3s:v1.31.4-k3s1" ||
		!d.GetPrivileged() || d.GetNetwork() != mesos.ContainerInfo_DockerInfo_HOST {
		t.Errorf("container: %+v", info.Container)
	}
	if len(info.GetCommand().URIs) != 0 {
		t.Errorf("Docker runtime fetches nothing, got %v", info.Command.URIs)
	}
	script := info.GetCommand().GetValue()
	if !info.GetCommand().GetShell() || !strings.Contains(script, `exec k3s server --data-dir="$DATA_DIR" --write-kubeconfig="$DATA_DIR/kubeconfig.yaml" --https-listen-port=31000 `) {
		t.Errorf("script:\n%s", script)
	}
	if !strings.Contains(script, `'--kube-apiserver-arg=audit-log-path=/tmp/a b'`) {
		t.Errorf("extra args not quoted:\n%s", script)
	}
	hc := info.GetHealthCheck()
	if hc.GetType() != mesos.HealthCheck_HTTP || hc.GetHTTP().GetScheme() != "https" || hc.GetHTTP().GetPath() != "/ping" ||
		hc.GetHTTP().GetPort() != 31000 || hc.GetGracePeriodSeconds() <= 0 {
		t.Errorf("health check: %+v", hc)
	}
	if got := info.GetKillPolicy().GetGracePeriod().GetNanoseconds(); got != int64(defaultKillGracePeriod) {
		t.Errorf("kill grace %d", got)
	}
	labels := map[string]string{}
	for _, l := range info.GetLabels().GetLabels() {
		labels[l.Key] = l.GetValue()
	}
	for k, v := range map[string]string{LabelClusterUID: "uid-1234", LabelTaskRole: "server", LabelTaskIndex: "0", LabelSpecHash: "abc123"} {
		if labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, labels[k], v)
		}
	}
	disc := info.GetDiscovery()
	if disc.GetVisibility() != mesos.FRAMEWORK || disc.GetName() != "server-0.dev.team-a" ||
		len(disc.GetPorts().GetPorts()) != 1 || disc.GetPorts().Ports[0].GetName() != "api" || disc.GetPorts().Ports[0].Number != 31000 {
		t.Errorf("discovery: %+v", disc)
	}
	env := map[string]mesos.Environment_Variable{}
	for _, v := range info.GetCommand().GetEnvironment().GetVariables() {
		env[v.Name] = v
	}
	if v := env["PORT_API"]; v.GetValue() != "31000" || v.GetType() != mesos.Environment_Variable_VALUE {
		t.Errorf("PORT_API: %+v", v)
	}
	for _, name := range []string{"K3S_TOKEN", "K3S_DATASTORE_ENDPOINT", "MESOSK3S_TLS_SERVER_CA_KEY", "MESOSK3S_TLS_ETCD_PEER_CA_KEY"} {
		v := env[name]
		if v.GetType() != mesos.Environment_Variable_SECRET || v.Value != nil || v.GetSecret().GetType() != mesos.Secret_VALUE ||
			len(v.GetSecret().GetValue().GetData()) == 0 {
			t.Errorf("%s must be a VALUE secret with no plain value: %+v", name, v)
		}
	}
}

func TestBuildTaskInfoBinaryRuntime(t *testing.T) {
	spec := agentSpec(RuntimeBinary)
	info, err := buildTaskInfo(testFramework(), spec, testPlacement(nil))
	if err != nil {
		t.Fatal(err)
	}
	if info.Container != nil {
		t.Errorf("Binary runtime is a plain command task, got container %+v", info.Container)
	}
	uris := info.GetCommand().GetURIs()
	if len(uris) != 1 || uris[0].Value != spec.BinaryURL || !uris[0].GetExecutable() || uris[0].GetExtract() || uris[0].GetOutputFile() != "k3s" {
		t.Errorf("uris: %+v", uris)
	}
	want := `exec "$MESOS_SANDBOX"/k3s agent --data-dir="$DATA_DIR" --server=https://k3s.example.com:31000 --node-label=pool=default`
	if !strings.Contains(info.GetCommand().GetValue(), want+"\n") {
		t.Errorf("script:\n%s\nwant line %s", info.GetCommand().GetValue(), want)
	}
	if info.HealthCheck != nil {
		t.Errorf("agents have no Mesos health check (ready = running)")
	}
	if strings.Contains(info.GetCommand().GetValue(), "write_once") {
		t.Errorf("agents get no CAs")
	}
}

func TestBuildTaskInfoCNI(t *testing.T) {
	spec := agentSpec(RuntimeDocker)
	spec.NetworkMode, spec.NetworkName = NetworkCNI, "k3s-net"
	info, err := buildTaskInfo(testFramework(), spec, testPlacement(nil))
	if err != nil {
		t.Fatal(err)
	}
	c := info.GetContainer()
	if c.GetDocker().GetNetwork() != mesos.ContainerInfo_DockerInfo_USER || len(c.NetworkInfos) != 1 || c.NetworkInfos[0].GetName() != "k3s-net" {
		t.Errorf("container: %+v", c)
	}
}

func TestDockerImage(t *testing.T) {
	tests := []struct{ image, version, want string }{
		{"rancher/k3s", "v1.31.4+k3s1", "rancher/k3s:v1.31.4-k3s1"},
		{"registry.local:5000/rancher/k3s", "v1.25.4+k3s1", "registry.local:5000/rancher/k3s:v1.25.4-k3s1"},
		{"rancher/k3s:v1.30.0-k3s1", "v1.31.4+k3s1", "rancher/k3s:v1.30.0-k3s1"},
		{"rancher/k3s@sha256:abcd", "v1.31.4+k3s1", "rancher/k3s@sha256:abcd"},
	}
	for _, tt := range tests {
		if got := dockerImage(tt.image, tt.version); got != tt.want {
			t.Errorf("dockerImage(%q, %q) = %q, want %q", tt.image, tt.version, got, tt.want)
		}
	}
}

// TestNoSecretOutsideSecretValues encodes whole TaskInfos the way they go to the master,
// blanks the Secret values, and looks for every secret, raw and base64, in what is left.
func TestNoSecretOutsideSecretValues(t *testing.T) {
	for _, spec := range []TaskSpec{serverSpec(RuntimeDocker), serverSpec(RuntimeBinary), agentSpec(RuntimeDocker), agentSpec(RuntimeBinary)} {
		info, err := buildTaskInfo(testFramework(), spec, testPlacement(map[string]uint32{PortAPI: 31000}))
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for i, v := range info.GetCommand().GetEnvironment().GetVariables() {
			if v.Secret != nil {
				found++
				info.Command.Environment.Variables[i].Secret = &mesos.Secret{Type: mesos.Secret_VALUE, Value: &mesos.Secret_Value{Data: []byte("redacted")}}
			}
		}
		if found != len(spec.Secrets) {
			t.Errorf("%s: %d secret env vars, want %d", spec.Name, found, len(spec.Secrets))
		}
		js, err := json.Marshal(&info)
		if err != nil {
			t.Fatal(err)
		}
		pb, err := info.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		for key, secret := range spec.Secrets {
			for _, needle := range [][]byte{secret, []byte(base64.StdEncoding.EncodeToString(secret)), bytes.TrimSpace(secret)} {
				if bytes.Contains(js, needle) || bytes.Contains(pb, needle) {
					t.Errorf("%s: secret %q appears outside a Secret value", spec.Name, key)
				}
			}
		}
	}
}

// TestServerScriptRuns runs the generated server script with sh and a fake k3s: the CAs
// land under <data-dir>/server/tls/ byte for byte, an existing file is kept, the secret env
// vars are gone by the time K3s starts, K3S_TOKEN is still there, and the argv is intact.
func TestServerScriptRuns(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	spec := serverSpec(RuntimeBinary)
	info, err := buildTaskInfo(testFramework(), spec, testPlacement(map[string]uint32{PortAPI: 31000}))
	if err != nil {
		t.Fatal(err)
	}
	sandbox := t.TempDir()
	fake := "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$MESOS_SANDBOX/argv\"\nenv > \"$MESOS_SANDBOX/env\"\n"
	if err := os.WriteFile(filepath.Join(sandbox, "k3s"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	tls := filepath.Join(sandbox, "data", "server", "tls")
	if err := os.MkdirAll(tls, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tls, "client-ca.crt"), []byte("ALREADY THERE"), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(sh, "-c", info.GetCommand().GetValue())
	cmd.Env = []string{"MESOS_SANDBOX=" + sandbox, "PATH=" + os.Getenv("PATH")}
	for _, v := range info.GetCommand().GetEnvironment().GetVariables() {
		if v.Secret != nil {
			cmd.Env = append(cmd.Env, v.Name+"="+string(v.Secret.Value.Data))
		} else {
			cmd.Env = append(cmd.Env, v.Name+"="+v.GetValue())
		}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("script failed: %v\n%s", err, out)
	}

	for key, want := range spec.Secrets {
		if key == SecretToken || key == SecretDatastoreEndpoint {
			continue
		}
		got, err := os.ReadFile(filepath.Join(tls, key))
		if key == SecretClientCACert {
			want = []byte("ALREADY THERE")
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: got %q (%v), want %q", key, got, err, want)
		}
	}
	argv, _ := os.ReadFile(filepath.Join(sandbox, "argv"))
	data := filepath.Join(sandbox, "data")
	wantArgv := append([]string{"server", "--data-dir=" + data, "--write-kubeconfig=" + filepath.Join(data, "kubeconfig.yaml")},
		k3sArgs(spec, map[string]uint32{PortAPI: 31000})...)
	if got := strings.Split(strings.TrimSuffix(string(argv), "\n"), "\n"); !reflect.DeepEqual(got, wantArgv) {
		t.Errorf("argv\n got %q\nwant %q", got, wantArgv)
	}
	env, _ := os.ReadFile(filepath.Join(sandbox, "env"))
	if bytes.Contains(env, []byte(envTLSPrefix)) {
		t.Errorf("TLS secrets still in K3s's environment")
	}
	if !bytes.Contains(env, []byte("K3S_TOKEN=K10abc::server:TOKEN-SECRET-VALUE")) {
		t.Errorf("K3S_TOKEN missing from K3s's environment")
	}
}

func TestValidateTaskSpec(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*TaskSpec)
		wantErr string
	}{
		{"valid server", func(*TaskSpec) {}, ""},
		{"bad name", func(s *TaskSpec) { s.Name = "Server_0" }, "DNS label"},
		{"no cpus", func(s *TaskSpec) { s.Resources.CPUs = 0 }, "cpus > 0"},
		{"server without api port", func(s *TaskSpec) { s.Ports = nil }, `needs the "api" port`},
		{"duplicate port", func(s *TaskSpec) { s.Ports = []string{"api", "api"} }, "unique DNS label"},
		{"unknown secret", func(s *TaskSpec) { s.Secrets["password"] = []byte("x") }, `secret key "password"`},
		{"no token", func(s *TaskSpec) { delete(s.Secrets, SecretToken) }, "join token"},
		{"env shadows secret", func(s *TaskSpec) { s.Env["K3S_TOKEN"] = "x" }, "shadow a secret"},
		{"bad constraint", func(s *TaskSpec) { s.Constraints = []Constraint{{Field: "hostname", Operator: "NEAR"}} }, "unknown operator"},
		{"docker without image", func(s *TaskSpec) { s.Image = "" }, "needs an image"},
		{"binary with CNI", func(s *TaskSpec) {
			s.Runtime, s.NetworkMode, s.NetworkName = RuntimeBinary, NetworkCNI, "n"
		}, "Host networking"},
		{"CNI without name", func(s *TaskSpec) { s.NetworkMode = NetworkCNI }, "network name"},
		{"absolute volume path", func(s *TaskSpec) { s.Volume = &VolumeRequest{SizeMiB: 10, ContainerPath: "/var/lib"} }, "relative"},
		{"escaping volume path", func(s *TaskSpec) { s.Volume = &VolumeRequest{SizeMiB: 10, ContainerPath: "../x"} }, "relative"},
		{"unknown runtime", func(s *TaskSpec) { s.Runtime = "Podman" }, "Docker or Binary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := serverSpec(RuntimeDocker)
			tt.mutate(&s)
			err := ValidateTaskSpec(s)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	if err := ValidateTaskSpec(agentSpec(RuntimeBinary)); err != nil {
		t.Errorf("valid agent: %v", err)
	}
	a := agentSpec(RuntimeBinary)
	a.K3s.ServerURL = ""
	if err := ValidateTaskSpec(a); err == nil || !strings.Contains(err.Error(), "server URL") {
		t.Errorf("agent without server URL: %v", err)
	}
}

func TestTaskIDs(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := newTaskID("agent-3")
		if seen[id] {
			t.Fatalf("duplicate task ID %s", id)
		}
		seen[id] = true
		if name, ok := taskNameFromID(id); !ok || name != "agent-3" {
			t.Fatalf("taskNameFromID(%s) = %q, %v", id, name, ok)
		}
	}
	for _, bad := range []string{"", "noid", ".x", "agent-3.", "Bad_Name.x"} {
		if _, ok := taskNameFromID(bad); ok {
			t.Errorf("taskNameFromID(%q) accepted", bad)
		}
	}
}

func TestBuildTaskInfoDatastore(t *testing.T) {
	ds := TaskSpec{
		Name: "datastore-0", Role: RoleDatastore, Runtime: RuntimeDocker, Image: "mysql:8.4",
		Resources: Resources{CPUs: 1, MemMiB: 1024}, Ports: []string{"mysql"}, NetworkMode: NetworkHost,
		Env:     map[string]string{"MYSQL_DATABASE": "k3s"},
		Secrets: map[string][]byte{"MYSQL_ROOT_PASSWORD": []byte("DB-ROOT-PASSWORD")},
	}
	info, err := buildTaskInfo(testFramework(), ds, testPlacement(map[string]uint32{"mysql": 31306}))
	if err != nil {
		t.Fatal(err)
	}
	cmd := info.GetCommand()
	if cmd.GetShell() || cmd.Value != nil {
		t.Errorf("without a command the image entrypoint runs: %+v", cmd)
	}
	if d := info.GetContainer().GetDocker(); d.Image != "mysql:8.4" || len(d.Parameters) != 0 {
		t.Errorf("docker %+v", d)
	}
	if info.HealthCheck != nil {
		t.Errorf("no health check for datastores")
	}
	env := map[string]*mesos.Environment_Variable{}
	for i, v := range cmd.GetEnvironment().GetVariables() {
		env[v.Name] = &cmd.Environment.Variables[i]
	}
	if env["MYSQL_DATABASE"].GetValue() != "k3s" || env["PORT_MYSQL"].GetValue() != "31306" ||
		env["MYSQL_ROOT_PASSWORD"].GetType() != mesos.Environment_Variable_SECRET || env["MYSQL_ROOT_PASSWORD"].Value != nil {
		t.Errorf("env %+v", env)
	}

	ds.Command = `exec mysqld --datadir="$DATA_DIR" --port="$PORT_MYSQL"`
	info, err = buildTaskInfo(testFramework(), ds, testPlacement(map[string]uint32{"mysql": 31306}))
	if err != nil {
		t.Fatal(err)
	}
	want := "DATA_DIR=\"$MESOS_SANDBOX\"/data\nexport DATA_DIR\nmkdir -p \"$DATA_DIR\"\n" + ds.Command + "\n"
	if !info.GetCommand().GetShell() || info.GetCommand().GetValue() != want {
		t.Errorf("command %q", info.GetCommand().GetValue())
	}
	ds.Runtime = RuntimeBinary
	if _, err := buildTaskInfo(testFramework(), ds, testPlacement(nil)); err == nil {
		t.Errorf("Binary datastore accepted")
	}
}
