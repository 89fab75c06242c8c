package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

type report struct {
	cfg                       config
	args                      []string
	started, finished         time.Time
	loadBefore, loadAfter     string
	uptimeBefore, uptimeAfter string
	apiHost, tree             string
	apiPort, mesosPort        int

	baseline, deploy, idle, idleUnreachable, idleHung *window
	deployTotal                                       time.Duration
	deployReady, deployFull                           []time.Duration
	scaleHealthy, scaleUnreachable, scaleHung         []scaleSample
	hungAccepted, hungOpen                            int
	readyAtEnd                                        int
	throttled                                         int
}

func (r *report) isAPI(host string) bool {
	return strings.HasSuffix(host, fmt.Sprintf(":%d", r.apiPort))
}

func ms(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	if d >= time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

func secs(f float64) string {
	if math.IsNaN(f) {
		return "—"
	}
	return ms(time.Duration(f * float64(time.Second)))
}

func (r *report) windows() []*window {
	var out []*window
	for _, w := range []*window{r.baseline, r.deploy, r.idle, r.idleUnreachable, r.idleHung} {
		if w != nil {
			out = append(out, w)
		}
	}
	return out
}

func (r *report) markdown() string {
	var b strings.Builder
	c := r.cfg
	fmt.Fprintf(&b, "\n### Scale benchmark: %d clusters (1 server + %d agents) on %d hosts\n\n", c.clusters, c.agentsPerCluster, c.hosts)
	fmt.Fprintf(&b, "Command: `go run ./hack/scale %s`; %s → %s (UTC), %d CPUs.\n\n",
		strings.Join(r.args, " "), r.started.UTC().Format("2006-01-02 15:04:05"), r.finished.UTC().Format("15:04:05"), numCPU())
	fmt.Fprintf(&b, "Operator built from %s.\n\n", r.tree)
	fmt.Fprintf(&b, "Load before: `%s` (`/proc/loadavg` %s); after: `%s` (%s).\n\n", r.uptimeBefore, r.loadBefore, r.uptimeAfter, r.loadAfter)
	fmt.Fprintf(&b, "Emulator: allocation every %s, heartbeats every %s; %d hosts for agents (`hostname LIKE %s`), %d for servers (`%s`), %d for the servers made unreachable (`%s`); 8 CPUs, 8 GiB, 64 GiB disk, ports %d-%d each. Specs: server 0.1 CPU / 64 MiB / 256 MiB volume, agents 0.1 CPU / 64 MiB. Operator flags: defaults%s.\n\n",
		c.allocationInterval, c.heartbeat, c.hosts, agentHostRE, serverHostsFor(c.clusters-c.unreachable), serverHostRE, c.unreachable, blackholeHostRE, portBegin, portEnd, func() string {
			if len(c.operatorArgs) == 0 {
				return ""
			}
			return " + `" + strings.Join(c.operatorArgs, " ") + "`"
		}())

	b.WriteString("| deploy: apply → Ready | figure |\n|---|---|\n")
	fmt.Fprintf(&b, "| all %d clusters Ready and AgentsReady (first create → last ready) | %s |\n", c.clusters, ms(r.deployTotal))
	fmt.Fprintf(&b, "| per cluster, create → `Ready` p50 / p90 / max | %s / %s / %s |\n",
		ms(percentile(r.deployReady, 0.5)), ms(percentile(r.deployReady, 0.9)), ms(percentile(r.deployReady, 1)))
	fmt.Fprintf(&b, "| per cluster, create → `Ready` + `AgentsReady` (all %d agents) p50 / p90 / max | %s / %s / %s |\n", c.agentsPerCluster,
		ms(percentile(r.deployFull, 0.5)), ms(percentile(r.deployFull, 0.9)), ms(percentile(r.deployFull, 1)))
	if r.deploy != nil {
		h := r.deploy.m1.histogram("mesosk3s_bridge_offer_decision_seconds").minus(r.deploy.m0.histogram("mesosk3s_bridge_offer_decision_seconds"))
		fmt.Fprintf(&b, "| OFFERS → first ACCEPT (`mesosk3s_bridge_offer_decision_seconds`), %0.f rounds: p50 / p90 / p99 | %s / %s / %s |\n",
			h.count(), secs(h.quantile(0.5)), secs(h.quantile(0.9)), secs(h.quantile(0.99)))
		d := func(n string) float64 { return r.deploy.m1.get(n) - r.deploy.m0.get(n) }
		fmt.Fprintf(&b, "| offers received / accepted / declined, tasks launched | %.0f / %.0f / %.0f, %.0f |\n",
			d("mesosk3s_bridge_offers_received_total"), d("mesosk3s_bridge_offers_accepted_total"), d("mesosk3s_bridge_offers_declined_total"), d("mesosk3s_bridge_task_launches_total"))
	}
	b.WriteString("\n")

	ws := r.windows()
	b.WriteString("| operator process |")
	for _, w := range ws {
		fmt.Fprintf(&b, " %s |", w.name)
	}
	b.WriteString("\n|---|")
	for range ws {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	row := func(label string, f func(w *window) string) {
		fmt.Fprintf(&b, "| %s |", label)
		for _, w := range ws {
			fmt.Fprintf(&b, " %s |", f(w))
		}
		b.WriteString("\n")
	}
	row("window", func(w *window) string { return ms(w.end.Sub(w.start)) })
	row("RSS (VmRSS) mean / max", func(w *window) string {
		mean, max := w.rssMiB()
		return fmt.Sprintf("%.0f / %.0f MiB", mean, max)
	})
	row("CPU (utime+stime), % of one core", func(w *window) string { return fmt.Sprintf("%.1f %%", w.cpuPercent()) })
	row("goroutines (`go_goroutines`) at end / max", func(w *window) string {
		return fmt.Sprintf("%.0f / %.0f", w.m1.get("go_goroutines"), w.maxMetric("go_goroutines"))
	})
	row("threads at end", func(w *window) string { return fmt.Sprint(w.p1.threads) })
	row("open fds (`process_open_fds`) at end / max", func(w *window) string {
		return fmt.Sprintf("%.0f / %.0f", w.m1.get("process_open_fds"), w.maxMetric("process_open_fds"))
	})
	row("socket fds at end / max", func(w *window) string {
		return fmt.Sprintf("%d / %d", w.p1.sockets, w.maxProc(func(p procSample) int { return p.sockets }))
	})
	row("TCP at end (management API / Mesos master / probes / listening / other)", func(w *window) string {
		var api, mesos, probes, listen, other int
		for _, c := range w.conns {
			switch {
			case c.state == "LISTEN":
				listen++
			case c.remotePort == r.apiPort:
				api++
			case c.remotePort == r.mesosPort:
				mesos++
			case c.remotePort >= portBegin && c.remotePort <= portEnd:
				probes++
			default:
				other++
			}
		}
		return fmt.Sprintf("%d / %d / %d / %d / %d", api, mesos, probes, listen, other)
	})
	row("probe sockets at end by state", func(w *window) string {
		st := map[string]int{}
		for _, c := range w.conns {
			if c.state != "LISTEN" && c.remotePort >= portBegin && c.remotePort <= portEnd {
				st[c.state]++
			}
		}
		if len(st) == 0 {
			return "none"
		}
		var parts []string
		for k, v := range st {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
		sort.Strings(parts)
		return strings.Join(parts, ", ")
	})
	row("goroutines at end − at start", func(w *window) string {
		return fmt.Sprintf("%+.0f", w.m1.get("go_goroutines")-w.m0.get("go_goroutines"))
	})
	row("reconciles/s (`controller_runtime_reconcile_total`)", func(w *window) string {
		return fmt.Sprintf("%.2f", w.rate("controller_runtime_reconcile_total", nil))
	})
	row("… of which errors/s", func(w *window) string {
		return fmt.Sprintf("%.2f", w.rate("controller_runtime_reconcile_total", func(l map[string]string) bool { return l["result"] == "error" }))
	})
	hist := func(w *window, name string) histogram {
		return w.m1.histogram(name).minus(w.m0.histogram(name))
	}
	mean := func(w *window, name string) float64 {
		n := w.m1.get(name+"_count") - w.m0.get(name+"_count")
		if n == 0 {
			return math.NaN()
		}
		return (w.m1.get(name+"_sum") - w.m0.get(name+"_sum")) / n
	}
	row("reconcile pass duration mean / p90 (`controller_runtime_reconcile_time_seconds`)", func(w *window) string {
		return secs(mean(w, "controller_runtime_reconcile_time_seconds")) + " / " + secs(hist(w, "controller_runtime_reconcile_time_seconds").quantile(0.9))
	})
	row("workqueue wait mean / p90 (`workqueue_queue_duration_seconds`)", func(w *window) string {
		return secs(mean(w, "workqueue_queue_duration_seconds")) + " / " + secs(hist(w, "workqueue_queue_duration_seconds").quantile(0.9))
	})
	row("workqueue depth max (`workqueue_depth`, 5 s scrapes)", func(w *window) string { return fmt.Sprintf("%.0f", w.maxMetric("workqueue_depth")) })
	row("management API requests/s (`rest_client_requests_total`)", func(w *window) string {
		return fmt.Sprintf("%.2f", w.rate("rest_client_requests_total", func(l map[string]string) bool { return r.isAPI(l["host"]) }))
	})
	row("… by method", func(w *window) string {
		byMethod := map[string]float64{}
		for _, s := range w.m1.series {
			if s.name == "rest_client_requests_total" && r.isAPI(s.labels["host"]) {
				byMethod[s.labels["method"]] += s.value
			}
		}
		for _, s := range w.m0.series {
			if s.name == "rest_client_requests_total" && r.isAPI(s.labels["host"]) {
				byMethod[s.labels["method"]] -= s.value
			}
		}
		var keys []string
		for k, v := range byMethod {
			if v > 0 {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, byMethod[k]/w.seconds()))
		}
		if len(parts) == 0 {
			return "none"
		}
		return strings.Join(parts, ", ")
	})
	row("scheduler calls/min (the emulator's count)", func(w *window) string {
		_, total := callsBetween(w.c0, w.c1)
		return fmt.Sprintf("%.0f", float64(total)/(w.seconds()/60))
	})
	row("… by type, per minute", func(w *window) string {
		by, _ := callsBetween(w.c0, w.c1)
		return formatCalls(by, w.seconds()/60)
	})
	row("resubscriptions (`mesosk3s_bridge_reconnects_total`)", func(w *window) string {
		return fmt.Sprintf("%.0f", w.m1.get("mesosk3s_bridge_reconnects_total")-w.m0.get("mesosk3s_bridge_reconnects_total"))
	})
	row("this program's CPU (emulator, watch), % of one core", func(w *window) string { return fmt.Sprintf("%.1f %%", w.selfCPUPercent()) })
	b.WriteString("\n")

	if len(r.scaleHealthy) > 0 {
		b.WriteString("| spec change of a healthy cluster (agents ±1) | observedGeneration caught up: median / max | Ready again at the new count: median / max |\n|---|---|---|\n")
		line := func(label string, ss []scaleSample) {
			if len(ss) == 0 {
				return
			}
			var obs, ag []time.Duration
			for _, s := range ss {
				obs, ag = append(obs, s.observed), append(ag, s.agents)
			}
			fmt.Fprintf(&b, "| %s (%d samples) | %s / %s | %s / %s |\n", label, len(ss),
				ms(percentile(obs, 0.5)), ms(percentile(obs, 1)), ms(percentile(ag, 0.5)), ms(percentile(ag, 1)))
		}
		line("every API server answers or refuses", r.scaleHealthy)
		line(fmt.Sprintf("%d clusters' servers unreachable (SYN dropped)", c.unreachable), r.scaleUnreachable)
		line(fmt.Sprintf("%d clusters' servers hung (TCP accepted, never answered)", c.unreachable), r.scaleHung)
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "client-go's \"Waited ... due to client-side throttling\" lines in the operator's log over the whole run: %d.\n\n", r.throttled)
	if r.idleHung != nil {
		fmt.Fprintf(&b, "Hung phase: the black-holed servers accepted %d probe connections (never answered) from its start to its end; %d of them were still open, that is never closed by the operator; %d of %d clusters fully Ready at the end.\n",
			r.hungAccepted, r.hungOpen, r.readyAtEnd, c.clusters)
	}
	return b.String()
}
