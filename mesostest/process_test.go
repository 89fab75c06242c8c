package mesostest

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

func writeTestFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func makeTarGz(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(tw, content)
	}
	tw.Close()
	gz.Close()
}

func makeZip(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	for name, content := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(w, content)
	}
	zw.Close()
}

func TestProcessModeFetchEnvironmentAndSecrets(t *testing.T) {
	src := t.TempDir()
	writeTestFile(t, filepath.Join(src, "hello.sh"), "#!/bin/sh\necho hello\n", 0o644)
	writeTestFile(t, filepath.Join(src, "app.conf"), "key=value\n", 0o644)
	makeTarGz(t, filepath.Join(src, "tools.tar.gz"), map[string]string{"bin/tool": "#!/bin/sh\n"})
	makeZip(t, filepath.Join(src, "data.zip"), map[string]string{"z.txt": "zipped"})
	served := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "served over loopback http")
	}))
	defer served.Close()

	s := newTestServer(t, testOptions(), processAgent("127.0.0.1"))
	g := newGoScheduler(t, s.URL(), codecs.ByMediaType[codecs.MediaTypeJSON])
	if err := g.subscribe(frameworkInfo("fetcher", partitionAwareCaps...)); err != nil {
		t.Fatal(err)
	}
	o := g.offer(2 * time.Second)
	agent := o.AgentID.Value
	const secretValue = "top-secret-value-4711"
	secretType := mesos.Environment_Variable_SECRET
	ti := commandTask("fetch", agent, `test -x hello.sh && test -f bin/tool && test -f z.txt && `+
		`test -f conf/app.conf && test "$(cat served.txt)" = "served over loopback http" && ./hello.sh > /dev/null && `+
		`echo "$MESOS_SANDBOX|$MESOS_EXECUTOR_ID|$MESOS_FRAMEWORK_ID|$MESOS_SLAVE_ID|$PLAIN|$TOKEN" > env.out`, 0.1, 32)
	ti.Command.URIs = []mesos.CommandInfo_URI{
		{Value: "file://" + filepath.Join(src, "hello.sh"), Executable: proto.Bool(true)},
		{Value: "file://" + filepath.Join(src, "tools.tar.gz")},
		{Value: filepath.Join(src, "data.zip"), Extract: proto.Bool(true)},
		{Value: "file://" + filepath.Join(src, "app.conf"), OutputFile: proto.String("conf/app.conf"), Cache: proto.Bool(true)},
		{Value: served.URL + "/file", OutputFile: proto.String("served.txt")},
	}
	ti.Command.Environment = &mesos.Environment{Variables: []mesos.Environment_Variable{
		{Name: "PLAIN", Value: proto.String("plain-value")},
		{Name: "TOKEN", Type: &secretType, Secret: &mesos.Secret{Type: mesos.Secret_VALUE, Value: &mesos.Secret_Value{Data: []byte(secretValue)}}},
	}}
	badFetch := commandTask("bad-fetch", agent, "true", 0.1, 32)
	badFetch.Command.URIs = []mesos.CommandInfo_URI{{Value: "file:///nonexistent/k3s"}}
	remote := commandTask("remote-fetch", agent, "true", 0.1, 32)
	remote.Command.URIs = []mesos.CommandInfo_URI{{Value: "http://example.com/k3s"}}
	argv := commandTask("argv", agent, "/bin/sh", 0.1, 32)
	argv.Command.Shell = proto.Bool(false)
	argv.Command.Arguments = []string{"sh", "-c", "exit 3"}
	g.launch(o, ti, badFetch, remote, argv)

	done := g.update("fetch", 10*time.Second, func(st mesos.TaskStatus) bool { return isTerminal(st.GetState()) })
	if done.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("fetch task: %s %q", done.GetState(), done.GetMessage())
	}
	for _, name := range []string{"bad-fetch", "remote-fetch"} {
		st := g.update(name, 5*time.Second, func(st mesos.TaskStatus) bool { return isTerminal(st.GetState()) })
		if st.GetState() != mesos.TASK_FAILED || st.GetReason() != mesos.REASON_CONTAINER_LAUNCH_FAILED {
			t.Errorf("%s: %s %s %q", name, st.GetState(), st.GetReason(), st.GetMessage())
		}
	}
	st := g.update("argv", 5*time.Second, func(st mesos.TaskStatus) bool { return isTerminal(st.GetState()) })
	if st.GetState() != mesos.TASK_FAILED || st.GetMessage() != "Command exited with status 3" {
		t.Errorf("argv: %s %q", st.GetState(), st.GetMessage())
	}

	sandbox := stateTask(s, "fetch").Sandbox
	out, err := os.ReadFile(filepath.Join(sandbox, "env.out"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{sandbox, "fetch", g.frameworkID, agent, "plain-value", secretValue}, "|") + "\n"
	if string(out) != want {
		t.Fatalf("environment\n got %q\nwant %q", out, want)
	}

	// The secret never shows in /state.
	resp, err := http.Get(s.URL() + "/master/state")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), secretValue) || !strings.Contains(string(body), `"id":"fetch"`) {
		t.Fatalf("/state leaks the secret or misses the task")
	}
}

