package mesosbridge

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func testFramework() FrameworkConfig {
	return FrameworkConfig{
		ClusterNamespace: "team-a", ClusterName: "dev", ClusterUID: "uid-1234",
		Name: "test:team-a/dev", User: "root",
		Role: "k3s", Principal: "mesosk3s", FailoverTimeout: 7 * 24 * time.Hour,
		Masters: []string{"http://master:5050"},
	}
}

// testSecrets are distinctive so a leak is unmistakable.
func testSecrets() map[string][]byte {
	return map[string][]byte{
		"APP_TOKEN":    []byte("K10abc::server:TOKEN-SECRET-VALUE"),
		"APP_CA_KEY":   []byte("-----BEGIN EC PRIVATE KEY-----\nSERVER-CA-KEY\n-----END EC PRIVATE KEY-----\n"),
		"APP_QUOTED":   []byte("PEER-CA-KEY 'quoted' $notavar\n"),
		"APP_DATABASE": []byte("mysql://root:DB-PASSWORD@tcp(db:3306)/k3s"),
	}
}

// serverSpec is a command task with everything a task can ask for.
func serverSpec() TaskSpec {
	return TaskSpec{
		Name: "server-0", Role: "server", Index: 0,
		Resources: Resources{CPUs: 1, MemMiB: 2048, DiskMiB: 1024},
		Ports:     []string{"api", "api-next"},
		Command:   `exec "$MESOS_SANDBOX"/app serve --port="$PORT_API" --data="$DATA_DIR"`,
		Fetch:     []FetchURI{{URL: "file:///opt/app/app", Executable: true, OutputFile: "app"}},
		Env:       map[string]string{"HTTP_PROXY": "http://proxy:3128"},
		Secrets:   testSecrets(),
		HealthCheck: &HealthCheck{Protocol: HealthHTTPS, Port: "api", Path: "/ping",
			Delay: 5 * time.Second, Interval: 10 * time.Second, Timeout: 5 * time.Second, GracePeriod: 300 * time.Second, ConsecutiveFailures: 3},
		NetworkMode: NetworkHost,
		SpecHash:    "abc123",
	}
}

