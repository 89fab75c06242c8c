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
	// What the default executor of a task group takes besides its task: the agent's own
	// defaults for an executor (DEFAULT_EXECUTOR_CPUS, DEFAULT_EXECUTOR_MEM in
	// src/slave/constants.hpp), and some disk, without which the master refuses the group
	// ("Executor '<id>' uses no disk", validateExecutor in src/master/validation.cpp).
	executorCPUs    = 0.1
	executorMemMiB  = 32
	executorDiskMiB = 10
)

// inTaskGroup says whether a task is launched as a task group of the default executor:
// every task under the Mesos containerizer is. The command executor of a plain command
// task gets the resolved environment, secrets included, on its command line
// (--task_environment, src/slave/containerizer/mesos/containerizer.cpp), where any local
// user can read it; a nested container of the default executor gets it in its environment
// only (src/slave/containerizer/mesos/isolators/environment_secret.cpp).
func inTaskGroup(spec TaskSpec) bool { return spec.Container.Type != ContainerDocker }

// launchOperation is the LAUNCH or LAUNCH_GROUP that starts a placed task.
func launchOperation(fw FrameworkConfig, spec TaskSpec, info mesos.TaskInfo, executorResources []mesos.Resource) mesos.Offer_Operation {
	if !inTaskGroup(spec) {
		return mesos.Offer_Operation{Type: mesos.Offer_Operation_LAUNCH, Launch: &mesos.Offer_Operation_Launch{TaskInfos: []mesos.TaskInfo{info}}}
	}
	executor := mesos.ExecutorInfo{
		Type: mesos.ExecutorInfo_DEFAULT,
		// One executor per task, named after it (as the command executor is): the group
		// lives and dies with its task.
		ExecutorID:  mesos.ExecutorID{Value: info.TaskID.Value},
		FrameworkID: frameworkIDOf(fw.FrameworkID),
		Resources:   executorResources,
		Container:   &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum()},
	}
	if spec.NetworkMode == NetworkCNI {
		// The task's nested container joins its executor's network.
		executor.Container.NetworkInfos = []mesos.NetworkInfo{{Name: ptr(spec.NetworkName)}}
	}
	return mesos.Offer_Operation{Type: mesos.Offer_Operation_LAUNCH_GROUP, LaunchGroup: &mesos.Offer_Operation_LaunchGroup{
		Executor:  executor,
		TaskGroup: mesos.TaskGroupInfo{Tasks: []mesos.TaskInfo{info}},
	}}
}

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
		Command:    commandInfo(fw, spec, p),
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
func commandInfo(fw FrameworkConfig, spec TaskSpec, p placement) *mesos.CommandInfo {
	env := merge(spec.Env, spec.BootstrapEnv, portEnv(p.Ports), map[string]string{EnvHost: p.Hostname})
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
	cmd.Value = ptr(dataDirPrologue(fw, spec, p) + spec.Command)
	return cmd
}

// mesosSandboxInContainers is where Mesos maps the sandbox inside a container with its own
// root filesystem (the agent's --sandbox_directory default, src/slave/flags.cpp), and where
// the Docker containerizer maps it: a path that is the same on every run.
const mesosSandboxInContainers = "/mnt/mesos/sandbox"

// dataDirPrologue sets $DATA_DIR, the task's data directory, to a path that is the same on
// every run of the task. Programs record absolute paths (K3s writes them into its own
// kubeconfigs), but a sandbox is one run's (.../runs/<containerID>/), and when the task ends
// the agent removes the volume's link from it (src/slave/containerizer/mesos/isolators/
// filesystem/posix.cpp): a path through $MESOS_SANDBOX breaks on the next run. A persistent
// volume appears in the sandbox at its container path as
//   - a symlink to the volume under filesystem/posix, reached from a task group's nested
//     sandbox through the SANDBOX_PATH volume the default executor adds, itself a symlink
//     without filesystem/linux (isolators/volume/sandbox_path.cpp): resolved;
//   - a bind mount under filesystem/linux: inside an image or a Docker container the
//     sandbox is /mnt/mesos/sandbox on every run; on the agent's own filesystem the volume's
//     path on the agent is used, <work_dir>/volumes/roles/<role, '/' as ' '>/<id>
//     (src/slave/paths.cpp getPersistentVolumePath), the work dir taken from the sandbox path.
func dataDirPrologue(fw FrameworkConfig, spec TaskSpec, p placement) string {
	if p.VolumePath == "" {
		return EnvDataDir + `="$MESOS_SANDBOX"/` + sandboxDataDir + "\nexport " + EnvDataDir + "\n"
	}
	id := persistenceID(fw.ClusterUID, spec.Name)
	role := strings.ReplaceAll(fw.Role, "/", " ")
	return EnvDataDir + `="$MESOS_SANDBOX"/` + p.VolumePath + "\n" +
		`if [ -L "$` + EnvDataDir + `" ]; then` + "\n" +
		`  ` + EnvDataDir + `=$(readlink -f "$` + EnvDataDir + `")` + "\n" +
		`elif [ "$MESOS_SANDBOX" != ` + mesosSandboxInContainers + ` ]; then` + "\n" +
		`  ` + EnvDataDir + `="${MESOS_SANDBOX%%/slaves/*}"/volumes/roles/'` + role + `'/` + id + "\n" +
		`  [ -d "$` + EnvDataDir + `" ] || { echo "persistent volume ` + id + ` not found at a path that stays the same across runs" >&2; exit 1; }` + "\n" +
		"fi\nexport " + EnvDataDir + "\n"
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
	return &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: effectiveGrace(grace).Nanoseconds()}}
}

// effectiveGrace is the kill grace period a task gets: its own, or the bridge's default.
func effectiveGrace(grace time.Duration) time.Duration {
	if grace <= 0 {
		return defaultKillGracePeriod
	}
	return grace
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

// containerInfo is nil for a plain command task, the image under the Mesos containerizer,
// or a Docker container.
func containerInfo(spec TaskSpec) *mesos.ContainerInfo {
	switch spec.Container.Type {
	case ContainerNone:
		return nil
	case ContainerImage:
		return &mesos.ContainerInfo{
			Type: mesos.ContainerInfo_MESOS.Enum(),
			Mesos: &mesos.ContainerInfo_MesosInfo{Image: &mesos.Image{
				Type:   mesos.Image_DOCKER.Enum(),
				Docker: &mesos.Image_Docker{Name: spec.Container.Image},
			}},
		}
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