func TestProcessModeKillEscalatesAndReapsGroup(t *testing.T) {
	s := newTestServer(t, testOptions(), processAgent("127.0.0.1"))
	g := newGoScheduler(t, s.URL(), codecs.ByMediaType[codecs.MediaTypeProtobuf])
	if err := g.subscribe(frameworkInfo("killer", partitionAwareCaps...)); err != nil {
		t.Fatal(err)
	}
	o := g.offer(2 * time.Second)
	// The task ignores SIGTERM and leaves a child behind: only SIGKILL of
	// the whole process group after the grace period stops it.
	// Another child leaves the group and the session (as containerd shims
	// do): it is found through its environment, like a cgroup member.
	ti := commandTask("stubborn", o.AgentID.Value,
		`trap "" TERM; setsid sleep 301 & echo $! > escaped.pid; sleep 300 & echo $! > child.pid; wait`, 0.1, 32)
	ti.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(300 * time.Millisecond)}}
	g.launch(o, ti)
	g.update("stubborn", 5*time.Second, inState(mesos.TASK_RUNNING))
	sandbox := stateTask(s, "stubborn").Sandbox
	var childPID int
	eventually(t, 2*time.Second, "child pid", func() bool {
		b, err := os.ReadFile(filepath.Join(sandbox, "child.pid"))
		childPID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && childPID > 0
	})
	start := time.Now()
	g.mustCall(killCall("stubborn", o.AgentID.Value))
	g.update("stubborn", 2*time.Second, inState(mesos.TASK_KILLING))
	killed := g.update("stubborn", 5*time.Second, func(st mesos.TaskStatus) bool { return isTerminal(st.GetState()) })
	if killed.GetState() != mesos.TASK_KILLED || killed.GetMessage() != "Command terminated with signal Killed" {
		t.Fatalf("killed: %s %q", killed.GetState(), killed.GetMessage())
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("SIGKILL came before the grace period: %v", d)
	}
	eventually(t, 2*time.Second, "child reaped", func() bool {
		return !processAlive(childPID) // a zombie awaiting init counts as dead
	})
	b, err := os.ReadFile(filepath.Join(sandbox, "escaped.pid"))
	if err != nil {
		t.Fatal(err)
	}
	escaped, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	eventually(t, 2*time.Second, "escaped child killed", func() bool {
		return !processAlive(escaped)
	})
}

func TestCloseKillsProcesses(t *testing.T) {
	s := NewServer(testOptions(), processAgent("127.0.0.1"))
	g := newGoScheduler(t, s.URL(), codecs.ByMediaType[codecs.MediaTypeJSON])
	if err := g.subscribe(frameworkInfo("closer")); err != nil {
		t.Fatal(err)
	}
	o := g.offer(2 * time.Second)
	g.launch(o, commandTask("long", o.AgentID.Value, "echo $$ > pid; exec sleep 300", 0.1, 32))
	g.update("long", 5*time.Second, inState(mesos.TASK_RUNNING))
	sandbox := stateTask(s, "long").Sandbox
	var pid int
	eventually(t, 2*time.Second, "pid", func() bool {
		b, err := os.ReadFile(filepath.Join(sandbox, "pid"))
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	// The agent becomes unreachable: the legacy framework is told TASK_LOST
	// and the master forgets the task, but the process still runs there.
	if err := s.LoseAgent("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	g.update("long", 2*time.Second, inState(mesos.TASK_LOST))
	if syscall.Kill(pid, 0) != nil {
		t.Fatal("process of a partitioned agent was killed")
	}
	s.Close()
	eventually(t, 2*time.Second, "process killed", func() bool { return !processAlive(pid) })
	if _, err := os.Stat(sandbox); !os.IsNotExist(err) {
		t.Fatalf("sandbox root not removed: %v", err)
	}
}

func portsResource(begin, end uint64) mesos.Resource {
	return mesos.Resource{Name: "ports", Type: mesos.RANGES.Enum(),
		Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: begin, End: end}}}}
}

