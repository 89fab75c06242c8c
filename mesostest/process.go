package mesostest

import (
	"bytes"
	"context"
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

// taskProcess is a task's command running as a local process group, the
// way the Mesos command executor runs it inside its container.
type taskProcess struct {
	// sandbox identifies the task's processes: every descendant inherits
	// MESOS_SANDBOX=<sandbox> (see killContainer).
	sandbox string
	mu      sync.Mutex
	pid     int // also the process group ID; 0 until started
	exited  bool
	// killedBeforeStart records a kill that arrived while fetching.
	killedBeforeStart bool
}

// sigterm sends SIGTERM to the task's process group, as the command
// executor sends it to the task's process tree. A process not started yet
// (still fetching) is killed as soon as it starts.
func (p *taskProcess) sigterm() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return
	}
	if p.pid == 0 {
		p.killedBeforeStart = true
		return
	}
	_ = syscall.Kill(-p.pid, syscall.SIGTERM)
}

// sigkill kills everything of the task at once: the escalation at the end
// of a grace period, a forced failure, or the server's Close.
func (p *taskProcess) sigkill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return
	}
	if p.pid == 0 {
		p.killedBeforeStart = true
		return
	}
	killContainer(p.pid, p.sandbox)
}

func (p *taskProcess) markExited() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exited = true
	// Reap whatever the task left behind, as the containerizer destroys the
	// container's cgroup when the executor exits.
	if p.pid > 0 {
		killContainer(p.pid, p.sandbox)
	}
}

// killContainer SIGKILLs the task's process group and, standing in for the
// container's cgroup, every process whose environment carries the task's
// MESOS_SANDBOX: descendants that left the group (setsid, e.g. containerd
// shims started by a K3s agent) are found that way too.
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

// processLaunch is everything the process goroutine needs, copied out of
// the locked state.
type processLaunch struct {
	sandbox string
	command *mesos.CommandInfo
	env     []string
	volumes []volumeLink // persistent volumes of the container
}

// startProcessLocked launches a task for real: sandbox, fetch, then the
// command in its own process group.
func (s *Server) startProcessLocked(t *task) {
	t.sandbox = filepath.Join(s.sandboxDir, "slaves", t.agent.id, "frameworks", t.fw.id,
		"executors", t.executorID, "runs", uuid.NewString())
	launch := processLaunch{
		sandbox: t.sandbox,
		command: proto.Clone(t.info.Command).(*mesos.CommandInfo),
		volumes: s.containerVolumesLocked(t.resources),
	}
	launch.env = s.taskEnvironmentLocked(t)
	t.proc = &taskProcess{sandbox: t.sandbox}
	proc := t.proc
	s.processes[proc] = struct{}{}
	run := func() {
		defer func() {
			s.mu.Lock()
			delete(s.processes, proc)
			s.mu.Unlock()
		}()
		s.runProcess(t, proc, launch)
	}
	if !s.tracker.goTracked(run) {
		delete(s.processes, proc)
		t.proc = nil
	}
}

// taskEnvironmentLocked builds the command's environment: the agent's own
// environment (executors inherit it unless --executor_environment_variables
// is set), the MESOS_* variables, then the task's variables with secret
// values resolved.
func (s *Server) taskEnvironmentLocked(t *task) []string {
	env := os.Environ()
	env = append(env,
		"MESOS_SANDBOX="+t.sandbox,
		"MESOS_DIRECTORY="+t.sandbox,
		"MESOS_TASK_ID="+t.id,
		"MESOS_FRAMEWORK_ID="+t.fw.id,
		"MESOS_AGENT_ID="+t.agent.id,
		"MESOS_SLAVE_ID="+t.agent.id,
		"MESOS_EXECUTOR_ID="+t.executorID,
		"MESOS_AGENT_HOSTNAME="+t.agent.hostname,
	)
	if e := t.info.Command.GetEnvironment(); e != nil {
		for _, v := range e.Variables {
			env = append(env, v.Name+"="+environmentValue(v))
		}
	}
	return env
}

// environmentValue resolves a variable; SECRET values come from
// Secret.value.data (the emulator has no secret store for references).
func environmentValue(v mesos.Environment_Variable) string {
	if v.GetType() == mesos.Environment_Variable_SECRET {
		if sv := v.GetSecret().GetValue(); sv != nil {
			return string(sv.Data)
		}
		return ""
	}
	return v.GetValue()
}

func hasSecretReference(c *mesos.CommandInfo) bool {
	for _, v := range c.GetEnvironment().GetVariables() {
		if v.GetType() == mesos.Environment_Variable_SECRET && v.GetSecret().GetValue() == nil {
			return true
		}
	}
	return false
}

