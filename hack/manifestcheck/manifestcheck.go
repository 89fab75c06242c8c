// Package manifestcheck parses rendered Kubernetes manifests (the release manifest, the
// Helm chart's output) and checks what a production install of the operator needs, so
// that both install paths are held to the same rules.
package manifestcheck

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Parse splits a multi-document YAML stream into objects, skipping empty documents.
func Parse(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetAPIVersion() == "" || u.GetKind() == "" {
			return nil, fmt.Errorf("document %d has no apiVersion or kind", len(objs)+1)
		}
		objs = append(objs, u)
	}
}

// ParseFile parses the YAML file at path.
func ParseFile(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data)
}

// Find returns the object of kind and name (any namespace), or nil.
func Find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// OfKind returns the objects of kind.
func OfKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// Decode converts o into the typed object into, failing on fields the type does not
// have (a misspelt or misplaced field in a template).
func Decode(o *unstructured.Unstructured, into any) error {
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, into, true); err != nil {
		return fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err)
	}
	return nil
}

// ProbePort and MetricsPort are the operator's defaults (main.go).
const (
	ProbePort   = 8081
	MetricsPort = 8080
)

// DeploymentProblems lists what keeps d from being the production operator Deployment:
// leader election, the probes and the metrics port, resources, a locked-down security
// context, and a default Mesos master. An empty list means it is fine.
func DeploymentProblems(d *appsv1.Deployment) []string {
	var p []string
	add := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }
	spec := d.Spec.Template.Spec
	var c *corev1.Container
	for i := range spec.Containers {
		if spec.Containers[i].Name == "manager" {
			c = &spec.Containers[i]
		}
	}
	if c == nil {
		return []string{"no container named manager"}
	}
	if !slices.Contains(c.Args, "--leader-elect") && !slices.Contains(c.Args, "--leader-elect=true") {
		add("args %q lack --leader-elect", c.Args)
	}
	if spec.ServiceAccountName == "" {
		add("no serviceAccountName")
	}
	probe := func(what string, pr *corev1.Probe, path string) {
		if pr == nil || pr.HTTPGet == nil {
			add("%s probe is not an HTTP GET", what)
			return
		}
		if pr.HTTPGet.Path != path || ContainerPort(c, pr.HTTPGet.Port) != ProbePort {
			add("%s probe is %s on port %s, want %s on %d", what, pr.HTTPGet.Path, pr.HTTPGet.Port.String(), path, ProbePort)
		}
	}
	probe("liveness", c.LivenessProbe, "/healthz")
	probe("readiness", c.ReadinessProbe, "/readyz")
	if ContainerPort(c, intstr.FromString("metrics")) != MetricsPort {
		add("no container port named metrics on %d", MetricsPort)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		add("no CPU and memory requests: %v", c.Resources.Requests)
	}
	if c.Resources.Limits.Memory().IsZero() {
		add("no memory limit")
	}
	if psc := spec.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		add("pod securityContext does not set runAsNonRoot: true")
	}
	csc := c.SecurityContext
	switch {
	case csc == nil:
		add("no container securityContext")
	default:
		if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
			add("root filesystem is not read-only")
		}
		if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
			add("privilege escalation is not disabled")
		}
		if csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") {
			add("capabilities do not drop ALL")
		}
		if csc.Privileged != nil && *csc.Privileged {
			add("privileged")
		}
	}
	if EnvValue(c, "MESOS_MASTER") == "" && !slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--mesos-master=") }) {
		add("no MESOS_MASTER and no --mesos-master")
	}
	return p
}

// ContainerPort resolves a probe's or Service's port (a number or a port name) against
// the container's ports; 0 when a name is not declared.
func ContainerPort(c *corev1.Container, port intstr.IntOrString) int32 {
	if port.Type == intstr.Int {
		return port.IntVal
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return p.ContainerPort
		}
	}
	return 0
}

// EnvValue is the literal value of the container's environment variable name.
func EnvValue(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// Image is the manager container's image.
func Image(d *appsv1.Deployment) string {
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "manager" {
			return c.Image
		}
	}
	return ""
}

