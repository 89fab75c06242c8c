package controllers_test

import (
	"fmt"
	"os"
	"testing"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/mesosk3s/mesosk3s/hack/testenv"
)

// env is the real API server every controller test talks to; each test brings its own
// namespace, Mesos master emulator, bridge and manager.
var env *testenv.Env

func TestMain(m *testing.M) {
	ctrl.SetLogger(testLogger("controller-runtime"))
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping envtest:", err)
	}
	os.Exit(code)
}
