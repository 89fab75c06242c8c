package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Runtime says how K3s runs on the Mesos agents.
// +kubebuilder:validation:Enum=Binary;Image;Docker
type Runtime string

const (
	// RuntimeBinary runs the static K3s binary, fetched by the Mesos fetcher from binaryURL,
	// under the Mesos containerizer on the agent's own filesystem: no Docker needed.
	RuntimeBinary Runtime = "Binary"
	// RuntimeImage runs the stock K3s image under the Mesos containerizer (UCR: a MESOS
	// container with a Docker image), so secrets and volumes behave as for Binary.
	RuntimeImage Runtime = "Image"
	// RuntimeDocker ran the stock image with the Docker containerizer. It is refused: the
	// Docker containerizer does not resolve Mesos SECRET variables (src/docker/docker.cpp
	// copies variable.value(), empty for a secret), and puts environment variables on the
	// docker command line, so the cluster's CAs and tokens cannot reach K3s safely.
	RuntimeDocker Runtime = "Docker"
)

// DatastoreType is where the K3s servers keep cluster state.
// +kubebuilder:validation:Enum=SQLite;EmbeddedEtcd;Etcd;MySQL;External
type DatastoreType string

const (
	DatastoreSQLite       DatastoreType = "SQLite"
	DatastoreEmbeddedEtcd DatastoreType = "EmbeddedEtcd"
	DatastoreEtcd         DatastoreType = "Etcd"
	DatastoreMySQL        DatastoreType = "MySQL"
	DatastoreExternal     DatastoreType = "External"
)

// NetworkMode is how the K3s tasks are attached to the network.
// +kubebuilder:validation:Enum=Host;CNI
type NetworkMode string

const (
	NetworkHost NetworkMode = "Host"
	NetworkCNI  NetworkMode = "CNI"
)

// ConstraintOperator is a Marathon placement operator.
// +kubebuilder:validation:Enum=UNIQUE;CLUSTER;GROUP_BY;LIKE;UNLIKE;MAX_PER;IS
type ConstraintOperator string

const (
	ConstraintUnique  ConstraintOperator = "UNIQUE"
	ConstraintCluster ConstraintOperator = "CLUSTER"
	ConstraintGroupBy ConstraintOperator = "GROUP_BY"
	ConstraintLike    ConstraintOperator = "LIKE"
	ConstraintUnlike  ConstraintOperator = "UNLIKE"
	ConstraintMaxPer  ConstraintOperator = "MAX_PER"
	ConstraintIs      ConstraintOperator = "IS"
)

