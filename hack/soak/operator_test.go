package soak

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mesosk3s/mesosk3s/hack/operatorproc"
	"github.com/mesosk3s/mesosk3s/hack/testenv"
)

// operator is the real operator binary, run as hack/dev's playground runs it
// (hack/operatorproc): --mesos-master, metrics and probes off, KUBECONFIG in the
// environment; stopped, killed and started again by the soak.
type operator struct {
	binary, kubeconfig, masters, logPath string

	mu     sync.Mutex
	proc   *operatorproc.Process
	starts int
}

// buildOperator builds the operator from the repository root, as `make build` does.
func buildOperator(out string) error { return operatorproc.Build(testenv.RepoRoot(), out) }

func (o *operator) start() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.proc != nil {
		return fmt.Errorf("operator already running (pid %d)", o.proc.Pid())
	}
	o.starts++
	marker := fmt.Sprintf("=== soak: operator start #%d at %s ===\n", o.starts, time.Now().Format(time.RFC3339Nano))
	if err := appendFile(o.logPath, marker); err != nil {
		return err
	}
	p, err := operatorproc.Start(o.binary, o.kubeconfig, o.logPath,
		"--mesos-master", o.masters,
		"--metrics-bind-address", "0",
		"--health-probe-bind-address", "0",
		"--log-development",
	)
	if err != nil {
		return err
	}
	o.proc = p
	return nil
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	return errors.Join(err, f.Close())
}

func (o *operator) running() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.proc != nil && o.proc.Exited() == nil
}

// exited reports an operator that ended without being told to (nil while it runs).
func (o *operator) exited() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.proc == nil {
		return nil
	}
	return o.proc.Exited()
}

// kill SIGKILLs the operator's process group and waits for it.
func (o *operator) kill() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.proc != nil {
		o.proc.Kill()
		o.proc = nil
	}
}

// stop asks the operator to stop (SIGTERM) and SIGKILLs it after grace.
func (o *operator) stop(grace time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.proc != nil {
		o.proc.Stop(grace)
		o.proc = nil
	}
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
