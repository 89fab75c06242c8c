package nodecheck

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mesosk3s/mesosk3s/internal/cgroupfs"
)

// This file emulates what a Mesos agent with the cgroups isolators (cgroups_root
// "mesosnc") and the Linux launcher does with a command task: a cgroup of its own in every
// cgroup v1 hierarchy, the task's process put into it before it runs, a sandbox, the
// task's environment; and on kill: freeze the freezer cgroup, SIGKILL every process in it,
// thaw, wait for it to empty, remove the cgroups (children first).
const cgroupsRoot = "mesosnc"

// hierarchies maps each mounted cgroup v1 hierarchy to its mount point (comounted
// controllers appear once); unified is the cgroup2 mount, if any.
type hierarchies struct {
	v1      []string // mount points
	freezer string
	unified string
}

func findHierarchies() (hierarchies, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return hierarchies{}, err
	}
	defer f.Close()
	var h hierarchies
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		i := indexOf(fields, "-")
		if i < 0 || i+3 >= len(fields) {
			continue
		}
		mnt, fstype, opts := fields[4], fields[i+1], fields[i+3]
		switch fstype {
		case "cgroup":
			h.v1 = append(h.v1, mnt)
			for _, o := range strings.Split(opts, ",") {
				if o == "freezer" {
					h.freezer = mnt
				}
			}
		case "cgroup2":
			h.unified = mnt
		}
	}
	if h.freezer == "" {
		return h, errors.New("no freezer cgroup hierarchy: Mesos' Linux launcher needs one")
	}
	sort.Strings(h.v1)
	return h, sc.Err()
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// task is one launched Mesos task.
type task struct {
	id, name string
	host     *emuHost
	cgroup   string // e.g. /mesosnc/agent-1.3f2a
	sandbox  string
	h        hierarchies
	cmd      *exec.Cmd
	exited   chan struct{}
	err      error
}

