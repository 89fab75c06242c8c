package mesostest

import (
	"bytes"
	"errors"
	"fmt"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// The checks below follow src/common/validation.cpp and
// src/master/validation.cpp (Mesos master branch, post-1.12), with the
// same messages: a launch fails them with TASK_ERROR and the message as is.

// nameMax is NAME_MAX, the longest ID Mesos accepts.
const nameMax = 255

// validateID mirrors common::validation::validateID: not empty, at most
// NAME_MAX bytes, not "." or "..", no control characters and no path
// separators. Spaces and other printable characters are fine.
func validateID(id string) error {
	if id == "" {
		return errors.New("ID must not be empty")
	}
	if len(id) > nameMax {
		return fmt.Errorf("ID must not be greater than %d characters", nameMax)
	}
	if id == "." || id == ".." {
		return fmt.Errorf("'%s' is disallowed", id)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c == 0x7f || c == '/' || c == '\\' {
			return fmt.Errorf("'%s' contains invalid characters", id)
		}
	}
	return nil
}

// validateSecret mirrors common::validation::validateSecret.
func validateSecret(sec *mesos.Secret) error {
	switch sec.GetType() {
	case mesos.Secret_REFERENCE:
		if sec.Reference == nil {
			return errors.New("Secret of type REFERENCE must have the 'reference' field set")
		}
		if sec.Value != nil {
			return fmt.Errorf("Secret '%s' of type REFERENCE must not have the 'value' field set", sec.Reference.Name)
		}
	case mesos.Secret_VALUE:
		if sec.Value == nil {
			return errors.New("Secret of type VALUE must have the 'value' field set")
		}
		if sec.Reference != nil {
			return errors.New("Secret of type VALUE must not have the 'reference' field set")
		}
	}
	return nil
}

// validateEnvironment mirrors common::validation::validateEnvironment.
func validateEnvironment(env *mesos.Environment) error {
	for _, v := range env.GetVariables() {
		switch v.GetType() {
		case mesos.Environment_Variable_SECRET:
			if v.Secret == nil {
				return fmt.Errorf("Environment variable '%s' of type 'SECRET' must have a secret set", v.Name)
			}
			if v.Value != nil {
				return fmt.Errorf("Environment variable '%s' of type 'SECRET' must not have a value set", v.Name)
			}
			if err := validateSecret(v.Secret); err != nil {
				return fmt.Errorf("Environment variable '%s' specifies an invalid secret: %v", v.Name, err)
			}
			if bytes.IndexByte(v.Secret.GetValue().GetData(), 0) >= 0 {
				return fmt.Errorf("Environment variable '%s' specifies a secret containing null bytes, which is not allowed in the environment", v.Name)
			}
		case mesos.Environment_Variable_VALUE:
			if v.Value == nil {
				return fmt.Errorf("Environment variable '%s' of type 'VALUE' must have a value set", v.Name)
			}
			if v.Secret != nil {
				return fmt.Errorf("Environment variable '%s' of type 'VALUE' must not have a secret set", v.Name)
			}
		default:
			return errors.New("Environment variable of type 'UNKNOWN' is not allowed")
		}
	}
	return nil
}

// validateCommandInfo mirrors common::validation::validateCommandInfo: only
// the environment is checked. In particular 'value' is optional: a Docker
// task without one runs its image's entrypoint; a command task without
// one is refused only by the command executor, on the agent.
func validateCommandInfo(c *mesos.CommandInfo) error {
	return validateEnvironment(c.GetEnvironment())
}

// validateVolume mirrors common::validation::validateVolume.
func validateVolume(v *mesos.Volume) error {
	count := 0
	if v.HostPath != nil {
		count++
	}
	if v.Image != nil {
		count++
	}
	if v.Source != nil {
		count++
	}
	if count != 1 {
		return errors.New("Only one of them should be set: 'host_path', 'image' and 'source'")
	}
	if src := v.Source; src != nil {
		switch src.GetType() {
		case mesos.Volume_Source_DOCKER_VOLUME:
			if src.DockerVolume == nil {
				return errors.New("'source.docker_volume' is not set for DOCKER_VOLUME volume")
			}
		case mesos.Volume_Source_HOST_PATH:
			if src.HostPath == nil {
				return errors.New("'source.host_path' is not set for HOST_PATH volume")
			}
		case mesos.Volume_Source_SANDBOX_PATH:
			if src.SandboxPath == nil {
				return errors.New("'source.sandbox_path' is not set for SANDBOX_PATH volume")
			}
		case mesos.Volume_Source_SECRET:
			if src.Secret == nil {
				return errors.New("'source.secret' is not set for SECRET volume")
			}
		default:
			return errors.New("'source.type' is unknown")
		}
	}
	return nil
}

// validateContainerInfo mirrors common::validation::validateContainerInfo.
func validateContainerInfo(c *mesos.ContainerInfo) error {
	for i := range c.Volumes {
		if err := validateVolume(&c.Volumes[i]); err != nil {
			return fmt.Errorf("Invalid volume: %v", err)
		}
	}
	if c.GetType() == mesos.ContainerInfo_DOCKER {
		if c.Docker == nil {
			return errors.New("DockerInfo 'docker' is not set for DOCKER typed ContainerInfo")
		}
		for _, p := range c.Docker.Parameters {
			if p.Key == "name" {
				return errors.New("Parameter in DockerInfo must not be 'name'")
			}
		}
	}
	return nil
}

// adaptHealthCheckType is the master's backwards compatibility for health
// checks without a type (Master::accept): COMMAND when only 'command' is
// set, HTTP when only 'http' is.
func adaptHealthCheckType(hc *mesos.HealthCheck) {
	if hc == nil || hc.Type != mesos.HealthCheck_UNKNOWN {
		return
	}
	switch {
	case hc.Command != nil && hc.HTTP == nil:
		hc.Type = mesos.HealthCheck_COMMAND
	case hc.HTTP != nil && hc.Command == nil:
		hc.Type = mesos.HealthCheck_HTTP
	}
}

// validateTaskFields is validation::task::internal::validateTask: the
// checks common to LAUNCH and LAUNCH_GROUP tasks, in the master's order
// (resources are checked against the offer by the callers).
func (s *Server) validateTaskFields(fw *framework, a *agent, info *mesos.TaskInfo) error {
	if err := validateID(info.TaskID.Value); err != nil {
		return err
	}
	if fw.tasks[info.TaskID.Value] != nil {
		return fmt.Errorf("Task has duplicate ID: %s", info.TaskID.Value)
	}
	if fw.unreachable[info.TaskID.Value] != nil {
		return fmt.Errorf("Task reuses the ID of an unreachable task: %s", info.TaskID.Value)
	}
	if info.AgentID.Value != a.id {
		return fmt.Errorf("Task uses invalid agent %s while agent %s is expected", info.AgentID.Value, a.id)
	}
	if kp := info.KillPolicy; kp != nil && kp.GracePeriod != nil && kp.GracePeriod.Nanoseconds < 0 {
		return errors.New("Task's 'kill_policy.grace_period' must be non-negative")
	}
	if mct := info.MaxCompletionTime; mct != nil && mct.Nanoseconds < 0 {
		return errors.New("Task's `max_completion_time` must be non-negative")
	}
	if hc := info.HealthCheck; hc != nil {
		if err := validateHealthCheck(hc); err != nil {
			return fmt.Errorf("Task uses invalid health check: %v", err)
		}
	}
	if len(info.Resources) == 0 {
		return errors.New("Task uses no resources")
	}
	if err := validatePersistenceIDs(info.Resources); err != nil {
		return fmt.Errorf("Task uses duplicate persistence ID: %v", err)
	}
	if info.Command != nil {
		if err := validateCommandInfo(info.Command); err != nil {
			return fmt.Errorf("Task's `CommandInfo` is invalid: %v", err)
		}
	}
	if info.Container != nil {
		if err := validateContainerInfo(info.Container); err != nil {
			return fmt.Errorf("Task's `ContainerInfo` is invalid: %v", err)
		}
	}
	return nil
}

// validatePersistenceIDs mirrors resource::validateUniquePersistenceID.
func validatePersistenceIDs(rs []mesos.Resource) error {
	seen := map[string]bool{}
	for _, r := range rs {
		if r.Disk == nil || r.Disk.Persistence == nil {
			continue
		}
		key := r.GetRole() + "\x00" + r.Disk.Persistence.ID
		if seen[key] {
			return fmt.Errorf("Persistence ID '%s' is not unique", r.Disk.Persistence.ID)
		}
		seen[key] = true
	}
	return nil
}

// validateExecutorInfo is executor::internal::validate for an executor
// named by a task (custom) or a LAUNCH_GROUP, framework_id already filled
// in where the master fills it.
func (s *Server) validateExecutorInfo(fw *framework, a *agent, e *mesos.ExecutorInfo) error {
	switch e.Type {
	case mesos.ExecutorInfo_DEFAULT:
		if e.Command != nil {
			return errors.New("'ExecutorInfo.command' must not be set for 'DEFAULT' executor")
		}
		if c := e.Container; c != nil {
			if c.GetType() != mesos.ContainerInfo_MESOS {
				return errors.New("'ExecutorInfo.container.type' must be 'MESOS' for 'DEFAULT' executor")
			}
			if c.Mesos != nil && c.Mesos.Image != nil {
				return errors.New("'ExecutorInfo.container.mesos.image' must not be set for 'DEFAULT' executor")
			}
		}
	case mesos.ExecutorInfo_CUSTOM:
		if e.Command == nil {
			return errors.New("'ExecutorInfo.command' must be set for 'CUSTOM' executor")
		}
	}
	if err := validateID(e.ExecutorID.Value); err != nil {
		return err
	}
	if g := e.ShutdownGracePeriod; g != nil && g.Nanoseconds < 0 {
		return errors.New("ExecutorInfo's 'shutdown_grace_period' must be non-negative")
	}
	if e.Command != nil {
		if err := validateCommandInfo(e.Command); err != nil {
			return fmt.Errorf("Executor's `CommandInfo` is invalid: %v", err)
		}
	}
	if e.Container != nil {
		if err := validateContainerInfo(e.Container); err != nil {
			return fmt.Errorf("Executor's `ContainerInfo` is invalid: %v", err)
		}
	}
	if e.FrameworkID == nil {
		return errors.New("'ExecutorInfo.framework_id' must be set")
	}
	if e.FrameworkID.Value != fw.id {
		return fmt.Errorf("ExecutorInfo has an invalid FrameworkID (Actual: %s vs Expected: %s)", e.FrameworkID.Value, fw.id)
	}
	if err := validatePersistenceIDs(e.Resources); err != nil {
		return fmt.Errorf("Executor uses duplicate persistence ID: %v", err)
	}
	if running := s.runningExecutorLocked(fw, a, e.ExecutorID.Value); running != nil && !running.Equal(e) {
		return fmt.Errorf("ExecutorInfo is not compatible with existing ExecutorInfo with same ExecutorID.\n"+
			"------------------------------------------------------------\nExisting ExecutorInfo:\n%s\n"+
			"------------------------------------------------------------\nExecutorInfo:\n%s\n"+
			"------------------------------------------------------------\n", running.String(), e.String())
	}
	return nil
}

// runningExecutorLocked is the ExecutorInfo of a live executor of the
// framework on the agent (Slave::hasExecutor), nil if there is none.
func (s *Server) runningExecutorLocked(fw *framework, a *agent, executorID string) *mesos.ExecutorInfo {
	for t := range a.tasks {
		if t.fw != fw || t.executorID != executorID || t.released {
			continue
		}
		if t.group != nil && !t.group.released {
			return &t.group.info
		}
		if t.info.Executor != nil {
			return t.info.Executor
		}
	}
	return nil
}

// validateGroupExecutor is validation::task::group::internal::validateExecutor
// without the resource check against the offer (done by the caller).
func (s *Server) validateGroupExecutor(fw *framework, a *agent, e *mesos.ExecutorInfo, tasks []mesos.TaskInfo) error {
	if err := s.validateExecutorInfo(fw, a, e); err != nil {
		return err
	}
	if e.Type == mesos.ExecutorInfo_UNKNOWN {
		return errors.New("'ExecutorInfo.type' must be set")
	}
	if c := e.Container; c != nil && c.GetType() == mesos.ContainerInfo_DOCKER {
		return errors.New("Docker ContainerInfo is not supported on the executor")
	}
	for i := range tasks {
		if tasks[i].Executor != nil && !tasks[i].Executor.Equal(e) {
			return fmt.Errorf("The `ExecutorInfo` of task '%s' is different from executor '%s'",
				tasks[i].TaskID.Value, e.ExecutorID.Value)
		}
	}
	rs := mesos.Resources(e.Resources)
	if cpus := scalarOf(rs, "cpus"); cpus < minExecutorCPUs {
		return fmt.Errorf("Executor '%s' uses less CPUs (%s) than the minimum required (%v)", e.ExecutorID.Value, quantity(rs, "cpus"), minExecutorCPUs)
	}
	if mem := scalarOf(rs, "mem"); mem < minExecutorMemMiB {
		return fmt.Errorf("Executor '%s' uses less memory (%s) than the minimum required (32MB)", e.ExecutorID.Value, memQuantity(rs))
	}
	if !hasResource(rs, "disk") {
		return fmt.Errorf("Executor '%s' uses no disk", e.ExecutorID.Value)
	}
	all := append([]mesos.Resource(nil), e.Resources...)
	for i := range tasks {
		all = append(all, tasks[i].Resources...)
	}
	if err := validatePersistenceIDs(all); err != nil {
		return fmt.Errorf("Task group and executor use duplicate persistence ID: %v", err)
	}
	return nil
}

// The master's MIN_CPUS and MIN_MEM (src/master/constants.hpp).
const (
	minExecutorCPUs   = 0.01
	minExecutorMemMiB = 32
)

func hasResource(rs mesos.Resources, name string) bool {
	for _, r := range rs {
		if r.Name == name {
			return true
		}
	}
	return false
}

func quantity(rs mesos.Resources, name string) string {
	if !hasResource(rs, name) {
		return "None"
	}
	return fmt.Sprint(scalarOf(rs, name))
}

func memQuantity(rs mesos.Resources) string {
	if !hasResource(rs, "mem") {
		return "None"
	}
	return fmt.Sprintf("%vMB", scalarOf(rs, "mem"))
}

// groupTaskError prefixes a group task's error as validation::task::group::validate does.
func groupTaskError(info *mesos.TaskInfo, err error) error {
	return fmt.Errorf("Task '%s' is invalid: %v", info.TaskID.Value, err)
}
