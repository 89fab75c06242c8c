// Package argocd holds the Argo CD health check for K3sCluster; this test runs the Lua
// script the way Argo CD does, on sample objects.
package argocd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

const healthKey = "resource.customizations.health.cluster.mesosk3s.io_K3sCluster"

type health struct{ status, message string }

func TestHealthCheck(t *testing.T) {
	script := readFile(t, "health.lua")
	for _, tc := range []struct {
		name   string
		object string
		want   health
	}{{
		name: "spec.paused",
		object: `
metadata: {generation: 3}
spec: {paused: true}
status:
  observedGeneration: 3
  conditions: [{type: Ready, status: "True", message: up}]`,
		want: health{"Suspended", "Reconciliation is paused (spec.paused)"},
	}, {
		name: "paused annotation, whatever its value",
		object: `
metadata: {generation: 1, annotations: {cluster.x-k8s.io/paused: ""}}
status:
  observedGeneration: 1
  conditions: [{type: Stalled, status: "True", message: broken}]`,
		want: health{"Suspended", "Reconciliation is paused (cluster.x-k8s.io/paused annotation)"},
	}, {
		name: "stalled wins over a stale observedGeneration",
		object: `
metadata: {generation: 4}
status:
  observedGeneration: 2
  conditions:
  - {type: Ready, status: "False", reason: TooManyFailures, message: server-0 failed 5 times}
  - {type: Reconciling, status: "False", message: "stalled: server-0 failed 5 times"}
  - {type: Stalled, status: "True", reason: TooManyFailures, message: server-0 failed 5 times}`,
		want: health{"Degraded", "server-0 failed 5 times"},
	}, {
		name: "spec changed, not observed yet",
		object: `
metadata: {generation: 5}
status:
  observedGeneration: 4
  conditions:
  - {type: Ready, status: "True", message: up}
  - {type: Reconciling, status: "False"}
  - {type: Stalled, status: "False"}`,
		want: health{"Progressing", "Waiting for the operator to act on generation 5"},
	}, {
		name: "observedGeneration not set yet",
		object: `
metadata: {generation: 1}
status:
  conditions: [{type: Reconciling, status: "True", message: not connected to Mesos yet}]`,
		want: health{"Progressing", "Waiting for the operator to act on generation 1"},
	}, {
		name: "reconciling",
		object: `
metadata: {generation: 2}
status:
  observedGeneration: 2
  conditions:
  - {type: Ready, status: "True", message: up}
  - {type: Reconciling, status: "True", reason: Scaling, message: "1/3 agents ready; tasks are starting"}
  - {type: Stalled, status: "False"}`,
		want: health{"Progressing", "1/3 agents ready; tasks are starting"},
	}, {
		name: "ready",
		object: `
metadata: {generation: 2}
status:
  observedGeneration: 2
  conditions:
  - {type: Ready, status: "True", message: the K3s API server is ready and the kubeconfig Secret is written}
  - {type: Reconciling, status: "False"}
  - {type: Stalled, status: "False"}`,
		want: health{"Healthy", "the K3s API server is ready and the kubeconfig Secret is written"},
	}, {
		name:   "no status yet",
		object: `metadata: {generation: 1}`,
		want:   health{"Progressing", "Waiting for the operator"},
	}, {
		name:   "empty status",
		object: "metadata: {generation: 1}\nstatus: {}",
		want:   health{"Progressing", "Waiting for the operator"},
	}, {
		name: "not ready, neither reconciling nor stalled",
		object: `
metadata: {generation: 1}
status:
  observedGeneration: 1
  conditions: [{type: Ready, status: Unknown, message: not observed yet}]`,
		want: health{"Progressing", "not observed yet"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := runHealth(script, tc.object)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("health = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestPatchCarriesTheScript keeps argocd-cm-patch.yaml from drifting away from health.lua.
func TestPatchCarriesTheScript(t *testing.T) {
	var patch struct {
		APIVersion string
		Kind       string
		Metadata   struct{ Name string }
		Data       map[string]string
	}
	if err := yaml.UnmarshalStrict([]byte(readFile(t, "argocd-cm-patch.yaml")), &patch); err != nil {
		t.Fatal(err)
	}
	if patch.Kind != "ConfigMap" || patch.Metadata.Name != "argocd-cm" {
		t.Errorf("patch targets %s %s, want ConfigMap argocd-cm", patch.Kind, patch.Metadata.Name)
	}
	if got, want := patch.Data[healthKey], readFile(t, "health.lua"); got != want {
		t.Errorf("argocd-cm-patch.yaml's %s differs from health.lua; regenerate it by indenting health.lua by four spaces under the key", healthKey)
	}
}

// TestComponentPatchesArgoCDConfigMap renders the kustomize Component the way a user's
// Argo CD kustomization would include it, and checks the key lands in argocd-cm next to
// the settings already there.
func TestComponentPatchesArgoCDConfigMap(t *testing.T) {
	dir := t.TempDir()
	here, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	// kustomize refuses absolute paths to components.
	component, err := filepath.Rel(dir, here)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "argocd-cm.yaml"), `apiVersion: v1
kind: ConfigMap
metadata: {name: argocd-cm, namespace: argocd}
data: {url: https://argocd.example.com}
`)
	writeFile(t, filepath.Join(dir, "kustomization.yaml"), fmt.Sprintf(`resources: [argocd-cm.yaml]
components: [%s]
`, component))
	out, err := exec.Command("kubectl", "kustomize", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	var cm struct{ Data map[string]string }
	if err := yaml.Unmarshal(out, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["url"] != "https://argocd.example.com" {
		t.Errorf("the component dropped argocd-cm's existing data:\n%s", out)
	}
	if cm.Data[healthKey] != readFile(t, "health.lua") {
		t.Errorf("rendered argocd-cm lacks the health check:\n%s", out)
	}
}

// runHealth evaluates the script like Argo CD: only the safe standard libraries, the
// object as the global obj, and the returned table's status and message.
func runHealth(script, objectYAML string) (health, error) {
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(objectYAML), &obj); err != nil {
		return health{}, err
	}
	obj["apiVersion"], obj["kind"] = "cluster.mesosk3s.io/v1alpha1", "K3sCluster"
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for name, open := range map[string]lua.LGFunction{
		lua.BaseLibName: lua.OpenBase, lua.TabLibName: lua.OpenTable,
		lua.StringLibName: lua.OpenString, lua.MathLibName: lua.OpenMath,
	} {
		L.Push(L.NewFunction(open))
		L.Push(lua.LString(name))
		L.Call(1, 0)
	}
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		return health{}, err
	}
	hs, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return health{}, fmt.Errorf("script returned %s, want a table", L.Get(-1).Type())
	}
	return health{status: lua.LVAsString(hs.RawGetString("status")), message: lua.LVAsString(hs.RawGetString("message"))}, nil
}

// toLua converts decoded JSON as Argo CD does: objects and arrays become tables (arrays
// 1-based), numbers float64.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range v {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range v {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case nil:
		return lua.LNil
	default:
		panic(fmt.Sprintf("unexpected JSON value %T", v))
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(strings.TrimLeft(content, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
}
