package mesostest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/gogo/protobuf/proto"
	"github.com/google/uuid"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// taskProcess is what runs for a task in process mode: for a command task
// the command executor process and the task's command (its child, in a
// session of its own); for a task of a group the task's command, a nested
// container started by the agent.
type taskProcess struct {
	// sandbox identifies the container's processes: every descendant
	// inherits MESOS_SANDBOX=<sandbox> (see killContainer).
	sandbox string
	// nested: a nested container, signalled by its pid only (the
	// containerizer's kill), not by process tree.
	nested bool

	mu          sync.Mutex
	executorPid int              // the command executor; 0 for nested containers
	cgroup      *containerCgroup // the container's cgroups, destroyed with it; nil without
	group       int              // process group destroyed with the container
	pid         int              // the task's command; 0 until started
	reaped      bool             // the task's command ended
	exited      bool             // the container is gone
	// killedBeforeStart records a kill that arrived while launching.
	killedBeforeStart bool
}

// sigterm is the executor's SIGTERM: to the task's process tree (the
// command executor's os::killtree with groups and sessions), or to the
// nested container's process (KILL_NESTED_CONTAINER).
func (p *taskProcess) sigterm() { p.signal(syscall.SIGTERM) }

// sigkill is the escalation at the end of the grace period, to the same
// processes as sigterm.
func (p *taskProcess) sigkill() { p.signal(syscall.SIGKILL) }

func (p *taskProcess) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited || p.reaped {
		return
	}
	if p.pid == 0 {
		p.killedBeforeStart = true
		return
	}
	if p.nested {
		_ = syscall.Kill(p.pid, sig)
		return
	}
	killTree(p.pid, sig)
}

// destroy kills everything of the container at once, as the containerizer
// destroys it: the executor, the task, whatever they left (forced failure,
// Close, the end of the executor).
func (p *taskProcess) destroy() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.destroyLocked()
}

func (p *taskProcess) destroyLocked() {
	if p.cgroup != nil {
		// The cgroup holds every process of the container, whatever session it made.
		if err := p.cgroup.destroy(); err != nil {
			fmt.Fprintf(os.Stderr, "mesostest: destroying container cgroups: %v\n", err)
		}
		p.cgroup = nil
	}
	if p.pid > 0 {
		killTree(p.pid, syscall.SIGKILL)
	}
	if p.group > 0 {
		killContainer(p.group, p.sandbox)
	}
	if p.pid == 0 && p.group == 0 {
		p.killedBeforeStart = true
	}
}

// markExited records that the container's main process (the executor, or
// the nested task) ended; the container is destroyed.
func (p *taskProcess) markExited() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return
	}
	p.destroyLocked()
	p.exited = true
}

