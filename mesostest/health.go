package mesostest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
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

// healthParams are a HealthCheck's timing fields with Mesos' defaults.
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

// validateHealthCheck mirrors the checks of common/validation for
// HealthCheck: the type matches the filled-in field, durations are not
// negative, HTTP paths are absolute.
func validateHealthCheck(hc *mesos.HealthCheck) error {
	for name, v := range map[string]float64{
		"delay_seconds": hc.GetDelaySeconds(), "interval_seconds": hc.GetIntervalSeconds(),
		"timeout_seconds": hc.GetTimeoutSeconds(), "grace_period_seconds": hc.GetGracePeriodSeconds(),
	} {
		if v < 0 {
			return fmt.Errorf("Expecting '%s' to be non-negative", name)
		}
	}
	switch hc.Type {
	case mesos.HealthCheck_COMMAND:
		if hc.Command == nil {
			return errors.New("Expecting 'command' to be set for COMMAND health check")
		}
		if hc.Command.Value == nil {
			return errors.New("Command health check must contain 'shell command'")
		}
	case mesos.HealthCheck_HTTP:
		if hc.HTTP == nil {
			return errors.New("Expecting 'http' to be set for HTTP health check")
		}
		if s := hc.HTTP.GetScheme(); s != "" && s != "http" && s != "https" {
			return fmt.Errorf("Unsupported HTTP health check scheme: '%s'", s)
		}
		if p := hc.HTTP.GetPath(); p != "" && !strings.HasPrefix(p, "/") {
			return fmt.Errorf("The path '%s' of HTTP health check must start with '/'", p)
		}
	case mesos.HealthCheck_TCP:
		if hc.TCP == nil {
			return errors.New("Expecting 'tcp' to be set for TCP health check")
		}
	default:
		return errors.New("HealthCheck must specify 'type'")
	}
	return nil
}

// startHealthCheckLocked starts the task's health check once it runs.
// Process tasks are probed for real; simulated tasks report healthy at the
// first check (delay_seconds), unless SetTaskHealth says otherwise.
func (s *Server) startHealthCheckLocked(t *task) {
	hc := t.info.HealthCheck
	if hc == nil || t.health != nil {
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
	// The executor runs the checks with its own environment.
	env := t.executorEnv.list()
	sandbox := t.sandbox
	if !s.tracker.goTracked(func() { s.runHealthChecks(ctx, t, &check, p, env, sandbox) }) {
		cancel()
	}
}

func (s *Server) runHealthChecks(ctx context.Context, t *task, hc *mesos.HealthCheck, p healthParams, env []string, sandbox string) {
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
	initializing := true // no success yet: failures inside the grace period do not count
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
			err = probe(ctx, hc, p.timeout, env, sandbox)
		}
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		if t.removed || t.terminal() {
			s.mu.Unlock()
			return
		}
		if err == nil {
			initializing = false
			failures = 0
			if t.healthy == nil || !*t.healthy {
				s.healthUpdateLocked(t, true)
			}
		} else if !(initializing && time.Since(start) < p.grace) {
			failures++
			s.log.V(1).Info("health check failed", "taskID", t.id, "error", err.Error(), "consecutiveFailures", failures)
			s.healthUpdateLocked(t, false)
			if failures >= p.consecutiveFailures {
				// The executor kills a task whose health check keeps failing.
				s.log.Info("killing unhealthy task", "taskID", t.id, "consecutiveFailures", failures)
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

// probe runs one check against the task, as the Mesos health checker does
// from inside the task's network namespace (hence 127.0.0.1).
func probe(ctx context.Context, hc *mesos.HealthCheck, timeout time.Duration, env []string, sandbox string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch hc.Type {
	case mesos.HealthCheck_TCP:
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", hc.TCP.Port))
		if err != nil {
			return err
		}
		return conn.Close()
	case mesos.HealthCheck_HTTP:
		scheme := hc.HTTP.GetScheme()
		if scheme == "" {
			scheme = "http"
		}
		url := fmt.Sprintf("%s://127.0.0.1:%d%s", scheme, hc.HTTP.Port, hc.HTTP.GetPath())
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		// Like the checker's curl -k: certificates are not verified.
		client := &http.Client{Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // matches Mesos' checker
			DisableKeepAlives: true,
		}}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		// Mesos treats 2xx and 3xx as healthy.
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	case mesos.HealthCheck_COMMAND:
		c := hc.Command
		var cmd *exec.Cmd
		if c.GetShell() {
			cmd = exec.CommandContext(ctx, "/bin/sh", "-c", c.GetValue())
		} else {
			args := c.Arguments
			if len(args) == 0 {
				args = []string{c.GetValue()}
			}
			cmd = exec.CommandContext(ctx, c.GetValue(), args[1:]...)
		}
		cmd.Dir = sandbox
		cmd.Env = env
		for _, v := range c.GetEnvironment().GetVariables() {
			cmd.Env = append(cmd.Env, v.Name+"="+v.GetValue())
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		return cmd.Run()
	}
	return errors.New("unknown health check type")
}
