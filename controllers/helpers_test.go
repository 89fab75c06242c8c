package controllers_test

import (
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/mesostest"
)

func metaCondition(c *v1alpha1.K3sCluster, typ string) *metav1.Condition {
	return meta.FindStatusCondition(c.Status.Conditions, typ)
}

type statusView = mesostest.StateTaskStatus

// firstStatusTime is the timestamp of a task's first status update that matches.
func firstStatusTime(t mesostest.StateTask, match func(statusView) bool) float64 {
	for _, s := range t.Statuses {
		if match(s) {
			return s.Timestamp
		}
	}
	return 0
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
