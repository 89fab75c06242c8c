package mesosbridge

import (
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func TestFrameworkInfo(t *testing.T) {
	cfg := testFramework()
	info := frameworkInfo(cfg)
	if info.Name != "test:team-a/dev" || info.User != "root" || !info.GetCheckpoint() || info.GetFailoverTimeout() != (7*24*time.Hour).Seconds() {
		t.Errorf("%+v", info)
	}
	if len(info.Roles) != 1 || info.Roles[0] != "k3s" || info.Role != nil {
		t.Errorf("roles %v / role %v: MULTI_ROLE frameworks use roles only", info.Roles, info.Role)
	}
	caps := map[mesos.FrameworkInfo_Capability_Type]bool{}
	for _, c := range info.Capabilities {
		caps[c.Type] = true
	}
	for _, c := range []mesos.FrameworkInfo_Capability_Type{
		mesos.FrameworkInfo_Capability_MULTI_ROLE, mesos.FrameworkInfo_Capability_PARTITION_AWARE, mesos.FrameworkInfo_Capability_TASK_KILLING_STATE,
	} {
		if !caps[c] {
			t.Errorf("missing capability %s", c)
		}
	}
	if info.GetPrincipal() != "mesosk3s" || info.ID != nil {
		t.Errorf("principal %q id %v", info.GetPrincipal(), info.ID)
	}
	labels := map[string]string{}
	for _, l := range info.GetLabels().GetLabels() {
		labels[l.Key] = l.GetValue()
	}
	if labels[LabelClusterUID] != "uid-1234" || labels[LabelClusterNamespace] != "team-a" || labels[LabelClusterName] != "dev" {
		t.Errorf("labels %v", labels)
	}
	cfg.FrameworkID = "fw-1"
	if info := frameworkInfo(cfg); info.GetID().GetValue() != "fw-1" {
		got := info.GetID().GetValue()
		t.Errorf("resubscribe ID %q", got)
	}
}

func TestFrameworkConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*FrameworkConfig)
		wantErr string
	}{
		{"valid", func(*FrameworkConfig) {}, ""},
		{"no auth is fine", func(c *FrameworkConfig) { c.Principal, c.Secret = "", "" }, ""},
		{"star role", func(c *FrameworkConfig) { c.Role = "*" }, "named role"},
		{"secret without principal", func(c *FrameworkConfig) { c.Principal, c.Secret = "", "s" }, "needs a principal"},
		{"no masters", func(c *FrameworkConfig) { c.Masters = nil }, "master address"},
		{"no uid", func(c *FrameworkConfig) { c.ClusterUID = "" }, "UID"},
		{"no name", func(c *FrameworkConfig) { c.Name = "" }, "framework name"},
		{"no user", func(c *FrameworkConfig) { c.User = "" }, "user"},
	}
	for _, tt := range tests {
		c := testFramework()
		tt.mutate(&c)
		err := c.Validate()
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

func TestLaunchesAllowed(t *testing.T) {
	cfg := testFramework()
	if launchesAllowed(cfg, "fw-1") {
		t.Errorf("launch before the controller persisted the framework ID")
	}
	cfg.FrameworkID = "fw-1"
	if !launchesAllowed(cfg, "fw-1") || launchesAllowed(cfg, "") || launchesAllowed(cfg, "fw-2") {
		t.Errorf("launchesAllowed")
	}
}