// K3sClusterSpec is the desired K3s cluster.
// +kubebuilder:validation:XValidation:rule="!has(self.datastore) || !has(self.datastore.type) || self.datastore.type != 'SQLite' || !has(self.servers) || !has(self.servers.replicas) || self.servers.replicas == 1",message="datastore SQLite supports exactly one server; use EmbeddedEtcd, Etcd, MySQL or External for more",fieldPath=".servers.replicas"
// +kubebuilder:validation:XValidation:rule="!has(self.datastore) || !has(self.datastore.type) || self.datastore.type != 'EmbeddedEtcd' || !has(self.servers) || !has(self.servers.replicas) || self.servers.replicas % 2 == 1",message="datastore EmbeddedEtcd needs an odd number of servers (1, 3, 5, ...) to keep etcd quorum",fieldPath=".servers.replicas"
// +kubebuilder:validation:XValidation:rule="!has(self.binaryURL) || (has(self.runtime) && self.runtime == 'Binary')",message="binaryURL applies to runtime Binary only; runtime Image uses image",fieldPath=".binaryURL"
// +kubebuilder:validation:XValidation:rule="!has(self.image) || self.image.contains('@') || !self.image.matches(':[^/]*$') || (has(self.version) && self.image.endsWith(':' + self.version.replace('+', '-')))",message="image carries a tag that is not spec.version (rancher/k3s tags v1.31.4+k3s1 as v1.31.4-k3s1): leave the tag out, make it match, or pin a digest (@sha256:...)",fieldPath=".image"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.version) || !has(self.version) || (self.version.split('.')[0] == oldSelf.version.split('.')[0] && int(self.version.split('.')[1]) - int(oldSelf.version.split('.')[1]) >= 0 && int(self.version.split('.')[1]) - int(oldSelf.version.split('.')[1]) <= 1)",message="spec.version may move to any release of the same Kubernetes minor or up one minor; skipping a minor or going back across one is not supported",fieldPath=".version"
type K3sClusterSpec struct {
	// Version is the K3s release, e.g. v1.31.4+k3s1. Changing it rolls the cluster:
	// servers one by one, then agents (see rollout). Any release of the same Kubernetes
	// minor (a patch upgrade or rollback) or of the next minor is allowed.
	// +kubebuilder:default="v1.31.4+k3s1"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^v[0-9]+\.[0-9]+\.[0-9]+\+k3s[0-9]+$`
	// +optional
	Version string `json:"version,omitempty"`

	// Runtime is how K3s runs on the agents: Binary (the static K3s binary fetched by the
	// Mesos fetcher, under the Mesos containerizer) or Image (the stock image under the
	// Mesos containerizer). Docker is refused: the Docker containerizer cannot deliver the
	// cluster's secrets (they arrive empty, and environment variables are on the docker
	// command line).
	// +kubebuilder:default=Binary
	// +kubebuilder:validation:XValidation:rule="self != 'Docker'",message="runtime Docker cannot deliver the cluster's CAs and tokens: the Docker containerizer does not resolve Mesos secrets (they arrive empty) and puts environment variables on the docker command line; use runtime Image (the same image under the Mesos containerizer) or Binary"
	// +optional
	Runtime Runtime `json:"runtime,omitempty"`

	// Image is the K3s image for runtime Image, best without tag: the tag is derived from
	// version. A tag must be version's; a digest (@sha256:...) pins the image, whose K3s
	// must then say it is version (the task checks `k3s --version` before it starts).
	// Runtime Binary ignores it.
	// +kubebuilder:default="rancher/k3s"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^[a-z0-9]+([._/:-][a-z0-9]+)*(@sha256:[a-f0-9]{64})?$`
	// +optional
	Image string `json:"image,omitempty"`

	// BinaryURL is where the Mesos fetcher downloads the static K3s binary from, for
	// runtime Binary (file://, http:// or https://). Defaults to the K3s release download
	// for version. The binary must be version's release: the task checks
	// `k3s --version` before it starts and fails otherwise (exit status 78).
	// +kubebuilder:validation:XValidation:rule="self.startsWith('file://') || self.startsWith('http://') || self.startsWith('https://')",message="binaryURL must be a file://, http:// or https:// URL"
	// +optional
	BinaryURL string `json:"binaryURL,omitempty"`

	// Paused stops reconciliation; so does the cluster.x-k8s.io/paused annotation.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// Mesos says how to reach Mesos and as which framework role.
	// +kubebuilder:default={}
	// +optional
	Mesos MesosSpec `json:"mesos,omitempty"`

	// Servers are the K3s server (control plane) tasks.
	// +kubebuilder:default={}
	// +optional
	Servers ServersSpec `json:"servers,omitempty"`

	// Agents are the K3s agent (worker) tasks; kubectl scale changes agents.replicas.
	// +kubebuilder:default={}
	// +optional
	Agents AgentsSpec `json:"agents,omitempty"`

	// Datastore is where the servers keep cluster state.
	// +kubebuilder:default={}
	// +optional
	Datastore DatastoreSpec `json:"datastore,omitempty"`

	// Network is how the tasks are networked and the cluster's address ranges.
	// +kubebuilder:default={}
	// +optional
	Network NetworkSpec `json:"network,omitempty"`

	// Kubeconfig shapes the admin kubeconfig Secret.
	// +optional
	Kubeconfig KubeconfigSpec `json:"kubeconfig,omitempty"`

	// Rollout bounds disruption when tasks are replaced.
	// +kubebuilder:default={}
	// +optional
	Rollout RolloutSpec `json:"rollout,omitempty"`

	// Remediation says how failed tasks are relaunched and when to give up.
	// +kubebuilder:default={}
	// +optional
	Remediation RemediationSpec `json:"remediation,omitempty"`
}

