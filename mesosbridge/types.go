package mesosbridge

import (
	"time"
)

// ClusterKey identifies one cluster, and therefore one framework.
type ClusterKey struct {
	Namespace string
	Name      string
}

func (k ClusterKey) String() string { return k.Namespace + "/" + k.Name }

// TLSConfig says how to trust the Mesos master's HTTPS endpoint.
type TLSConfig struct {
	// CAData is a PEM bundle of CAs to trust; empty means the system pool.
	CAData []byte
	// InsecureSkipVerify disables verification; it must be asked for explicitly.
	InsecureSkipVerify bool
}

// FrameworkConfig is everything needed to subscribe the framework of one cluster.
type FrameworkConfig struct {
	ClusterNamespace string
	ClusterName      string
	// ClusterUID ties the framework and its tasks to one incarnation of the cluster object,
	// so a cluster re-created under the same name never adopts its predecessor's tasks.
	ClusterUID string

	// Name is the framework's name in Mesos (its UI, /state, logs).
	Name string
	// User is the Unix user the tasks run as, unless a task says otherwise.
	User string

	// Role is the Mesos role the framework subscribes with (MULTI_ROLE, one role).
	Role string
	// Principal and Secret are the framework credentials; both empty means no authentication.
	Principal string
	Secret    string

	// FailoverTimeout is how long Mesos keeps the tasks when the framework disconnects.
	FailoverTimeout time.Duration
	// Masters are the master addresses (host:port or URLs) tried in turn.
	Masters []string
	TLS     TLSConfig

	// FrameworkID is the ID persisted in the cluster's status; when set the bridge
	// re-subscribes with it and adopts the running tasks instead of starting afresh.
	FrameworkID string
}

// Key is the cluster this framework belongs to.
func (c FrameworkConfig) Key() ClusterKey {
	return ClusterKey{Namespace: c.ClusterNamespace, Name: c.ClusterName}
}

// TaskRole is the group a task belongs to (the controller's server, agent, ...):
// constraints count the siblings of one role, and task names are <role>-<index>.
type TaskRole string

// ContainerType is how Mesos runs a task.
type ContainerType string

const (
	// ContainerNone is a plain command task under the Mesos containerizer, on the agent
	// host's own filesystem.
	ContainerNone ContainerType = ""
	// ContainerImage runs the task's command in Container.Image under the Mesos
	// containerizer ("UCR": ContainerInfo type MESOS with a Docker image), so its secrets and
	// volumes behave as for a plain command task.
	ContainerImage ContainerType = "Image"
	// ContainerDocker runs Container.Image with the Docker containerizer. It cannot carry
	// secrets: the Docker containerizer does not resolve SECRET variables.
	ContainerDocker ContainerType = "Docker"
)

// Container is what runs around the task's command.
type Container struct {
	Type ContainerType
	// Image is the full image reference (with tag or digest).
	Image string
	// Privileged gives a Docker container every capability and device (Docker only).
	Privileged bool
	// Tmpfs are mount points inside a Docker container that get a fresh tmpfs.
	Tmpfs []string
}

// NetworkMode is the network a task joins.
type NetworkMode string

const (
	NetworkHost NetworkMode = "Host"
	// NetworkCNI joins the named Mesos/Docker network (TaskSpec.NetworkName).
	NetworkCNI NetworkMode = "CNI"
)

// Resources is the amount of scalar resources a task needs.
type Resources struct {
	CPUs    float64
	MemMiB  float64
	DiskMiB float64 // sandbox disk; a persistent volume is requested with TaskSpec.Volume
}

// Constraint is a Marathon-style placement constraint over "hostname" or an agent attribute.
type Constraint struct {
	Field    string
	Operator ConstraintOperator
	Value    string
}

// VolumeRequest asks for a Mesos persistent volume that outlives the task.
type VolumeRequest struct {
	SizeMiB float64
	// ContainerPath is relative to the sandbox (Mesos requires that for command tasks).
	ContainerPath string
	// AgentID pins the task to the agent that holds its existing volume (the controller
	// knows it from the task's last placement). Empty: place anywhere and create a volume.
	AgentID string
}

