package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// operatorProcess is the real operator binary, run as users run it, against the
// playground's API server and Mesos emulator.
type operatorProcess struct {
	cmd  *exec.Cmd
	done chan error
}

func startOperator(binary, kubeconfig, mesosURL, logPath string) (*operatorProcess, error) {
	// Appended to: a restarted operator's log follows its predecessor's.
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary,
		"--mesos-master", mesosURL,
		"--metrics-bind-address", "0",
		"--health-probe-bind-address", "0",
		"--log-development",
	)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, and killed by the kernel if this program dies first, so
	// the playground never leaves an operator behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting the operator %s: %w", binary, err)
	}
	p := &operatorProcess{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logFile.Close() }()
	return p, nil
}

// stop asks the operator to stop (it leaves the frameworks to Mesos's failover timeout)
// and kills it after a grace.
func (p *operatorProcess) stop(grace time.Duration) {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}