// killContainer SIGKILLs a process group and, standing in for the
// container's cgroup, every process whose environment carries the
// container's MESOS_SANDBOX: descendants that left the group (setsid,
// e.g. containerd shims started by a K3s agent) are found that way too.
func killContainer(pgid int, sandbox string) {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if sandbox == "" {
		return
	}
	marker := []byte("MESOS_SANDBOX=" + sandbox + "\x00")
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		if bytes.Contains(env, marker) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// procStat is what killTree needs of /proc/<pid>/stat.
type procStat struct{ pid, ppid, pgrp, session int }

func readProcStats() []procStat {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []procStat
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProcStat(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

// killTree signals the process tree rooted at root as stout's
// os::killtree(root, sig, groups=true, sessions=true) does
// (3rdparty/stout/include/stout/os/posix/killtree.hpp): every process is
// stopped (SIGSTOP) as it is found, so that none can fork or react before
// the signal reaches them all; the tree is the root, its descendants and
// every process in their process groups and sessions, except the group
// and session of the root's parent; then all get the signal, and SIGCONT.
// A root that is gone stands for the group and session it led.
func killTree(root int, sig syscall.Signal) {
	stats := readProcStats()
	byPid := map[int]procStat{}
	for _, p := range stats {
		byPid[p.pid] = p
	}
	self := os.Getpid()
	var queue []int
	groups, sessions := map[int]bool{}, map[int]bool{}
	if rootStat, ok := byPid[root]; ok {
		queue = append(queue, root)
		if parent, ok := byPid[rootStat.ppid]; ok {
			groups[parent.pgrp], sessions[parent.session] = true, true
		}
	} else {
		for _, p := range stats {
			if p.pgrp == root || p.session == root {
				queue = append(queue, p.pid)
			}
		}
	}
	if selfStat, ok := byPid[self]; ok {
		groups[selfStat.pgrp], sessions[selfStat.session] = true, true
	}
	visited := map[int]bool{}
	var order []int
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if visited[pid] || pid == self {
			continue
		}
		p, ok := readProcStat(pid)
		if !ok {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGSTOP)
		visited[pid] = true
		order = append(order, pid)
		stats = readProcStats()
		for _, c := range stats {
			if c.ppid == pid {
				queue = append(queue, c.pid)
			}
		}
		if !groups[p.pgrp] {
			groups[p.pgrp] = true
			for _, c := range stats {
				if c.pgrp == p.pgrp {
					queue = append(queue, c.pid)
				}
			}
		}
		if !sessions[p.session] {
			sessions[p.session] = true
			for _, c := range stats {
				if c.session == p.session {
					queue = append(queue, c.pid)
				}
			}
		}
	}
	for _, pid := range order {
		_ = syscall.Kill(pid, sig)
	}
	for _, pid := range order {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
}

func readProcStat(pid int) (procStat, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, false
	}
	return parseProcStat(pid, b)
}

func parseProcStat(pid int, b []byte) (procStat, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 4 {
		return procStat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	pgrp, _ := strconv.Atoi(f[2])
	session, _ := strconv.Atoi(f[3])
	return procStat{pid: pid, ppid: ppid, pgrp: pgrp, session: session}, true
}

// commandLaunch is everything a command task's goroutine needs, copied out
// of the locked state.
type commandLaunch struct {
	taskID      string
	sandbox     string
	command     *mesos.CommandInfo
	executorEnv []string
	commandEnv  []string
	argv        []string // the command executor's command line
	volumes     []volumeLink
	prepareErr  error // isolator preparation failed (e.g. a secret reference)
	host        *host // the agent's own network namespace, or nil
	// cgroup, when the agent runs containers in cgroups: the container's, made before it
	// starts; its limits are the task's resources plus the command executor's allowance.
	cgroup *containerCgroupSpec
}

// containerCgroupSpec is what a container's cgroup is made from.
type containerCgroupSpec struct {
	h           *cgroupHierarchies
	root        string
	containerID string
	cpus, mem   float64
}

func (c *containerCgroupSpec) create() (*containerCgroup, error) {
	return newContainerCgroup(c.h, c.root, c.containerID, c.cpus, c.mem)
}

// sandboxPathLocked is the task's sandbox, paths::getExecutorRunPath
// (src/slave/paths.cpp): <work_dir>/slaves/<agent>/frameworks/<framework>/
// executors/<executor>/runs/<container>, a new container (and directory)
// per launch. A task of a group has its own directory below its executor's
// (containerizer/mesos/paths.cpp getSandboxPath): <executor
// sandbox>/containers/<container>.
func (s *Server) sandboxPathLocked(t *task) string {
	if t.group != nil {
		return filepath.Join(s.groupSandboxLocked(t.group, t), "containers", t.containerID)
	}
	return filepath.Join(s.sandboxDir, "slaves", t.agent.id, "frameworks", t.fw.id,
		"executors", t.executorID, "runs", t.containerID)
}

// groupSandboxLocked is the executor sandbox of a task group.
func (s *Server) groupSandboxLocked(g *taskGroup, t *task) string {
	if g.sandbox == "" {
		g.sandbox = filepath.Join(s.sandboxDir, "slaves", t.agent.id, "frameworks", t.fw.id,
			"executors", g.executorID, "runs", g.containerID)
	}
	return g.sandbox
}

// startProcessLocked launches a task for real.
func (s *Server) startProcessLocked(t *task) {
	if t.group != nil {
		s.startNestedLocked(t)
		return
	}
	t.sandbox = s.sandboxPathLocked(t)
	l := commandLaunch{
		taskID:  t.id,
		sandbox: t.sandbox,
		command: proto.Clone(t.info.Command).(*mesos.CommandInfo),
		volumes: s.containerVolumesLocked(t.resources),
	}
	executorEnv, commandEnv, secrets, err := s.commandTaskEnvironments(t, t.sandbox, t.sandbox)
	if err != nil {
		l.prepareErr = err
	} else {
		t.executorEnv, t.commandEnv = executorEnv, commandEnv
		l.executorEnv = append(executorEnv.list(), commandExecutorEnv+"=1")
		l.commandEnv = commandEnv.list()
		// mesos-executor's command line: the agent's flags, then what the
		// containerizer appends for command tasks.
		l.argv = []string{commandExecutorName, "--launcher_dir=" + launcherDir}
		if len(secrets) > 0 {
			l.argv = append(l.argv, "--task_environment="+taskEnvironmentJSON(secrets))
		}
	}
	l.host = t.agent.host
	if t.agent.cfg.Cgroups {
		// Slave::getExecutorInfo (src/slave/slave.cpp) gives the command executor the task's
		// resources plus an allowance of 0.1 cpus and 32 MiB.
		l.cgroup = &containerCgroupSpec{h: s.cgroups, root: s.cgroupsRoot, containerID: t.containerID,
			cpus: scalarOf(t.resources, "cpus") + 0.1, mem: scalarOf(t.resources, "mem") + 32}
	}
	t.proc = &taskProcess{sandbox: t.sandbox}
	s.runTrackedLocked(t, func(proc *taskProcess) { s.runCommandTask(t, proc, l) })
}

// runTrackedLocked runs a task's process goroutine, tracked for Close.
func (s *Server) runTrackedLocked(t *task, run func(*taskProcess)) {
	proc := t.proc
	s.processes[proc] = struct{}{}
	wrapped := func() {
		defer func() {
			s.mu.Lock()
			delete(s.processes, proc)
			s.mu.Unlock()
		}()
		run(proc)
	}
	if !s.tracker.goTracked(wrapped) {
		delete(s.processes, proc)
		t.proc = nil
	}
}

// prepareContainer makes the sandbox, links the persistent volumes and
// fetches the URIs, as the containerizer does before it starts anything.
func (s *Server) prepareContainer(sandbox string, volumes []volumeLink, uris []mesos.CommandInfo_URI) ([]volumeLink, mesos.TaskStatus_Reason, error) {
	if err := os.MkdirAll(sandbox, 0o755); err != nil {
		return nil, mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("Failed to create sandbox: %v", err)
	}
	linked, err := s.linkPersistentVolumes(sandbox, volumes)
	if err != nil {
		return linked, mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("Failed to launch container: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := fetchURIs(ctx, sandbox, uris); err != nil {
		return linked, mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("Failed to fetch all URIs for container: %v", err)
	}
	return linked, 0, nil
}

// runCommandTask runs a command task: the command executor process, which
// starts the task's command and reports its end.
func (s *Server) runCommandTask(t *task, proc *taskProcess, l commandLaunch) {
	failLaunch := func(reason mesos.TaskStatus_Reason, err error) {
		proc.markExited()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.updateTaskLocked(t, mesos.TASK_FAILED, &reason, err.Error(), mesos.SOURCE_AGENT)
	}
	if l.prepareErr != nil {
		failLaunch(mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("Failed to launch container: %v", l.prepareErr))
		return
	}
	linked, reason, err := s.prepareContainer(l.sandbox, l.volumes, l.command.URIs)
	if err != nil {
		failLaunch(reason, err)
		return
	}
	if selfExecutableErr != nil {
		failLaunch(mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("Failed to launch container: %v", selfExecutableErr))
		return
	}
	stdout, stderr, err := openSandboxOutput(l.sandbox)
	if err != nil {
		failLaunch(mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("Failed to launch container: %v", err))
		return
	}
	specR, specW, err1 := os.Pipe()
	eventsR, eventsW, err2 := os.Pipe()
	if err1 != nil || err2 != nil {
		stdout.Close()
		stderr.Close()
		failLaunch(mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("Failed to launch container: %v", firstErr(err1, err2)))
		return
	}
	cmd := &exec.Cmd{
		Path: selfExecutable, Args: l.argv, Env: l.executorEnv, Dir: l.sandbox,
		Stdout: stdout, Stderr: stderr, ExtraFiles: []*os.File{specR, eventsW},
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	var cg *containerCgroup
	if l.cgroup != nil {
		if cg, err = l.cgroup.create(); err != nil {
			closeAll(stdout, stderr, specR, specW, eventsR, eventsW)
			failLaunch(mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("Failed to launch container: %v", err))
			return
		}
	}

	s.mu.Lock()
	if t.removed || t.terminal() || s.closed || t.killing {
		killing := t.killing && !t.removed && !t.terminal()
		if killing {
			s.updateTaskLocked(t, mesos.TASK_KILLED, nil, "Task killed before it started", mesos.SOURCE_EXECUTOR)
		}
		s.mu.Unlock()
		closeAll(stdout, stderr, specR, specW, eventsR, eventsW)
		proc.markExited()
		return
	}
	proc.mu.Lock()
	startErr := l.host.start(cmd)
	if startErr == nil {
		proc.executorPid, proc.group = cmd.Process.Pid, cmd.Process.Pid
		proc.cgroup = cg
		if cg != nil {
			// The executor waits for its task on the spec pipe: it is in its cgroups before
			// it starts anything.
			startErr = cg.join(cmd.Process.Pid)
		}
	} else if cg != nil {
		_ = cg.remove()
	}
	proc.mu.Unlock()
	closeAll(stdout, stderr, specR, eventsW)
	if startErr != nil {
		s.mu.Unlock()
		closeAll(specW, eventsR)
		if cmd.Process != nil { // started, but could not join its cgroups
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		failLaunch(mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("Failed to launch container: %v", startErr))
		return
	}
	t.executorPid = cmd.Process.Pid
	s.log.Info("command executor started", "taskID", t.id, "pid", cmd.Process.Pid, "sandbox", l.sandbox)
	// The executor subscribes and gets the task: TASK_STARTING.
	s.updateTaskLocked(t, mesos.TASK_STARTING, nil, "", mesos.SOURCE_EXECUTOR)
	s.mu.Unlock()

	spec, _ := json.Marshal(executorSpec{TaskID: l.taskID, Shell: l.command.GetShell(), Value: l.command.Value,
		Args: l.command.Arguments, Env: l.commandEnv, Dir: l.sandbox})
	_, _ = specW.Write(spec)
	specW.Close()

	events := &executorEvents{r: bufio.NewReader(eventsR)}
	reported := false
	for {
		kind, n, ok := events.next()
		if !ok {
			break
		}
		switch kind {
		case "started":
			proc.mu.Lock()
			proc.pid = n
			killedEarly := proc.killedBeforeStart
			proc.mu.Unlock()
			s.mu.Lock()
			s.log.Info("task command started", "taskID", t.id, "pid", n)
			s.updateTaskLocked(t, mesos.TASK_RUNNING, nil, "", mesos.SOURCE_EXECUTOR)
			s.startHealthCheckLocked(t)
			s.mu.Unlock()
			if killedEarly {
				proc.sigkill()
			}
		case "exited":
			// The executor reaped the task and sends the terminal update
			// (before it exits and the container is destroyed).
			reported = true
			s.mu.Lock()
			s.commandEndedLocked(t, proc, linked, syscall.WaitStatus(n))
			s.mu.Unlock()
		}
	}
	eventsR.Close()
	_ = cmd.Wait()
	proc.markExited()
	if reported {
		return
	}
	// The executor died without reporting (it aborted, or was killed):
	// the agent reports its termination (Slave::executorTerminated).
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log.Info("command executor terminated", "taskID", t.id, "status", cmd.ProcessState.String())
	s.containerEndedLocked(t, proc, linked)
	reason = mesos.REASON_EXECUTOR_TERMINATED
	s.updateTaskLocked(t, mesos.TASK_FAILED, &reason, "Executor terminated", mesos.SOURCE_AGENT)
}

// commandEndedLocked sends a command task's terminal update from its
// executor.
func (s *Server) commandEndedLocked(t *task, proc *taskProcess, linked []volumeLink, ws syscall.WaitStatus) {
	proc.mu.Lock()
	proc.reaped = true // nothing more to signal; the container goes with the executor
	proc.mu.Unlock()
	s.containerEndedLocked(t, proc, linked)
	state, msg := commandOutcome(ws, t.killing)
	s.log.Info("task command exited", "taskID", t.id, "result", msg)
	s.updateTaskLocked(t, state, nil, msg, mesos.SOURCE_EXECUTOR)
}

// containerEndedLocked forgets a task's process and, as the agent does when
// it updates the container's resources for a terminal update, removes the
// volumes' symlinks from the run's sandbox (even when the master already
// forgot the task, e.g. its framework was removed).
func (s *Server) containerEndedLocked(t *task, proc *taskProcess, linked []volumeLink) {
	if t.proc == proc {
		t.proc = nil
		s.stopTimerLocked(t.killTimer)
		t.killTimer = nil
	}
	if err := unlinkPersistentVolumes(linked); err != nil {
		s.log.Error(err, "removing persistent volume links", "taskID", t.id)
	}
}

// commandOutcome maps the task's wait status to the executor's terminal
// state and message: "Command exited with status 1", "Command terminated
// with signal Killed" (WSTRINGIFY); TASK_KILLED whenever it was killed on
// request.
func commandOutcome(ws syscall.WaitStatus, killed bool) (mesos.TaskState, string) {
	var state mesos.TaskState
	var msg string
	switch {
	case ws.Signaled():
		state, msg = mesos.TASK_FAILED, "Command terminated with signal "+signalName(ws.Signal())
	case ws.ExitStatus() == 0:
		state, msg = mesos.TASK_FINISHED, "Command exited with status 0"
	default:
		state, msg = mesos.TASK_FAILED, fmt.Sprintf("Command exited with status %d", ws.ExitStatus())
	}
	if killed {
		state = mesos.TASK_KILLED
	}
	return state, msg
}

func signalName(sig syscall.Signal) string {
	name := sig.String()
	if name == "" {
		return fmt.Sprintf("%d", int(sig))
	}
	return strings.ToUpper(name[:1]) + name[1:]
}

func openSandboxOutput(sandbox string) (*os.File, *os.File, error) {
	stdout, err := os.OpenFile(filepath.Join(sandbox, "stdout"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	stderr, err := os.OpenFile(filepath.Join(sandbox, "stderr"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		stdout.Close()
		return nil, nil, err
	}
	return stdout, stderr, nil
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// lookPathIn resolves an executable name using PATH from env.
func lookPathIn(name string, env []string) (string, error) {
	pathVar := ""
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			pathVar = strings.TrimPrefix(kv, "PATH=")
		}
	}
	if pathVar == "" {
		pathVar = hostDefaultPath
	}
	for _, dir := range filepath.SplitList(pathVar) {
		candidate := filepath.Join(dir, name)
		if fi, err := os.Stat(candidate); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return candidate, nil
		}
	}
	return "", fmt.Errorf("executable %q not found in PATH", name)
}

// newContainerID is a container ID as the agent makes them.
func newContainerID() string { return uuid.NewString() }