// MesosSpec is the cluster's Mesos framework configuration.
type MesosSpec struct {
	// Master is the Mesos master address (host:port, http(s)://host:port, or a
	// comma-separated list of them). Defaults to the operator's --mesos-master.
	// +optional
	Master string `json:"master,omitempty"`

	// Role is the Mesos role the framework subscribes with. It must be a named role: the
	// servers' persistent volumes are reserved for it (Mesos cannot reserve for "*").
	// It cannot change once the cluster exists: the volumes and reservations stay with the
	// role they were made for, and a server relaunched under another would start empty.
	// +kubebuilder:default="mesosk3s"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="mesos.role cannot change: the servers' persistent volumes and reservations belong to the role they were made for, and servers relaunched under another role would start with empty datastores"
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9_][a-zA-Z0-9_./-]*$`
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Role string `json:"role,omitempty"`

	// CredentialsSecretRef names a Secret with keys principal and secret for Mesos
	// framework authentication.
	// +optional
	CredentialsSecretRef *corev1.LocalObjectReference `json:"credentialsSecretRef,omitempty"`

	// FailoverTimeout is how long Mesos keeps the tasks running while the operator is
	// away before it kills them. At least a minute: an operator restart or a leader
	// election takes seconds, and a timeout shorter than that would have Mesos kill every
	// task of the cluster on an ordinary upgrade of the operator.
	// +kubebuilder:default="168h"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$')",message="must be a duration such as 90s, 5m or 168h"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') || duration(self) >= duration('1m')",message="failoverTimeout must be at least 1m: when the operator is away longer than this, Mesos kills every task of the cluster"
	// +optional
	FailoverTimeout *metav1.Duration `json:"failoverTimeout,omitempty"`

	// TLS configures HTTPS to the master.
	// +optional
	TLS *MesosTLS `json:"tls,omitempty"`
}

// MesosTLS configures how the master's certificate is verified.
// +kubebuilder:validation:XValidation:rule="!(has(self.caSecretRef) && has(self.insecureSkipVerify) && self.insecureSkipVerify)",message="caSecretRef and insecureSkipVerify are mutually exclusive"
type MesosTLS struct {
	// CASecretRef names a Secret whose key ca.crt holds the CA bundle for the master.
	// +optional
	CASecretRef *corev1.LocalObjectReference `json:"caSecretRef,omitempty"`
	// InsecureSkipVerify turns off verification of the master's certificate.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// NodePoolSpec is what servers and agents share.
type NodePoolSpec struct {
	// Constraints place the tasks on Mesos agents (Marathon vocabulary).
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Constraints []Constraint `json:"constraints,omitempty"`

	// Args are extra command-line arguments for k3s server / k3s agent.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Args []string `json:"args,omitempty"`

	// NodeLabels are Kubernetes labels for the nodes (k3s --node-label).
	// +optional
	NodeLabels map[string]string `json:"nodeLabels,omitempty"`

	// NodeTaints are taints for the nodes in key=value:Effect form (k3s --node-taint).
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9./_-]+(=[A-Za-z0-9._-]*)?:(NoSchedule|PreferNoSchedule|NoExecute)$`
	// +optional
	NodeTaints []string `json:"nodeTaints,omitempty"`

	// Env is extra environment for the K3s process.
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	// +optional
	Env []EnvVar `json:"env,omitempty"`
}

