package mesostest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// healthChecker is a running health check of one task: a goroutine
// probing a process, or a timer reporting a simulated task's result.
type healthChecker struct {
	server *Server
	cancel context.CancelFunc
	timer  *time.Timer
}

// stop ends the checks; called with server.mu held.
func (h *healthChecker) stop() {
	if h.cancel != nil {
		h.cancel()
	}
	if h.timer != nil {
		h.server.stopTimerLocked(h.timer)
	}
}

// healthParams are a HealthCheck's timing fields with Mesos' defaults
// (mesos.proto: delay 15 s, interval 10 s, timeout 20 s, grace 10 s, 3
// consecutive failures).
type healthParams struct {
	delay, interval, timeout, grace time.Duration
	consecutiveFailures             uint32
}

func paramsOf(hc *mesos.HealthCheck) healthParams {
	sec := func(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
	return healthParams{
		delay:               sec(hc.GetDelaySeconds()),
		interval:            sec(hc.GetIntervalSeconds()),
		timeout:             sec(hc.GetTimeoutSeconds()),
		grace:               sec(hc.GetGracePeriodSeconds()),
		consecutiveFailures: hc.GetConsecutiveFailures(),
	}
}

// validateHealthCheck mirrors common::validation::validateHealthCheck
// (src/common/validation.cpp), in its order.
func validateHealthCheck(hc *mesos.HealthCheck) error {
	switch hc.Type {
	case mesos.HealthCheck_COMMAND:
		if hc.Command == nil {
			return errors.New("Expecting 'command' to be set for COMMAND health check")
		}
		if hc.Command.Value == nil {
			kind := "'executable path'"
			if hc.Command.GetShell() {
				kind = "'shell command'"
			}
			return errors.New("Command health check must contain " + kind)
		}
		if err := validateCommandInfo(hc.Command); err != nil {
			return fmt.Errorf("Health check's `CommandInfo` is invalid: %v", err)
		}
	case mesos.HealthCheck_HTTP:
		if hc.HTTP == nil {
			return errors.New("Expecting 'http' to be set for HTTP health check")
		}
		if s := hc.HTTP.Scheme; s != nil && *s != "http" && *s != "https" {
			return fmt.Errorf("Unsupported HTTP health check scheme: '%s'", *s)
		}
		if p := hc.HTTP.Path; p != nil && !strings.HasPrefix(*p, "/") {
			return fmt.Errorf("The path '%s' of HTTP health check must start with '/'", *p)
		}
	case mesos.HealthCheck_TCP:
		if hc.TCP == nil {
			return errors.New("Expecting 'tcp' to be set for TCP health check")
		}
	default:
		// mesos-go cannot tell an unset type from UNKNOWN; the master
		// derived the type of untyped checks already.
		return errors.New("HealthCheck must specify 'type'")
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"delay_seconds", hc.DelaySeconds}, {"grace_period_seconds", hc.GracePeriodSeconds},
		{"interval_seconds", hc.IntervalSeconds}, {"timeout_seconds", hc.TimeoutSeconds}} {
		if f.v != nil && *f.v < 0 {
			return fmt.Errorf("Expecting '%s' to be non-negative", f.name)
		}
	}
	return nil
}

// healthCheckRuntime is where a task's checks run: the executor's
// environment for curl and TCP checks (the checker launches them as the
// executor's children), and for COMMAND checks the executor's environment
// and working directory (command executor) or the task's (default
// executor: a nested check container inherits the task's).
type healthCheckRuntime struct {
	executorEnv []string
	commandEnv  []string
	commandDir  string
	host        *host // the agent's own network namespace: checks run there
}

