// Package cgroupfs holds the few cgroup v1 file-system operations that the Mesos emulator,
// the node lab and the end-to-end tests all need: making a cgroup path and listing the
// processes of a subtree.
package cgroupfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// MkdirAll creates path (every missing level) in the hierarchy mounted at mnt; a cpuset
// level gets its parent's cpus and mems, without which no process can join it.
func MkdirAll(mnt, path string) error {
	p := mnt
	for _, c := range strings.Split(strings.Trim(path, "/"), "/") {
		parent := p
		p = filepath.Join(p, c)
		if err := os.Mkdir(p, 0o755); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			return err
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if b, err := os.ReadFile(filepath.Join(parent, f)); err == nil {
				if err := os.WriteFile(filepath.Join(p, f), b, 0o644); err != nil {
					return fmt.Errorf("%s: %v", filepath.Join(p, f), err)
				}
			}
		}
	}
	return nil
}

// Pids lists the processes in the cgroup subtree at dir, sorted; a missing subtree has none.
func Pids(dir string) []int {
	var pids []int
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	sort.Ints(pids)
	return pids
}
