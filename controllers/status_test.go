package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

func subscribed() observation {
	return observation{
		connection:    mesosbridge.Connection{Connected: true, Reason: mesosbridge.ConnSubscribed},
		connectionSet: true,
		datastoreType: v1alpha1.DatastoreSQLite,
	}
}

func with(o observation, f func(*observation)) observation { f(&o); return o }

func TestConditionsFromObservation(t *testing.T) {
	cases := []struct {
		name                        string
		o                           observation
		ready, reconciling, stalled metav1.ConditionStatus
		readyReason                 string
		phase                       string
	}{
		{"never connected", observation{datastoreType: v1alpha1.DatastoreSQLite, servers: roleCount{desired: 1}, agents: roleCount{desired: 1}},
			metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, v1alpha1.ReasonWaitingForOffers, v1alpha1.PhasePending},
		{"subscribed, waiting for offers", with(subscribed(), func(o *observation) {
			o.servers, o.agents = roleCount{desired: 1}, roleCount{desired: 1}
		}), metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, v1alpha1.ReasonWaitingForOffers, v1alpha1.PhaseProvisioning},
		{"server running, health pending", with(subscribed(), func(o *observation) {
			o.servers, o.agents = roleCount{desired: 1, live: 1, running: 1}, roleCount{desired: 1}
		}), metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, v1alpha1.ReasonTasksUnhealthy, v1alpha1.PhaseProvisioning},
		{"servers healthy but no kubeconfig yet", with(subscribed(), func(o *observation) {
			o.servers, o.agents = roleCount{desired: 1, live: 1, running: 1, ready: 1, updated: 1}, roleCount{desired: 1}
		}), metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, v1alpha1.ReasonWaitingForEndpoint, v1alpha1.PhaseProvisioning},
		{"server healthy on Mesos, K3s's runtime core not ready", with(subscribed(), func(o *observation) {
			o.servers, o.agents = roleCount{desired: 1, live: 1, running: 1, updated: 1, notServing: "server-0: K3s supervisor /v1-k3s/readyz answered 500: runtime core not ready"}, roleCount{desired: 0}
			o.kubeconfigWritten = true
		}), metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, v1alpha1.ReasonAPINotReady, v1alpha1.PhaseProvisioning},
		{"was ready, the control plane stopped working", with(subscribed(), func(o *observation) {
			o.servers, o.agents = roleCount{desired: 1, live: 1, running: 1, ready: 1, updated: 1}, roleCount{desired: 0}
			o.kubeconfigWritten, o.everReady = true, true
			o.readiness = readiness{probe: &probeResult{
				servers:      map[string]serverHealth{"server-0": {reachable: true, apiReady: true, k3sReady: true}},
				controlPlane: controlPlaneHealth{message: "no kube-scheduler has looked at the control-plane probe's pod (for 31s)"},
			}}
		}), metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, v1alpha1.ReasonControlPlaneNotWorking, v1alpha1.PhaseDegraded},
		{"first run: servers up, control plane not proven yet", with(subscribed(), func(o *observation) {
			o.servers, o.agents = roleCount{desired: 1, live: 1, running: 1, ready: 1, updated: 1}, roleCount{desired: 0}
			o.kubeconfigWritten, o.everReady, o.firstRun = true, true, true
			o.readiness = readiness{probe: &probeResult{
				servers:      map[string]serverHealth{"server-0": {reachable: true, apiReady: true, k3sReady: true}},
				controlPlane: controlPlaneHealth{message: "no kube-controller-manager has created the control-plane probe's pod (for 2s)"},
			}}
		}), metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, v1alpha1.ReasonControlPlaneNotWorking, v1alpha1.PhaseProvisioning},
		{"ready, agents still coming", with(subscribed(), func(o *observation) {
			o.servers, o.agents = roleCount{desired: 1, live: 1, running: 1, ready: 1, updated: 1}, roleCount{desired: 3, live: 1, running: 1, ready: 1, updated: 1}
			o.kubeconfigWritten = true
		}), metav1.ConditionTrue, metav1.ConditionTrue, metav1.ConditionFalse, v1alpha1.ReasonReady, v1alpha1.PhaseUpdating},
		{"first run: ready, agents launched but not joined yet", with(subscribed(), func(o *observation) {
			o.servers, o.agents = roleCount{desired: 1, live: 1, running: 1, ready: 1, updated: 1}, roleCount{desired: 2, live: 2, running: 2, updated: 2}
			o.kubeconfigWritten, o.everReady, o.firstRun = true, true, true
		}), metav1.ConditionTrue, metav1.ConditionTrue, metav1.ConditionFalse, v1alpha1.ReasonReady, v1alpha1.PhaseProvisioning},
		{"ran before: agents running but not ready", with(subscribed(), func(o *observation) {
			o.servers, o.agents = roleCount{desired: 1, live: 1, running: 1, ready: 1, updated: 1}, roleCount{desired: 2, live: 2, running: 2, ready: 1, updated: 2}
			o.kubeconfigWritten, o.everReady = true, true
		}), metav1.ConditionTrue, metav1.ConditionTrue, metav1.ConditionFalse, v1alpha1.ReasonReady, v1alpha1.PhaseDegraded},
		{"everything in place", with(subscribed(), func(o *observation) {
			o.servers, o.agents = roleCount{desired: 1, live: 1, running: 1, ready: 1, updated: 1}, roleCount{desired: 2, live: 2, running: 2, ready: 2, updated: 2}
			o.kubeconfigWritten = true
		}), metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionFalse, v1alpha1.ReasonReady, v1alpha1.PhaseRunning},
		{"rolling out", with(subscribed(), func(o *observation) {
			o.servers, o.agents = roleCount{desired: 1, live: 1, running: 1, ready: 1, updated: 1}, roleCount{desired: 2, live: 2, running: 2, ready: 2, updated: 1}
			o.kubeconfigWritten = true
		}), metav1.ConditionTrue, metav1.ConditionTrue, metav1.ConditionFalse, v1alpha1.ReasonReady, v1alpha1.PhaseUpdating},
		{"too many failures", with(subscribed(), func(o *observation) {
			o.servers, o.agents = roleCount{desired: 1}, roleCount{desired: 1}
			o.stalledTask, o.failedTasks = "server-0 failed 5 times in a row: exit status 1", []string{"server-0"}
		}), metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionTrue, v1alpha1.ReasonTasksFailed, v1alpha1.PhaseFailed},
		{"unsupported datastore", with(subscribed(), func(o *observation) {
			o.datastoreType = v1alpha1.DatastoreMySQL
			o.unsupported = "datastore MySQL is not supported yet"
			o.servers, o.agents = roleCount{desired: 1}, roleCount{desired: 1}
		}), metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionTrue, v1alpha1.ReasonWaitingForOffers, v1alpha1.PhaseFailed},
		{"unauthorized", with(subscribed(), func(o *observation) {
			o.connection = mesosbridge.Connection{Reason: mesosbridge.ConnUnauthorized, Message: "401 Unauthorized for principal k3s"}
			o.servers, o.agents = roleCount{desired: 1}, roleCount{desired: 1}
		}), metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, v1alpha1.ReasonWaitingForOffers, v1alpha1.PhasePending},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conds, ph := conditions(tc.o)
			byType := map[string]metav1.Condition{}
			for _, c := range conds {
				if c.Reason == "" || c.Message == "" {
					t.Errorf("%s has no reason or message: %+v", c.Type, c)
				}
				byType[c.Type] = c
			}
			for _, want := range []string{v1alpha1.ConditionReady, v1alpha1.ConditionReconciling, v1alpha1.ConditionStalled,
				v1alpha1.ConditionMesosConnected, v1alpha1.ConditionDatastoreReady, v1alpha1.ConditionServersReady,
				v1alpha1.ConditionAgentsReady, v1alpha1.ConditionKubeconfigAvailable} {
				if _, ok := byType[want]; !ok {
					t.Errorf("condition %s missing", want)
				}
			}
			check := func(typ string, want metav1.ConditionStatus) {
				if got := byType[typ].Status; got != want {
					t.Errorf("%s = %s (%s: %s), want %s", typ, got, byType[typ].Reason, byType[typ].Message, want)
				}
			}
			check(v1alpha1.ConditionReady, tc.ready)
			check(v1alpha1.ConditionReconciling, tc.reconciling)
			check(v1alpha1.ConditionStalled, tc.stalled)
			if got := byType[v1alpha1.ConditionReady].Reason; got != tc.readyReason {
				t.Errorf("Ready reason = %s, want %s", got, tc.readyReason)
			}
			if ph != tc.phase {
				t.Errorf("phase = %s, want %s", ph, tc.phase)
			}
		})
	}
}

