package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// The control-plane probe proves that a kube-controller-manager and a kube-scheduler of the
// cluster work: K3s runs both inside the server process without a port of their own (the
// operator turns their HTTPS listeners off) and, on one server, without leader election, so
// no Lease shows them either. A Deployment in kube-system whose pod can never be scheduled
// does: the controller-manager's deployment and replica-set controllers create the pod, and
// the scheduler marks it Unschedulable. The pod never runs anywhere and asks for nothing. Its
// template carries the probe generation, so a relaunched server is proven afresh by a new pod.
// K3s starts its scheduler only once a node is ready (pkg/daemons/executor/embed.go waits
// for the cloud controller to untaint one), so without a ready Node only the
// controller-manager can be proven.
const (
	probeNamespace     = "kube-system"
	probeName          = "mesosk3s-control-plane-probe"
	probeGenerationKey = "mesosk3s.io/probe-generation"
	// probeNodeSelector matches no node: the operator never sets the label.
	probeNodeSelector = "mesosk3s.io/never-scheduled"
	// probeImage is never pulled: the pod is never scheduled.
	probeImage = "registry.k8s.io/pause:3.9"
	// probePatience is how long a new generation may take before the control plane counts
	// as not working; until then the last proof stands, so a server relaunch does not make
	// a healthy cluster flap.
	probePatience = 30 * time.Second
)

// controlPlaneHealth says whether the control-plane probe was answered.
type controlPlaneHealth struct {
	proven  bool
	message string
}

// controlPlaneProbe remembers, for one cluster, which generation was proven last and since
// when the current one is waited for.
type controlPlaneProbe struct {
	mu           sync.Mutex
	provenGen    string
	waitingGen   string
	waitingSince time.Time
}

func newControlPlaneProbe() *controlPlaneProbe { return &controlPlaneProbe{} }

// check makes sure the probe Deployment asks for generation gen, and reports whether a pod
// of that generation was created and looked at by the scheduler.
func (p *controlPlaneProbe) check(ctx context.Context, c kubernetes.Interface, gen string, nodeReady bool) controlPlaneHealth {
	created, scheduled, why := probeAnswered(ctx, c, gen)
	p.mu.Lock()
	defer p.mu.Unlock()
	if created && (scheduled || !nodeReady) {
		p.provenGen, p.waitingGen = gen, ""
		if !scheduled {
			return controlPlaneHealth{proven: true, message: "a controller-manager works (the probe's pod was created); K3s starts its scheduler once a node is ready"}
		}
		return controlPlaneHealth{proven: true, message: "a controller-manager and a scheduler work (the probe's pod was created and found unschedulable)"}
	}
	if p.waitingGen != gen {
		p.waitingGen, p.waitingSince = gen, time.Now()
	}
	waited := time.Since(p.waitingSince)
	if p.provenGen != "" && waited < probePatience {
		return controlPlaneHealth{proven: true, message: "a controller-manager and a scheduler worked; checking again: " + why}
	}
	return controlPlaneHealth{message: fmt.Sprintf("%s (for %s)", why, waited.Round(time.Second))}
}

// probeAnswered creates or updates the probe Deployment for gen and looks for its pod:
// created by a controller-manager, and looked at by a scheduler.
func probeAnswered(ctx context.Context, c kubernetes.Interface, gen string) (created, scheduled bool, why string) {
	deployments := c.AppsV1().Deployments(probeNamespace)
	d, err := deployments.Get(ctx, probeName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := deployments.Create(ctx, probeDeployment(gen), metav1.CreateOptions{}); err != nil {
			return false, false, "creating the control-plane probe: " + err.Error()
		}
		return false, false, "the control-plane probe was just created"
	case err != nil:
		return false, false, "reading the control-plane probe: " + err.Error()
	case d.Spec.Template.Annotations[probeGenerationKey] != gen:
		d.Spec.Template.Annotations = map[string]string{probeGenerationKey: gen}
		if _, err := deployments.Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			return false, false, "updating the control-plane probe: " + err.Error()
		}
		return false, false, "the control-plane probe was just renewed"
	}
	pods, err := c.CoreV1().Pods(probeNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + probeName})
	if err != nil {
		return false, false, "listing the control-plane probe's pods: " + err.Error()
	}
	for _, pod := range pods.Items {
		if pod.Annotations[probeGenerationKey] != gen {
			continue
		}
		for _, cond := range pod.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
				return true, true, ""
			}
		}
		return true, false, "no kube-scheduler has looked at the control-plane probe's pod"
	}
	return false, false, "no kube-controller-manager has created the control-plane probe's pod"
}

func probeDeployment(gen string) *appsv1.Deployment {
	labels := map[string]string{"app": probeName}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: probeName, Namespace: probeNamespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "mesosk3s"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			// A new generation replaces the pod at once.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{probeGenerationKey: gen}},
				Spec: corev1.PodSpec{
					NodeSelector:                  map[string]string{probeNodeSelector: "true"},
					AutomountServiceAccountToken:  ptr.To(false),
					TerminationGracePeriodSeconds: ptr.To(int64(0)),
					Containers:                    []corev1.Container{{Name: "probe", Image: probeImage}},
				},
			},
		},
	}
}

// readNodes returns every Node's Ready condition by name.
func readNodes(ctx context.Context, c kubernetes.Interface) (map[string]nodeHealth, string) {
	list, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, "listing Nodes: " + err.Error()
	}
	out := make(map[string]nodeHealth, len(list.Items))
	for _, n := range list.Items {
		h := nodeHealth{message: "no Ready condition yet"}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				h = nodeHealth{ready: cond.Status == corev1.ConditionTrue, message: cond.Message}
			}
		}
		out[n.Name] = h
	}
	return out, ""
}

// anyNodeReady: some Node of the cluster is Ready.
func anyNodeReady(nodes map[string]nodeHealth) bool {
	for _, n := range nodes {
		if n.ready {
			return true
		}
	}
	return false
}

// probeGeneration names the servers that run now: a relaunch changes it.
func probeGeneration(servers map[string]serverAddress) string {
	ids := make([]string, 0, len(servers))
	for _, s := range servers {
		ids = append(ids, s.taskID)
	}
	sort.Strings(ids)
	return shortHash(ids...)
}

// shortHash is 16 hex digits of SHA-256 over the parts.
func shortHash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
