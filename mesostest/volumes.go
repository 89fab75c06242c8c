package mesostest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// persistentVolumePath is where a persistent volume lives on its agent,
// as paths::getPersistentVolumePath in src/slave/paths.cpp (Mesos master
// branch, post-1.12) puts it: <work_dir>/volumes/roles/<role>/<persistence
// ID>, with the '/' of hierarchical roles encoded as ' ' (whitespace is
// not allowed in role names). The emulated agents share one work_dir,
// SandboxRoot.
func (s *Server) persistentVolumePath(role, persistenceID string) string {
	return filepath.Join(s.sandboxDir, "volumes", "roles", strings.ReplaceAll(role, "/", " "), persistenceID)
}

// createVolumeDir makes a new persistent volume's directory, as the agent
// does when it checkpoints a CREATE.
func (s *Server) createVolumeDir(role, persistenceID string) {
	_ = os.MkdirAll(s.persistentVolumePath(role, persistenceID), 0o755)
}

// removeVolumeDir deletes a destroyed volume's data, as the agent does for
// DESTROY.
func (s *Server) removeVolumeDir(role, persistenceID string) {
	_ = os.RemoveAll(s.persistentVolumePath(role, persistenceID))
}

// volumeLink is a persistent volume of a container: where it appears in
// the sandbox and the directory it stands for.
type volumeLink struct {
	containerPath string
	hostDir       string
	link          string // set once linked
}

// containerVolumesLocked lists the persistent volumes among a container's
// resources.
func (s *Server) containerVolumesLocked(rs mesos.Resources) []volumeLink {
	var out []volumeLink
	for _, r := range rs {
		if r.IsPersistentVolume() && r.Disk.Volume != nil {
			out = append(out, volumeLink{
				containerPath: r.Disk.Volume.ContainerPath,
				hostDir:       s.persistentVolumePath(r.GetRole(), r.Disk.Persistence.ID),
			})
		}
	}
	return out
}

// linkPersistentVolumes makes a container's persistent volumes appear in
// its sandbox the way the posix filesystem isolator does
// (PosixFilesystemIsolatorProcess::update in
// src/slave/containerizer/mesos/isolators/filesystem/posix.cpp): a symlink
// <sandbox>/<container_path> -> the volume's directory. Container paths
// that contain a '/' (absolute or nested) are skipped with a warning, as
// the isolator does: the task then sees no volume there. It returns the
// volumes actually linked (for unlinkPersistentVolumes).
func (s *Server) linkPersistentVolumes(sandbox string, volumes []volumeLink) ([]volumeLink, error) {
	var linked []volumeLink
	for _, v := range volumes {
		if strings.Contains(v.containerPath, "/") {
			s.log.Info("skipping symlink for persistent volume: the container path contains a slash",
				"containerPath", v.containerPath, "sandbox", sandbox)
			continue
		}
		link := filepath.Join(sandbox, v.containerPath)
		if _, err := os.Lstat(link); err == nil {
			// The isolator accepts an existing link to the same volume.
			got, err1 := filepath.EvalSymlinks(link)
			want, err2 := filepath.EvalSymlinks(v.hostDir)
			if err1 != nil || err2 != nil || got != want {
				return linked, fmt.Errorf("The existing symlink '%s' points to '%s' and the new target is '%s'", link, got, want)
			}
		} else {
			if _, err := os.Stat(v.hostDir); err != nil {
				// The agent made the directory when the volume was created;
				// a volume created before the directory existed (or whose
				// directory was removed) gets it now.
				if err := os.MkdirAll(v.hostDir, 0o755); err != nil {
					return linked, err
				}
			}
			if err := os.Symlink(v.hostDir, link); err != nil {
				return linked, fmt.Errorf("Failed to symlink persistent volume from '%s' to '%s'", v.hostDir, link)
			}
		}
		v.link = link
		linked = append(linked, v)
	}
	return linked, nil
}

// unlinkPersistentVolumes removes the symlinks of volumes a container no
// longer uses: the agent updates the container's resources when one of its
// tasks reaches a terminal state (Slave::_statusUpdate in
// src/slave/slave.cpp waits for containerizer->update before forwarding
// the terminal update), and the posix isolator removes the links of the
// volumes that are gone. The volume's data stays where it is.
func unlinkPersistentVolumes(volumes []volumeLink) error {
	var errs []error
	for _, v := range volumes {
		if v.link == "" {
			continue
		}
		if err := os.Remove(v.link); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("Failed to remove the symlink for the unneeded persistent volume at '%s'", v.link))
		}
	}
	return errors.Join(errs...)
}
