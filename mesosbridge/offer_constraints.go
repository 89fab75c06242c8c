package mesosbridge

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
)

// ConstraintOperator is a Marathon constraint operator; Mesos users know this vocabulary.
type ConstraintOperator string

const (
	// OpUnique: no two sibling tasks share a value of the field.
	OpUnique ConstraintOperator = "UNIQUE"
	// OpCluster: every sibling runs on the same value; Value fixes it, otherwise the first
	// placed task does.
	OpCluster ConstraintOperator = "CLUSTER"
	// OpGroupBy: spread siblings evenly over the field's values; Value (optional) is the
	// minimum number of groups expected before the spread is enforced.
	OpGroupBy ConstraintOperator = "GROUP_BY"
	// OpLike: the field's value fully matches the regular expression Value.
	OpLike ConstraintOperator = "LIKE"
	// OpUnlike: the field's value does not fully match Value (a missing field passes).
	OpUnlike ConstraintOperator = "UNLIKE"
	// OpMaxPer: at most Value siblings per value of the field.
	OpMaxPer ConstraintOperator = "MAX_PER"
	// OpIs: the field's value equals Value (numerically for scalar attributes).
	OpIs ConstraintOperator = "IS"
)

// FieldHostname is the constraint field that means the agent's host name rather than an
// attribute.
const FieldHostname = "hostname"

// Validate reports a constraint that can never be evaluated, with the reason.
func (c Constraint) Validate() error {
	if c.Field == "" {
		return fmt.Errorf("constraint %s: field is required", c.Operator)
	}
	switch c.Operator {
	case OpUnique:
		return nil
	case OpCluster:
		return nil
	case OpGroupBy:
		if c.Value == "" {
			return nil
		}
		if n, err := strconv.Atoi(c.Value); err != nil || n < 1 {
			return fmt.Errorf("constraint %s %s: value %q must be a positive number of groups", c.Field, c.Operator, c.Value)
		}
		return nil
	case OpMaxPer:
		if n, err := strconv.Atoi(c.Value); err != nil || n < 1 {
			return fmt.Errorf("constraint %s %s: value %q must be a positive integer", c.Field, c.Operator, c.Value)
		}
		return nil
	case OpLike, OpUnlike:
		if c.Value == "" {
			return fmt.Errorf("constraint %s %s: a regular expression value is required", c.Field, c.Operator)
		}
		if _, err := regexp.Compile(anchored(c.Value)); err != nil {
			return fmt.Errorf("constraint %s %s: invalid regular expression %q: %v", c.Field, c.Operator, c.Value, err)
		}
		return nil
	case OpIs:
		if c.Value == "" {
			return fmt.Errorf("constraint %s %s: a value is required", c.Field, c.Operator)
		}
		return nil
	case "":
		return fmt.Errorf("constraint on %s: operator is required", c.Field)
	default:
		return fmt.Errorf("constraint %s: unknown operator %q (want UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER or IS)", c.Field, c.Operator)
	}
}