// FetchURI is something the Mesos fetcher brings into the sandbox before the command runs.
type FetchURI struct {
	URL        string
	Executable bool
	Extract    bool
	// OutputFile names the fetched file in the sandbox (default: the URL's base name).
	OutputFile string
}

// HealthCheckProtocol is how Mesos checks a task's health.
type HealthCheckProtocol string

const (
	HealthHTTP  HealthCheckProtocol = "HTTP"
	HealthHTTPS HealthCheckProtocol = "HTTPS" // the certificate is not verified by Mesos
	HealthTCP   HealthCheckProtocol = "TCP"
)

// HealthCheck is a Mesos health check of one of the task's ports.
type HealthCheck struct {
	Protocol HealthCheckProtocol
	Port     string // one of TaskSpec.Ports
	Path     string // HTTP(S) only; 200-399 is healthy
	// Delay before the first check, Interval between checks, Timeout of each.
	Delay, Interval, Timeout time.Duration
	// GracePeriod is how long failures are ignored after the start; ConsecutiveFailures
	// after it kill the task.
	GracePeriod         time.Duration
	ConsecutiveFailures int
}

// Variables the bridge sets for every command: the task's data directory and its ports.
const (
	// EnvDataDir names the task's data directory: its persistent volume when it has one,
	// <sandbox>/data otherwise. The command creates it if it needs it.
	EnvDataDir = "DATA_DIR"
	// EnvPortPrefix starts the variable of each named port: PORT_<NAME> (Marathon's
	// convention), the name upper-cased with '-' as '_'.
	EnvPortPrefix = "PORT_"
	// EnvHost is the agent's host name as offers name it, where clients reach the task's
	// ports (Marathon's HOST).
	EnvHost = "HOST"
)

// TaskSpec is one task the controller wants running: a generic Mesos task.
type TaskSpec struct {
	Name  string // <role>-<index>, stable across relaunches
	Role  TaskRole
	Index int

	// Order is the task's position in the launch plan. Within one offer round a task is
	// only placed once every pending task with a lower Order has been placed, so offers
	// never let a later step overtake an earlier one. Gating on "running/healthy" is the
	// controller's: it passes a task only once the plan allows launching it.
	Order int

	Resources Resources
	// Ports are the names of the host ports the task needs, taken from offered ranges as
	// one run of consecutive numbers, in this order.
	Ports       []string
	Constraints []Constraint

	Container Container
	// Command is the /bin/sh script the task runs; empty runs the image's own entrypoint
	// (Docker only). It sees $DATA_DIR, $PORT_<NAME> and the variables below.
	Command string
	// Fetch is what the Mesos fetcher brings into the sandbox first.
	Fetch []FetchURI
	// Env is plain environment. Nothing secret here: the master's /state may show it.
	Env map[string]string
	// HostExclusive names a class of tasks that hold host-global resources no offer can
	// move (fixed ports, network links): no two live tasks of one class from different
	// clusters of this bridge share a host (see host_exclusive.go). Where a task goes is
	// not what it runs: it is left out of the spec hash.
	HostExclusive string
	// BootstrapEnv is plain environment too, but read by the task only when its data is
	// empty (a first start): it is left out of the spec hash, so a change of it does not
	// replace a running task (see hashProjection).
	BootstrapEnv map[string]string
	// Secrets are environment variables delivered as Mesos secrets, never as plain ones.
	// Tasks under the Mesos containerizer are launched as a task group of the default
	// executor (LAUNCH_GROUP), which resolves them into the task's own environment; a plain
	// command task would have them on its command executor's command line.
	Secrets map[string][]byte

	HealthCheck *HealthCheck

	NetworkMode NetworkMode
	NetworkName string

	// Volume, when set, holds $DATA_DIR on a persistent volume; otherwise the data lives
	// in the sandbox and is lost with the task.
	Volume *VolumeRequest

	// KillGracePeriod is how long Mesos waits between SIGTERM and SIGKILL (0: default).
	KillGracePeriod time.Duration

	// SpecHash identifies what the task runs (see SpecHash); it is written to the task's
	// labels so the rollout can find out-of-date tasks.
	SpecHash string
}