// ServersSpec is the K3s servers (control plane).
// +kubebuilder:validation:XValidation:rule="!has(self.resources) || !has(self.resources.disk) || quantity(string(self.resources.disk)).isGreaterThan(quantity('0'))",message="a server needs a persistent volume for its datastore: disk must be greater than zero",fieldPath=".resources.disk"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.resources) || !has(oldSelf.resources.disk) || (has(self.resources) && has(self.resources.disk) && quantity(string(self.resources.disk)).compareTo(quantity(string(oldSelf.resources.disk))) == 0)",message="servers.resources.disk cannot change on a live cluster: each server's data is on a persistent volume of that size, and Mesos cannot resize one (a new size would be a new, empty volume)",fieldPath=".resources.disk"
type ServersSpec struct {
	// Replicas is the number of servers: 1, or an odd number with EmbeddedEtcd. At most 7:
	// etcd advises against larger clusters, whose every write waits for more members.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=7
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// Resources each server task asks of Mesos. Each field left out takes its own
	// default; disk is the size of the server's persistent volume, which holds its
	// datastore, and cannot change once the cluster exists.
	// +kubebuilder:default={}
	// +optional
	Resources TaskResources `json:"resources,omitempty"`

	NodePoolSpec `json:",inline"`
}

// AgentsSpec is the K3s agents (workers).
type AgentsSpec struct {
	// Replicas is the number of agents; kubectl scale k3scluster changes it. At most 1000:
	// every agent has an entry in status.tasks, which must stay far below the API server's
	// object size limit, and its node name (<cluster>-agent-<index>) must fit 63 characters.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Replicas int32 `json:"replicas"`

	// Resources each agent task asks of Mesos. Each field left out takes its own default.
	// +kubebuilder:default={}
	// +optional
	Resources TaskResources `json:"resources,omitempty"`

	// PauseImage is the pod sandbox ("pause") image of the agents' containerd
	// (k3s agent --pause-image); empty keeps K3s's default.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	PauseImage string `json:"pauseImage,omitempty"`

	// Images are image archives (docker save or OCI layout tarballs) that the Mesos fetcher
	// brings to every agent and K3s imports into its containerd before it starts: images
	// for sites without a registry, or that no registry has.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:XValidation:rule="self.startsWith('file://') || self.startsWith('http://') || self.startsWith('https://')",message="an image archive must be a file://, http:// or https:// URL"
	// +optional
	Images []string `json:"images,omitempty"`

	NodePoolSpec `json:",inline"`
}

// TaskResources is what one task asks of Mesos.
type TaskResources struct {
	// CPUs, e.g. "1" or "500m".
	// +kubebuilder:default="1"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('0'))",message="cpus must be greater than zero"
	// +optional
	CPUs resource.Quantity `json:"cpus"`
	// Memory, e.g. "1Gi".
	// +kubebuilder:default="1Gi"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('0'))",message="memory must be greater than zero"
	// +optional
	Memory resource.Quantity `json:"memory"`
	// Disk in the sandbox (agents) or the persistent volume (servers), e.g. "2Gi".
	// +kubebuilder:default="2Gi"
	// +kubebuilder:validation:XValidation:rule="!quantity(string(self)).isLessThan(quantity('0'))",message="disk must not be negative"
	// +optional
	Disk *resource.Quantity `json:"disk,omitempty"`
}

// Constraint is a Marathon placement constraint: field (hostname or an agent attribute),
// operator, and value where the operator needs one.
// +kubebuilder:validation:XValidation:rule="self.operator in ['UNIQUE', 'CLUSTER', 'GROUP_BY'] || (has(self.value) && size(self.value) > 0)",message="operator needs a value (LIKE, UNLIKE, MAX_PER and IS do)",fieldPath=".value"
// +kubebuilder:validation:XValidation:rule="self.operator != 'UNIQUE' || !has(self.value)",message="UNIQUE takes no value",fieldPath=".value"
// +kubebuilder:validation:XValidation:rule="!(self.operator in ['MAX_PER', 'GROUP_BY']) || !has(self.value) || self.value.matches('^[1-9][0-9]*$')",message="MAX_PER and GROUP_BY take a positive whole number",fieldPath=".value"
type Constraint struct {
	// Field is hostname or the name of an agent attribute.
	// +kubebuilder:validation:XValidation:rule="self == 'hostname' || self.lowerAscii() != 'hostname'",message="the host name field is spelt hostname, in lower case: any other spelling names an agent attribute that no agent has, and the tasks would never be placed"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Field string `json:"field"`
	// Operator is one of UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER, IS.
	Operator ConstraintOperator `json:"operator"`
	// Value is the operator's argument (a regular expression for LIKE/UNLIKE, a number
	// for MAX_PER and GROUP_BY, a value for CLUSTER and IS).
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Value string `json:"value,omitempty"`
}

