package mesostest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// hostDefaultPath is os::host_default_path(): the PATH the launch helper
// (src/slave/containerizer/mesos/launch.cpp) gives a container whose
// environment has none.
const hostDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// containerSandboxDir is the agent's --sandbox_directory: where a container
// with its own root filesystem (a Docker or UCR image) sees its sandbox.
const containerSandboxDir = "/mnt/mesos/sandbox"

// errSecretReference is the default secret resolver's answer to a secret
// reference (src/secret/resolver.cpp): Mesos without a secret resolver
// module resolves only secrets that carry their value.
var errSecretReference = errors.New("Default secret resolver cannot resolve references")

// resolveSecret is DefaultSecretResolver::resolve.
func resolveSecret(sec *mesos.Secret) ([]byte, error) {
	if sec.GetReference() != nil {
		return nil, errSecretReference
	}
	if sec.GetValue() == nil {
		return nil, errors.New("Secret has no value")
	}
	return sec.Value.Data, nil
}

// resolvedSecretVariables is what the environment_secret isolator
// (src/slave/containerizer/mesos/isolators/environment_secret.cpp) puts in
// the container's launch info: every SECRET variable, resolved, as a VALUE
// variable, in the order of the CommandInfo.
func resolvedSecretVariables(c *mesos.CommandInfo) ([]envVar, error) {
	var out []envVar
	for _, v := range c.GetEnvironment().GetVariables() {
		if v.GetType() != mesos.Environment_Variable_SECRET {
			continue
		}
		if v.Secret == nil {
			return nil, fmt.Errorf("Invalid secret specified in environment '%s'", v.Name)
		}
		data, err := resolveSecret(v.Secret)
		if err != nil {
			return nil, err
		}
		out = append(out, envVar{name: v.Name, value: string(data)})
	}
	return out, nil
}

// envVar is one resolved variable.
type envVar struct{ name, value string }

// environ is an environment being merged: later settings win, as in the
// hashmaps Mesos merges environments with.
type environ map[string]string

func (e environ) set(name, value string) { e[name] = value }

// plainVariables adds a CommandInfo's VALUE variables; SECRET ones are
// skipped (the containerizer and the command executor leave them to the
// environment_secret isolator).
func (e environ) plainVariables(c *mesos.CommandInfo) {
	for _, v := range c.GetEnvironment().GetVariables() {
		if v.GetType() != mesos.Environment_Variable_SECRET {
			e.set(v.Name, v.GetValue())
		}
	}
}

