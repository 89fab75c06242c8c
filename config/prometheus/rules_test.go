// Package prometheus holds the tests of config/prometheus: the alerts name only metrics
// that exist, the kube-state-metrics configuration reads fields the CRD has, and
// docs/metrics.md lists what the operator exports.
package prometheus

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	mc "github.com/mesosk3s/mesosk3s/hack/manifestcheck"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

const root = "../.."

// controllerRuntimeMetrics are the series controller-runtime v0.25.2 registers in the
// registry the operator serves (pkg/internal/controller/metrics, pkg/internal/metrics,
// pkg/metrics, pkg/client), besides go_* and process_*. Checked against a running
// operator's /metrics, where the vectors without samples (reconcile_time_seconds,
// workqueue_depth, leader_election_*) appear once they have some.
var controllerRuntimeMetrics = []string{
	"controller_runtime_reconcile_total", "controller_runtime_reconcile_errors_total",
	"controller_runtime_terminal_reconcile_errors_total", "controller_runtime_reconcile_panics_total",
	"controller_runtime_reconcile_time_seconds", "controller_runtime_reconcile_timeouts_total",
	"controller_runtime_max_concurrent_reconciles", "controller_runtime_active_workers",
	"controller_runtime_client_consistency_wait_duration_seconds",
	"workqueue_depth", "workqueue_adds_total", "workqueue_queue_duration_seconds", "workqueue_work_duration_seconds",
	"workqueue_unfinished_work_seconds", "workqueue_longest_running_processor_seconds", "workqueue_retries_total",
	"leader_election_master_status", "leader_election_slowpath_total",
	"rest_client_requests_total",
}

// metricRef finds the metric names in a PromQL expression by their prefixes.
var metricRef = regexp.MustCompile(`\b(?:mesosk3s|kube_k3scluster|controller_runtime|workqueue|leader_election|rest_client)_[a-z0-9_]+`)

type rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type prometheusRule struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
	Spec       struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []rule `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// TestRulesUseMetricsThatExist: every alert is well formed and every metric an active
// rule names is exported by the operator or defined in kube-state-metrics.yaml.
func TestRulesUseMetricsThatExist(t *testing.T) {
	var pr prometheusRule
	readYAML(t, "rules.yaml", &pr)
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" {
		t.Fatalf("rules.yaml is a %s %s", pr.APIVersion, pr.Kind)
	}
	known := map[string]string{}
	for _, n := range bridgeMetrics(t) {
		known[n] = "the Mesos bridge"
	}
	for _, n := range controllerRuntimeMetrics {
		known[n] = "controller-runtime"
	}
	for _, n := range stateMetrics(t) {
		known[n] = "kube-state-metrics.yaml"
	}
	seen := map[string]bool{}
	n := 0
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || seen[r.Alert] {
				t.Errorf("group %s: rule without a unique alert name: %q", g.Name, r.Alert)
			}
			seen[r.Alert] = true
			if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
				t.Errorf("%s: severity %q", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs a summary and a description", r.Alert)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") || strings.Count(r.Expr, "{") != strings.Count(r.Expr, "}") {
				t.Errorf("%s: unbalanced brackets in %q", r.Alert, r.Expr)
			}
			refs := metricRef.FindAllString(r.Expr, -1)
			if len(refs) == 0 {
				t.Errorf("%s: names no metric", r.Alert)
			}
			for _, m := range refs {
				if _, ok := known[m]; !ok {
					t.Errorf("%s: metric %s does not exist; put the alert under PLANNED or use an existing metric", r.Alert, m)
				}
			}
		}
	}
	if n < 5 {
		t.Errorf("only %d alerts", n)
	}
}

// TestStateMetricsPathsExist: every path in kube-state-metrics.yaml is a field of the
// K3sCluster CRD (relative paths inside the list or object the metric walks).
func TestStateMetricsPathsExist(t *testing.T) {
	crdObj, _, err := mc.LoadGenerated(root)
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := mc.Decode(crdObj, &crd); err != nil {
		t.Fatal(err)
	}
	var cfg stateConfig
	readYAML(t, "kube-state-metrics.yaml", &cfg)
	if len(cfg.Spec.Resources) != 1 {
		t.Fatalf("%d resources", len(cfg.Spec.Resources))
	}
	res := cfg.Spec.Resources[0]
	gvk := res.GroupVersionKind
	if gvk.Group != crd.Spec.Group || gvk.Kind != crd.Spec.Names.Kind {
		t.Fatalf("resource %+v is not the CRD's %s %s", gvk, crd.Spec.Group, crd.Spec.Names.Kind)
	}
	var schema *apiextensionsv1.JSONSchemaProps
	for _, v := range crd.Spec.Versions {
		if v.Name == gvk.Version {
			schema = v.Schema.OpenAPIV3Schema
		}
	}
	if schema == nil {
		t.Fatalf("the CRD has no version %s", gvk.Version)
	}
	for label, path := range res.LabelsFromPath {
		if _, err := lookup(schema, path); err != nil {
			t.Errorf("labelsFromPath %s: %v", label, err)
		}
	}
	for _, m := range res.Metrics {
		var e stateEach
		switch m.Each.Type {
		case "Gauge":
			e = m.Each.Gauge
		case "StateSet":
			e = m.Each.StateSet
		case "Info":
			e = m.Each.Info
		default:
			t.Errorf("%s: type %q", m.Name, m.Each.Type)
			continue
		}
		base, err := lookup(schema, e.Path)
		if err != nil {
			t.Errorf("%s: path: %v", m.Name, err)
			continue
		}
		if base.Type == "array" && base.Items != nil {
			base = base.Items.Schema
		}
		if m.Each.Type == "StateSet" {
			for _, v := range e.List {
				if len(base.Enum) > 0 && !enumHas(base, v) {
					t.Errorf("%s: %s is not a value of %v", m.Name, v, e.Path)
				}
			}
		}
		for label, p := range e.LabelsFromPath {
			if _, err := lookup(base, p); err != nil {
				t.Errorf("%s: label %s: %v", m.Name, label, err)
			}
		}
		if len(e.ValueFrom) > 0 {
			v, err := lookup(base, e.ValueFrom)
			if err != nil {
				t.Errorf("%s: valueFrom: %v", m.Name, err)
			} else if v.Type != "integer" && v.Type != "number" && v.Type != "boolean" && v.Type != "string" {
				t.Errorf("%s: valueFrom %v is a %s", m.Name, e.ValueFrom, v.Type)
			}
		}
	}
}

// TestMetricsDocumented: docs/metrics.md names every metric the bridge registers, every
// kube-state-metrics series, every alert and every planned metric.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(root, "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	want = append(want, bridgeMetrics(t)...)
	want = append(want, stateMetrics(t)...)
	var pr prometheusRule
	readYAML(t, "rules.yaml", &pr)
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			want = append(want, r.Alert)
		}
	}
	raw, err := os.ReadFile("rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.Contains(line, "PLANNED") {
			want = append(want, metricRef.FindAllString(line, -1)...)
		}
	}
	for _, w := range want {
		if !strings.Contains(string(doc), "`"+w) {
			t.Errorf("docs/metrics.md does not mention `%s`", w)
		}
	}
}

