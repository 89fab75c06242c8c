package main

import (
	"fmt"
	"time"

	"github.com/mesosk3s/mesosk3s/hack/operatorproc"
)

// operator is the real operator binary as a process (hack/operatorproc), with the
// metrics endpoint on a loopback port and production (JSON, info) logging.
type operator struct {
	binary, kubeconfig, master, metricsAddr, logPath string
	extraArgs                                        []string

	proc *operatorproc.Process
}

// buildOperator builds the operator from the repository root, as `make build` does.
func buildOperator(root, out string) error { return operatorproc.Build(root, out) }

func (o *operator) start() error {
	args := append([]string{
		"--mesos-master", o.master,
		"--metrics-bind-address", o.metricsAddr,
		"--health-probe-bind-address", "0",
	}, o.extraArgs...)
	p, err := operatorproc.Start(o.binary, o.kubeconfig, o.logPath, args...)
	if err != nil {
		return err
	}
	o.proc = p
	return nil
}

func (o *operator) pid() int { return o.proc.Pid() }

// exited reports an operator that ended without being told to (nil while it runs).
func (o *operator) exited() error {
	if o.proc == nil {
		return nil
	}
	if err := o.proc.Exited(); err != nil {
		return fmt.Errorf("%w (log: %s)", err, o.logPath)
	}
	return nil
}

// stop asks the operator's process group to stop (SIGTERM) and SIGKILLs it after grace.
func (o *operator) stop(grace time.Duration) {
	if o.proc == nil {
		return
	}
	o.proc.Stop(grace)
	o.proc = nil
}