// startHealthCheckLocked starts the task's health check once it runs.
// Process tasks are probed for real; simulated tasks report healthy at the
// first check (delay_seconds), unless SetTaskHealth says otherwise.
func (s *Server) startHealthCheckLocked(t *task) {
	hc := t.info.HealthCheck
	if hc == nil || t.health != nil || t.killing {
		return
	}
	p := paramsOf(hc)
	if t.proc == nil {
		t.health = &healthChecker{server: s}
		t.health.timer = s.afterLocked(p.delay, func() {
			healthy := true
			if t.healthOverride != nil {
				healthy = *t.healthOverride
			}
			s.healthUpdateLocked(t, healthy)
		})
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.health = &healthChecker{server: s, cancel: cancel}
	check := *hc
	rt := healthCheckRuntime{executorEnv: t.executorEnv.list(), commandEnv: t.executorEnv.list(), commandDir: t.sandbox, host: t.agent.host}
	if t.group != nil {
		rt.commandEnv = t.commandEnv.list()
	}
	if !s.tracker.goTracked(func() { s.runHealthChecks(ctx, t, &check, p, rt) }) {
		cancel()
	}
}

// runHealthChecks is the health checker (src/checks/health_checker.cpp)
// driving the checker process (src/checks/checker_process.cpp): the first
// check after delay_seconds, then one every interval_seconds after the
// previous one ended; failures while no check succeeded yet and within
// grace_period_seconds of the start are ignored; every other failure is
// an unhealthy update, a success after failures (or the first one) a
// healthy update; consecutive_failures failures make the executor kill
// the task.
func (s *Server) runHealthChecks(ctx context.Context, t *task, hc *mesos.HealthCheck, p healthParams, rt healthCheckRuntime) {
	start := time.Now()
	sleep := func(d time.Duration) bool {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
			return true
		case <-ctx.Done():
			return false
		case <-s.stop:
			return false
		}
	}
	if !sleep(p.delay) {
		return
	}
	initializing := true
	var failures uint32
	for {
		s.mu.Lock()
		override := t.healthOverride
		s.mu.Unlock()
		var err error
		if override != nil {
			if !*override {
				err = errors.New("marked unhealthy by SetTaskHealth")
			}
		} else {
			err = probe(ctx, hc, p.timeout, rt)
		}
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		if t.removed || t.terminal() || t.killing {
			s.mu.Unlock()
			return
		}
		if err == nil {
			if initializing || failures > 0 {
				s.healthUpdateLocked(t, true)
			}
			initializing = false
			failures = 0
		} else if initializing && p.grace > 0 && time.Since(start) <= p.grace {
			s.log.Info("ignoring health check failure: still in grace period", "taskID", t.id, "error", err.Error())
		} else {
			failures++
			s.log.Info("health check failed", "taskID", t.id, "error", err.Error(), "consecutiveFailures", failures)
			s.healthUpdateLocked(t, false)
			if failures >= p.consecutiveFailures {
				// The executor kills the task (TaskHealthStatus.kill_task);
				// its terminal update says healthy: false.
				s.log.Info("killing unhealthy task", "taskID", t.id, "consecutiveFailures", failures)
				t.killedByHealth = true
				if t.group != nil {
					t.group.unhealthy = true
				}
				s.killTaskLocked(t, killRequest{})
				s.mu.Unlock()
				return
			}
		}
		s.mu.Unlock()
		if !sleep(p.interval) {
			return
		}
	}
}

// probe runs one check against the task, from inside the task's network
// namespace (the host's, hence 127.0.0.1). A timeout of zero is infinite.
func probe(ctx context.Context, hc *mesos.HealthCheck, timeout time.Duration, rt healthCheckRuntime) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	switch hc.Type {
	case mesos.HealthCheck_TCP:
		// mesos-tcp-connect --ip=127.0.0.1 --port=<port>.
		conn, err := rt.host.dial(ctx, fmt.Sprintf("127.0.0.1:%d", hc.TCP.Port))
		if err != nil {
			if timedOut(ctx) {
				return fmt.Errorf("mesos-tcp-connect timed out after %s", stoutDuration(timeout))
			}
			return errors.New("TCP connection failed")
		}
		return conn.Close()
	case mesos.HealthCheck_HTTP:
		scheme := hc.HTTP.GetScheme()
		if scheme == "" {
			scheme = "http"
		}
		url := fmt.Sprintf("%s://127.0.0.1:%d%s", scheme, hc.HTTP.Port, hc.HTTP.GetPath())
		code, err := curlStatus(ctx, url, rt.executorEnv, rt.host, timeout)
		if err != nil {
			return err
		}
		if code < 200 || code >= 400 {
			return fmt.Errorf("Unexpected HTTP response code: %d %s", code, http.StatusText(code))
		}
		return nil
	case mesos.HealthCheck_COMMAND:
		return commandCheck(ctx, hc.Command, rt, timeout)
	}
	return errors.New("unknown health check type")
}

