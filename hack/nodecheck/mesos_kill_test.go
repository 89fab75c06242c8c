package nodecheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMesosKillLeavesNothing checks the emulated Mesos kill on its own, without K3s: a
// task that, like agent-task.sh, enters a private mount namespace, mounts a tmpfs and a
// bind mount, and starts children in a child cgroup (as the kubelet puts pods) and in a
// new session (as containerd's shims detach), is gone without a trace after the kill.
func TestMesosKillLeavesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts, cgroups, network namespaces)")
	}
	work := t.TempDir()
	before := snapshot(t)
	t.Cleanup(func() { before.restoreAndCompare(t) })
	h, err := findHierarchies()
	if err != nil {
		t.Fatal(err)
	}
	sweepStale(t, h)
	hosts := setupNetwork(t, 1)
	data := filepath.Join(work, "data")
	script := `
set -eu
if [ "${NS:-}" != "$$" ]; then export NS=$$; exec unshare --mount --propagation slave -- /bin/sh -c "$0" ; fi
mkdir -p "$DATA_DIR/bound" /run/k3s
mount -t tmpfs mk3s-killtest /run/k3s
mount --bind "$DATA_DIR/bound" /run/k3s
cg=$(sed -n 's/^[0-9]*:freezer:\(.*\)$/\1/p' /proc/self/cgroup)
for d in /sys/fs/cgroup/*/; do
  [ -e "$d$cg/cgroup.procs" ] || continue
  case "$(stat -f -c %T "$d")" in cgroup2fs) continue ;; esac
  mkdir -p "$d$cg/kubepods/pod1"
done
sh -c 'for d in /sys/fs/cgroup/*/; do [ -d "$d'"$cg"'/kubepods/pod1" ] && echo $$ > "$d'"$cg"'/kubepods/pod1/cgroup.procs"; done; exec sleep 1000' &
setsid sleep 1001 &
echo started > "$DATA_DIR/started"
exec sleep 1002
`
	// The script text is passed as the -c argument; it re-runs itself through "$0".
	command := `exec /bin/sh -c "$SCRIPT" "$SCRIPT"`
	tk := launch(t, h, hosts[0], "killtest.1", "killtest", filepath.Join(work, "sandbox"), command,
		[]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DATA_DIR=" + data, "SCRIPT=" + script})
	if err := waitFor(20*time.Second, func() error {
		if _, err := os.Stat(filepath.Join(data, "started")); err != nil {
			select {
			case <-tk.exited:
				b, _ := os.ReadFile(filepath.Join(tk.sandbox, "stderr"))
				t.Fatalf("task exited: %v: %s", tk.err, b)
			default:
			}
			return err
		}
		if n := len(tk.pids()); n != 3 {
			return os.ErrNotExist
		}
		return nil
	}); err != nil {
		t.Fatalf("task did not start its 3 processes: %v (%v)", err, tk.pids())
	}
	ns := mntNS(tk.cmd.Process.Pid)
	if ns == mntNS(os.Getpid()) {
		t.Fatal("task is in the host's mount namespace")
	}
	rep, err := tk.kill()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.killed) != 3 {
		t.Errorf("killed %v, want 3 processes", rep.processes)
	}
	if left := tracesAfterKill(tk.cgroup, ns, []string{data, "mk3s-killtest"}); len(left) > 0 {
		t.Errorf("after the kill:\n%s", strings.Join(left, "\n"))
	}
	for _, mnt := range h.v1 {
		if _, err := os.Stat(filepath.Join(mnt, tk.cgroup)); err == nil {
			t.Errorf("cgroup %s%s left", mnt, tk.cgroup)
		}
	}
	t.Logf("kill took %s, removed %d cgroups", rep.took, rep.cgroupsRemove)
}
