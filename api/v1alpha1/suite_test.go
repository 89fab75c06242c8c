package v1alpha1_test

import (
	"testing"

	"github.com/mesosk3s/mesosk3s/hack/testenv"
)

// env is the real API server every test in this package talks to.
var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }
