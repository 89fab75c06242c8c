package mesosbridge

import (
	"strings"
	"testing"
)

func host(name string, attrs ...string) agentFacts {
	a := agentFacts{hostname: name, attributes: map[string]string{}}
	for i := 0; i+1 < len(attrs); i += 2 {
		a.attributes[attrs[i]] = attrs[i+1]
	}
	return a
}

func TestConstraintValidate(t *testing.T) {
	tests := []struct {
		c       Constraint
		wantErr string
	}{
		{Constraint{Field: "hostname", Operator: OpUnique}, ""},
		{Constraint{Field: "rack", Operator: OpCluster}, ""},
		{Constraint{Field: "rack", Operator: OpCluster, Value: "r1"}, ""},
		{Constraint{Field: "rack", Operator: OpGroupBy}, ""},
		{Constraint{Field: "rack", Operator: OpGroupBy, Value: "3"}, ""},
		{Constraint{Field: "rack", Operator: OpGroupBy, Value: "x"}, "positive number of groups"},
		{Constraint{Field: "rack", Operator: OpMaxPer, Value: "2"}, ""},
		{Constraint{Field: "rack", Operator: OpMaxPer}, "positive integer"},
		{Constraint{Field: "rack", Operator: OpMaxPer, Value: "0"}, "positive integer"},
		{Constraint{Field: "hostname", Operator: OpLike, Value: "node-[0-9]+"}, ""},
		{Constraint{Field: "hostname", Operator: OpLike}, "regular expression value is required"},
		{Constraint{Field: "hostname", Operator: OpUnlike, Value: "("}, "invalid regular expression"},
		{Constraint{Field: "zone", Operator: OpIs, Value: "a"}, ""},
		{Constraint{Field: "zone", Operator: OpIs}, "value is required"},
		{Constraint{Field: "zone", Operator: "NEAR"}, `unknown operator "NEAR"`},
		{Constraint{Field: "zone"}, "operator is required"},
		{Constraint{Operator: OpUnique}, "field is required"},
	}
	for _, tt := range tests {
		err := tt.c.Validate()
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", tt.c, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%+v: error %v, want it to contain %q", tt.c, err, tt.wantErr)
		}
	}
}

func TestValidateConstraintsJoinsErrors(t *testing.T) {
	err := ValidateConstraints([]Constraint{{Field: "a", Operator: "X"}, {Field: "b", Operator: OpIs}})
	if err == nil || !strings.Contains(err.Error(), `"X"`) || !strings.Contains(err.Error(), "b IS") {
		t.Fatalf("got %v", err)
	}
}

func TestConstraintAllow(t *testing.T) {
	tests := []struct {
		name     string
		c        Constraint
		agent    agentFacts
		siblings []agentFacts
		want     bool
	}{
		{"unique free host", Constraint{"hostname", OpUnique, ""}, host("a"), []agentFacts{host("b")}, true},
		{"unique taken host", Constraint{"hostname", OpUnique, ""}, host("a"), []agentFacts{host("b"), host("a")}, false},
		{"unique attribute", Constraint{"rack", OpUnique, ""}, host("a", "rack", "r1"), []agentFacts{host("b", "rack", "r1")}, false},
		{"unique missing attribute", Constraint{"rack", OpUnique, ""}, host("a"), nil, false},

		{"cluster fixed value", Constraint{"rack", OpCluster, "r1"}, host("a", "rack", "r1"), nil, true},
		{"cluster other value", Constraint{"rack", OpCluster, "r1"}, host("a", "rack", "r2"), nil, false},
		{"cluster first free", Constraint{"rack", OpCluster, ""}, host("a", "rack", "r2"), nil, true},
		{"cluster follows first", Constraint{"rack", OpCluster, ""}, host("a", "rack", "r2"), []agentFacts{host("b", "rack", "r1")}, false},
		{"cluster same as first", Constraint{"rack", OpCluster, ""}, host("a", "rack", "r1"), []agentFacts{host("b", "rack", "r1")}, true},

		{"group_by new group", Constraint{"zone", OpGroupBy, ""}, host("a", "zone", "z2"), []agentFacts{host("b", "zone", "z1")}, true},
		{"group_by smallest group", Constraint{"zone", OpGroupBy, ""}, host("a", "zone", "z2"),
			[]agentFacts{host("b", "zone", "z1"), host("c", "zone", "z1"), host("d", "zone", "z2")}, true},
		{"group_by larger group", Constraint{"zone", OpGroupBy, ""}, host("a", "zone", "z1"),
			[]agentFacts{host("b", "zone", "z1"), host("d", "zone", "z2")}, true},
		{"group_by overfull group", Constraint{"zone", OpGroupBy, ""}, host("a", "zone", "z1"),
			[]agentFacts{host("b", "zone", "z1"), host("c", "zone", "z1"), host("d", "zone", "z2")}, false},
		{"group_by waits for min groups", Constraint{"zone", OpGroupBy, "3"}, host("a", "zone", "z1"),
			[]agentFacts{host("b", "zone", "z1"), host("d", "zone", "z2")}, false},
		{"group_by min groups reached", Constraint{"zone", OpGroupBy, "2"}, host("a", "zone", "z1"),
			[]agentFacts{host("b", "zone", "z1"), host("d", "zone", "z2")}, true},

		{"like full match", Constraint{"hostname", OpLike, "node-[0-9]+"}, host("node-12"), nil, true},
		{"like partial is no match", Constraint{"hostname", OpLike, "node-[0-9]+"}, host("node-12.example"), nil, false},
		{"like alternation anchored", Constraint{"hostname", OpLike, "a|b"}, host("ab"), nil, false},
		{"like missing field", Constraint{"rack", OpLike, ".*"}, host("a"), nil, false},
		{"unlike match", Constraint{"hostname", OpUnlike, "gpu-.*"}, host("gpu-1"), nil, false},
		{"unlike no match", Constraint{"hostname", OpUnlike, "gpu-.*"}, host("cpu-1"), nil, true},
		{"unlike missing field", Constraint{"rack", OpUnlike, "r1"}, host("a"), nil, true},

		{"max_per below", Constraint{"rack", OpMaxPer, "2"}, host("a", "rack", "r1"), []agentFacts{host("b", "rack", "r1")}, true},
		{"max_per reached", Constraint{"rack", OpMaxPer, "2"}, host("a", "rack", "r1"),
			[]agentFacts{host("b", "rack", "r1"), host("c", "rack", "r1")}, false},

		{"is text", Constraint{"zone", OpIs, "a"}, host("h", "zone", "a"), nil, true},
		{"is text differs", Constraint{"zone", OpIs, "a"}, host("h", "zone", "b"), nil, false},
		{"is scalar numeric", Constraint{"gen", OpIs, "3"}, host("h", "gen", "3.0"), nil, true},
		{"is hostname", Constraint{"hostname", OpIs, "h"}, host("h"), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := compileConstraints([]Constraint{tt.c})
			if err != nil {
				t.Fatal(err)
			}
			idx := newSiblingIndex(cs)
			for _, s := range tt.siblings {
				idx.add(s)
			}
			if got, _ := allowAll(cs, tt.agent, idx); got != tt.want {
				t.Errorf("allow = %v, want %v", got, tt.want)
			}
		})
	}
}
