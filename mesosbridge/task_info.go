package mesosbridge

import (
	"sort"
	"strconv"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// placement is where and with what a task goes: chosen by the matcher from one offer.
type placement struct {
	TaskID   string
	AgentID  string
	Hostname string
	// Resources are carved from the offer: same reservation and allocation info, so
	// Mesos can match them against what it offered (MULTI_ROLE needs allocation_info).
	Resources []mesos.Resource
	Ports     map[string]uint32
	// VolumePath is the sandbox-relative mount point of the task's persistent volume.
	VolumePath string
}

const (
	defaultKillGracePeriod = 30 * time.Second
	// sandboxDataDir holds the data when the task has no persistent volume.
	sandboxDataDir = "data"
)

// buildTaskInfo turns a spec and its placement into the TaskInfo to LAUNCH.
func buildTaskInfo(fw FrameworkConfig, spec TaskSpec, p placement) (mesos.TaskInfo, error) {
	if err := ValidateTaskSpec(spec); err != nil {
		return mesos.TaskInfo{}, err
	}
	return taskInfoFor(fw, spec, p), nil
}

// taskInfoFor is buildTaskInfo for a spec already validated (the matcher validates each
// pending spec once per round, not once per launch attempt).
func taskInfoFor(fw FrameworkConfig, spec TaskSpec, p placement) mesos.TaskInfo {
	info := mesos.TaskInfo{
		Name:       spec.Name,
		TaskID:     mesos.TaskID{Value: p.TaskID},
		AgentID:    mesos.AgentID{Value: p.AgentID},
		Resources:  p.Resources,
		Command:    commandInfo(spec, p),
		Container:  containerInfo(spec),
		Labels:     mesosLabels(taskLabels(fw, spec)),
		Discovery:  discoveryInfo(fw, spec, p.Ports),
		KillPolicy: killPolicy(spec.KillGracePeriod),
	}
	if spec.HealthCheck != nil {
		info.HealthCheck = healthCheck(*spec.HealthCheck, p.Ports)
	}
	return info
}

// commandInfo runs the task's script under /bin/sh after a prologue that names its data
// directory, with its ports and environment; without a script the image's entrypoint runs.
func commandInfo(spec TaskSpec, p placement) *mesos.CommandInfo {
	env := merge(spec.Env, portEnv(p.Ports))
	cmd := &mesos.CommandInfo{Environment: environment(env, spec.Secrets)}
	for _, u := range spec.Fetch {
		uri := mesos.CommandInfo_URI{Value: u.URL, Executable: ptr(u.Executable), Extract: ptr(u.Extract)}
		if u.OutputFile != "" {
			uri.OutputFile = ptr(u.OutputFile)
		}
		cmd.URIs = append(cmd.URIs, uri)
	}
	if spec.Command == "" {
		cmd.Shell = ptr(false) // keep the image's entrypoint and arguments
		return cmd
	}
	cmd.Shell = ptr(true)
	cmd.Value = ptr(EnvDataDir + "=" + dataDirExpr(p) + "\nexport " + EnvDataDir + "\n" + spec.Command)
	return cmd
}

// taskLabels let the bridge and the rollout recognise a task after a restart: which
// cluster incarnation, which role and index, and which spec shaped it.
func taskLabels(fw FrameworkConfig, spec TaskSpec) map[string]string {
	return map[string]string{
		LabelClusterNamespace: fw.ClusterNamespace,
		LabelClusterName:      fw.ClusterName,
		LabelClusterUID:       fw.ClusterUID,
		LabelTaskRole:         string(spec.Role),
		LabelTaskIndex:        strconv.Itoa(spec.Index),
		LabelSpecHash:         spec.SpecHash,
	}
}

// discoveryInfo names the task and its ports for Mesos-DNS: <task>.<cluster>.<namespace>.
func discoveryInfo(fw FrameworkConfig, spec TaskSpec, ports map[string]uint32) *mesos.DiscoveryInfo {
	d := &mesos.DiscoveryInfo{
		Visibility: mesos.FRAMEWORK,
		Name:       ptr(spec.Name + "." + fw.ClusterName + "." + fw.ClusterNamespace),
	}
	if len(ports) > 0 {
		d.Ports = &mesos.Ports{}
		for _, name := range spec.Ports {
			d.Ports.Ports = append(d.Ports.Ports, mesos.Port{
				Number: ports[name], Name: ptr(name), Protocol: ptr("tcp"),
			})
		}
	}
	return d
}

func killPolicy(grace time.Duration) *mesos.KillPolicy {
	if grace <= 0 {
		grace = defaultKillGracePeriod
	}
	return &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: grace.Nanoseconds()}}
}