func (s *Server) runProcess(t *task, proc *taskProcess, l processLaunch) {
	fail := func(reason mesos.TaskStatus_Reason, msg string) {
		proc.markExited()
		s.mu.Lock()
		defer s.mu.Unlock()
		if t.killing {
			s.updateTaskLocked(t, mesos.TASK_KILLED, nil, "Task killed before it started", mesos.SOURCE_EXECUTOR)
			return
		}
		s.updateTaskLocked(t, mesos.TASK_FAILED, &reason, msg, mesos.SOURCE_AGENT)
	}
	if err := os.MkdirAll(l.sandbox, 0o755); err != nil {
		fail(mesos.REASON_CONTAINER_LAUNCH_FAILED, "Failed to create sandbox: "+err.Error())
		return
	}
	linked, err := s.linkPersistentVolumes(l.sandbox, l.volumes)
	if err != nil {
		fail(mesos.REASON_CONTAINER_LAUNCH_FAILED, "Failed to prepare the container: "+err.Error())
		return
	}
	if hasSecretReference(l.command) {
		fail(mesos.REASON_CONTAINER_LAUNCH_FAILED, "Failed to resolve secrets: no secret resolver for secret references")
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	err = fetchURIs(ctx, l.sandbox, l.command.URIs)
	cancel()
	if err != nil {
		fail(mesos.REASON_CONTAINER_LAUNCH_FAILED, "Failed to fetch all URIs for container: "+err.Error())
		return
	}

	cmd, err := buildCommand(l)
	if err != nil {
		fail(mesos.REASON_CONTAINER_LAUNCH_FAILED, "Failed to launch container: "+err.Error())
		return
	}
	s.mu.Lock()
	if t.removed || t.terminal() || s.closed {
		s.mu.Unlock()
		proc.markExited()
		return
	}
	if t.killing {
		s.updateTaskLocked(t, mesos.TASK_KILLED, nil, "Task killed before it started", mesos.SOURCE_EXECUTOR)
		s.mu.Unlock()
		proc.markExited()
		return
	}
	// The command executor reports TASK_STARTING, then forks the command.
	s.updateTaskLocked(t, mesos.TASK_STARTING, nil, "", mesos.SOURCE_EXECUTOR)
	proc.mu.Lock()
	startErr := cmd.Start()
	if startErr == nil {
		proc.pid = cmd.Process.Pid
	}
	killedEarly := proc.killedBeforeStart
	proc.mu.Unlock()
	closeFiles(cmd)
	if startErr != nil {
		reason := mesos.REASON_COMMAND_EXECUTOR_FAILED
		s.updateTaskLocked(t, mesos.TASK_FAILED, &reason, "Failed to launch command: "+startErr.Error(), mesos.SOURCE_EXECUTOR)
		s.mu.Unlock()
		proc.markExited()
		return
	}
	s.log.Info("task process started", "taskID", t.id, "pid", cmd.Process.Pid, "sandbox", l.sandbox)
	s.updateTaskLocked(t, mesos.TASK_RUNNING, nil, "", mesos.SOURCE_EXECUTOR)
	s.startHealthCheckLocked(t)
	s.mu.Unlock()
	if killedEarly {
		proc.sigkill()
	}

	waitErr := cmd.Wait()
	proc.markExited()
	state, msg := exitOutcome(cmd.ProcessState, waitErr)

	s.mu.Lock()
	defer s.mu.Unlock()
	if t.proc == proc {
		t.proc = nil
		s.stopTimerLocked(t.killTimer)
		t.killTimer = nil
	}
	s.log.Info("task process exited", "taskID", t.id, "result", msg)
	// The executor sends the terminal update and the agent updates the
	// container's resources before it forwards it: the volumes' symlinks
	// leave this run's sandbox (even when the master already forgot the
	// task, e.g. its framework was removed).
	if err := unlinkPersistentVolumes(linked); err != nil {
		s.log.Error(err, "removing persistent volume links", "taskID", t.id)
	}
	if t.removed || t.terminal() {
		return
	}
	if t.killing {
		state = mesos.TASK_KILLED
	}
	s.updateTaskLocked(t, state, nil, msg, mesos.SOURCE_EXECUTOR)
}

// exitOutcome maps a wait status to the command executor's terminal state
// and message ("Command exited with status 1", "Command terminated with
// signal Killed").
func exitOutcome(ps *os.ProcessState, waitErr error) (mesos.TaskState, string) {
	if ps == nil {
		return mesos.TASK_FAILED, "Command failed: " + fmt.Sprint(waitErr)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return mesos.TASK_FAILED, "Command terminated with signal " + signalName(ws.Signal())
	}
	code := ps.ExitCode()
	msg := fmt.Sprintf("Command exited with status %d", code)
	if code == 0 {
		return mesos.TASK_FINISHED, msg
	}
	return mesos.TASK_FAILED, msg
}

func signalName(sig syscall.Signal) string {
	name := sig.String()
	if name == "" {
		return fmt.Sprintf("%d", int(sig))
	}
	return strings.ToUpper(name[:1]) + name[1:]
}

// buildCommand prepares the command as the command executor runs it:
// shell commands through /bin/sh -c, others exec'd with their arguments
// (arguments[0] being argv[0]); the working directory is the sandbox and
// stdout/stderr go to files there.
func buildCommand(l processLaunch) (*exec.Cmd, error) {
	c := l.command
	var cmd *exec.Cmd
	if c.GetShell() {
		cmd = exec.Command("/bin/sh", "-c", c.GetValue())
	} else {
		path := c.GetValue()
		if strings.Contains(path, "/") {
			if !filepath.IsAbs(path) {
				path = filepath.Join(l.sandbox, path)
			}
		} else if found, err := lookPathIn(path, l.env); err == nil {
			path = found
		} else {
			return nil, err
		}
		args := c.Arguments
		if len(args) == 0 {
			args = []string{c.GetValue()}
		}
		cmd = &exec.Cmd{Path: path, Args: append([]string(nil), args...)}
	}
	cmd.Dir = l.sandbox
	cmd.Env = l.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := os.OpenFile(filepath.Join(l.sandbox, "stdout"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	stderr, err := os.OpenFile(filepath.Join(l.sandbox, "stderr"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		stdout.Close()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return cmd, nil
}

// closeFiles releases the parent's copies of the child's output files.
func closeFiles(cmd *exec.Cmd) {
	for _, w := range []any{cmd.Stdout, cmd.Stderr} {
		if f, ok := w.(*os.File); ok {
			f.Close()
		}
	}
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
		pathVar = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	for _, dir := range filepath.SplitList(pathVar) {
		candidate := filepath.Join(dir, name)
		if fi, err := os.Stat(candidate); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return candidate, nil
		}
	}
	return "", fmt.Errorf("executable %q not found in PATH", name)
}
