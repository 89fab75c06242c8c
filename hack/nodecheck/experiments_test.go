package nodecheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExperimentTwoClustersOneNetns shows why agents of different clusters must not share
// a network namespace (RECIPE.md, "What did not work"): everything else can be kept
// apart (ports from the offer, pod CIDRs, flannel's VNI, UDP port and bridge), but both
// kube-proxies own the same iptables chains (KUBE-SERVICES, and even the same
// KUBE-SVC-<hash> for default/kubernetes), so the last one to sync wipes the other
// cluster's Services. It reports what it sees and fails only if it cannot run; it runs
// only with NODECHECK_EXPERIMENTS=1.
func TestExperimentTwoClustersOneNetns(t *testing.T) {
	if os.Getenv("NODECHECK_EXPERIMENTS") != "1" {
		t.Skip("an experiment: NODECHECK_EXPERIMENTS=1 runs it")
	}
	e, hosts := newEnv(t, 1)
	h := hosts[0]
	srvB := startServer(t, e.k3s, filepath.Join(e.work, "server-b"), e.cniBin,
		clusterNet{cluster: "10.88.0.0/16", service: "10.89.0.0/16", dns: "10.89.0.10"})
	a := e.launchAgent(h, "a-1", filepath.Join(e.work, "hosts", h.name, "data", "a-1"), nil)
	nA := e.waitReady(a)
	// Cluster B's flannel on its own VNI (device flannel.2), UDP port and bridge.
	netconf := filepath.Join(e.work, "b-net-conf.json")
	if err := os.WriteFile(netconf, []byte(`{"Network":"10.88.0.0/16","EnableIPv4":true,"EnableIPv6":false,"Backend":{"Type":"vxlan","VNI":2,"Port":8473}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	e.agentArgs = " --flannel-conf=" + netconf
	e.flannelConflist = strings.Replace(flannelConflist, `"isDefaultGateway": true`, `"isDefaultGateway": true, "bridge": "cni1"`, 1)
	b := e.launchAgentOf(srvB, h, "b-1", filepath.Join(e.work, "hosts", h.name, "data", "b-1"), nil)
	nB, err := srvB.waitNodeReady("b-1", b.launched, 2*time.Minute, b.alive)
	if err != nil {
		t.Fatalf("%v\n%s", err, tail(filepath.Join(b.sandbox, "stderr"), 30))
	}
	mustRun(t, "ip", "route", "replace", nA.Spec.PodCIDR, "via", h.ip, "dev", bridgeName)
	mustRun(t, "ip", "route", "replace", nB.Spec.PodCIDR, "via", h.ip, "dev", bridgeName)
	clusters := []struct {
		s          *server
		name, node string
		svcIP      string
	}{{s: e.srv, name: "web-a", node: "a-1"}, {s: srvB, name: "web-b", node: "b-1"}}
	for i := range clusters {
		c := &clusters[i]
		if _, err := c.s.kubectlStdin(strings.NewReader(webPod(c.name, c.node)), "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.s.waitPodReady(c.name, "", time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := c.s.kubectl("expose", "pod", c.name, "--port=80", "--target-port=8080"); err != nil {
			t.Fatal(err)
		}
		c.svcIP, _ = c.s.kubectl("get", "svc", c.name, "-o", "jsonpath={.spec.clusterIP}")
	}
	time.Sleep(5 * time.Second) // both kube-proxies have synced at least once
	for round := 0; round < 6; round++ {
		var line []string
		for _, c := range clusters {
			body, err := inNetns(h.name, "curl", "-s", "-m", "3", "http://"+c.svcIP+"/")
			line = append(line, c.name+" Service "+c.svcIP+": "+strings.TrimSpace(body)+errText(err))
		}
		t.Logf("round %d: %s", round, strings.Join(line, "; "))
		time.Sleep(5 * time.Second)
	}
	out, _ := inNetns(h.name, "sh", "-c", "iptables-save -t nat | grep -- '-A KUBE-SERVICES'")
	t.Logf("links on %s: %v\nKUBE-SERVICES of %s's netns:\n%s", h.name, linkNames(h.name), h.name, out)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}