// TaskState is a Mesos task state by its Mesos name, e.g. TASK_RUNNING.
type TaskState string

const (
	TaskStaging     TaskState = "TASK_STAGING"
	TaskStarting    TaskState = "TASK_STARTING"
	TaskRunning     TaskState = "TASK_RUNNING"
	TaskKilling     TaskState = "TASK_KILLING"
	TaskFinished    TaskState = "TASK_FINISHED"
	TaskFailed      TaskState = "TASK_FAILED"
	TaskKilled      TaskState = "TASK_KILLED"
	TaskError       TaskState = "TASK_ERROR"
	TaskLost        TaskState = "TASK_LOST"
	TaskDropped     TaskState = "TASK_DROPPED"
	TaskUnreachable TaskState = "TASK_UNREACHABLE"
	TaskGone        TaskState = "TASK_GONE"
	TaskGoneByOp    TaskState = "TASK_GONE_BY_OPERATOR"
	TaskUnknown     TaskState = "TASK_UNKNOWN"
)

// Terminal reports whether the task will never run again (a relaunch is a new task).
func (s TaskState) Terminal() bool {
	switch s {
	case TaskFinished, TaskFailed, TaskKilled, TaskError, TaskLost, TaskDropped, TaskGone, TaskGoneByOp:
		return true
	}
	return false
}

// ObservedTask is what the bridge knows about the newest task launched for a name.
type ObservedTask struct {
	Name     string
	TaskID   string
	AgentID  string
	Hostname string
	State    TaskState
	Reason   string // Mesos reason, e.g. REASON_COMMAND_EXECUTOR_FAILED
	Message  string
	// Healthy is nil until Mesos reports a health check result.
	Healthy    *bool
	Ports      map[string]uint32
	SpecHash   string
	Role       TaskRole
	Index      int
	LastUpdate time.Time
	// StateSince is when the task entered its current state (for TASK_UNREACHABLE, when
	// the master lost its agent): repeated updates of the same state, such as answers to
	// reconciliation, do not move it.
	StateSince time.Time
}

// ConnectionReason says why the framework is, or is not, connected (MesosConnected).
type ConnectionReason string

const (
	ConnSubscribed   ConnectionReason = "Subscribed"
	ConnSubscribing  ConnectionReason = "Subscribing"
	ConnRedirecting  ConnectionReason = "Redirecting"
	ConnUnreachable  ConnectionReason = "Unreachable"
	ConnUnauthorized ConnectionReason = "Unauthorized"
	ConnRefused      ConnectionReason = "Refused" // the master answered but refused the framework
	ConnTornDown     ConnectionReason = "TornDown"
	// ConnFrameworkRemoved: the master removed the framework (failover timeout, or a Mesos
	// operator's TEARDOWN) and killed its tasks; the bridge registers a new one.
	ConnFrameworkRemoved ConnectionReason = "FrameworkRemoved"
	// ConnFailedOver: another scheduler subscribed as this framework; this bridge stands
	// down instead of taking it back (see standDownIfFailedOver).
	ConnFailedOver ConnectionReason = "FailedOver"
)

// ReasonFrameworkRemoved is the TaskStatus reason of the tasks the bridge learns were
// killed by the master's removal of their framework (Mesos' REASON_FRAMEWORK_REMOVED):
// they ended through no fault of their own.
const ReasonFrameworkRemoved = "REASON_FRAMEWORK_REMOVED"

// Connection is the framework's link to the master.
type Connection struct {
	Connected bool
	Reason    ConnectionReason
	Message   string
	Since     time.Time
}

// Observed is the bridge's view of one cluster's framework and tasks.
type Observed struct {
	Connection  Connection
	FrameworkID string
	// Tasks by task name (server-0 ...), the newest task for each name.
	Tasks map[string]ObservedTask
	// Unplaced says, for each desired task the last offer round could not launch, why
	// (e.g. "no fitting offer among 3: not enough mem (3)").
	Unplaced map[string]string
	// RemovedFrameworkID is the framework the master last removed under this cluster
	// (see ConnFrameworkRemoved): the controller must stop persisting it.
	RemovedFrameworkID string
}
