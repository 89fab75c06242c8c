package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// operator is the real operator binary as a process, started the way hack/soak starts it
// (its own process group, killed by the kernel if this program dies), but with the
// metrics endpoint on a loopback port and production (JSON, info) logging.
type operator struct {
	binary, kubeconfig, master, metricsAddr, logPath string
	extraArgs                                        []string

	cmd  *exec.Cmd
	done chan error
}

// buildOperator builds the operator from the repository root, as `make build` does.
func buildOperator(root, out string) error {
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -o %s . (the operator): %v\n%s", out, err, b)
	}
	return nil
}

func (o *operator) start() error {
	logFile, err := os.OpenFile(o.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := append([]string{
		"--mesos-master", o.master,
		"--metrics-bind-address", o.metricsAddr,
		"--health-probe-bind-address", "0",
	}, o.extraArgs...)
	cmd := exec.Command(o.binary, args...)
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

func (o *operator) pid() int { return o.cmd.Process.Pid }

// exited reports an operator that ended without being told to (nil while it runs).
func (o *operator) exited() error {
	if o.cmd == nil {
		return nil
	}
	select {
	case err := <-o.done:
		o.done <- err
		return fmt.Errorf("the operator (pid %d) exited on its own: %v (log: %s)", o.cmd.Process.Pid, err, o.logPath)
	default:
		return nil
	}
}

// stop asks the operator's process group to stop (SIGTERM) and SIGKILLs it after grace.
func (o *operator) stop(grace time.Duration) {
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
	o.cmd = nil
}
