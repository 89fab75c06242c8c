package mesosbridge

import (
	"errors"
	"fmt"
	"regexp"
	"sort"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Label keys the bridge writes on frameworks and tasks. They let an operator (and the
// bridge after a restart) tell which cluster incarnation a framework or task belongs to.
const (
	LabelClusterNamespace = "mesosk3s.io/cluster-namespace"
	LabelClusterName      = "mesosk3s.io/cluster-name"
	LabelClusterUID       = "mesosk3s.io/cluster-uid"
	LabelTaskRole         = "mesosk3s.io/role"
	LabelTaskIndex        = "mesosk3s.io/index"
	LabelSpecHash         = "mesosk3s.io/spec-hash"
	// LabelTaskName is on reservations, which outlive the task that asked for them.
	LabelTaskName = "mesosk3s.io/task"
)

// roleName is what a role may be called (src/common/roles.cpp validate, narrowed): the
// command prologue names a volume's directory by its role.
var roleName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_./-]*$`)

// FrameworkLabels are the labels on the framework, sorted by key.
func (c FrameworkConfig) FrameworkLabels() map[string]string {
	return map[string]string{
		LabelClusterNamespace: c.ClusterNamespace,
		LabelClusterName:      c.ClusterName,
		LabelClusterUID:       c.ClusterUID,
	}
}

// Validate reports configuration the master would refuse or that would make tasks
// unattributable, before any connection is attempted.
func (c FrameworkConfig) Validate() error {
	var errs []error
	if c.ClusterNamespace == "" || c.ClusterName == "" {
		errs = append(errs, errors.New("cluster namespace and name are required"))
	}
	if c.Name == "" {
		errs = append(errs, errors.New("a framework name is required"))
	}
	if c.User == "" {
		errs = append(errs, errors.New("the user tasks run as is required"))
	}
	if c.ClusterUID == "" {
		errs = append(errs, errors.New("cluster UID is required"))
	}
	if c.Role == "" || c.Role == "*" {
		errs = append(errs, fmt.Errorf("role %q: a named role is required (MULTI_ROLE)", c.Role))
	} else if !roleName.MatchString(c.Role) {
		errs = append(errs, fmt.Errorf("role %q: letters, digits and _ . - /, not starting with . - or /", c.Role))
	}
	if c.Secret != "" && c.Principal == "" {
		errs = append(errs, errors.New("a credential secret needs a principal"))
	}
	if c.FailoverTimeout < 0 {
		errs = append(errs, errors.New("failover timeout must not be negative"))
	}
	if len(c.Masters) == 0 {
		errs = append(errs, errors.New("at least one Mesos master address is required"))
	}
	return errors.Join(errs...)
}

// frameworkInfo is the FrameworkInfo of the SUBSCRIBE call, per the Mesos contract in
// DESIGN.md: named, labelled, one role with MULTI_ROLE, partition aware, checkpointing.
func frameworkInfo(c FrameworkConfig) mesos.FrameworkInfo {
	info := mesos.FrameworkInfo{
		User:            c.User,
		Name:            c.Name,
		FailoverTimeout: ptr(c.FailoverTimeout.Seconds()),
		Checkpoint:      ptr(true),
		Roles:           []string{c.Role},
		Capabilities: []mesos.FrameworkInfo_Capability{
			{Type: mesos.FrameworkInfo_Capability_MULTI_ROLE},
			{Type: mesos.FrameworkInfo_Capability_PARTITION_AWARE},
			{Type: mesos.FrameworkInfo_Capability_TASK_KILLING_STATE},
		},
		Labels: mesosLabels(c.FrameworkLabels()),
	}
	if c.Principal != "" {
		info.Principal = ptr(c.Principal)
	}
	if c.FrameworkID != "" {
		info.ID = &mesos.FrameworkID{Value: c.FrameworkID}
	}
	return info
}

// mesosLabels converts a map into Mesos labels sorted by key, so that equal maps give
// byte-identical protobufs (tests and diffs rely on it).
func mesosLabels(m map[string]string) *mesos.Labels {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	labels := &mesos.Labels{Labels: make([]mesos.Label, 0, len(keys))}
	for _, k := range keys {
		labels.Labels = append(labels.Labels, mesos.Label{Key: k, Value: ptr(m[k])})
	}
	return labels
}

func ptr[T any](v T) *T { return &v }