func TestMesosConnectedNamesTheReason(t *testing.T) {
	c := mesosConnectedCondition(observation{connectionErr: &conditionProblem{v1alpha1.ReasonCredentialsNotFound, `Secret "creds" not found`}})
	if c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonCredentialsNotFound {
		t.Fatalf("got %+v", c)
	}
	c = mesosConnectedCondition(observation{connectionSet: true, connection: mesosbridge.Connection{Reason: mesosbridge.ConnUnreachable, Message: "dial tcp: connection refused"}})
	if c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonMesosUnreachable || c.Message != "dial tcp: connection refused" {
		t.Fatalf("got %+v", c)
	}
}

// TestKstatusReadsTheConditions feeds the computed conditions to kstatus, the library
// Flux and kubectl's wait logic build on: deploying is InProgress, Ready is Current,
// Stalled is Failed.
func TestKstatusReadsTheConditions(t *testing.T) {
	deploying := with(subscribed(), func(o *observation) { o.servers, o.agents = roleCount{desired: 1, live: 1}, roleCount{desired: 1} })
	ready := with(subscribed(), func(o *observation) {
		o.servers, o.agents = roleCount{desired: 1, live: 1, running: 1, ready: 1, updated: 1}, roleCount{desired: 1, live: 1, running: 1, ready: 1, updated: 1}
		o.kubeconfigWritten = true
	})
	stalled := with(deploying, func(o *observation) { o.stalledTask = "server-0 failed 5 times" })
	for _, tc := range []struct {
		name string
		o    observation
		want status.Status
	}{
		{"deploying", deploying, status.InProgressStatus},
		{"ready", ready, status.CurrentStatus},
		{"stalled", stalled, status.FailedStatus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testCluster()
			c.Generation, c.Status.ObservedGeneration = 3, 3
			c.Status.Conditions, c.Status.Phase = conditions(tc.o)
			raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c)
			if err != nil {
				t.Fatal(err)
			}
			res, err := status.Compute(&unstructured.Unstructured{Object: raw})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.want {
				t.Fatalf("kstatus = %s (%s), want %s", res.Status, res.Message, tc.want)
			}
		})
	}
}

func TestRoleConditionSaysWhyTasksAreNotPlaced(t *testing.T) {
	o := with(subscribed(), func(o *observation) {
		o.servers = roleCount{desired: 1, live: 1, running: 1, ready: 1, updated: 1}
		o.agents = roleCount{desired: 10, live: 6, running: 6, ready: 6, updated: 6}
		o.unplaced = map[string]string{
			"agent-9": "no fitting offer among 6: constraint hostname:UNIQUE (6)",
			"agent-6": "no fitting offer among 6: constraint hostname:UNIQUE (6)",
			"agent-7": "no fitting offer among 6: constraint hostname:UNIQUE (6)",
		}
	})
	got := agentsReadyCondition(o)
	want := "6/10 agents ready; agent-6: no fitting offer among 6: constraint hostname:UNIQUE (6) (and 2 more)"
	if got.Status != metav1.ConditionFalse || got.Reason != v1alpha1.ReasonWaitingForOffers || got.Message != want {
		t.Errorf("AgentsReady = %s %s %q, want %q", got.Status, got.Reason, got.Message, want)
	}
	if s := serversReadyCondition(o); s.Status != metav1.ConditionTrue {
		t.Errorf("another role's unplaced tasks leaked into ServersReady: %+v", s)
	}
}
