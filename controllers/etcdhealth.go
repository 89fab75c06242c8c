package controllers

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mesosk3s/mesosk3s/k3s"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// With embedded etcd, a server serves only while its etcd member says it is healthy, and
// a rollout replaces the next server only while etcd has a member for every server: the
// operator asks each server's etcd itself (K3s's client port on the server's host), with a
// client certificate it issues from the cluster's etcd server CA, which K3s's etcd trusts
// for clients. The API server's /readyz only proves that etcd has a quorum.

// etcdTarget is what the probes need to ask embedded etcd: the cluster's etcd server CA.
type etcdTarget struct {
	ca keyPair
}

// etcdHealth is what the servers' etcd said in one round.
type etcdHealth struct {
	// members are the etcd members' names, as one healthy member lists them.
	members []string
	// problem says why the members could not be listed ("" when they were).
	problem string
	// memberOf maps server task names to their member's ID; leader is the leader's task
	// name ("" when unknown).
	memberOf map[string]string
	leader   string
	// listed are all members with their IDs, those of servers no longer running included.
	listed []etcdMember
}

func (e *etcdHealth) equal(o *etcdHealth) bool {
	if e == nil || o == nil {
		return e == o
	}
	return e.problem == o.problem && strings.Join(e.members, ",") == strings.Join(o.members, ",") && e.leader == o.leader
}

// etcdComplete says whether etcd has a member for each of the wanted servers (true when
// the cluster has no embedded etcd, or nothing was checked yet), and if not, why.
func (r readiness) etcdComplete(servers int) (bool, string) {
	if r.probe == nil || r.probe.etcd == nil {
		return true, ""
	}
	e := r.probe.etcd
	switch {
	case e.problem != "":
		return false, e.problem
	case len(e.members) != servers:
		return false, fmt.Sprintf("%d members %v, want %d", len(e.members), e.members, servers)
	}
	return true, ""
}

