// Package operatorproc runs the real operator binary as a process, the way the
// playground, the soak and the scale benchmark run it: KUBECONFIG in its environment,
// its log appended to a file, its own process group, killed by the kernel if the
// program that started it dies first.
package operatorproc

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Build builds the operator from the repository root into out, as `make build` does.
func Build(root, out string) error {
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -o %s . (the operator): %v\n%s", out, err, b)
	}
	return nil
}

// Process is one run of the operator binary.
type Process struct {
	cmd  *exec.Cmd
	done chan error
}

// Start runs binary with args against kubeconfig; its output is appended to logPath
// (a restarted operator's log follows its predecessor's).
func Start(binary, kubeconfig, logPath string, args ...string) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting the operator %s: %w", binary, err)
	}
	p := &Process{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logFile.Close() }()
	return p, nil
}

// Pid is the operator's process ID (and its process group's).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports an operator that ended without being told to; nil while it runs.
func (p *Process) Exited() error {
	select {
	case err := <-p.done:
		p.done <- err
		return fmt.Errorf("the operator (pid %d) exited on its own: %v", p.Pid(), err)
	default:
		return nil
	}
}

// Kill SIGKILLs the operator's process group and waits for it.
func (p *Process) Kill() {
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	<-p.done
	p.done <- nil
}

// Stop asks the operator's process group to stop (SIGTERM: it leaves the frameworks to
// Mesos' failover timeout) and SIGKILLs it after grace.
func (p *Process) Stop(grace time.Duration) {
	_ = syscall.Kill(-p.Pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
		<-p.done
	}
	p.done <- nil
}
