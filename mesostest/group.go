package mesostest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// In process mode the tasks of a LAUNCH_GROUP run the way the default
// executor (src/launcher/default_executor.cpp) runs them: each task is a
// nested container of the executor's container, launched through the
// agent. The executor's sandbox is
// <work_dir>/slaves/<agent>/frameworks/<framework>/executors/<executor>/runs/<container>
// (src/slave/paths.cpp); each task's sandbox is
// <executor sandbox>/containers/<nested container> (containerizer/mesos/paths.cpp),
// with <executor sandbox>/tasks/<task ID> linking to it. The tasks'
// persistent volumes are linked into the EXECUTOR's sandbox (the agent adds
// the tasks' resources to the executor container; posix isolator), and the
// default executor gives each task a SANDBOX_PATH volume of type PARENT for
// them, which the volume/sandbox_path isolator, without bind mounts, makes a
// symlink <task sandbox>/<path> -> <executor sandbox>/<path>. The default
// executor itself is not a process of the emulator.

// nestedLaunch is everything a group task's goroutine needs.
type nestedLaunch struct {
	taskID      string
	execSandbox string
	sandbox     string
	containerID string
	command     *mesos.CommandInfo
	env         []string
	volumes     []volumeLink // the task's persistent volumes, for the executor sandbox
	parentPaths []string     // SANDBOX_PATH (PARENT) volumes the default executor adds
	prepareErr  error
	host        *host            // the agent's own network namespace, or nil
	parent      *containerCgroup // the executor container's cgroups, or nil
}

// defaultExecutorEnvironmentLocked is the default executor's environment:
// the agent's executor environment in the executor's sandbox.
func (s *Server) defaultExecutorEnvironmentLocked(t *task, sandbox string) environ {
	env := s.executorEnvironmentLocked(t, sandbox)
	env.set("MESOS_SANDBOX", sandbox)
	if _, ok := env["PATH"]; !ok {
		env.set("PATH", hostDefaultPath)
	}
	return env
}

// startNestedLocked launches a task of a group as a nested container.
func (s *Server) startNestedLocked(t *task) {
	g := t.group
	execSandbox := s.groupSandboxLocked(g, t)
	t.sandbox = s.sandboxPathLocked(t)
	if g.executorEnv == nil {
		g.executorEnv = s.defaultExecutorEnvironmentLocked(t, execSandbox)
	}
	t.executorEnv = g.executorEnv
	l := nestedLaunch{
		taskID:      t.id,
		execSandbox: execSandbox,
		sandbox:     t.sandbox,
		containerID: t.containerID,
		command:     proto.Clone(t.info.Command).(*mesos.CommandInfo),
		volumes:     s.containerVolumesLocked(t.resources),
	}
	for _, r := range t.resources {
		// default_executor.cpp: every disk resource with a volume mapping
		// becomes a SANDBOX_PATH volume from the parent's sandbox.
		if r.Disk != nil && r.Disk.Volume != nil {
			l.parentPaths = append(l.parentPaths, r.Disk.Volume.ContainerPath)
		}
	}
	env, err := s.nestedTaskEnvironment(t, t.sandbox)
	if err != nil {
		l.prepareErr = err
	} else {
		t.commandEnv = env
		l.env = env.list()
	}
	l.host = t.agent.host
	if t.agent.cfg.Cgroups && l.prepareErr == nil {
		l.parent, l.prepareErr = s.groupCgroupLocked(g)
	}
	t.proc = &taskProcess{sandbox: t.sandbox, nested: true}
	s.runTrackedLocked(t, func(proc *taskProcess) { s.runNestedTask(t, proc, l) })
}

// linkSandboxPaths is the volume/sandbox_path isolator in symlink mode
// (isolators/volume/sandbox_path.cpp): for each PARENT volume the source
// <parent sandbox>/<path> is created if missing, and <sandbox>/<path>
// links to it. An absolute container path needs bind mounts; a link whose
// parent directory is missing cannot be made: the launch fails.
func linkSandboxPaths(parent, sandbox string, paths []string) error {
	for _, p := range paths {
		if filepath.IsAbs(p) {
			return errors.New("The 'linux' launcher and 'filesystem/linux' isolator must be enabled to support SANDBOX_PATH volume with absolute container path")
		}
		source := filepath.Join(parent, p)
		if _, err := os.Stat(source); err != nil {
			if err := os.MkdirAll(source, 0o755); err != nil {
				return fmt.Errorf("Failed to create the directory '%s' in the sandbox: %v", source, err)
			}
		}
		target := filepath.Join(sandbox, p)
		if err := os.Symlink(source, target); err != nil {
			return fmt.Errorf("Failed to symlink '%s' -> '%s': %v", source, target, unwrapExecError(err))
		}
	}
	return nil
}

