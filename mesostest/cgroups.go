package mesostest

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mesosk3s/mesosk3s/internal/cgroupfs"
)

// An agent with AgentConfig.Cgroups runs its containers the way a Mesos agent with
// --launcher=linux and --isolation=cgroups/all does (src/slave/containerizer/mesos/
// linux_launcher.cpp, isolators/cgroups/cgroups.cpp):
//
//   - every container has the cgroup <cgroups_root>/<containerID> in each cgroup v1
//     hierarchy (containerizer/mesos/paths.cpp getCgroupPath), its process put there before
//     it runs anything, memory.limit_in_bytes and cpu.shares from its resources
//     (isolators/cgroups/subsystems/memory.cpp, cpu.cpp);
//   - a nested container (a task of a LAUNCH_GROUP) gets <cgroups_root>/<parent>/mesos/<child>
//     in the freezer and systemd hierarchies (the launcher's) and shares its parent's cgroups
//     in the others (LinuxInfo.share_cgroups defaults to true);
//   - destroying a container freezes its freezer cgroup, SIGKILLs every process in it, thaws
//     it, waits until it is empty and removes the cgroups, children first (linux/cgroups.cpp
//     cgroups::destroy through the freezer's TasksKiller). Whatever a task started, in
//     whatever session, dies with it: a K3s agent's containerd shims and its pods included.
//
// Mesos 1.12 knows cgroup v1 only: a cgroup2 directory a task made under the container's
// path (runc does under /sys/fs/cgroup/unified) is left there by real Mesos; the emulator
// removes it with the rest, so that tests leave the machine as they found it.

// cgroupHierarchies are the mounted cgroup v1 hierarchies (co-mounted controllers appear
// once) and the cgroup2 mount, if any.
type cgroupHierarchies struct {
	v1       []string // mount points
	freezer  string
	systemd  string
	unified  string
	noMemory bool
}