func TestPortsAndPersistentVolumeInProcessMode(t *testing.T) {
	s := newTestServer(t, testOptions(), processAgent("127.0.0.1"))
	g := newGoScheduler(t, s.URL(), codecs.ByMediaType[codecs.MediaTypeJSON])
	if err := g.subscribe(frameworkInfo("volumes", mesos.FrameworkInfo_Capability_MULTI_ROLE, mesos.FrameworkInfo_Capability_PARTITION_AWARE)); err != nil {
		t.Fatal(err)
	}
	o := g.offer(2 * time.Second)
	agent := o.AgentID.Value

	// Ports outside the offered ranges are refused; inside they are used.
	outside := commandTask("outside", agent, "true", 0.1, 32)
	outside.Resources = append(outside.Resources, portsResource(40000, 40000))
	inside := commandTask("inside", agent, "sleep 30", 0.1, 32)
	inside.Resources = append(inside.Resources, portsResource(31005, 31006))

	role := "k3s"
	reserved := func(r mesos.Resource) mesos.Resource {
		r.Role = &role
		r.Reservation = &mesos.Resource_ReservationInfo{}
		return r
	}
	rw := mesos.RW
	volume := reserved(scalarResource("disk", 64))
	volume.Disk = &mesos.Resource_DiskInfo{
		Persistence: &mesos.Resource_DiskInfo_Persistence{ID: "datastore-0"},
		Volume:      &mesos.Volume{Mode: &rw, ContainerPath: "data"},
	}
	writer := commandTask("writer", agent, "echo persisted > data/file", 0.1, 32)
	writer.Resources = []mesos.Resource{reserved(scalarResource("cpus", 0.1)), reserved(scalarResource("mem", 32)), volume}
	g.mustCall(&scheduler.Call{Type: scheduler.Call_ACCEPT, Accept: &scheduler.Call_Accept{
		OfferIDs: []mesos.OfferID{o.ID},
		Operations: []mesos.Offer_Operation{
			{Type: mesos.Offer_Operation_LAUNCH, Launch: &mesos.Offer_Operation_Launch{TaskInfos: []mesos.TaskInfo{outside, inside}}},
			{Type: mesos.Offer_Operation_RESERVE, Reserve: &mesos.Offer_Operation_Reserve{Resources: []mesos.Resource{
				reserved(scalarResource("cpus", 0.1)), reserved(scalarResource("mem", 32)), reserved(scalarResource("disk", 64))}}},
			{Type: mesos.Offer_Operation_CREATE, Create: &mesos.Offer_Operation_Create{Volumes: []mesos.Resource{volume}}},
			{Type: mesos.Offer_Operation_LAUNCH, Launch: &mesos.Offer_Operation_Launch{TaskInfos: []mesos.TaskInfo{writer}}},
		},
	}})
	if st := g.update("outside", 2*time.Second, inState(mesos.TASK_ERROR)); !strings.Contains(st.GetMessage(), "more than available") {
		t.Fatalf("outside ports: %q", st.GetMessage())
	}
	g.update("inside", 5*time.Second, inState(mesos.TASK_RUNNING))
	if got := s.State().Slaves[0].UsedResources.Ports; got != "[31005-31006]" {
		t.Fatalf("used ports %q", got)
	}
	if st := g.update("writer", 5*time.Second, func(st mesos.TaskStatus) bool { return isTerminal(st.GetState()) }); st.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("writer: %s %q", st.GetState(), st.GetMessage())
	}

	// The volume comes back in an offer to its role; a new task reads the data.
	var back mesos.Offer
	eventually(t, 10*time.Second, "volume offered again", func() bool {
		back = g.offer(6 * time.Second)
		for _, r := range back.Resources {
			if r.IsPersistentVolume() {
				return true
			}
		}
		g.mustCall(calls.Decline(back.ID).With(calls.RefuseSeconds(0)))
		return false
	})
	reader := commandTask("reader", agent, `test "$(cat data/file)" = persisted`, 0.1, 32)
	reader.Resources = []mesos.Resource{reserved(scalarResource("cpus", 0.1)), reserved(scalarResource("mem", 32)), volume}
	g.launch(back, reader)
	if st := g.update("reader", 5*time.Second, func(st mesos.TaskStatus) bool { return isTerminal(st.GetState()) }); st.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("reader: %s %q", st.GetState(), st.GetMessage())
	}
}

// processAlive reports whether pid runs (zombies awaiting their reaper
// count as dead).
func processAlive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

func TestTeardownKillsGracefullyAndCloseDoesNotWait(t *testing.T) {
	opts := testOptions()
	opts.KillGracePeriod = 30 * time.Second
	s := NewServer(opts, processAgent("127.0.0.1"))
	g := newGoScheduler(t, s.URL(), codecs.ByMediaType[codecs.MediaTypeJSON])
	if err := g.subscribe(frameworkInfo("graceful")); err != nil {
		t.Fatal(err)
	}
	o := g.offer(2 * time.Second)
	g.launch(o, commandTask("deaf", o.AgentID.Value, `trap "" TERM; echo $$ > pid; while true; do sleep 0.1; done`, 0.1, 32))
	g.update("deaf", 5*time.Second, inState(mesos.TASK_RUNNING))
	sandbox := stateTask(s, "deaf").Sandbox
	var pid int
	eventually(t, 2*time.Second, "pid", func() bool {
		b, err := os.ReadFile(filepath.Join(sandbox, "pid"))
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	g.mustCall(&scheduler.Call{Type: scheduler.Call_TEARDOWN})
	// The master forgets the task at once; the process gets SIGTERM and
	// its grace period.
	eventually(t, 2*time.Second, "framework removed", func() bool { return len(s.State().Frameworks) == 0 })
	if !processAlive(pid) {
		t.Fatal("process killed without its grace period")
	}
	start := time.Now()
	s.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close waited %v for the grace period", d)
	}
	eventually(t, 2*time.Second, "process killed", func() bool { return !processAlive(pid) })
}
