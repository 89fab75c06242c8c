package controllers

import (
	"sort"

	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// scaleDownKills names the live tasks that are no longer desired (their index is past
// the replica count), not-ready ones first, then the highest index first, so that a
// scale-down never takes a serving task while a broken one remains.
func scaleDownKills(desired []mesosbridge.TaskSpec, observed map[string]mesosbridge.ObservedTask) []string {
	want := map[string]bool{}
	for _, t := range desired {
		want[t.Name] = true
	}
	var excess []mesosbridge.ObservedTask
	for name, o := range observed {
		if !want[name] && taskLive(o, true) && o.State != mesosbridge.TaskKilling {
			excess = append(excess, o)
		}
	}
	sort.Slice(excess, func(i, j int) bool {
		ri, rj := taskReady(excess[i], true), taskReady(excess[j], true)
		if ri != rj {
			return !ri
		}
		if excess[i].Role != excess[j].Role {
			return excess[i].Role == roleAgent // agents go before servers
		}
		return excess[i].Index > excess[j].Index
	})
	names := make([]string, len(excess))
	for i, o := range excess {
		names[i] = o.Name
	}
	return names
}