// bridgeMetrics are the names the Mesos bridge registers, read from its collectors.
func bridgeMetrics(t *testing.T) []string {
	t.Helper()
	rec := &recorder{}
	b, err := mesosbridge.New(mesosbridge.Options{Metrics: rec})
	if err != nil {
		t.Fatal(err)
	}
	_ = b // its notifier goroutine lives until the test binary exits
	if len(rec.names) == 0 {
		t.Fatal("the bridge registered no metric")
	}
	sort.Strings(rec.names)
	return rec.names
}

// recorder is a prometheus.Registerer that only notes the names of what is registered.
type recorder struct{ names []string }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *recorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			return fmt.Errorf("cannot read the name of %s", d)
		}
		r.names = append(r.names, m[1])
	}
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *recorder) Unregister(prometheus.Collector) bool { return true }

type stateEach struct {
	Path           []string            `json:"path"`
	LabelsFromPath map[string][]string `json:"labelsFromPath"`
	ValueFrom      []string            `json:"valueFrom"`
	LabelName      string              `json:"labelName"`
	List           []string            `json:"list"`
	NilIsZero      bool                `json:"nilIsZero"`
}

type stateConfig struct {
	Kind string `json:"kind"`
	Spec struct {
		Resources []struct {
			GroupVersionKind struct{ Group, Version, Kind string } `json:"groupVersionKind"`
			MetricNamePrefix string                                `json:"metricNamePrefix"`
			LabelsFromPath   map[string][]string                   `json:"labelsFromPath"`
			Metrics          []struct {
				Name         string            `json:"name"`
				Help         string            `json:"help"`
				CommonLabels map[string]string `json:"commonLabels"`
				Each         struct {
					Type     string    `json:"type"`
					Gauge    stateEach `json:"gauge"`
					StateSet stateEach `json:"stateSet"`
					Info     stateEach `json:"info"`
				} `json:"each"`
			} `json:"metrics"`
		} `json:"resources"`
	} `json:"spec"`
}

// stateMetrics are the series names kube-state-metrics makes from kube-state-metrics.yaml.
func stateMetrics(t *testing.T) []string {
	t.Helper()
	var cfg stateConfig
	readYAML(t, "kube-state-metrics.yaml", &cfg)
	if cfg.Kind != "CustomResourceStateMetrics" {
		t.Fatalf("kube-state-metrics.yaml is a %q", cfg.Kind)
	}
	seen := map[string]bool{}
	var names []string
	for _, r := range cfg.Spec.Resources {
		for _, m := range r.Metrics {
			if m.Help == "" {
				t.Errorf("%s has no help", m.Name)
			}
			n := r.MetricNamePrefix + "_" + m.Name
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	return names
}

// objectMeta are the metadata fields a metric may read (the CRD schema leaves metadata
// to the API server's ObjectMeta).
var objectMeta = map[string]string{"name": "string", "namespace": "string", "uid": "string", "creationTimestamp": "string", "generation": "integer"}

// lookup walks a CRD schema along path, stepping into list items on the way.
func lookup(s *apiextensionsv1.JSONSchemaProps, path []string) (*apiextensionsv1.JSONSchemaProps, error) {
	if len(path) > 0 && path[0] == "metadata" && s.Properties["metadata"].Properties == nil {
		if typ, ok := objectMeta[strings.Join(path[1:], ".")]; ok {
			return &apiextensionsv1.JSONSchemaProps{Type: typ}, nil
		}
		return nil, fmt.Errorf("%v: not an ObjectMeta field this test knows", path)
	}
	for _, seg := range path {
		if s.Type == "array" && s.Items != nil && s.Items.Schema != nil {
			s = s.Items.Schema
		}
		p, ok := s.Properties[seg]
		if !ok {
			return nil, fmt.Errorf("%v: no field %q", path, seg)
		}
		s = &p
	}
	return s, nil
}

func enumHas(s *apiextensionsv1.JSONSchemaProps, v string) bool {
	for _, e := range s.Enum {
		if strings.Trim(string(e.Raw), `"`) == v {
			return true
		}
	}
	return false
}

func readYAML(t *testing.T, file string, into any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}
