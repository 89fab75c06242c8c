package controllers

import (
	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// readiness tells whether a task serves. Mesos' view comes first: running, and healthy when
// Mesos checks its health. Where the operator's own checks reach the cluster they must
// agree: a server's API server and K3s's runtime core answer, an agent's Node is Ready.
// Where they cannot reach it (nothing answers at the endpoint from where the operator
// runs), Mesos' view is all there is, and the conditions say so.
type readiness struct {
	// probe is the last result of the operator's checks; nil before the first.
	probe *probeResult
	// nodeName names the Node of an agent task.
	nodeName func(task string) string
}

// mesosOnly is readiness as Mesos alone sees it.
var mesosOnly = readiness{}

// serves reports whether the task serves.
func (r readiness) serves(o mesosbridge.ObservedTask) bool {
	if !taskReady(o, true) {
		return false
	}
	if r.probe == nil {
		return true
	}
	switch o.Role {
	case roleServer:
		if h, ok := r.probe.servers[o.Name]; ok && h.taskID == o.TaskID && h.reachable {
			return h.ready()
		}
	case roleAgent:
		if r.probe.nodes != nil {
			return r.probe.nodes[r.nodeName(o.Name)].ready
		}
	}
	return true
}

// why explains a task Mesos sees ready that the operator's checks do not ("" if none).
func (r readiness) why(o mesosbridge.ObservedTask) string {
	if r.probe == nil || !taskReady(o, true) || r.serves(o) {
		return ""
	}
	if o.Role == roleServer {
		return r.probe.servers[o.Name].why()
	}
	n, ok := r.probe.nodes[r.nodeName(o.Name)]
	if !ok {
		return "its Node " + r.nodeName(o.Name) + " has not registered"
	}
	return "its Node " + r.nodeName(o.Name) + " is not Ready: " + n.message
}