func (e environ) list() []string {
	out := make([]string, 0, len(e))
	for k, v := range e {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func (e environ) clone() environ {
	out := make(environ, len(e))
	for k, v := range e {
		out[k] = v
	}
	return out
}

// agentIP is the address in the agent's libprocess PID.
func agentIP(a *agent) string {
	if ip := net.ParseIP(a.hostname); ip != nil {
		return ip.String()
	}
	return "127.0.0.1"
}

// executorEnvironmentLocked is executorEnvironment() of src/slave/slave.cpp:
// the variables the agent gives an executor. Executors do not inherit the
// agent's own environment (only LIBPROCESS_IP, and what
// --executor_environment_variables, AgentConfig.ExecutorEnvironment, sets).
func (s *Server) executorEnvironmentLocked(t *task, directory string) environ {
	env := environ{}
	if ip, ok := os.LookupEnv("LIBPROCESS_IP"); ok {
		env.set("LIBPROCESS_IP", ip)
	}
	for k, v := range t.agent.cfg.ExecutorEnvironment {
		env.set(k, v)
	}
	env.set("LIBPROCESS_PORT", "0")
	env.set("MESOS_FRAMEWORK_ID", t.fw.id)
	env.set("MESOS_EXECUTOR_ID", t.executorID)
	env.set("MESOS_DIRECTORY", directory)
	env.set("MESOS_SLAVE_ID", t.agent.id)
	env.set("MESOS_SLAVE_PID", fmt.Sprintf("slave(1)@%s:%d", agentIP(t.agent), agentPort))
	env.set("MESOS_AGENT_ENDPOINT", fmt.Sprintf("%s:%d", agentIP(t.agent), agentPort))
	checkpoint := t.fw.info.GetCheckpoint()
	env.set("MESOS_CHECKPOINT", map[bool]string{true: "1", false: "0"}[checkpoint])
	env.set("MESOS_HTTP_COMMAND_EXECUTOR", "0")
	grace := s.opts.ExecutorShutdownGracePeriod
	if e := t.executorInfo(); e != nil && e.ShutdownGracePeriod != nil {
		grace = time.Duration(e.ShutdownGracePeriod.Nanoseconds)
	}
	env.set("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", stoutDuration(grace))
	if checkpoint {
		env.set("MESOS_RECOVERY_TIMEOUT", "15mins")
		env.set("MESOS_SUBSCRIPTION_BACKOFF_MAX", "2secs")
	}
	return env
}

// executorInfo is the task's explicit executor (custom or task group).
func (t *task) executorInfo() *mesos.ExecutorInfo {
	if t.group != nil {
		return &t.group.info
	}
	return t.info.Executor
}

// commandTaskEnvironments computes, for a command task on the Mesos
// containerizer, the environment of its command executor and the one the
// executor gives the task's command, plus the resolved secrets the
// containerizer passes on the executor's command line (--task_environment,
// containerizer.cpp). sandbox is the directory the task sees as
// MESOS_SANDBOX.
func (s *Server) commandTaskEnvironments(t *task, directory, sandbox string) (executor, command environ, taskEnv []envVar, err error) {
	secrets, err := resolvedSecretVariables(t.info.Command)
	if err != nil {
		return nil, nil, nil, err
	}
	// MesosContainerizerProcess::_launch: the agent's variables, MESOS_SANDBOX,
	// the isolators' environment (resolved secrets), then the (executor's,
	// i.e. the task's) command's VALUE variables; launch.cpp adds PATH.
	executor = s.executorEnvironmentLocked(t, directory)
	executor.set("MESOS_SANDBOX", sandbox)
	for _, v := range secrets {
		executor.set(v.name, v.value)
	}
	executor.plainVariables(t.info.Command)
	if _, ok := executor["PATH"]; !ok {
		executor.set("PATH", hostDefaultPath)
	}
	// executor.cpp launch(): its own environment, the task environment
	// from --task_environment, the command's VALUE variables, then
	// MESOS_ALLOCATION_ROLE.
	command = executor.clone()
	for _, v := range secrets {
		command.set(v.name, v.value)
	}
	command.plainVariables(t.info.Command)
	command.set("MESOS_ALLOCATION_ROLE", t.role)
	return executor, command, secrets, nil
}

// dockerTaskEnvironment is what Docker::RunOptions::create
// (src/docker/docker.cpp) passes to `docker run`, as the Docker executor
// calls it: the command's variables with variable.value() — so SECRET
// variables get an empty value, the Docker containerizer resolves no
// secrets — then MESOS_SANDBOX, MESOS_CONTAINER_NAME and
// MESOS_ALLOCATION_ROLE. The image's own ENV is not known here.
func dockerTaskEnvironment(t *task) environ {
	env := environ{}
	for _, v := range t.info.Command.GetEnvironment().GetVariables() {
		env.set(v.Name, v.GetValue())
	}
	env.set("MESOS_SANDBOX", containerSandboxDir)
	env.set("MESOS_CONTAINER_NAME", "mesos-"+t.containerID)
	env.set("MESOS_ALLOCATION_ROLE", t.role)
	return env
}

// taskEnvironmentJSON renders resolved variables the way the containerizer
// puts them on the command executor's command line:
// JSON::protobuf(Environment), variables in name order (Mesos iterates a
// hashmap), '/' and '<' left as they are.
func taskEnvironmentJSON(vars []envVar) string {
	type variable struct {
		Name  string `json:"name"`
		Type  string `json:"type"`
		Value string `json:"value"`
	}
	byName := map[string]string{}
	for _, v := range vars {
		byName[v.name] = v.value
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	doc := struct {
		Variables []variable `json:"variables"`
	}{}
	for _, n := range names {
		doc.Variables = append(doc.Variables, variable{Name: n, Type: "VALUE", Value: byName[n]})
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(doc)
	return strings.TrimSuffix(b.String(), "\n")
}

// stoutDuration formats a duration as stout's Duration does ("5secs",
// "500ms", "15mins").
func stoutDuration(d time.Duration) string {
	units := []struct {
		size time.Duration
		name string
	}{
		{7 * 24 * time.Hour, "weeks"}, {24 * time.Hour, "days"}, {time.Hour, "hrs"},
		{time.Minute, "mins"}, {time.Second, "secs"}, {time.Millisecond, "ms"}, {time.Microsecond, "us"},
	}
	for _, u := range units {
		if d >= u.size {
			v := float64(d) / float64(u.size)
			return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.6f", v), "0"), ".") + u.name
		}
	}
	return fmt.Sprintf("%dns", int64(d))
}

// TaskEnvironment returns the environment a task's command gets. For a
// task running as a process, what its command was started with; for a
// simulated task, what its containerizer would give it: the Docker
// containerizer passes SECRET variables with an empty value (it resolves no
// secrets), the Mesos containerizer (a plain command or a UCR image)
// resolves them. Variables an image itself sets are not included.
func (s *Server) TaskEnvironment(taskID string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.findTaskLocked(taskID)
	if t == nil {
		return nil, fmt.Errorf("no task %q", taskID)
	}
	if t.commandEnv != nil {
		return t.commandEnv.clone(), nil
	}
	if t.info.Command == nil {
		return nil, fmt.Errorf("task %q runs a custom executor: its environment is the executor's business", taskID)
	}
	if t.executorKind() == dockerExecutor {
		return dockerTaskEnvironment(t), nil
	}
	directory := t.sandbox
	if directory == "" {
		directory = s.sandboxPathLocked(t)
	}
	sandbox := directory
	if c := t.info.Container; c != nil && c.Mesos != nil && c.Mesos.Image != nil {
		sandbox = containerSandboxDir
	}
	if t.group != nil {
		env, err := s.nestedTaskEnvironment(t, sandbox)
		return env, err
	}
	_, command, _, err := s.commandTaskEnvironments(t, directory, sandbox)
	return command, err
}

// nestedTaskEnvironment is the environment of a task of a group: a nested
// container the default executor launches (LAUNCH_CONTAINER; the agent
// passes no environment of its own, src/slave/http.cpp), so MESOS_SANDBOX
// (its own sandbox), the environment_secret isolator's resolved secrets,
// the command's VALUE variables with the two the default executor adds
// (MESOS_CONTAINER_IP, MESOS_ALLOCATION_ROLE,
// src/launcher/default_executor.cpp), and PATH from the launch helper. It
// reaches the task through the launch helper's environment
// (MESOS_CONTAINERIZER_* variables), never a command line.
func (s *Server) nestedTaskEnvironment(t *task, sandbox string) (environ, error) {
	secrets, err := resolvedSecretVariables(t.info.Command)
	if err != nil {
		return nil, err
	}
	env := environ{}
	env.set("MESOS_SANDBOX", sandbox)
	for _, v := range secrets {
		env.set(v.name, v.value)
	}
	env.plainVariables(t.info.Command)
	env.set("MESOS_CONTAINER_IP", agentIP(t.agent))
	env.set("MESOS_ALLOCATION_ROLE", t.role)
	if _, ok := env["PATH"]; !ok {
		env.set("PATH", hostDefaultPath)
	}
	return env, nil
}