func findCgroupHierarchies() (*cgroupHierarchies, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := &cgroupHierarchies{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, x := range fields {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 >= len(fields) || len(fields) < 5 {
			continue
		}
		mnt, fstype, opts := fields[4], fields[sep+1], fields[sep+3]
		switch fstype {
		case "cgroup":
			h.v1 = append(h.v1, mnt)
			for _, o := range strings.Split(opts, ",") {
				switch o {
				case "freezer":
					h.freezer = mnt
				case "name=systemd":
					h.systemd = mnt
				}
			}
		case "cgroup2":
			h.unified = mnt
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if h.freezer == "" {
		return nil, errors.New("no freezer cgroup hierarchy: the Linux launcher needs one")
	}
	sort.Strings(h.v1)
	return h, nil
}

// containerCgroup is one container's cgroups.
type containerCgroup struct {
	h *cgroupHierarchies
	// path is the container's cgroup in the freezer hierarchy, e.g.
	// /mesostest-1a2b/<executor>/mesos/<nested>; in each hierarchy of attach, the process
	// joins attach[mount].
	path   string
	attach map[string]string
	// owned are the cgroups (mount point + path) this container's destroy removes.
	owned []string
	root  string // <cgroups_root>, removed once empty
}

// newContainerCgroup creates a top-level container's cgroups with its limits.
func newContainerCgroup(h *cgroupHierarchies, root, containerID string, cpus, memMiB float64) (*containerCgroup, error) {
	c := &containerCgroup{h: h, path: "/" + root + "/" + containerID, attach: map[string]string{}, root: root}
	for _, mnt := range h.v1 {
		if err := cgroupfs.MkdirAll(mnt, c.path); err != nil {
			c.remove()
			return nil, fmt.Errorf("Failed to prepare isolator: %v", err)
		}
		c.attach[mnt] = c.path
		c.owned = append(c.owned, filepath.Join(mnt, c.path))
	}
	if h.unified != "" {
		c.owned = append(c.owned, filepath.Join(h.unified, c.path))
	}
	limits := map[string]string{}
	if memMiB > 0 {
		limits["memory.limit_in_bytes"] = strconv.FormatInt(int64(memMiB*1024*1024), 10)
	}
	if cpus > 0 {
		limits["cpu.shares"] = strconv.Itoa(max(2, int(cpus*1024)))
	}
	for _, mnt := range h.v1 {
		for file, value := range limits {
			p := filepath.Join(mnt, c.path, file)
			if _, err := os.Stat(p); err != nil {
				continue
			}
			if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
				c.remove()
				return nil, fmt.Errorf("Failed to update resources: %s: %v", p, err)
			}
		}
	}
	return c, nil
}

// nested creates a nested container's cgroups under its parent's.
func (c *containerCgroup) nested(containerID string) (*containerCgroup, error) {
	n := &containerCgroup{h: c.h, path: c.path + "/mesos/" + containerID, attach: map[string]string{}}
	for _, mnt := range c.h.v1 {
		if mnt != c.h.freezer && mnt != c.h.systemd {
			n.attach[mnt] = c.path
			continue
		}
		if err := cgroupfs.MkdirAll(mnt, n.path); err != nil {
			n.remove()
			return nil, fmt.Errorf("Failed to launch nested container: %v", err)
		}
		n.attach[mnt] = n.path
	}
	// What a task made under its own path in the shared hierarchies (a kubelet's cgroup
	// root) goes with it too.
	for _, mnt := range append(append([]string(nil), c.h.v1...), c.h.unified) {
		if mnt != "" {
			n.owned = append(n.owned, filepath.Join(mnt, n.path))
		}
	}
	return n, nil
}

// join moves a process (all its threads) into the container's cgroups.
func (c *containerCgroup) join(pid int) error {
	for mnt, path := range c.attach {
		p := filepath.Join(mnt, path, "cgroup.procs")
		if err := os.WriteFile(p, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("Failed to assign process %d to %s: %v", pid, p, err)
		}
	}
	return nil
}

// destroy kills every process of the container and removes its cgroups.
func (c *containerCgroup) destroy() error {
	freezer := filepath.Join(c.h.freezer, c.path)
	state := filepath.Join(freezer, "freezer.state")
	if _, err := os.Stat(state); err == nil {
		// Frozen, nothing can fork while it is killed; thawed, the SIGKILLs land.
		_ = os.WriteFile(state, []byte("FROZEN"), 0o644)
		_ = waitUntil(10*time.Second, func() bool {
			b, err := os.ReadFile(state)
			return err != nil || strings.TrimSpace(string(b)) == "FROZEN"
		})
		for _, pid := range cgroupfs.Pids(freezer) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = os.WriteFile(state, []byte("THAWED"), 0o644)
	}
	var errs []error
	if !waitUntil(30*time.Second, func() bool {
		left := false
		for _, dir := range append([]string{freezer}, c.owned...) {
			for _, pid := range cgroupfs.Pids(dir) {
				left = true
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		return !left
	}) {
		errs = append(errs, fmt.Errorf("processes left in %s", c.path))
	}
	errs = append(errs, c.remove())
	return errors.Join(errs...)
}

// remove removes the container's cgroups (children first) and the cgroups root once empty.
func (c *containerCgroup) remove() error {
	var errs []error
	dirs := append([]string(nil), c.owned...)
	if !containsString(dirs, filepath.Join(c.h.freezer, c.path)) {
		dirs = append(dirs, filepath.Join(c.h.freezer, c.path))
	}
	for _, dir := range dirs {
		if err := rmdirTree(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if c.root != "" {
		for _, mnt := range append(append([]string(nil), c.h.v1...), c.h.unified) {
			if mnt != "" {
				_ = os.Remove(filepath.Join(mnt, c.root)) // fails while another container lives
			}
		}
	}
	return errors.Join(errs...)
}

// rmdirTree removes a cgroup tree, children first. A missing tree is no error.
func rmdirTree(dir string) error {
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
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		var last error
		// A cgroup stays busy for a moment after its last process died.
		if !waitUntil(5*time.Second, func() bool {
			last = os.Remove(dirs[i])
			return last == nil || errors.Is(last, fs.ErrNotExist)
		}) {
			return fmt.Errorf("Failed to remove cgroup %s: %v", dirs[i], last)
		}
	}
	return nil
}

func waitUntil(d time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if ok() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
