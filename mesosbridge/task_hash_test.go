package mesosbridge

import (
	"strings"
	"testing"
)

func TestSpecHash(t *testing.T) {
	base := serverSpec(RuntimeDocker)
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
		{"secret value", func(s *TaskSpec) { s.Secrets[SecretToken] = []byte("rotated") }},
		{"map insertion order", func(s *TaskSpec) {
			s.K3s.NodeLabels = map[string]string{"zone": "a", "mesosk3s.io/role": "server"}
		}},
		{"volume pin", func(s *TaskSpec) { s.Volume = &VolumeRequest{SizeMiB: 1, ContainerPath: "d", AgentID: "a9"} }},
	}
	withVolume := base
	withVolume.Volume = &VolumeRequest{SizeMiB: 1, ContainerPath: "d"}
	for _, tt := range same {
		s := serverSpec(RuntimeDocker)
		ref := h
		tt.mutate(&s)
		if s.Volume != nil {
			ref = SpecHash(withVolume)
		}
		if got := SpecHash(s); got != ref {
			t.Errorf("%s changed the hash", tt.name)
		}
	}
	differ := []struct {
		name   string
		mutate func(*TaskSpec)
	}{
		{"version", func(s *TaskSpec) { s.K3s.Version = "v1.32.0+k3s1" }},
		{"resources", func(s *TaskSpec) { s.Resources.MemMiB++ }},
		{"args", func(s *TaskSpec) { s.K3s.ExtraArgs = append(s.K3s.ExtraArgs, "--debug") }},
		{"runtime", func(s *TaskSpec) { s.Runtime = RuntimeBinary }},
		{"secret added", func(s *TaskSpec) { s.Secrets["extra"] = []byte("x") }},
		{"env", func(s *TaskSpec) { s.Env["A"] = "b" }},
	}
	for _, tt := range differ {
		s := serverSpec(RuntimeDocker)
		tt.mutate(&s)
		if SpecHash(s) == h {
			t.Errorf("%s did not change the hash", tt.name)
		}
	}
	if strings.Contains(h, "TOKEN") {
		t.Errorf("hash leaks")
	}
}
