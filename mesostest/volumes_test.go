package mesostest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// reservedFor makes r a dynamic reservation of role.
func reservedFor(role string, r mesos.Resource) mesos.Resource {
	r.Role = proto.String(role)
	r.Reservation = &mesos.Resource_ReservationInfo{}
	return r
}

// persistentVolume is a reserved disk with a persistence ID mounted at path.
func persistentVolume(role, id, path string, mib float64) mesos.Resource {
	v := reservedFor(role, scalarResource("disk", mib))
	v.Disk = &mesos.Resource_DiskInfo{
		Persistence: &mesos.Resource_DiskInfo_Persistence{ID: id},
		Volume:      &mesos.Volume{Mode: mesos.RW.Enum(), ContainerPath: path},
	}
	return v
}

func multiRoleInfo(name string, roles ...string) *mesos.FrameworkInfo {
	info := frameworkInfo(name, mesos.FrameworkInfo_Capability_MULTI_ROLE, mesos.FrameworkInfo_Capability_PARTITION_AWARE)
	info.Roles = roles
	return info
}

// offerWithVolume waits for an offer that carries a persistent volume.
func (g *goScheduler) offerWithVolume(timeout time.Duration) mesos.Offer {
	g.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		o := g.offer(timeout)
		for _, r := range o.Resources {
			if r.IsPersistentVolume() {
				return o
			}
		}
		g.mustCall(calls.Decline(o.ID).With(calls.RefuseSeconds(0)))
	}
	g.t.Fatal("no offer with a persistent volume")
	return mesos.Offer{}
}

// Posix filesystem isolator (filesystem/posix.cpp) and paths.cpp: a
// volume is a symlink <sandbox>/<container_path> to
// <work_dir>/volumes/roles/<role, '/' as ' '>/<id>; each launch gets a
// new run directory; the link leaves the run's sandbox when the task ends;
// nested container paths are not linked at all.
func TestPersistentVolumeLinksFollowThePosixIsolator(t *testing.T) {
	opts := testOptions()
	opts.SandboxRoot = t.TempDir()
	s := newTestServer(t, opts, processAgent("127.0.0.1"))
	g := newGoScheduler(t, s.URL(), codecs.ByMediaType[codecs.MediaTypeJSON])
	const role = "k3s/dev"
	if err := g.subscribe(multiRoleInfo("volumes", role)); err != nil {
		t.Fatal(err)
	}
	o := g.offer(2 * time.Second)
	agent := o.AgentID.Value
	data := persistentVolume(role, "store-0", "data", 64)
	nested := persistentVolume(role, "store-1", "nested/data", 64)
	task := func(name, cmd string) mesos.TaskInfo {
		ti := commandTask(name, agent, cmd, 0.1, 32)
		ti.Resources = []mesos.Resource{reservedFor(role, scalarResource("cpus", 0.1)),
			reservedFor(role, scalarResource("mem", 32)), data, nested}
		return ti
	}
	writer := task("writer", `echo persisted > data/file && readlink data > link.txt && test ! -e nested/data`)
	g.mustCall(&scheduler.Call{Type: scheduler.Call_ACCEPT, Accept: &scheduler.Call_Accept{
		OfferIDs: []mesos.OfferID{o.ID},
		Operations: []mesos.Offer_Operation{
			{Type: mesos.Offer_Operation_RESERVE, Reserve: &mesos.Offer_Operation_Reserve{Resources: []mesos.Resource{
				reservedFor(role, scalarResource("cpus", 0.1)), reservedFor(role, scalarResource("mem", 32)),
				reservedFor(role, scalarResource("disk", 128))}}},
			{Type: mesos.Offer_Operation_CREATE, Create: &mesos.Offer_Operation_Create{Volumes: []mesos.Resource{data, nested}}},
			{Type: mesos.Offer_Operation_LAUNCH, Launch: &mesos.Offer_Operation_Launch{TaskInfos: []mesos.TaskInfo{writer}}},
		},
		Filters: &mesos.Filters{RefuseSeconds: proto.Float64(0)},
	}})
	if st := g.update("writer", 5*time.Second, func(st mesos.TaskStatus) bool { return isTerminal(st.GetState()) }); st.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("writer: %s %q", st.GetState(), st.GetMessage())
	}

	volumeDir := filepath.Join(opts.SandboxRoot, "volumes", "roles", "k3s dev", "store-0")
	first := stateTask(s, "writer").Sandbox
	wantPrefix := filepath.Join(opts.SandboxRoot, "slaves", agent, "frameworks", g.frameworkID, "executors", "writer", "runs") + "/"
	if !strings.HasPrefix(first, wantPrefix) || strings.Contains(strings.TrimPrefix(first, wantPrefix), "/") {
		t.Fatalf("sandbox %q, want %s<container ID>", first, wantPrefix)
	}
	if b, err := os.ReadFile(filepath.Join(first, "link.txt")); err != nil || strings.TrimSpace(string(b)) != volumeDir {
		t.Fatalf("the volume linked to %q (%v), want %q", b, err, volumeDir)
	}
	if _, err := os.Lstat(filepath.Join(first, "data")); !os.IsNotExist(err) {
		t.Fatalf("the ended task's sandbox still has the volume link: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(volumeDir, "file")); err != nil || string(b) != "persisted\n" {
		t.Fatalf("volume data: %q %v", b, err)
	}

	back := g.offerWithVolume(10 * time.Second)
	g.launch(back, task("reader", `test "$(cat data/file)" = persisted && test -L data`))
	if st := g.update("reader", 5*time.Second, func(st mesos.TaskStatus) bool { return isTerminal(st.GetState()) }); st.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("reader: %s %q", st.GetState(), st.GetMessage())
	}
	second := stateTask(s, "reader").Sandbox
	if second == first || !strings.HasPrefix(second, filepath.Join(opts.SandboxRoot, "slaves", agent, "frameworks", g.frameworkID, "executors", "reader", "runs")+"/") {
		t.Fatalf("relaunch sandbox %q (first %q)", second, first)
	}
	if _, err := os.Lstat(filepath.Join(first, "data")); !os.IsNotExist(err) {
		t.Fatalf("old sandbox has the link again: %v", err)
	}
	if _, err := os.Stat(volumeDir); err != nil {
		t.Fatalf("volume directory: %v", err)
	}
}