// agentSpec is a Docker task.
func agentSpec() TaskSpec {
	return TaskSpec{
		Name: "agent-3", Role: "agent", Index: 3,
		Resources:   Resources{CPUs: 2, MemMiB: 4096},
		Container:   Container{Type: ContainerDocker, Image: "rancher/k3s:v1.31.4-k3s1", Privileged: true, Tmpfs: []string{"/run", "/var/run"}},
		Command:     `exec k3s agent --data-dir="$DATA_DIR"`,
		Env:         map[string]string{"APP_MODE": "agent"},
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

func envOf(info mesos.TaskInfo) map[string]*mesos.Environment_Variable {
	env := map[string]*mesos.Environment_Variable{}
	vars := info.GetCommand().GetEnvironment().GetVariables()
	for i := range vars {
		env[vars[i].Name] = &vars[i]
	}
	return env
}

func TestBuildTaskInfoCommandTask(t *testing.T) {
	spec := serverSpec()
	info, err := buildTaskInfo(testFramework(), spec, testPlacement(map[string]uint32{"api": 31000, "api-next": 31001}))
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "server-0" || info.TaskID.Value != "server-0.0123456789abcdef" || info.AgentID.Value != "agent-1" {
		t.Errorf("identity: %s %s %s", info.Name, info.TaskID.Value, info.AgentID.Value)
	}
	if info.Container != nil {
		t.Errorf("a command task has no container, got %+v", info.Container)
	}
	uris := info.GetCommand().GetURIs()
	if len(uris) != 1 || uris[0].Value != "file:///opt/app/app" || !uris[0].GetExecutable() || uris[0].GetExtract() || uris[0].GetOutputFile() != "app" {
		t.Errorf("uris: %+v", uris)
	}
	want := "DATA_DIR=\"$MESOS_SANDBOX\"/data\nexport DATA_DIR\n" + spec.Command
	if !info.GetCommand().GetShell() || info.GetCommand().GetValue() != want {
		t.Errorf("command %q, want %q", info.GetCommand().GetValue(), want)
	}
	hc := info.GetHealthCheck()
	if hc.GetType() != mesos.HealthCheck_HTTP || hc.GetHTTP().GetScheme() != "https" || hc.GetHTTP().GetPath() != "/ping" ||
		hc.GetHTTP().GetPort() != 31000 || hc.GetGracePeriodSeconds() != 300 || hc.GetDelaySeconds() != 5 || hc.GetConsecutiveFailures() != 3 {
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
		len(disc.GetPorts().GetPorts()) != 2 || disc.GetPorts().Ports[0].GetName() != "api" || disc.GetPorts().Ports[0].Number != 31000 {
		t.Errorf("discovery: %+v", disc)
	}
	env := envOf(info)
	if v := env["PORT_API"]; v.GetValue() != "31000" || v.GetType() != mesos.Environment_Variable_VALUE {
		t.Errorf("PORT_API: %+v", v)
	}
	if v := env["PORT_API_NEXT"]; v.GetValue() != "31001" {
		t.Errorf("PORT_API_NEXT: %+v", v)
	}
	for name := range spec.Secrets {
		v := env[name]
		if v.GetType() != mesos.Environment_Variable_SECRET || v.Value != nil || v.GetSecret().GetType() != mesos.Secret_VALUE ||
			len(v.GetSecret().GetValue().GetData()) == 0 {
			t.Errorf("%s must be a VALUE secret with no plain value: %+v", name, v)
		}
	}
}

func TestBuildTaskInfoDocker(t *testing.T) {
	info, err := buildTaskInfo(testFramework(), agentSpec(), testPlacement(nil))
	if err != nil {
		t.Fatal(err)
	}
	d := info.GetContainer().GetDocker()
	if info.GetContainer().GetType() != mesos.ContainerInfo_DOCKER || d.Image != "rancher/k3s:v1.31.4-k3s1" ||
		!d.GetPrivileged() || d.GetNetwork() != mesos.ContainerInfo_DockerInfo_HOST {
		t.Errorf("container: %+v", info.Container)
	}
	if len(d.Parameters) != 2 || d.Parameters[0] != (mesos.Parameter{Key: "tmpfs", Value: "/run"}) {
		t.Errorf("docker parameters: %+v", d.Parameters)
	}
	if len(info.GetCommand().URIs) != 0 || info.HealthCheck != nil {
		t.Errorf("nothing to fetch and no health check asked: %+v %+v", info.Command.URIs, info.HealthCheck)
	}
}

func TestBuildTaskInfoCNI(t *testing.T) {
	spec := agentSpec()
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

func TestBuildTaskInfoImageEntrypointAndVolume(t *testing.T) {
	ds := TaskSpec{
		Name: "datastore-0", Role: "datastore", Container: Container{Type: ContainerDocker, Image: "mysql:8.4"},
		Resources: Resources{CPUs: 1, MemMiB: 1024}, Ports: []string{"mysql"}, NetworkMode: NetworkHost,
		Env:         map[string]string{"MYSQL_DATABASE": "k3s"},
		HealthCheck: &HealthCheck{Protocol: HealthTCP, Port: "mysql", Interval: time.Second},
	}
	info, err := buildTaskInfo(testFramework(), ds, testPlacement(map[string]uint32{"mysql": 31306}))
	if err != nil {
		t.Fatal(err)
	}
	cmd := info.GetCommand()
	if cmd.GetShell() || cmd.Value != nil {
		t.Errorf("without a command the image entrypoint runs: %+v", cmd)
	}
	if hc := info.GetHealthCheck(); hc.GetType() != mesos.HealthCheck_TCP || hc.GetTCP().GetPort() != 31306 {
		t.Errorf("tcp health check: %+v", hc)
	}
	env := envOf(info)
	if env["MYSQL_DATABASE"].GetValue() != "k3s" || env["PORT_MYSQL"].GetValue() != "31306" ||
		env["MYSQL_ROOT_PASSWORD"] != nil {
		t.Errorf("env %+v", env)
	}

	ds.Command = `exec mysqld --datadir="$DATA_DIR" --port="$PORT_MYSQL"`
	p := testPlacement(map[string]uint32{"mysql": 31306})
	p.VolumePath = "mysql-data"
	info, err = buildTaskInfo(testFramework(), ds, p)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.GetCommand().GetValue(); !strings.HasPrefix(got, "DATA_DIR=\"$MESOS_SANDBOX\"/mysql-data\n") || !strings.HasSuffix(got, "export DATA_DIR\n"+ds.Command) {
		t.Errorf("command %q", got)
	}
}

// TestNoSecretOutsideSecretValues encodes whole TaskInfos the way they go to the master,
// blanks the Secret values, and looks for every secret, raw and base64, in what is left.
func TestNoSecretOutsideSecretValues(t *testing.T) {
	for _, spec := range []TaskSpec{serverSpec(), agentSpec()} {
		info, err := buildTaskInfo(testFramework(), spec, testPlacement(map[string]uint32{"api": 31000, "api-next": 31001}))
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

func TestValidateTaskSpec(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*TaskSpec)
		wantErr string
	}{
		{"valid", func(*TaskSpec) {}, ""},
		{"bad name", func(s *TaskSpec) { s.Name = "Server_0" }, "DNS label"},
		{"name off the scheme", func(s *TaskSpec) { s.Name = "server-1" }, "<role>-<index>"},
		{"no cpus", func(s *TaskSpec) { s.Resources.CPUs = 0 }, "cpus > 0"},
		{"duplicate port", func(s *TaskSpec) { s.Ports = []string{"api", "api"} }, "unique DNS label"},
		{"health check on an unknown port", func(s *TaskSpec) { s.HealthCheck.Port = "metrics" }, "not one of the task's ports"},
		{"unknown health protocol", func(s *TaskSpec) { s.HealthCheck.Protocol = "GRPC" }, "HTTP, HTTPS or TCP"},
		{"bad secret name", func(s *TaskSpec) { s.Secrets["not-a-var"] = []byte("x") }, `secret name "not-a-var"`},
		{"env shadows secret", func(s *TaskSpec) { s.Env["APP_TOKEN"] = "x" }, "also a secret"},
		{"reserved env", func(s *TaskSpec) { s.Env["PORT_API"] = "1" }, "reserved"},
		{"reserved secret", func(s *TaskSpec) { s.Secrets["DATA_DIR"] = []byte("x") }, "reserved"},
		{"bad constraint", func(s *TaskSpec) { s.Constraints = []Constraint{{Field: "hostname", Operator: "NEAR"}} }, "unknown operator"},
		{"docker without image", func(s *TaskSpec) { s.Container = Container{Type: ContainerDocker} }, "needs an image"},
		{"command task with CNI", func(s *TaskSpec) { s.NetworkMode, s.NetworkName = NetworkCNI, "n" }, "Host networking"},
		{"command task without command", func(s *TaskSpec) { s.Command = "" }, "needs a command"},
		{"CNI without name", func(s *TaskSpec) {
			s.Container, s.NetworkMode = Container{Type: ContainerDocker, Image: "x"}, NetworkCNI
		}, "network name"},
		{"absolute volume path", func(s *TaskSpec) { s.Volume = &VolumeRequest{SizeMiB: 10, ContainerPath: "/var/lib"} }, "relative"},
		{"escaping volume path", func(s *TaskSpec) { s.Volume = &VolumeRequest{SizeMiB: 10, ContainerPath: "../x"} }, "relative"},
		{"volume path needing quotes", func(s *TaskSpec) { s.Volume = &VolumeRequest{SizeMiB: 10, ContainerPath: "my data"} }, "relative"},
		{"fetch into a directory", func(s *TaskSpec) { s.Fetch[0].OutputFile = "bin/app" }, "plain file name"},
		{"unknown container", func(s *TaskSpec) { s.Container.Type = "Podman" }, "Docker or none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := serverSpec()
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
	if err := ValidateTaskSpec(agentSpec()); err != nil {
		t.Errorf("valid Docker task: %v", err)
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
	if got := TaskName("agent", 12); got != "agent-12" {
		t.Errorf("TaskName = %q", got)
	}
}

// Tasks under the Mesos containerizer go out as a task group of the default executor, so
// their secrets never reach a command executor's command line; Docker tasks stay a plain
// LAUNCH and cannot carry secrets at all.
func TestLaunchOperationByContainer(t *testing.T) {
	fw := testFramework()
	fw.FrameworkID = "fw-1"
	execRes := []mesos.Resource{{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: executorCPUs}}}
	for _, c := range []Container{{}, {Type: ContainerImage, Image: "rancher/k3s:v1.31.4-k3s1"}} {
		spec := serverSpec()
		spec.Container = c
		info := taskInfoFor(fw, spec, testPlacement(map[string]uint32{"api": 31000, "api-next": 31001}))
		op := launchOperation(fw, spec, info, execRes)
		if op.Type != mesos.Offer_Operation_LAUNCH_GROUP {
			t.Fatalf("%q: %s, want LAUNCH_GROUP", c.Type, op.Type)
		}
		ex := op.LaunchGroup.Executor
		if ex.Type != mesos.ExecutorInfo_DEFAULT || ex.ExecutorID.Value != info.TaskID.Value || ex.GetFrameworkID().GetValue() != "fw-1" ||
			len(ex.Resources) != 1 || ex.Command != nil || ex.GetContainer().GetType() != mesos.ContainerInfo_MESOS || ex.GetContainer().GetMesos().GetImage() != nil {
			t.Errorf("%q: executor %+v", c.Type, ex)
		}
		tasks := op.LaunchGroup.TaskGroup.Tasks
		if len(tasks) != 1 || tasks[0].Executor != nil || tasks[0].TaskID != info.TaskID {
			t.Errorf("%q: task group %+v", c.Type, tasks)
		}
	}
	img := serverSpec()
	img.Container = Container{Type: ContainerImage, Image: "rancher/k3s:v1.31.4-k3s1"}
	ci := containerInfo(img)
	if ci.GetType() != mesos.ContainerInfo_MESOS || ci.GetMesos().GetImage().GetType() != mesos.Image_DOCKER ||
		ci.GetMesos().GetImage().GetDocker().GetName() != "rancher/k3s:v1.31.4-k3s1" || ci.Docker != nil {
		t.Errorf("image container %+v", ci)
	}
	docker := agentSpec()
	info := taskInfoFor(fw, docker, testPlacement(nil))
	if op := launchOperation(fw, docker, info, nil); op.Type != mesos.Offer_Operation_LAUNCH || len(op.Launch.TaskInfos) != 1 {
		t.Errorf("docker: %s", op.Type)
	}
	docker.Secrets = map[string][]byte{"APP_TOKEN": []byte("x")}
	if err := ValidateTaskSpec(docker); err == nil || !strings.Contains(err.Error(), "does not resolve SECRET variables") {
		t.Errorf("a Docker task with secrets: %v", err)
	}
}

// TestDataDirStaysTheSameAcrossRuns runs the prologue with sh in sandboxes laid out as the
// Mesos agent lays them out, and checks that $DATA_DIR names the volume itself, never one
// run's sandbox.
func TestDataDirStaysTheSameAcrossRuns(t *testing.T) {
	fw := testFramework()
	fw.Role = "k3s/prod"
	spec := serverSpec()
	spec.Command = `printf '%s' "$DATA_DIR"`
	p := testPlacement(nil)
	p.VolumePath = "k3s-data"
	info := taskInfoFor(fw, spec, p)
	script := info.GetCommand().GetValue()
	work := t.TempDir()
	volume := filepath.Join(work, "volumes", "roles", "k3s prod", persistenceID(fw.ClusterUID, spec.Name))
	if err := os.MkdirAll(volume, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(sandbox string) (string, error) {
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.Env = []string{"MESOS_SANDBOX=" + sandbox, "PATH=" + os.Getenv("PATH")}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	runDir := func(n string) string {
		d := filepath.Join(work, "slaves", "a1", "frameworks", "f1", "executors", "server-0.x", "runs", n)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}

	// filesystem/posix, command task: the volume is a symlink in the sandbox.
	posix := runDir("c1")
	if err := os.Symlink(volume, filepath.Join(posix, "k3s-data")); err != nil {
		t.Fatal(err)
	}
	if got, err := run(posix); err != nil || got != volume {
		t.Errorf("posix: DATA_DIR=%q (%v), want %q", got, err, volume)
	}
	// A task group: the nested sandbox links to the executor's sandbox, which links to the volume.
	nested := filepath.Join(posix, "containers", "child")
	if err := os.MkdirAll(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(posix, "k3s-data"), filepath.Join(nested, "k3s-data")); err != nil {
		t.Fatal(err)
	}
	if got, err := run(nested); err != nil || got != volume {
		t.Errorf("task group: DATA_DIR=%q (%v), want %q", got, err, volume)
	}
	// filesystem/linux on the agent's filesystem: a bind mount looks like a directory in the
	// sandbox; the volume's own path on the agent is used.
	linux := runDir("c2")
	if err := os.Mkdir(filepath.Join(linux, "k3s-data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := run(linux); err != nil || got != volume {
		t.Errorf("linux: DATA_DIR=%q (%v), want %q", got, err, volume)
	}
	// No volume where it must be: fail, rather than start on an empty directory.
	if err := os.RemoveAll(volume); err != nil {
		t.Fatal(err)
	}
	if out, err := run(linux); err == nil || !strings.Contains(out, "not found") {
		t.Errorf("missing volume: %q, %v", out, err)
	}
}
