package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/events"
)

func podOn(node, name string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	for _, m := range mutate {
		m(p)
	}
	return p
}

// A drain cordons the Node, evicts what kubectl drain evicts (not DaemonSet pods, mirror
// pods or finished ones), waits while evicted pods terminate or a budget refuses, and
// gives up after drainTimeout saying what stayed.
func TestDrainNodeEvictsWhatKubectlDrainEvicts(t *testing.T) {
	yes := true
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "demo-agent-1"}}
	cs := fake.NewSimpleClientset(node,
		podOn("demo-agent-1", "web"),
		podOn("demo-agent-1", "guarded"),
		podOn("demo-agent-1", "ds", func(p *corev1.Pod) {
			p.OwnerReferences = []metav1.OwnerReference{{Kind: "DaemonSet", Name: "x", Controller: &yes}}
		}),
		podOn("demo-agent-1", "static", func(p *corev1.Pod) { p.Annotations = map[string]string{annotationMirrorPod: "x"} }),
		podOn("demo-agent-1", "done", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
		podOn("demo-agent-2", "elsewhere"),
	)
	var evicted []string
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		name := a.(k8stesting.CreateAction).GetObject().(metav1.Object).GetName()
		evicted = append(evicted, name)
		if name == "guarded" {
			return true, nil, apierrors.NewTooManyRequests("budget", 1)
		}
		return true, nil, cs.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, "default", name)
	})
	// The fake lists ignore field selectors: filter by node as the API server does.
	cs.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj, err := cs.Tracker().List(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, "")
		if err != nil {
			return true, nil, err
		}
		list := obj.(*corev1.PodList)
		want := strings.TrimPrefix(a.(k8stesting.ListAction).GetListRestrictions().Fields.String(), "spec.nodeName=")
		out := &corev1.PodList{}
		for _, p := range list.Items {
			if p.Spec.NodeName == want {
				out.Items = append(out.Items, p)
			}
		}
		return true, out, nil
	})
	ctx := context.Background()
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

	done, cordoned, msg, err := drainNode(ctx, cs, "demo-agent-1", start)
	if err != nil || done || !cordoned {
		t.Fatalf("first pass: done=%v msg=%q err=%v, want waiting for the guarded pod", done, msg, err)
	}
	if strings.Join(evicted, ",") != "web,guarded" && strings.Join(evicted, ",") != "guarded,web" {
		t.Errorf("evicted %v, want web and guarded only", evicted)
	}
	if !strings.Contains(msg, "default/guarded") {
		t.Errorf("message %q, want the pods still to evict", msg)
	}
	n, _ := cs.CoreV1().Nodes().Get(ctx, "demo-agent-1", metav1.GetOptions{})
	if !n.Spec.Unschedulable || n.Annotations[annotationDrainStarted] != start.Format(time.RFC3339) {
		t.Fatalf("node not cordoned with its drain start: unschedulable=%v annotations=%v", n.Spec.Unschedulable, n.Annotations)
	}

	done, cordoned, msg, err = drainNode(ctx, cs, "demo-agent-1", start.Add(drainTimeout/2))
	if err != nil || done || cordoned || msg != "1 pods to evict (default/guarded)" {
		t.Fatalf("within the timeout: done=%v msg=%q err=%v, want only the guarded pod left", done, msg, err)
	}
	done, _, msg, err = drainNode(ctx, cs, "demo-agent-1", start.Add(drainTimeout))
	if err != nil || !done || !strings.Contains(msg, "default/guarded") {
		t.Fatalf("at the timeout: done=%v msg=%q err=%v, want done, naming the pod left", done, msg, err)
	}
	if done, _, _, err := drainNode(ctx, cs, "gone", start); !done || err != nil {
		t.Errorf("a Node that does not exist is drained: done=%v err=%v", done, err)
	}
}

func TestRemoveNodeTakesK3sNodePassword(t *testing.T) {
	cs := fake.NewSimpleClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "demo-agent-0"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "demo-agent-0.node-password.k3s", Namespace: "kube-system"}})
	ctx := context.Background()
	if err := removeNode(ctx, cs, "demo-agent-0"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Nodes().Get(ctx, "demo-agent-0", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Node still there: %v", err)
	}
	if _, err := cs.CoreV1().Secrets("kube-system").Get(ctx, "demo-agent-0.node-password.k3s", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("node password still there: %v", err)
	}
	if err := removeNode(ctx, cs, "demo-agent-0"); err != nil {
		t.Errorf("removing again: %v", err)
	}
}

func TestAgentTaskOfNode(t *testing.T) {
	for node, want := range map[string]string{
		"demo-agent-0": "agent-0", "demo-agent-12": "agent-12", "demo-server-0": "", "other-agent-0": "",
		"demo-agent-x": "", "demo-agent-": "", "demo-prod-agent-1": "",
	} {
		got, ok := agentTaskOfNode("demo", node)
		if (want != "") != ok || (ok && got != want) {
			t.Errorf("agentTaskOfNode(demo, %s) = %q, %v; want %q", node, got, ok, want)
		}
	}
}

// drainBeforeKill holds back the kill of an agent whose Node still has pods to evict, lets
// the others go, and names every Node it cordoned in one event: separate events of one
// reason in one pass would fold into the first (eventEach).
func TestDrainBeforeKillHoldsAgentsWithPodsAndNamesEveryCordon(t *testing.T) {
	cs := fake.NewSimpleClientset(
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "demo-agent-1"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "demo-agent-2"}},
		podOn("demo-agent-1", "web"),
	)
	// Evictions are accepted but the pod takes its time to terminate, as a real one does.
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return a.GetSubresource() == "eviction", nil, nil
	})
	cs.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.ListAction).GetListRestrictions().Fields.String() == "spec.nodeName=demo-agent-1" {
			return true, &corev1.PodList{Items: []corev1.Pod{*podOn("demo-agent-1", "web")}}, nil
		}
		return true, &corev1.PodList{}, nil
	})
	rec := events.NewFakeRecorder(10)
	r := &K3sClusterReconciler{Recorder: rec, Now: func() time.Time { return time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC) }}
	s := &clusterScope{cluster: &v1alpha1.K3sCluster{ObjectMeta: metav1.ObjectMeta{Name: "demo"}}}
	known := map[string]mesosbridge.ObservedTask{
		"agent-1": {Role: roleAgent}, "agent-2": {Role: roleAgent}, "agent-3": {Role: roleAgent}, "server-1": {Role: roleServer},
	}
	ready := readiness{probe: &probeResult{workload: cs, nodes: map[string]nodeHealth{"demo-agent-1": {ready: true}, "demo-agent-2": {ready: true}}}}

	kills, waiting := r.drainBeforeKill(context.Background(), s, []string{"agent-1", "agent-2", "agent-3", "server-1"}, known, ready)
	if strings.Join(kills, ",") != "agent-2,agent-3,server-1" {
		t.Errorf("kills %v, want agent-2 (drained: no pods), agent-3 (no Node) and the server", kills)
	}
	if !strings.Contains(waiting, "demo-agent-1") || !strings.Contains(waiting, "default/web") {
		t.Errorf("waiting %q, want the Node and the pod it waits for", waiting)
	}
	if len(rec.Events) != 1 {
		t.Fatalf("%d events, want one NodeDraining for both Nodes", len(rec.Events))
	}
	if e := <-rec.Events; !strings.Contains(e, "NodeDraining") || !strings.Contains(e, "Node demo-agent-1 cordoned") || !strings.Contains(e, "Node demo-agent-2 cordoned") {
		t.Errorf("event %q, want NodeDraining naming demo-agent-1 and demo-agent-2", e)
	}
}