// EnvVar is one environment variable for the K3s process.
type EnvVar struct {
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_]*$`
	// +kubebuilder:validation:XValidation:rule="!(self in ['DATA_DIR', 'HOST', 'K3S_TOKEN', 'K3S_AGENT_TOKEN', 'K3S_URL', 'K3S_DATASTORE_ENDPOINT']) && !self.startsWith('PORT_') && !self.startsWith('MESOS_') && !self.startsWith('MESOSK3S_')",message="env name is reserved: DATA_DIR, HOST, PORT_*, MESOS_* and MESOSK3S_* are set by Mesos and the operator, and K3S_TOKEN, K3S_AGENT_TOKEN, K3S_URL and K3S_DATASTORE_ENDPOINT carry the cluster's secrets"
	Name string `json:"name"`
	// +optional
	Value string `json:"value,omitempty"`
}

// DatastoreSpec is where the servers keep cluster state.
// +kubebuilder:validation:XValidation:rule="!has(self.type) || self.type != 'External' || has(self.externalSecretRef)",message="datastore External needs externalSecretRef (a Secret with key endpoint)",fieldPath=".externalSecretRef"
// +kubebuilder:validation:XValidation:rule="!has(self.type) || self.type != 'Etcd' || !has(self.replicas) || self.replicas % 2 == 1",message="datastore Etcd needs an odd number of replicas",fieldPath=".replicas"
type DatastoreSpec struct {
	// Type is SQLite (single server), EmbeddedEtcd (HA servers, no extra task), Etcd or
	// MySQL (run by the operator as Mesos tasks with persistent volumes) or External.
	// It cannot change after creation.
	// +kubebuilder:default=SQLite
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="datastore.type cannot be changed after creation"
	// +optional
	Type DatastoreType `json:"type,omitempty"`

	// ExternalSecretRef names a Secret whose key endpoint is the K3s --datastore-endpoint,
	// for type External.
	// +optional
	ExternalSecretRef *corev1.LocalObjectReference `json:"externalSecretRef,omitempty"`

	// Replicas of the datastore task, for Etcd and MySQL.
	// +kubebuilder:validation:Minimum=1
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Image of the datastore, for Etcd and MySQL.
	// +optional
	Image string `json:"image,omitempty"`

	// Resources of each datastore task, for Etcd and MySQL.
	// +optional
	Resources *TaskResources `json:"resources,omitempty"`

	// Constraints place the datastore tasks.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Constraints []Constraint `json:"constraints,omitempty"`
}

// NetworkSpec is how tasks are networked and the cluster's address ranges.
// +kubebuilder:validation:XValidation:rule="!has(self.mode) || self.mode != 'CNI' || (has(self.name) && size(self.name) > 0)",message="network mode CNI needs the name of the Mesos/Docker network",fieldPath=".name"
type NetworkSpec struct {
	// Mode is Host (tasks use the agent's network and offered ports) or CNI (a named
	// Mesos/Docker network).
	// +kubebuilder:default=Host
	// +optional
	Mode NetworkMode `json:"mode,omitempty"`
	// Name of the CNI network, for mode CNI.
	// +optional
	Name string `json:"name,omitempty"`
	// ClusterCIDR is the pod network.
	// +kubebuilder:default="10.42.0.0/16"
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="clusterCIDR must be a CIDR such as 10.42.0.0/16"
	// +optional
	ClusterCIDR string `json:"clusterCIDR,omitempty"`
	// ServiceCIDR is the service network.
	// +kubebuilder:default="10.43.0.0/16"
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="serviceCIDR must be a CIDR such as 10.43.0.0/16"
	// +optional
	ServiceCIDR string `json:"serviceCIDR,omitempty"`
	// ClusterDNS is the cluster DNS service address, inside serviceCIDR.
	// +kubebuilder:default="10.43.0.10"
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="clusterDNS must be an IP address"
	// +optional
	ClusterDNS string `json:"clusterDNS,omitempty"`
	// ClusterDomain is the cluster's DNS domain.
	// +kubebuilder:default="cluster.local"
	// +optional
	ClusterDomain string `json:"clusterDomain,omitempty"`
}

// KubeconfigSpec shapes the admin kubeconfig Secret.
type KubeconfigSpec struct {
	// Endpoint overrides the server URL in the kubeconfig (a stable DNS name or load
	// balancer, https://host[:port]); it is also added to the server certificate SANs.
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https' && size(url(self).getHostname()) > 0",message="endpoint must be an https:// URL with a host"
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// SecretMetadata is added to the kubeconfig Secret (e.g. labels Argo CD looks for).
	// +optional
	SecretMetadata *ObjectMeta `json:"secretMetadata,omitempty"`
}

// ObjectMeta is the part of metadata a user may add to generated objects.
type ObjectMeta struct {
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// RolloutSpec bounds disruption when tasks are replaced.
type RolloutSpec struct {
	// MaxUnavailable is how many agents may be down at once during a rollout (a number
	// or a percentage). Servers always roll one at a time, each waiting for health.
	// +kubebuilder:default=1
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == string ? self.matches('^(100|[1-9]?[0-9])%$') : self >= 0",message="maxUnavailable must be a non-negative number or a percentage"
	// +optional
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
}

// RemediationSpec says how failed tasks are relaunched and when to give up.
type RemediationSpec struct {
	// RelaunchBackoff is the delay before relaunching a task that failed twice in a row; it
	// doubles with each further consecutive failure up to MaxRelaunchBackoff. A first
	// failure is relaunched at once.
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$')",message="must be a duration such as 90s, 5m or 168h"
	// +optional
	RelaunchBackoff *metav1.Duration `json:"relaunchBackoff,omitempty"`
	// MaxRelaunchBackoff caps the relaunch delay.
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$')",message="must be a duration such as 90s, 5m or 168h"
	// +optional
	MaxRelaunchBackoff *metav1.Duration `json:"maxRelaunchBackoff,omitempty"`
	// FailureThreshold is the number of consecutive failures of one task after which the
	// cluster is Stalled (it keeps retrying at the capped back-off).
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=1
	// +optional
	FailureThreshold int32 `json:"failureThreshold,omitempty"`
}

// K3sClusterStatus is what the operator observed.
type K3sClusterStatus struct {
	// ObservedGeneration is the generation the last successful reconcile acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Phase is a one-word summary; automation should read conditions.
	// +kubebuilder:validation:Enum=Pending;Provisioning;Running;Updating;Degraded;Deleting;Failed
	// +optional
	Phase string `json:"phase,omitempty"`
	// Conditions: Ready, Reconciling, Stalled, MesosConnected, DatastoreReady,
	// ServersReady, AgentsReady, KubeconfigAvailable, Paused.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// FrameworkID is the Mesos framework ID of this cluster, kept across operator restarts.
	// +optional
	FrameworkID string `json:"frameworkID,omitempty"`
	// Endpoint is the API server URL written into the kubeconfig.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// Version is the K3s version all servers run.
	// +optional
	Version string `json:"version,omitempty"`
	// Servers, Agents and Datastore count tasks per role.
	// +optional
	Servers RoleStatus `json:"servers,omitempty"`
	// +optional
	Agents RoleStatus `json:"agents,omitempty"`
	// +optional
	Datastore RoleStatus `json:"datastore,omitempty"`
	// Selector is the agents' label selector, for the scale subresource.
	// +optional
	Selector string `json:"selector,omitempty"`
	// KubeconfigSecretName names the admin kubeconfig Secret.
	// +optional
	KubeconfigSecretName string `json:"kubeconfigSecretName,omitempty"`
	// Tasks are the cluster's Mesos tasks as last observed.
	// +listType=map
	// +listMapKey=name
	// +optional
	Tasks []TaskStatus `json:"tasks,omitempty"`
}

// RoleStatus counts the tasks of one role.
type RoleStatus struct {
	// Replicas is the number of tasks that exist (launched and not terminal).
	// +optional
	Replicas int32 `json:"replicas"`
	// ReadyReplicas are running and healthy.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`
	// UpdatedReplicas run the current spec.
	// +optional
	UpdatedReplicas int32 `json:"updatedReplicas"`
	// Selector selects this role's tasks.
	// +optional
	Selector string `json:"selector,omitempty"`
}

