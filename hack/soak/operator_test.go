package soak

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mesosk3s/mesosk3s/hack/testenv"
)

// operator is the real operator binary, run the way hack/dev's playground runs it
// (startOperator there): --mesos-master, metrics and probes off, KUBECONFIG in the
// environment, its own process group, killed by the kernel if the test dies.
type operator struct {
	binary, kubeconfig, masters, logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan error
	starts int
}

// buildOperator builds the operator from the repository root, as `make build` does.
func buildOperator(out string) error {
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = testenv.RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -o %s . (the operator): %v\n%s", out, err, b)
	}
	return nil
}

func (o *operator) start() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cmd != nil {
		return fmt.Errorf("operator already running (pid %d)", o.cmd.Process.Pid)
	}
	logFile, err := os.OpenFile(o.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	o.starts++
	fmt.Fprintf(logFile, "=== soak: operator start #%d at %s ===\n", o.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(o.binary,
		"--mesos-master", o.masters,
		"--metrics-bind-address", "0",
		"--health-probe-bind-address", "0",
		"--log-development",
	)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+o.kubeconfig)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting the operator %s: %w", o.binary, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); logFile.Close() }()
	o.cmd, o.done = cmd, done
	return nil
}

func (o *operator) running() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cmd == nil {
		return false
	}
	select {
	case err := <-o.done:
		// It died on its own: note it, so that the soak reports it.
		o.done <- err
		return false
	default:
		return true
	}
}

// exited reports an operator that ended without being told to (nil while it runs).
func (o *operator) exited() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cmd == nil {
		return nil
	}
	select {
	case err := <-o.done:
		o.done <- err
		return fmt.Errorf("the operator (pid %d) exited on its own: %v", o.cmd.Process.Pid, err)
	default:
		return nil
	}
}

// kill SIGKILLs the operator's process group and waits for it.
func (o *operator) kill() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cmd == nil {
		return
	}
	_ = syscall.Kill(-o.cmd.Process.Pid, syscall.SIGKILL)
	<-o.done
	o.cmd, o.done = nil, nil
}

// stop asks the operator to stop (SIGTERM) and SIGKILLs it after grace.
func (o *operator) stop(grace time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cmd == nil {
		return
	}
	_ = syscall.Kill(-o.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-o.done:
	case <-time.After(grace):
		_ = syscall.Kill(-o.cmd.Process.Pid, syscall.SIGKILL)
		<-o.done
	}
	o.cmd, o.done = nil, nil
}

// tail is the last n lines of a log file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("--- last %d lines of %s ---\n%s", len(lines), filepath.Base(path), strings.Join(lines, "\n"))
}