func (s *Server) runNestedTask(t *task, proc *taskProcess, l nestedLaunch) {
	// The agent adds the task's resources to the executor container: its
	// persistent volumes appear in the executor's sandbox.
	var linked []volumeLink
	err := os.MkdirAll(l.execSandbox, 0o755)
	if err == nil {
		linked, err = s.linkPersistentVolumes(l.execSandbox, l.volumes)
	}
	if err != nil {
		proc.markExited()
		s.mu.Lock()
		defer s.mu.Unlock()
		reason := mesos.REASON_CONTAINER_LAUNCH_FAILED
		s.updateTaskLocked(t, mesos.TASK_FAILED, &reason, "Failed to launch container: "+err.Error(), mesos.SOURCE_AGENT)
		return
	}
	// The executor sends TASK_STARTING, then asks the agent to launch the
	// nested container (LAUNCH_CONTAINER).
	s.mu.Lock()
	if t.removed || t.terminal() || s.closed {
		s.containerEndedLocked(t, proc, linked)
		s.mu.Unlock()
		proc.markExited()
		return
	}
	s.updateTaskLocked(t, mesos.TASK_STARTING, nil, "", mesos.SOURCE_EXECUTOR)
	s.mu.Unlock()

	cmd, gate, launchErr := s.prepareNested(l)
	s.mu.Lock()
	if launchErr == nil && (t.removed || t.terminal() || s.closed || t.killing) {
		launchErr = errors.New("the task was killed before its container launched")
	}
	var execErr error
	if launchErr == nil {
		proc.mu.Lock()
		execErr = l.host.start(cmd)
		if execErr == nil {
			proc.pid, proc.group = cmd.Process.Pid, cmd.Process.Pid
			proc.cgroup = gate.cgroup
			if err := gate.open(cmd.Process.Pid); err != nil {
				launchErr = err
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		} else {
			gate.abandon()
		}
		proc.mu.Unlock()
	} else {
		gate.abandon()
	}
	if execErr != nil {
		// The launch helper runs but cannot exec the command: it says so
		// on the container's stderr and exits 1.
		if f, ok := cmd.Stderr.(*os.File); ok {
			fmt.Fprintf(f, "Failed to execute '%s': %v\n", l.command.GetValue(), unwrapExecError(execErr))
		}
		closeFiles(cmd)
		s.containerEndedLocked(t, proc, linked)
		s.updateTaskLocked(t, mesos.TASK_RUNNING, nil, "", mesos.SOURCE_EXECUTOR)
		state, msg := commandOutcome(syscall.WaitStatus(1<<8), t.killing)
		s.updateTaskLocked(t, state, nil, msg, mesos.SOURCE_EXECUTOR)
		s.mu.Unlock()
		proc.markExited()
		return
	}
	closeFiles(cmd)
	if launchErr != nil {
		// The executor's WAIT_NESTED_CONTAINER gets 404: TASK_FAILED with
		// the launch error (TASK_KILLED if it was being killed).
		s.containerEndedLocked(t, proc, linked)
		state := mesos.TASK_FAILED
		if t.killing {
			state = mesos.TASK_KILLED
		}
		s.log.Info("nested container launch failed", "taskID", t.id, "error", launchErr.Error())
		s.updateTaskLocked(t, state, nil, launchErr.Error(), mesos.SOURCE_EXECUTOR)
		s.mu.Unlock()
		proc.markExited()
		return
	}
	// The default executor links tasks/<task ID> to the task's sandbox,
	// then reports TASK_RUNNING.
	tasksDir := filepath.Join(l.execSandbox, "tasks")
	if err := os.MkdirAll(tasksDir, 0o755); err == nil {
		_ = os.Symlink(filepath.Join(l.execSandbox, "containers", l.containerID), filepath.Join(tasksDir, l.taskID))
	}
	t.executorPid = cmd.Process.Pid // the nested container's own process
	s.log.Info("nested container started", "taskID", t.id, "pid", cmd.Process.Pid, "sandbox", l.sandbox)
	s.updateTaskLocked(t, mesos.TASK_RUNNING, nil, "", mesos.SOURCE_EXECUTOR)
	s.startHealthCheckLocked(t)
	s.mu.Unlock()

	_ = cmd.Wait()
	proc.markExited()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)

	s.mu.Lock()
	defer s.mu.Unlock()
	// The agent removes the task's resources from the executor container
	// before it forwards the terminal update: the volume links leave the
	// executor's sandbox.
	s.containerEndedLocked(t, proc, linked)
	state, msg := commandOutcome(ws, t.killing)
	s.log.Info("nested container exited", "taskID", t.id, "result", msg)
	s.updateTaskLocked(t, state, nil, msg, mesos.SOURCE_EXECUTOR)
	s.groupEndedLocked(t.group)
}