// TaskStatus is one Mesos task as last observed.
type TaskStatus struct {
	// Name is the stable task name, e.g. server-0 or agent-3.
	Name string `json:"name"`
	// TaskID is the Mesos task ID of the current incarnation.
	// +optional
	TaskID string `json:"taskID,omitempty"`
	// Role is server, agent or datastore.
	Role string `json:"role"`
	// State is the Mesos task state, e.g. TASK_RUNNING.
	// +optional
	State string `json:"state,omitempty"`
	// Healthy is the Mesos health check result, when there is one.
	// +optional
	Healthy *bool `json:"healthy,omitempty"`
	// AgentHost is the Mesos agent's hostname.
	// +optional
	AgentHost string `json:"agentHost,omitempty"`
	// Ports are the named ports taken from the offer.
	// +optional
	Ports map[string]int32 `json:"ports,omitempty"`
	// Version is the K3s version the task runs.
	// +optional
	Version string `json:"version,omitempty"`
	// Restarts counts relaunches of this task name.
	// +optional
	Restarts int32 `json:"restarts,omitempty"`
	// ConsecutiveFailures counts failures since the task last served; at
	// spec.remediation.failureThreshold the cluster is Stalled.
	// +optional
	ConsecutiveFailures int32 `json:"consecutiveFailures,omitempty"`
	// LastFailureTime is when the task last ended without being asked to; the relaunch
	// back-off counts from it.
	// +optional
	LastFailureTime *metav1.Time `json:"lastFailureTime,omitempty"`
	// AgentID is the Mesos agent the task runs (or last ran) on; a server with a persistent
	// volume is relaunched there.
	// +optional
	AgentID string `json:"agentID,omitempty"`
	// SpecHash identifies the spec the task was launched with; the rollout replaces tasks
	// whose hash differs from the current spec's.
	// +optional
	SpecHash string `json:"specHash,omitempty"`
	// Message is the last Mesos status message or reason, if any.
	// +optional
	Message string `json:"message,omitempty"`
}

// K3sCluster is a K3s cluster run on Apache Mesos.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.agents.replicas,statuspath=.status.agents.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=k3sc,categories=mesosk3s
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.spec.version`
// +kubebuilder:printcolumn:name="Servers",type=integer,JSONPath=`.status.servers.readyReplicas`,description="Ready servers"
// +kubebuilder:printcolumn:name="Agents",type=integer,JSONPath=`.status.agents.readyReplicas`,description="Ready agents"
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.spec.agents.replicas`,description="Desired agents"
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`,priority=1
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 53",message="metadata.name must be at most 53 characters: node names are <name>-agent-<index> and must fit the 63 characters of a Kubernetes label value and a host name"
type K3sCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +kubebuilder:default={}
	Spec   K3sClusterSpec   `json:"spec,omitempty"`
	Status K3sClusterStatus `json:"status,omitempty"`
}

// K3sClusterList is a list of K3sCluster.
// +kubebuilder:object:root=true
type K3sClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []K3sCluster `json:"items"`
}
