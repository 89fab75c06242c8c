package v1alpha1

// Condition types. Ready, Reconciling and Stalled follow the kstatus convention so that
// kubectl wait, Flux and Argo CD read the object correctly; the others say which part of
// the cluster is (not) in order.
const (
	ConditionReady               = "Ready"
	ConditionReconciling         = "Reconciling"
	ConditionStalled             = "Stalled"
	ConditionMesosConnected      = "MesosConnected"
	ConditionDatastoreReady      = "DatastoreReady"
	ConditionServersReady        = "ServersReady"
	ConditionAgentsReady         = "AgentsReady"
	ConditionKubeconfigAvailable = "KubeconfigAvailable"
	ConditionPaused              = "Paused"
)

// Condition reasons. Each names a situation a person can act on; the condition's message
// carries the details.
const (
	// Generic.
	ReasonReconciling       = "Reconciling"
	ReasonReady             = "Ready"
	ReasonNotObserved       = "NotObservedYet"
	ReasonPaused            = "Paused"
	ReasonNotPaused         = "NotPaused"
	ReasonDeleting          = "Deleting"
	ReasonUnsupportedSpec   = "UnsupportedSpec"
	ReasonInvalidSpec       = "InvalidSpec"
	ReasonTooManyFailures   = "TooManyFailures"
	ReasonDataLost          = "DataLost"
	ReasonNoProgress        = "NoProgress"
	ReasonWaitingForServers = "WaitingForServers"

	// MesosConnected.
	ReasonSubscribed          = "Subscribed"
	ReasonSubscribing         = "Subscribing"
	ReasonMesosUnreachable    = "MesosUnreachable"
	ReasonMesosUnauthorized   = "MesosUnauthorized"
	ReasonMesosRefused        = "MesosRefused"
	ReasonMesosNoLeader       = "MesosNoLeader"
	ReasonCredentialsNotFound = "CredentialsNotFound"
	ReasonFrameworkTornDown   = "FrameworkTornDown"
	// ReasonFrameworkRemoved: Mesos removed the cluster's framework (failover timeout, or a
	// Mesos operator's teardown) and killed its tasks; the operator registers a new one.
	ReasonFrameworkRemoved = "FrameworkRemoved"
	// ReasonFrameworkFailedOver: another scheduler took the framework over; this operator
	// stands down for a while instead of taking it back.
	ReasonFrameworkFailedOver  = "FrameworkFailedOver"
	ReasonForceDeleteRequested = "ForceDeleteRequested"

	// Tasks (DatastoreReady, ServersReady, AgentsReady).
	ReasonWaitingForOffers = "WaitingForOffers"
	ReasonTasksStarting    = "TasksStarting"
	ReasonTasksUnhealthy   = "TasksUnhealthy"
	ReasonTasksFailed      = "TasksFailed"
	ReasonScaling          = "Scaling"
	ReasonRollingUpdate    = "RollingUpdate"
	ReasonAPINotReady      = "APIServerNotReady"
	// ReasonControlPlaneNotWorking (ServersReady): the API answers, but no
	// kube-controller-manager or kube-scheduler acts (the control-plane probe).
	ReasonControlPlaneNotWorking = "ControlPlaneNotWorking"
	ReasonEmbedded               = "Embedded"
	ReasonExternal               = "External"
	ReasonExternalNotFound       = "ExternalSecretNotFound"

	// KubeconfigAvailable.
	ReasonKubeconfigWritten  = "KubeconfigWritten"
	ReasonWaitingForEndpoint = "WaitingForEndpoint"
	ReasonPKIError           = "PKIError"
	// ReasonSecretLost (Stalled): the <name>-ca or <name>-token Secret of a cluster that
	// exists on Mesos is gone or damaged.
	ReasonSecretLost = "SecretLost"
)

// Phases: a one-word summary for people; automation reads the conditions.
const (
	PhasePending      = "Pending"
	PhaseProvisioning = "Provisioning"
	PhaseRunning      = "Running"
	PhaseUpdating     = "Updating"
	PhaseDegraded     = "Degraded"
	PhaseDeleting     = "Deleting"
	PhaseFailed       = "Failed"
)

// Well-known labels, annotations and finalizers.
const (
	// ClusterNameLabel marks every object the operator creates for a cluster (Cluster API's label).
	ClusterNameLabel = "cluster.x-k8s.io/cluster-name"
	// PausedAnnotation pauses reconciliation, as in Cluster API.
	PausedAnnotation = "cluster.x-k8s.io/paused"
	// ForceDeleteAnnotation lets a person give up on Mesos when deleting: the finalizer is
	// removed even if the tasks could not be confirmed dead.
	ForceDeleteAnnotation = "cluster.mesosk3s.io/force-delete"

	// AcceptDataLossAnnotation lets a cluster whose every server lost its agent, and its
	// persistent volume with it, start again with empty servers (same CAs and tokens).
	// Without it the cluster is Stalled (DataLost) and nothing is launched: an empty
	// server would report Ready with none of the cluster's objects.
	AcceptDataLossAnnotation = "cluster.mesosk3s.io/accept-data-loss"
	// Finalizer keeps the object until its Mesos framework is torn down.
	Finalizer = "cluster.mesosk3s.io/finalizer"
	// RoleLabel carries a task's role (server, agent, datastore) in status selectors.
	RoleLabel = "cluster.mesosk3s.io/role"
	// KubeconfigSecretType is Cluster API's Secret type for kubeconfigs.
	KubeconfigSecretType = "cluster.x-k8s.io/secret"
)