// healthCheck is the Mesos health check of a spec's check, on the port it names.
func healthCheck(h HealthCheck, ports map[string]uint32) *mesos.HealthCheck {
	hc := &mesos.HealthCheck{
		DelaySeconds:        ptr(h.Delay.Seconds()),
		IntervalSeconds:     ptr(h.Interval.Seconds()),
		TimeoutSeconds:      ptr(h.Timeout.Seconds()),
		ConsecutiveFailures: ptr(uint32(h.ConsecutiveFailures)),
		GracePeriodSeconds:  ptr(h.GracePeriod.Seconds()),
	}
	port := ports[h.Port]
	switch h.Protocol {
	case HealthTCP:
		hc.Type = mesos.HealthCheck_TCP
		hc.TCP = &mesos.HealthCheck_TCPCheckInfo{Port: port}
	default:
		scheme := "http"
		if h.Protocol == HealthHTTPS {
			scheme = "https"
		}
		hc.Type = mesos.HealthCheck_HTTP
		hc.HTTP = &mesos.HealthCheck_HTTPCheckInfo{Scheme: ptr(scheme), Port: port, Path: ptr(h.Path)}
	}
	return hc
}

// containerInfo is nil for a plain command task, and a Docker container otherwise.
func containerInfo(spec TaskSpec) *mesos.ContainerInfo {
	if spec.Container.Type != ContainerDocker {
		return nil
	}
	docker := &mesos.ContainerInfo_DockerInfo{
		Image:   spec.Container.Image,
		Network: mesos.ContainerInfo_DockerInfo_HOST.Enum(),
	}
	if spec.Container.Privileged {
		docker.Privileged = ptr(true)
	}
	for _, path := range spec.Container.Tmpfs {
		docker.Parameters = append(docker.Parameters, mesos.Parameter{Key: "tmpfs", Value: path})
	}
	c := &mesos.ContainerInfo{Type: mesos.ContainerInfo_DOCKER.Enum(), Docker: docker}
	if spec.NetworkMode == NetworkCNI {
		// The task listens on its offered port numbers inside the named network.
		docker.Network = mesos.ContainerInfo_DockerInfo_USER.Enum()
		c.NetworkInfos = []mesos.NetworkInfo{{Name: ptr(spec.NetworkName)}}
	}
	return c
}

// dataDirExpr is the shell expression of the task's data directory: on its persistent
// volume when it has one, in the sandbox otherwise. Relative volume paths are mounted
// under the sandbox by both containerizers, so one expression serves both. Volume paths
// are validated to need no quoting.
func dataDirExpr(p placement) string {
	rel := sandboxDataDir
	if p.VolumePath != "" {
		rel = p.VolumePath
	}
	return `"$MESOS_SANDBOX"/` + rel
}

// portEnv exposes each port as PORT_<NAME>.
func portEnv(ports map[string]uint32) map[string]string {
	env := make(map[string]string, len(ports))
	for name, port := range ports {
		env[portVar(name)] = strconv.FormatUint(uint64(port), 10)
	}
	return env
}

// portVar is the variable carrying a named port's number.
func portVar(name string) string { return EnvPortPrefix + envSuffix(name) }

// envSuffix upper-cases a name and replaces what env names cannot hold with '_'.
func envSuffix(s string) string {
	b := []byte(strings.ToUpper(s))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// environment builds plain variables and SECRET variables, each sorted by name. Secret
// values travel only inside mesos.Secret, which the master never shows in /state.
func environment(plain map[string]string, secrets map[string][]byte) *mesos.Environment {
	env := &mesos.Environment{}
	for _, name := range sortedKeys(plain) {
		env.Variables = append(env.Variables, mesos.Environment_Variable{
			Name: name, Type: mesos.Environment_Variable_VALUE.Enum(), Value: ptr(plain[name]),
		})
	}
	for _, name := range sortedKeys(secrets) {
		env.Variables = append(env.Variables, mesos.Environment_Variable{
			Name: name,
			Type: mesos.Environment_Variable_SECRET.Enum(),
			Secret: &mesos.Secret{
				Type:  mesos.Secret_VALUE,
				Value: &mesos.Secret_Value{Data: append([]byte(nil), secrets[name]...)},
			},
		})
	}
	return env
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func merge(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}
