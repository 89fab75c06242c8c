package mesosbridge

import (
	"strings"
	"testing"
)

func TestSpecHash(t *testing.T) {
	base := serverSpec()
	h := SpecHash(base)
	if len(h) != 16 || SpecHash(base) != h {
		t.Fatalf("hash %q not stable or not 16 hex digits", h)
	}
	same := []struct {
		name   string
		mutate func(*TaskSpec)
	}{
		{"order", func(s *TaskSpec) { s.Order = 7 }},
		{"spec hash field", func(s *TaskSpec) { s.SpecHash = "x" }},
		{"secret value", func(s *TaskSpec) { s.Secrets["APP_TOKEN"] = []byte("rotated") }},
		{"map insertion order", func(s *TaskSpec) {
			s.Env = map[string]string{"B": "2", "A": "1"}
		}},
		{"volume pin", func(s *TaskSpec) { s.Volume = &VolumeRequest{SizeMiB: 1, ContainerPath: "d", AgentID: "a9"} }},
	}
	withVolume := base
	withVolume.Volume = &VolumeRequest{SizeMiB: 1, ContainerPath: "d"}
	envAB := base
	envAB.Env = map[string]string{"A": "1", "B": "2"}
	for _, tt := range same {
		s := serverSpec()
		ref := h
		tt.mutate(&s)
		if s.Volume != nil {
			ref = SpecHash(withVolume)
		}
		if tt.name == "map insertion order" {
			ref = SpecHash(envAB)
		}
		if got := SpecHash(s); got != ref {
			t.Errorf("%s changed the hash", tt.name)
		}
	}
	differ := []struct {
		name   string
		mutate func(*TaskSpec)
	}{
		{"command", func(s *TaskSpec) { s.Command += " --debug" }},
		{"resources", func(s *TaskSpec) { s.Resources.MemMiB++ }},
		{"fetch", func(s *TaskSpec) { s.Fetch[0].URL = "file:///opt/app/app2" }},
		{"container", func(s *TaskSpec) { s.Container = Container{Type: ContainerDocker, Image: "x"} }},
		{"secret added", func(s *TaskSpec) { s.Secrets["EXTRA"] = []byte("x") }},
		{"env", func(s *TaskSpec) { s.Env["A"] = "b" }},
		{"health check", func(s *TaskSpec) { s.HealthCheck.Path = "/healthz" }},
		{"constraints", func(s *TaskSpec) { s.Constraints = []Constraint{{Field: "rack", Operator: OpGroupBy}} }},
	}
	for _, tt := range differ {
		s := serverSpec()
		tt.mutate(&s)
		if SpecHash(s) == h {
			t.Errorf("%s did not change the hash", tt.name)
		}
	}
	if strings.Contains(h, "TOKEN") {
		t.Errorf("hash leaks")
	}
}

// TestSpecHashIsPinned fails when the hash of a fixed task changes: every running task of
// every cluster would be rolled by an operator upgrade. If the change is meant, bump
// specHashVersion and update the value here, and say in the release notes that the
// upgrade replaces every task once.
func TestSpecHashIsPinned(t *testing.T) {
	const want = "83b12dc51c8f5fb7"
	if got := SpecHash(serverSpec()); got != want {
		t.Errorf("SpecHash(serverSpec()) = %s, pinned %s: an operator upgrade would roll every task", got, want)
	}
	// A field TaskSpec gains, left at its zero value, changes nothing: the hash reads an
	// explicit projection, not the struct.
	var zero TaskSpec
	zero.Name, zero.Role = "server-0", "server"
	if SpecHash(zero) != SpecHash(TaskSpec{Name: "other-1", Role: "other", Index: 1, Order: 9}) {
		t.Errorf("identity fields entered the hash")
	}
}

// BootstrapEnv is read only on a first start: changing it must not roll a running task.
func TestSpecHashLeavesOutBootstrapEnv(t *testing.T) {
	s := serverSpec()
	before := SpecHash(s)
	s.BootstrapEnv = map[string]string{"MESOSK3S_REJOIN_URL": "https://node-2:31000"}
	if SpecHash(s) != before {
		t.Fatal("the bootstrap environment changed the spec hash")
	}
}
