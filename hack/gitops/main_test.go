package gitops

import (
	"os"
	"testing"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
)

// TestMain quiets controller-runtime's own logging (envtest's client), which otherwise
// warns with a stack trace that no logger was set. The controllers log to their files.
func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(m.Run())
}
