package controllers

import (
	"fmt"

	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// taskReady says whether an observed task serves: running, and healthy when Mesos checks
// its health (servers always have a check, so a server is ready only once it answers).
func taskReady(t mesosbridge.ObservedTask, ok bool) bool {
	if !ok || t.State != mesosbridge.TaskRunning {
		return false
	}
	if t.Role == roleServer {
		return t.Healthy != nil && *t.Healthy
	}
	return t.Healthy == nil || *t.Healthy
}

// taskLive says whether a task of that name exists on Mesos and may still serve.
func taskLive(t mesosbridge.ObservedTask, ok bool) bool {
	return ok && t.State != "" && !t.State.Terminal()
}

// gate picks the desired tasks that may be launched now, following the plan: servers one
// at a time, each after the previous one is ready (embedded etcd adds members one by one;
// K3s servers joining an unready server fail), and agents only once server-0 is ready and
// its URL is known. serversJoinFirst says the other servers register with server-0 (embedded
// etcd) rather than meeting in a shared datastore. Tasks in back-off after a failure wait too. Tasks already live are
// always passed on, so the bridge keeps tracking them. It also says what the plan waits for.
func gate(all []mesosbridge.TaskSpec, observed map[string]mesosbridge.ObservedTask, serverURL string, serversJoinFirst bool, inBackoff func(name string) bool, ready readiness) ([]mesosbridge.TaskSpec, string) {
	var out []mesosbridge.TaskSpec
	var waiting string
	wait := func(why string) {
		if waiting == "" {
			waiting = why
		}
	}
	prevServersReady := true
	for _, t := range all {
		obs, ok := observed[t.Name]
		if taskLive(obs, ok) {
			out = append(out, t)
			if t.Role == roleServer {
				prevServersReady = prevServersReady && ready.serves(obs)
			}
			continue
		}
		switch {
		case inBackoff(t.Name):
			wait(fmt.Sprintf("%s is waiting out its relaunch back-off", t.Name))
		case t.Role == roleServer && !prevServersReady:
			wait(fmt.Sprintf("%s waits until the servers before it are ready", t.Name))
		case t.Role == roleServer && t.Index > 0 && serversJoinFirst && serverURL == "":
			wait(fmt.Sprintf("%s waits for server-0's address", t.Name))
		case t.Role == roleAgent && (!firstServerReady(observed, ready) || serverURL == ""):
			wait("agents wait until server-0 is ready")
		default:
			out = append(out, t)
		}
		if t.Role == roleServer {
			prevServersReady = false
		}
	}
	return out, waiting
}

func firstServerReady(observed map[string]mesosbridge.ObservedTask, ready readiness) bool {
	t, ok := observed[firstServer]
	return ok && ready.serves(t)
}
