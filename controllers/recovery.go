package controllers

import (
	"fmt"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/k3s"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// stableAfter is how long a relaunched task must serve before its failure count resets,
// so a task that crashes a few seconds after each start still ends up Stalled.
const stableAfter = 30 * time.Second

// remediation is the relaunch policy of spec.remediation, with the defaults applied.
type remediation struct {
	backoff, maxBackoff time.Duration
	threshold           int32
}

func remediationOf(spec v1alpha1.RemediationSpec) remediation {
	r := remediation{backoff: 10 * time.Second, maxBackoff: 5 * time.Minute, threshold: 5}
	if spec.RelaunchBackoff != nil {
		r.backoff = spec.RelaunchBackoff.Duration
	}
	if spec.MaxRelaunchBackoff != nil {
		r.maxBackoff = spec.MaxRelaunchBackoff.Duration
	}
	if spec.FailureThreshold > 0 {
		r.threshold = spec.FailureThreshold
	}
	return r
}

// delay is the back-off after the n-th consecutive failure: none after the first (a task
// that failed once is relaunched within one allocation interval), then backoff doubling
// from the second, capped.
func (r remediation) delay(n int32) time.Duration {
	if n <= 1 {
		return 0
	}
	d := r.backoff
	for i := int32(2); i < n && d < r.maxBackoff; i++ {
		d *= 2
	}
	return min(d, r.maxBackoff)
}

// tracking is what trackTasks concluded about the cluster's tasks.
type tracking struct {
	// tasks is the new status.tasks, sorted by role and index.
	tasks []v1alpha1.TaskStatus
	// backoffUntil holds the tasks waiting to be relaunched, and until when.
	backoffUntil map[string]time.Time
	// newFailures names the tasks that failed since the last pass (for events).
	newFailures []v1alpha1.TaskStatus
	// failed names the desired tasks that are terminal.
	failed []string
	// stalled explains the first task at or over the failure threshold.
	stalled string
}

// trackTasks merges what the bridge observed into the previous status.tasks: it counts
// each unexpected end of a desired task once (per Mesos task ID), relaunches with back-off,
// and resets the count once a task has served for stableAfter. Tasks the operator ended
// itself (scaled away or replaced by the rollout, so not desired or of another spec) are
// not failures. version is what the desired tasks run, recorded on the tasks that match them.
func trackTasks(prev []v1alpha1.TaskStatus, observed map[string]mesosbridge.ObservedTask, desired map[string]mesosbridge.TaskSpec, version string, rem remediation, now time.Time) tracking {
	out := tracking{backoffUntil: map[string]time.Time{}}
	prevByName := map[string]v1alpha1.TaskStatus{}
	for _, t := range prev {
		prevByName[t.Name] = t
	}
	names := map[string]bool{}
	for n := range prevByName {
		names[n] = true
	}
	for n := range observed {
		names[n] = true
	}

	for name := range names {
		p, hadPrev := prevByName[name]
		obs, seen := observed[name]
		spec, isDesired := desired[name]
		st := p
		if !hadPrev {
			st = v1alpha1.TaskStatus{Name: name, Role: string(obs.Role)}
		}
		if seen {
			st = mergeObserved(st, obs, spec, isDesired, version)
			sameIncarnationCounted := hadPrev && p.TaskID == obs.TaskID && mesosbridge.TaskState(p.State).Terminal()
			if hadPrev && p.TaskID != "" && obs.TaskID != p.TaskID {
				st.Restarts++
			}
			// A task Mesos killed with its removed framework, or whose agent is gone for
			// good, did not fail: it is relaunched (elsewhere) at once, without a back-off.
			notItsFault := obs.Reason == mesosbridge.ReasonFrameworkRemoved || goneForGood(obs.State)
			if obs.State.Terminal() && !sameIncarnationCounted && !notItsFault && isDesired && (obs.SpecHash == "" || st.SpecHash == spec.SpecHash) {
				st.ConsecutiveFailures++
				st.LastFailureTime = &metav1.Time{Time: now}
				out.newFailures = append(out.newFailures, st)
			}
			if taskReady(obs, true) && st.ConsecutiveFailures > 0 && !obs.StateSince.IsZero() && now.Sub(obs.StateSince) >= stableAfter {
				st.ConsecutiveFailures = 0
			}
		}
		terminal := st.State == "" || mesosbridge.TaskState(st.State).Terminal()
		if isDesired && terminal && st.ConsecutiveFailures > 0 && st.SpecHash != "" && st.SpecHash != spec.SpecHash {
			// A failure streak belongs to the spec that failed: once the spec changed (a
			// fix, a version set back) the next incarnation starts now, with a clean count.
			st.ConsecutiveFailures = 0
		}
		if !isDesired && terminal {
			continue // scaled away and gone: forget it
		}
		if isDesired && terminal && st.TaskID != "" {
			out.failed = append(out.failed, name)
			if st.LastFailureTime != nil && st.ConsecutiveFailures > 0 {
				if until := st.LastFailureTime.Add(rem.delay(st.ConsecutiveFailures)); now.Before(until) {
					out.backoffUntil[name] = until
				}
			}
		}
		out.tasks = append(out.tasks, st)
	}
	sortTaskStatuses(out.tasks)
	sort.Strings(out.failed)
	for _, t := range out.tasks {
		if t.ConsecutiveFailures >= rem.threshold {
			out.stalled = fmt.Sprintf("%s failed %d times in a row (last: %s); still relaunching every %s", t.Name, t.ConsecutiveFailures, t.Message, rem.delay(t.ConsecutiveFailures))
			break
		}
	}
	return out
}

// unreachableReplacements names the desired tasks that have been on an unreachable agent
// for at least grace and can run elsewhere (no persistent volume ties them to that agent).
// Killing them lets the bridge launch replacements at once; the old task is killed if its
// agent comes back. A server with a volume waits for its agent instead: its data is there.
// wait is how long until the next such task is due (0 when none waits).
func unreachableReplacements(desired []mesosbridge.TaskSpec, known map[string]mesosbridge.ObservedTask, grace time.Duration, now time.Time) (names []string, wait time.Duration) {
	for _, t := range desired {
		o, ok := known[t.Name]
		if ok && o.State == mesosbridge.TaskUnknown && t.Volume == nil {
			names = append(names, t.Name) // the master forgot its agent: nothing to wait for
			continue
		}
		if !ok || o.State != mesosbridge.TaskUnreachable || t.Volume != nil {
			continue
		}
		if due := o.StateSince.Add(grace); now.Before(due) {
			if d := due.Sub(now); wait == 0 || d < wait {
				wait = d
			}
			continue
		}
		names = append(names, t.Name)
	}
	return names, wait
}

// serverWithUnknownPort names server-0 when it runs but its API port is unknown, which
// happens only when an operator died between launching it and recording the launch:
// Mesos reports no ports on reconciliation. Without an endpoint override the cluster's
// URL cannot be known, so the server is relaunched (its data stays on its volume).
func serverWithUnknownPort(c *v1alpha1.K3sCluster, known map[string]mesosbridge.ObservedTask) []string {
	if c.Spec.Kubeconfig.Endpoint != "" {
		return nil
	}
	o, ok := known[firstServer]
	if !taskLive(o, ok) || o.State == mesosbridge.TaskKilling || o.Ports[k3s.PortAPI] != 0 {
		return nil
	}
	return []string{firstServer}
}