func timedOut(ctx context.Context) bool { return errors.Is(ctx.Err(), context.DeadlineExceeded) }

// curlStatus runs the HTTP check's curl as checker_process.cpp does:
// curl -s -S -L -k -w '%{http_code}' -o /dev/null -g <url>, found through
// the executor's PATH. Without curl the check fails the way libprocess'
// subprocess does when execvpe fails (the child exits with errno).
func curlStatus(ctx context.Context, url string, env []string, h *host, timeout time.Duration) (int, error) {
	path, err := lookPathIn("curl", env)
	if err != nil {
		return 0, fmt.Errorf("curl exited with status %d: EXIT with status %d: Failed to os::execvpe on path 'curl': %d",
			int(syscall.ENOENT), int(syscall.ENOENT), int(syscall.ENOENT))
	}
	cmd := exec.CommandContext(ctx, path, "-s", "-S", "-L", "-k", "-w", "%{http_code}", "-o", "/dev/null", "-g", url)
	cmd.Args[0] = "curl"
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err = h.start(cmd); err == nil {
		err = cmd.Wait()
	}
	if timedOut(ctx) {
		return 0, fmt.Errorf("curl timed out after %s", stoutDuration(timeout))
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 0, fmt.Errorf("curl %s: %s", waitString(ee.ProcessState.Sys().(syscall.WaitStatus)), stderr.String())
		}
		return 0, fmt.Errorf("Failed to create the curl subprocess: %v", err)
	}
	code, err := strconv.Atoi(strings.TrimSpace(stdout.String()))
	if err != nil {
		return 0, fmt.Errorf("Unexpected output from curl: %s", stdout.String())
	}
	return code, nil
}

// waitString is stout's WSTRINGIFY.
func waitString(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "terminated with signal " + signalName(ws.Signal())
	}
	return fmt.Sprintf("exited with status %d", ws.ExitStatus())
}

// commandCheck runs a COMMAND check: the shell command (or executable),
// with the runtime's environment plus the check's own variables (their
// value(): a SECRET one is empty, the checker resolves nothing).
func commandCheck(ctx context.Context, c *mesos.CommandInfo, rt healthCheckRuntime, timeout time.Duration) error {
	env := environ{}
	for _, kv := range rt.commandEnv {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env.set(k, v)
		}
	}
	for _, v := range c.GetEnvironment().GetVariables() {
		env.set(v.Name, v.GetValue())
	}
	list := env.list()
	var cmd *exec.Cmd
	if c.GetShell() {
		cmd = exec.CommandContext(ctx, "/bin/sh", "-c", c.GetValue())
		cmd.Args[0] = "sh"
	} else {
		cmd = exec.CommandContext(ctx, resolveExecutable(c.GetValue(), list, rt.commandDir))
		cmd.Args = append([]string(nil), c.Arguments...)
		if len(cmd.Args) == 0 {
			cmd.Args = []string{c.GetValue()}
		}
	}
	cmd.Dir = rt.commandDir
	cmd.Env = list
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err := rt.host.start(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	if timedOut(ctx) {
		return fmt.Errorf("Command timed out after %s", stoutDuration(timeout))
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return errors.New("Command " + waitString(ee.ProcessState.Sys().(syscall.WaitStatus)))
	}
	if err != nil {
		return fmt.Errorf("Failed to create subprocess: %v", err)
	}
	return nil
}