// prepareNested prepares a nested container: its sandbox, its SANDBOX_PATH
// volumes, the secrets, the fetched URIs, and the command the launch
// helper runs (with its environment: never on a command line).
func (s *Server) prepareNested(l nestedLaunch) (*exec.Cmd, *launchGate, error) {
	gate := &launchGate{}
	if err := os.MkdirAll(l.sandbox, 0o755); err != nil {
		return nil, gate, fmt.Errorf("Failed to create sandbox: %v", err)
	}
	if l.prepareErr != nil {
		return nil, gate, l.prepareErr
	}
	if err := linkSandboxPaths(l.execSandbox, l.sandbox, l.parentPaths); err != nil {
		return nil, gate, err
	}
	if _, _, err := s.prepareContainer(l.sandbox, nil, l.command.URIs); err != nil {
		return nil, gate, err
	}
	c := l.command
	cmd := &exec.Cmd{Env: l.env, Dir: l.sandbox, SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	switch {
	case c.GetShell() && c.Value != nil:
		cmd.Path, cmd.Args = "/bin/sh", []string{"sh", "-c", c.GetValue()}
	case c.Value != nil:
		cmd.Args = c.Arguments
		if len(cmd.Args) == 0 {
			cmd.Args = []string{c.GetValue()}
		}
		cmd.Path = resolveExecutable(c.GetValue(), l.env, l.sandbox)
	default:
		return nil, gate, errors.New("The 'value' of the command is not specified")
	}
	if l.parent != nil {
		cg, err := l.parent.nested(l.containerID)
		if err != nil {
			return nil, gate, err
		}
		if err := gate.wrap(cmd, cg); err != nil {
			_ = cg.remove()
			return nil, gate, err
		}
	}
	stdout, stderr, err := openSandboxOutput(l.sandbox)
	if err != nil {
		gate.abandon()
		return nil, gate, err
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return cmd, gate, nil
}

// launchGate holds a nested container's command until it is in its cgroups, as the
// containerizer's launch helper waits on a pipe until the launcher and isolators have
// placed it (src/slave/containerizer/mesos/launch.cpp): nothing of the task runs outside.
type launchGate struct {
	cgroup  *containerCgroup
	release *os.File
}

// wrap makes cmd wait on fd 3 before it execs the command (same pid).
func (g *launchGate) wrap(cmd *exec.Cmd, cg *containerCgroup) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Args = append([]string{"sh", "-c", `read -r _ <&3; exec 3<&-; exec "$0" "$@"`, cmd.Path}, cmd.Args[1:]...)
	cmd.Path = "/bin/sh"
	cmd.ExtraFiles = append([]*os.File{r}, cmd.ExtraFiles...)
	g.cgroup, g.release = cg, w
	return nil
}

// open puts the started process in its cgroups and lets it run.
func (g *launchGate) open(pid int) error {
	if g.release == nil {
		return nil
	}
	defer g.abandonPipe()
	if err := g.cgroup.join(pid); err != nil {
		return err
	}
	_, err := g.release.WriteString("go\n")
	return err
}

// abandon gives up a launch that never started: its cgroups go.
func (g *launchGate) abandon() {
	g.abandonPipe()
	if g.cgroup != nil {
		_ = g.cgroup.remove()
		g.cgroup = nil
	}
}

func (g *launchGate) abandonPipe() {
	if g.release != nil {
		g.release.Close()
		g.release = nil
	}
}

// closeFiles releases the parent's copies of a child's output files.
func closeFiles(cmd *exec.Cmd) {
	if cmd == nil {
		return
	}
	for _, w := range []any{cmd.Stdout, cmd.Stderr} {
		if f, ok := w.(*os.File); ok {
			f.Close()
		}
	}
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
}

// runsNested tells whether a task of a group runs as a process.
func runsNested(t *task) bool {
	if t.group == nil || t.group.info.Type != mesos.ExecutorInfo_DEFAULT || t.info.Command == nil {
		return false
	}
	return !hasImage(t.info.Container)
}

// groupCgroupLocked is the executor container's cgroups, made with the group's first
// task: its limits are the executor's resources plus every task's of the group (the agent
// sizes the executor container with all of them, Slave::launchExecutor).
func (s *Server) groupCgroupLocked(g *taskGroup) (*containerCgroup, error) {
	if g.cgroup != nil {
		return g.cgroup, nil
	}
	cpus, mem := scalarOf(g.resources, "cpus"), scalarOf(g.resources, "mem")
	for _, t := range g.tasks {
		cpus += scalarOf(t.resources, "cpus")
		mem += scalarOf(t.resources, "mem")
	}
	cg, err := newContainerCgroup(s.cgroups, s.cgroupsRoot, g.containerID, cpus, mem)
	if err != nil {
		return nil, err
	}
	g.cgroup = cg
	if s.groupCgroups == nil {
		s.groupCgroups = map[*containerCgroup]struct{}{}
	}
	s.groupCgroups[cg] = struct{}{}
	return cg, nil
}

// groupEndedLocked destroys the executor container's cgroups once no task of the group
// runs: the default executor exits when its last task ended.
func (s *Server) groupEndedLocked(g *taskGroup) {
	if g.cgroup == nil {
		return
	}
	for _, t := range g.tasks {
		if t.proc != nil {
			return
		}
	}
	delete(s.groupCgroups, g.cgroup)
	if err := g.cgroup.destroy(); err != nil {
		s.log.Error(err, "destroying the executor container's cgroups", "executorID", g.executorID)
	}
	g.cgroup = nil
}

// groupCgroupsLocked are the executor containers' cgroups still there (for Close).
func (s *Server) groupCgroupsLocked() []*containerCgroup {
	out := make([]*containerCgroup, 0, len(s.groupCgroups))
	for c := range s.groupCgroups {
		out = append(out, c)
	}
	s.groupCgroups = nil
	return out
}