// ServiceProblems lists what keeps svc from being the metrics Service of d: it must
// select d's pods and send its metrics port to the container's metrics port.
func ServiceProblems(svc *corev1.Service, d *appsv1.Deployment) []string {
	var p []string
	labels := d.Spec.Template.Labels
	if len(svc.Spec.Selector) == 0 {
		p = append(p, "the Service selects nothing")
	}
	for k, v := range svc.Spec.Selector {
		if labels[k] != v {
			p = append(p, fmt.Sprintf("the Service selects %s=%s, the pods have %q", k, v, labels[k]))
		}
	}
	if svc.Namespace != d.Namespace {
		p = append(p, fmt.Sprintf("the Service is in namespace %q, the Deployment in %q", svc.Namespace, d.Namespace))
	}
	var c *corev1.Container
	for i := range d.Spec.Template.Spec.Containers {
		if d.Spec.Template.Spec.Containers[i].Name == "manager" {
			c = &d.Spec.Template.Spec.Containers[i]
		}
	}
	found := false
	for _, port := range svc.Spec.Ports {
		if port.Name == "metrics" && c != nil && ContainerPort(c, port.TargetPort) == MetricsPort {
			found = true
		}
	}
	if !found {
		p = append(p, fmt.Sprintf("no port named metrics that targets the container's %d: %+v", MetricsPort, svc.Spec.Ports))
	}
	return p
}

// GeneratedCRD and GeneratedRole are controller-gen's output, relative to the repository root.
const (
	GeneratedCRD  = "config/crd/bases/cluster.mesosk3s.io_k3sclusters.yaml"
	GeneratedRole = "config/rbac/role.yaml"
)

// LoadGenerated reads the CRD and the manager ClusterRole's rules that controller-gen
// wrote under root.
func LoadGenerated(root string) (crd *unstructured.Unstructured, rules []rbacv1.PolicyRule, err error) {
	crds, err := ParseFile(root + "/" + GeneratedCRD)
	if err != nil {
		return nil, nil, err
	}
	if len(crds) != 1 {
		return nil, nil, fmt.Errorf("%s holds %d objects", GeneratedCRD, len(crds))
	}
	roles, err := ParseFile(root + "/" + GeneratedRole)
	if err != nil {
		return nil, nil, err
	}
	if len(roles) != 1 {
		return nil, nil, fmt.Errorf("%s holds %d objects", GeneratedRole, len(roles))
	}
	var role rbacv1.ClusterRole
	if err := Decode(roles[0], &role); err != nil {
		return nil, nil, err
	}
	return crds[0], role.Rules, nil
}

// SameObject reports whether a and b are equal, ignoring the metadata keys that an
// install path may add (labels, annotations); it says where they differ.
func SameObject(a, b *unstructured.Unstructured, ignoreMetadata ...string) (bool, string) {
	strip := func(u *unstructured.Unstructured) map[string]any {
		c := u.DeepCopy().Object
		if md, ok := c["metadata"].(map[string]any); ok {
			for _, k := range ignoreMetadata {
				delete(md, k)
			}
		}
		return c
	}
	x, y := strip(a), strip(b)
	if reflect.DeepEqual(x, y) {
		return true, ""
	}
	xs, _ := yaml.Marshal(x)
	ys, _ := yaml.Marshal(y)
	return false, firstDifference(string(xs), string(ys))
}

// SameRules reports whether two rule lists grant the same, in the same order.
func SameRules(a, b []rbacv1.PolicyRule) bool {
	norm := func(r []rbacv1.PolicyRule) []rbacv1.PolicyRule {
		out := make([]rbacv1.PolicyRule, len(r))
		for i, x := range r {
			out[i] = rbacv1.PolicyRule{Verbs: x.Verbs, APIGroups: x.APIGroups, Resources: x.Resources,
				ResourceNames: x.ResourceNames, NonResourceURLs: x.NonResourceURLs}
			for _, f := range []*[]string{&out[i].Verbs, &out[i].APIGroups, &out[i].Resources, &out[i].ResourceNames, &out[i].NonResourceURLs} {
				if len(*f) == 0 {
					*f = nil
				}
			}
		}
		return out
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

func firstDifference(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d: %q vs %q", i+1, x, y)
		}
	}
	return ""
}