// ValidateConstraints validates every constraint and joins the errors.
func ValidateConstraints(cs []Constraint) error {
	var errs []error
	for _, c := range cs {
		if err := c.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// anchored makes a Marathon regex match the whole value, as Marathon does.
func anchored(re string) string { return "^(?:" + re + ")$" }

// agentFacts is what a constraint can look at on an agent: its host name and attributes
// rendered as text (scalars in their shortest decimal form).
type agentFacts struct {
	hostname   string
	attributes map[string]string
}

func (a agentFacts) field(name string) (string, bool) {
	if name == FieldHostname {
		return a.hostname, true
	}
	v, ok := a.attributes[name]
	return v, ok
}

// compiledConstraint is a validated constraint with its regular expression compiled once
// per matching pass rather than once per offer.
type compiledConstraint struct {
	Constraint
	re      *regexp.Regexp
	number  int     // MAX_PER limit or GROUP_BY minimum groups
	numeric float64 // IS value when it parses as a number
	isNum   bool
}

func compileConstraints(cs []Constraint) ([]compiledConstraint, error) {
	out := make([]compiledConstraint, 0, len(cs))
	for _, c := range cs {
		if err := c.Validate(); err != nil {
			return nil, err
		}
		cc := compiledConstraint{Constraint: c}
		switch c.Operator {
		case OpLike, OpUnlike:
			cc.re = regexp.MustCompile(anchored(c.Value)) // validated above
		case OpMaxPer, OpGroupBy:
			if c.Value != "" {
				cc.number, _ = strconv.Atoi(c.Value)
			}
		case OpIs:
			if f, err := strconv.ParseFloat(c.Value, 64); err == nil {
				cc.numeric, cc.isNum = f, true
			}
		}
		out = append(out, cc)
	}
	return out, nil
}

// siblingValues counts, for one constraint field, how many sibling tasks (same cluster,
// same role, running or placed earlier in this round) sit on each value of the field.
type siblingValues map[string]int

// siblingIndex holds the counts of every field a role's constraints look at, so a
// constraint check is a map lookup instead of a walk over all siblings.
type siblingIndex map[string]siblingValues

// add records a sibling on the agent for every field of the index.
func (idx siblingIndex) add(agent agentFacts) {
	for field, values := range idx {
		if v, ok := agent.field(field); ok {
			values[v]++
		}
	}
}

func newSiblingIndex(cs []compiledConstraint) siblingIndex {
	idx := siblingIndex{}
	for _, c := range cs {
		if idx[c.Field] == nil {
			idx[c.Field] = siblingValues{}
		}
	}
	return idx
}

// allow reports whether a task may go to the agent, given where its siblings are. The
// semantics follow Marathon's Constraints.scala, including that a missing field only
// satisfies UNLIKE.
func (c compiledConstraint) allow(agent agentFacts, siblings siblingValues) bool {
	value, ok := agent.field(c.Field)
	if !ok {
		return c.Operator == OpUnlike
	}
	switch c.Operator {
	case OpUnique:
		return siblings[value] == 0
	case OpCluster:
		if c.Value != "" {
			return value == c.Value
		}
		// Without a value, the first placed sibling fixes it for the others.
		for v := range siblings {
			if v != value && siblings[v] > 0 {
				return false
			}
		}
		return true
	case OpGroupBy:
		return allowGroupBy(c.number, value, siblings)
	case OpLike:
		return c.re.MatchString(value)
	case OpUnlike:
		return !c.re.MatchString(value)
	case OpMaxPer:
		return siblings[value] < c.number
	case OpIs:
		if c.isNum {
			if f, err := strconv.ParseFloat(value, 64); err == nil {
				return f == c.numeric
			}
		}
		return value == c.Value
	}
	return false
}

// allowGroupBy accepts a value no sibling uses yet; a used value only when at least
// minGroups groups exist and this group is (one of) the smallest.
func allowGroupBy(minGroups int, value string, siblings siblingValues) bool {
	mine := siblings[value]
	if mine == 0 {
		return true
	}
	groups, smallest := 0, mine
	for _, n := range siblings {
		if n == 0 {
			continue
		}
		groups++
		if n < smallest {
			smallest = n
		}
	}
	return groups >= minGroups && mine == smallest
}

// allowAll checks every constraint of a task against one agent.
func allowAll(cs []compiledConstraint, agent agentFacts, idx siblingIndex) (bool, *compiledConstraint) {
	for i := range cs {
		if !cs[i].allow(agent, idx[cs[i].Field]) {
			return false, &cs[i]
		}
	}
	return true, nil
}

func (c compiledConstraint) String() string {
	if c.Value == "" {
		return c.Field + ":" + string(c.Operator)
	}
	return c.Field + ":" + string(c.Operator) + ":" + c.Value
}