// launch starts /bin/sh -c command as a task on host: in its own cgroups, in the host's
// network namespace, with env as its whole environment (plus MESOS_SANDBOX), output
// in the sandbox's stdout and stderr like Mesos.
func launch(t *testing.T, h hierarchies, host *emuHost, id, name, sandbox, command string, env []string) *task {
	t.Helper()
	tk := &task{id: id, name: name, host: host, cgroup: "/" + cgroupsRoot + "/" + id, sandbox: sandbox, h: h, exited: make(chan struct{})}
	if err := os.MkdirAll(sandbox, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, mnt := range h.v1 {
		if err := cgroupfs.MkdirAll(mnt, tk.cgroup); err != nil {
			t.Fatal(err)
		}
	}
	stdout, err := os.Create(filepath.Join(sandbox, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(sandbox, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	gate, release, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// The launcher waits on fd 3 until it is in the task's cgroups, then becomes the
	// task (same PID): nothing of the task ever runs outside its cgroup.
	cmd := exec.Command("/bin/sh", "-c",
		`read -r _ <&3; exec 3<&-; exec nsenter --net="/run/netns/$1" -- /bin/sh -c "$2"`,
		"mesos-launcher", host.name, command)
	cmd.Env = append(env, "MESOS_SANDBOX="+sandbox)
	cmd.Dir = sandbox
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.ExtraFiles = []*os.File{gate}
	// Pdeathsig: should the test binary die, the task's leader goes with it (its children
	// are then found through the cgroups by the next run's sweep).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	gate.Close()
	tk.cmd = cmd
	go func() { tk.err = cmd.Wait(); close(tk.exited) }()
	for _, mnt := range h.v1 {
		if err := os.WriteFile(filepath.Join(mnt, tk.cgroup, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
			_ = cmd.Process.Kill()
			release.Close()
			t.Fatalf("move task %s into %s: %v", id, mnt, err)
		}
	}
	if _, err := release.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
	release.Close()
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(h.freezer, tk.cgroup)); err == nil {
			if _, err := tk.kill(); err != nil {
				t.Errorf("cleanup: kill task %s: %v", id, err)
			}
		}
	})
	return tk
}

// pids lists every process of the task (its freezer cgroup subtree).
func (tk *task) pids() []int { return cgroupfs.Pids(filepath.Join(tk.h.freezer, tk.cgroup)) }

// killReport says what the emulated Mesos kill found and did.
type killReport struct {
	killed        []int
	processes     []string // "pid comm" of the killed processes
	took          time.Duration
	unifiedLeft   []string // cgroup2 directories under the task's path, which Mesos 1.12 (v1 only) would leave
	cgroupsRemove int
}

// kill is the Mesos way: freeze, SIGKILL everything, thaw, wait until empty, rmdir.
func (tk *task) kill() (killReport, error) {
	start := time.Now()
	var rep killReport
	freezer := filepath.Join(tk.h.freezer, tk.cgroup)
	if err := os.WriteFile(filepath.Join(freezer, "freezer.state"), []byte("FROZEN"), 0o644); err != nil {
		return rep, err
	}
	if err := waitFor(20*time.Second, func() error {
		b, err := os.ReadFile(filepath.Join(freezer, "freezer.state"))
		if err != nil {
			return err
		}
		if s := strings.TrimSpace(string(b)); s != "FROZEN" {
			return fmt.Errorf("freezer.state %s", s)
		}
		return nil
	}); err != nil {
		return rep, err
	}
	rep.killed = tk.pids()
	for _, pid := range rep.killed {
		rep.processes = append(rep.processes, fmt.Sprintf("%d %s", pid, comm(pid)))
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := os.WriteFile(filepath.Join(freezer, "freezer.state"), []byte("THAWED"), 0o644); err != nil {
		return rep, err
	}
	// Every hierarchy, not only the freezer: a process that left the freezer subtree
	// would show up here.
	if err := waitFor(30*time.Second, func() error {
		for _, mnt := range tk.h.v1 {
			if pids := cgroupfs.Pids(filepath.Join(mnt, tk.cgroup)); len(pids) > 0 {
				for _, pid := range pids {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				return fmt.Errorf("processes left in %s%s: %v", mnt, tk.cgroup, pids)
			}
		}
		return nil
	}); err != nil {
		return rep, err
	}
	select {
	case <-tk.exited:
	case <-time.After(10 * time.Second):
		return rep, fmt.Errorf("task %s: leader %d not reaped", tk.id, tk.cmd.Process.Pid)
	}
	if tk.h.unified != "" {
		_ = filepath.WalkDir(filepath.Join(tk.h.unified, tk.cgroup), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				rep.unifiedLeft = append(rep.unifiedLeft, strings.TrimPrefix(p, tk.h.unified))
			}
			return nil
		})
	}
	mnts := tk.h.v1
	if tk.h.unified != "" {
		mnts = append(mnts[:len(mnts):len(mnts)], tk.h.unified)
	}
	for _, mnt := range mnts {
		n, err := rmdirTree(filepath.Join(mnt, tk.cgroup))
		rep.cgroupsRemove += n
		if err != nil {
			return rep, err
		}
		// The shared parent goes when the last task's cgroup is gone.
		_ = os.Remove(filepath.Join(mnt, cgroupsRoot))
	}
	rep.took = time.Since(start)
	return rep, nil
}

// rmdirTree removes a cgroup directory tree, children first, returning how many
// cgroups it removed. A missing tree is not an error.
func rmdirTree(dir string) (int, error) {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for i := len(dirs) - 1; i >= 0; i-- {
		// A cgroup can stay busy for a moment after its last process died.
		if err := waitFor(5*time.Second, func() error { return os.Remove(dirs[i]) }); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func comm(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// sweepStale kills and removes what a previous run, killed by a timeout before its
// cleanups ran, may have left under the emulated Mesos' cgroups root.
func sweepStale(t *testing.T, h hierarchies) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(h.freezer, cgroupsRoot))
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		tk := &task{id: e.Name(), cgroup: "/" + cgroupsRoot + "/" + e.Name(), h: h, exited: make(chan struct{})}
		close(tk.exited) // not our child
		rep, err := tk.kill()
		t.Logf("swept stale task %s: killed %v: %v", e.Name(), rep.processes, err)
	}
}

// memoryUsage is the task's memory cgroup's usage and its total_rss (without page
// cache), in bytes.
func (tk *task) memoryUsage() (usage, rss int64) {
	for _, mnt := range tk.h.v1 {
		dir := filepath.Join(mnt, tk.cgroup)
		if b, err := os.ReadFile(filepath.Join(dir, "memory.usage_in_bytes")); err == nil {
			usage, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			if st, err := os.ReadFile(filepath.Join(dir, "memory.stat")); err == nil {
				for _, line := range strings.Split(string(st), "\n") {
					if v, ok := strings.CutPrefix(line, "total_rss "); ok {
						rss, _ = strconv.ParseInt(v, 10, 64)
					}
				}
			}
		}
	}
	return usage, rss
}

// rss sums the task's processes' resident memory from /proc/<pid>/status, in bytes:
// anonymous (RssAnon: private heap and stacks, what each agent really costs) and all
// (VmRSS: also the mapped k3s and containerd binaries, shared by every agent on the host),
// and counts the processes by name.
func (tk *task) rss() (anon, all int64, byName map[string]int) {
	byName = map[string]int{}
	for _, pid := range tk.pids() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		byName[comm(pid)]++
		for _, line := range strings.Split(string(b), "\n") {
			kb := func(v string) int64 {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				return n << 10
			}
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				all += kb(v)
			} else if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
				anon += kb(v)
			}
		}
	}
	return anon, all, byName
}