// etcdClient is an HTTPS client with a client certificate from the etcd server CA; it is
// issued once per CA and worker, valid for a day and renewed an hour before it ends.
func (w *probeWorker) etcdClient(t probeTarget, now time.Time) (*http.Client, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.etcd != nil && string(w.etcdFor) == string(t.etcd.ca.CertPEM) && now.Before(w.etcdUntil) {
		return w.etcd, nil
	}
	cert, err := t.etcd.ca.signClientCert(pkix.Name{CommonName: "mesosk3s-etcd-probe"}, now.Add(-time.Minute), 24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("issuing the etcd client certificate: %w", err)
	}
	pair, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
	if err != nil {
		return nil, err
	}
	if w.etcd != nil {
		w.etcd.CloseIdleConnections()
	}
	w.etcd = probeClient(&tls.Config{RootCAs: pool(t.etcd.ca.CertPEM), Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, w.probes.timeout)
	w.etcdFor, w.etcdUntil = t.etcd.ca.CertPEM, now.Add(23*time.Hour)
	return w.etcd, nil
}

// checkEtcd asks every server's etcd member for its health (GET /health) and one healthy
// member for the member list (etcd's gRPC gateway, POST /v3/cluster/member/list).
func (w *probeWorker) checkEtcd(ctx context.Context, t probeTarget, res *probeResult) {
	c, err := w.etcdClient(t, time.Now())
	if err != nil {
		res.etcd = &etcdHealth{problem: err.Error()}
		return
	}
	res.etcd = &etcdHealth{problem: "no etcd member answered"}
	for _, name := range slices.Sorted(maps.Keys(t.servers)) {
		h := res.servers[name]
		base, err := etcdURL(t.servers[name].url)
		if err != nil {
			continue
		}
		h.etcdChecked = true
		code, body, err := get(ctx, c, base+"/health", "", "", w.probes.timeout)
		switch {
		case err != nil:
			h.etcdMessage = "etcd: " + err.Error()
		case code != http.StatusOK || !strings.Contains(body, `"health":"true"`):
			h.etcdMessage = fmt.Sprintf("etcd /health answered %d: %s", code, body)
		default:
			h.etcdHealthy = true
			if res.etcd.members == nil {
				if members, err := etcdMembers(ctx, c, base, w.probes.timeout); err != nil {
					res.etcd.problem = err.Error()
				} else {
					res.etcd = &etcdHealth{members: memberNames(members), memberOf: membersOfTasks(t.key.Name, members, t.servers), listed: members}
					if leader, err := etcdLeader(ctx, c, base, w.probes.timeout); err == nil {
						for task, id := range res.etcd.memberOf {
							if id == leader {
								res.etcd.leader = task
							}
						}
					}
				}
			}
		}
		res.servers[name] = h
	}
}

// membersOfTasks maps server tasks to etcd member IDs: K3s names a member after its node,
// <node name>-<8 hex>.
func membersOfTasks(cluster string, members []etcdMember, servers map[string]serverAddress) map[string]string {
	out := map[string]string{}
	for task := range servers {
		for _, m := range members {
			if strings.HasPrefix(m.Name, nodeName(cluster, task)+"-") {
				out[task] = m.ID
			}
		}
	}
	return out
}

// moveEtcdLeader asks the etcd leader, when it is the member of server task, to hand
// leadership to another healthy member (etcd's MoveLeader, POST
// /v3/maintenance/transfer-leadership on the leader), so that replacing the task costs no
// leader election: the API keeps answering. It reports whether it moved it.
func (w *probeWorker) moveEtcdLeader(ctx context.Context, task string) (bool, error) {
	w.mu.Lock()
	t, last := w.target, w.last
	w.mu.Unlock()
	if t.etcd == nil || last == nil || last.etcd == nil || last.etcd.leader != task {
		return false, nil
	}
	target := ""
	for _, other := range slices.Sorted(maps.Keys(last.etcd.memberOf)) {
		if other != task && last.servers[other].etcdHealthy {
			target = last.etcd.memberOf[other]
			break
		}
	}
	if target == "" {
		return false, fmt.Errorf("no other healthy etcd member to hand leadership to")
	}
	c, err := w.etcdClient(t, time.Now())
	if err != nil {
		return false, err
	}
	base, err := etcdURL(t.servers[task].url)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*w.probes.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v3/maintenance/transfer-leadership", strings.NewReader(`{"targetID":"`+target+`"}`))
	if err != nil {
		return false, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, fmt.Errorf("etcd transfer-leadership: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("etcd transfer-leadership answered %d: %.200s", resp.StatusCode, body)
	}
	// The next round must see the new leader before anything relies on it.
	select {
	case w.wake <- struct{}{}:
	default:
	}
	w.mu.Lock()
	if w.last != nil && w.last.etcd != nil {
		moved := *w.last.etcd
		moved.leader = ""
		res := *w.last
		res.etcd = &moved
		w.last = &res
	}
	w.mu.Unlock()
	return true, nil
}

// MoveEtcdLeader moves embedded etcd's leadership away from the member of server task
// of the cluster before the task is replaced (see moveEtcdLeader).
func (p *httpProbes) MoveEtcdLeader(ctx context.Context, key mesosbridge.ClusterKey, task string) (bool, error) {
	p.mu.Lock()
	w := p.workers[key]
	p.mu.Unlock()
	if w == nil {
		return false, nil
	}
	return w.moveEtcdLeader(ctx, task)
}

// etcdLeader is the leader's member ID as one member sees it (POST /v3/maintenance/status).
func etcdLeader(ctx context.Context, c *http.Client, base string, timeout time.Duration) (string, error) {
	var st struct {
		Leader string `json:"leader"`
	}
	if err := etcdPost(ctx, c, base+"/v3/maintenance/status", timeout, &st); err != nil {
		return "", err
	}
	return st.Leader, nil
}

// etcdURL is the etcd client URL on a server's host.
func etcdURL(serverURL string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", err
	}
	return "https://" + net.JoinHostPort(u.Hostname(), strconv.Itoa(k3s.EtcdClientPort)), nil
}

// etcdMember is a member as etcd's gRPC gateway lists it (64-bit IDs as strings).
type etcdMember struct {
	ID   string `json:"ID"`
	Name string `json:"name"`
}

func etcdMembers(ctx context.Context, c *http.Client, base string, timeout time.Duration) ([]etcdMember, error) {
	var list struct {
		Members []etcdMember `json:"members"`
	}
	if err := etcdPost(ctx, c, base+"/v3/cluster/member/list", timeout, &list); err != nil {
		return nil, err
	}
	return list.Members, nil
}

// memberNames are the members' names, sorted; a member added but not started yet has none.
func memberNames(members []etcdMember) []string {
	names := []string{}
	for _, m := range members {
		name := m.Name
		if name == "" {
			name = "(unstarted)"
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// etcdPost POSTs an empty request to one of etcd's gRPC gateway endpoints and decodes the answer.
func etcdPost(ctx context.Context, c *http.Client, u string, timeout time.Duration, into any) error {
	return etcdPostBody(ctx, c, u, "{}", timeout, into)
}

// etcdPostBody POSTs a JSON request to one of etcd's gRPC gateway endpoints and decodes
// the answer.
func etcdPostBody(ctx context.Context, c *http.Client, u, body string, timeout time.Duration, into any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("etcd %s: %w", path.Base(u), err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("etcd %s answered %d: %.200s", path.Base(u), resp.StatusCode, answer)
	}
	if err := json.Unmarshal(answer, into); err != nil {
		return fmt.Errorf("etcd %s: %w", path.Base(u), err)
	}
	return nil
}
