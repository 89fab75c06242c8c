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
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mesosk3s/mesosk3s/k3s"
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
}

func (e *etcdHealth) equal(o *etcdHealth) bool {
	if e == nil || o == nil {
		return e == o
	}
	return e.problem == o.problem && strings.Join(e.members, ",") == strings.Join(o.members, ",")
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
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool(t.etcd.ca.CertPEM), Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		DialContext: (&net.Dialer{Timeout: w.probes.timeout}).DialContext, IdleConnTimeout: 30 * time.Second}
	w.etcd, w.etcdFor, w.etcdUntil = &http.Client{Transport: tr, Timeout: w.probes.timeout}, t.etcd.ca.CertPEM, now.Add(23*time.Hour)
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
					res.etcd = &etcdHealth{members: members}
				}
			}
		}
		res.servers[name] = h
	}
}

// etcdURL is the etcd client URL on a server's host.
func etcdURL(serverURL string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", err
	}
	return "https://" + net.JoinHostPort(u.Hostname(), strconv.Itoa(k3s.EtcdClientPort)), nil
}

func etcdMembers(ctx context.Context, c *http.Client, base string, timeout time.Duration) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v3/cluster/member/list", strings.NewReader("{}"))
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("etcd member list: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("etcd member list answered %d: %.200s", resp.StatusCode, body)
	}
	var list struct {
		Members []struct {
			Name string `json:"name"`
		} `json:"members"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("etcd member list: %w", err)
	}
	names := []string{}
	for _, m := range list.Members {
		// A member added but not started yet has no name.
		name := m.Name
		if name == "" {
			name = "(unstarted)"
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}
