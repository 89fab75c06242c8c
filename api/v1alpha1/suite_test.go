package v1alpha1_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/mesosk3s/mesosk3s/hack/testenv"
)

// env is the real API server every test in this package talks to.
var env *testenv.Env

func TestMain(m *testing.M) {
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
