package controllers_test

import (
	"testing"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/mesosk3s/mesosk3s/hack/testenv"
)

// env is the real API server every controller test talks to; each test brings its own
// namespace, Mesos master emulator, bridge and manager.
var env *testenv.Env

func TestMain(m *testing.M) {
	ctrl.SetLogger(testLogger("controller-runtime"))
	testenv.Main(m, &env)
}
