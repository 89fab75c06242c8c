// Package mesosbridge is everything the operator knows about Mesos: one scheduler framework
// per K3s cluster, offer matching, TaskInfo builders and task state tracking.
//
// The controller talks to it only through the plain Go types in this file (FrameworkConfig,
// TaskSpec, Observed, ObservedTask): no mesos-go type crosses that line, so the controller
// can be tested without Mesos and the Mesos side can change without touching the API types.
// The bridge, in turn, never imports the operator's api/ or controllers/ packages.
package mesosbridge

import (
	"time"
)

// ClusterKey identifies one K3s cluster, and therefore one framework.
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

// TaskRole is the part a task plays in the cluster.
type TaskRole string

const (
	RoleServer    TaskRole = "server"
	RoleAgent     TaskRole = "agent"
	RoleDatastore TaskRole = "datastore"
)

// Runtime is how a task is run on the Mesos agent.
type Runtime string

const (
	// RuntimeDocker runs an image through the Docker containerizer, privileged.
	RuntimeDocker Runtime = "Docker"
	// RuntimeBinary runs a plain command task; the Mesos fetcher brings the binary.
	RuntimeBinary Runtime = "Binary"
)

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

// PortAPI is the port name a server must have: its HTTPS port, serving both the
// Kubernetes API and the K3s supervisor (--https-listen-port). Other names are free.
const PortAPI = "api"

// PortAPIServer is K3s's internal kube-apiserver port, which K3s always puts at the API
// port + 1. A server lists it right after PortAPI so that Mesos gives the task both (a
// task's ports are one consecutive run) and offers neither to another task.
const PortAPIServer = "apiserver"

// Constraint is a Marathon-style placement constraint over "hostname" or an agent attribute.
type Constraint struct {
	Field    string
	Operator ConstraintOperator
	Value    string
}

// VolumeRequest asks for a Mesos persistent volume that outlives the task.
type VolumeRequest struct {
	SizeMiB float64
	// ContainerPath is relative to the sandbox (Mesos requires that for command tasks);
	// the K3s data directory lives there.
	ContainerPath string
	// AgentID pins the task to the agent that holds its existing volume (the controller
	// knows it from the task's last placement). Empty: place anywhere and create a volume.
	AgentID string
}

// K3sSettings shape the K3s command line. They are ignored for datastore tasks.
type K3sSettings struct {
	Version string // e.g. v1.31.4+k3s1; picks the image tag for the Docker runtime
	// ServerURL is the server agents (and joining servers) register with.
	ServerURL string
	// ClusterInit starts embedded etcd on the first server (--cluster-init).
	ClusterInit bool
	NodeName    string // --node-name; empty lets K3s use the host name
	TLSSANs     []string
	ClusterCIDR string
	ServiceCIDR string
	ClusterDNS  string
	// ClusterDomain, e.g. cluster.local.
	ClusterDomain string
	// DatastoreEndpoint without credentials; an endpoint with credentials goes into
	// TaskSpec.Secrets[SecretDatastoreEndpoint] instead.
	DatastoreEndpoint string
	NodeLabels        map[string]string
	NodeTaints        []string // key=value:Effect, as K3s takes them
	ExtraArgs         []string // appended verbatim (quoted) after the generated flags
}

// Secret keys a K3s task understands in TaskSpec.Secrets. TLS keys are paths relative to
// <data-dir>/server/tls/, where K3s looks for its CAs before its first start.
const (
	SecretToken               = "token"              // K3S_TOKEN
	SecretDatastoreEndpoint   = "datastore-endpoint" // K3S_DATASTORE_ENDPOINT
	SecretServerCACert        = "server-ca.crt"
	SecretServerCAKey         = "server-ca.key"
	SecretClientCACert        = "client-ca.crt"
	SecretClientCAKey         = "client-ca.key"
	SecretRequestHeaderCACert = "request-header-ca.crt"
	SecretRequestHeaderCAKey  = "request-header-ca.key"
	SecretEtcdPeerCACert      = "etcd/peer-ca.crt"
	SecretEtcdPeerCAKey       = "etcd/peer-ca.key"
	SecretEtcdServerCACert    = "etcd/server-ca.crt"
	SecretEtcdServerCAKey     = "etcd/server-ca.key"
	SecretServiceKey          = "service.key"
)

// TaskSpec is one task the controller wants running, in the bridge's own vocabulary.
type TaskSpec struct {
	Name  string // server-0, agent-3, datastore-0: stable across relaunches
	Role  TaskRole
	Index int

	// Order is the task's position in the launch plan. Within one offer round a task is
	// only placed once every pending task with a lower Order has been placed, so offers
	// never let an agent overtake a server. Gating on "running/healthy" (servers one at a
	// time, agents after the first server) is the controller's: it passes a task only once
	// the plan allows launching it.
	Order int

	Resources Resources
	// Ports are the names of the host ports the task needs, taken from offered ranges.
	Ports       []string
	Constraints []Constraint

	Runtime   Runtime
	Image     string // Docker image without tag (tag derived from K3s.Version) or fully pinned
	BinaryURL string // Binary runtime: fetched by the Mesos fetcher as ./k3s

	K3s K3sSettings
	// Command is the shell command of a datastore task (trusted, written by the controller);
	// it sees $PORT_<NAME> for its ports and $DATA_DIR. Ignored for K3s roles.
	Command string
	// Env is plain environment. Nothing secret here: the master's /state shows it.
	Env map[string]string
	// Secrets are delivered as Mesos SECRET environment variables, never as plain ones.
	// K3s roles accept the Secret* keys above; datastore tasks use env var names as keys.
	Secrets map[string][]byte

	NetworkMode NetworkMode
	NetworkName string

	// Volume, when set, holds the data directory on a persistent volume; otherwise the
	// data lives in the sandbox and is lost with the task.
	Volume *VolumeRequest

	// KillGracePeriod is how long Mesos waits between SIGTERM and SIGKILL (0: default).
	KillGracePeriod time.Duration

	// SpecHash identifies the spec that shaped the task (see SpecHash); it is written to the
	// task's labels so the rollout can find out-of-date tasks.
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
	// Previous is how the task this one replaced under the same name ended, so that a
	// quick relaunch does not hide a failure from the controller (restart counts, events).
	Previous *TaskEnd
}

// TaskEnd is the terminal state of a task that has been replaced.
type TaskEnd struct {
	TaskID  string
	State   TaskState
	Reason  string
	Message string
	At      time.Time
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
)

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
}
