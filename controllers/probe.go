package controllers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// The operator's own checks of each cluster: "Ready" means K3s works, not that a port
// answers. Mesos' health check only asks a server's /ping; the operator, which holds the
// admin certificate and the agents' secret, also asks each server's API server (/readyz)
// and K3s's supervisor (/v1-k3s/readyz: "runtime core not ready" while K3s's own
// controllers have not started, seen on a relaunched server whose data directory moved),
// proves that a controller-manager and a scheduler work (controlplane.go), and reads the
// Nodes, since an agent is ready only when its Node is.
//
// The checks run in the background, one goroutine per cluster, so a slow or unreachable
// API server never holds up a reconcile, of its cluster or of any other; a changed result
// is announced on Events like a Mesos event.

// HealthProber runs the operator's checks of the clusters it is told about.
type HealthProber interface {
	// Watch starts checking the target's cluster, or updates what is checked.
	Watch(target probeTarget)
	// Result is the newest result for the cluster; false before the first round.
	Result(key mesosbridge.ClusterKey) (probeResult, bool)
	// Forget stops checking the cluster.
	Forget(key mesosbridge.ClusterKey)
	// MoveEtcdLeader hands embedded etcd's leadership away from server task's member if it
	// leads, before the task is replaced; it says whether it moved it.
	MoveEtcdLeader(ctx context.Context, key mesosbridge.ClusterKey, task string) (bool, error)
	// RemoveEtcdMember removes server task's embedded etcd member before a scale-down
	// kills the task.
	RemoveEtcdMember(ctx context.Context, key mesosbridge.ClusterKey, task string) error
}

// NoHealthChecks is a HealthProber that checks nothing: readiness is Mesos' alone (tests
// that drive a reconcile pass by hand).
type NoHealthChecks struct{}

func (NoHealthChecks) Watch(probeTarget)                                 {}
func (NoHealthChecks) Result(mesosbridge.ClusterKey) (probeResult, bool) { return probeResult{}, false }
func (NoHealthChecks) Forget(mesosbridge.ClusterKey)                     {}
func (NoHealthChecks) MoveEtcdLeader(context.Context, mesosbridge.ClusterKey, string) (bool, error) {
	return false, nil
}
func (NoHealthChecks) RemoveEtcdMember(context.Context, mesosbridge.ClusterKey, string) error {
	return nil
}

// probeTarget is what to check, as the last reconcile pass saw the cluster.
type probeTarget struct {
	key mesosbridge.ClusterKey
	// servers are the live servers' own addresses (https://host:port), by task name.
	servers map[string]serverAddress
	// kubeconfig is the admin kubeconfig (its server is the cluster's endpoint).
	kubeconfig []byte
	// serverCA verifies the servers' certificates.
	serverCA []byte
	// nodeSecret is the agents' join secret: K3s's supervisor authenticates the user
	// "node" with it.
	nodeSecret string
	// generation changes whenever a server is relaunched: the control plane is proven
	// afresh for the servers that run now.
	generation string
	// etcd is set for clusters on embedded etcd, whose members are asked too.
	etcd *etcdTarget
}

type serverAddress struct {
	url    string
	taskID string
}

// probeResult is one round of checks.
type probeResult struct {
	servers      map[string]serverHealth
	controlPlane controlPlaneHealth
	// nodes are the workload cluster's Nodes by name; nil when they could not be read
	// (nodesErr says why).
	nodes    map[string]nodeHealth
	nodesErr string
	// workload is the client the nodes were read with: the reconciler drains and removes
	// Nodes through it.
	workload kubernetes.Interface
	// etcd is what embedded etcd said; nil when the cluster has none.
	etcd *etcdHealth
}

// serverHealth is what one server's API answered.
type serverHealth struct {
	taskID string
	// reachable: something answered at the address (otherwise the Mesos health check is
	// all there is to go by).
	reachable bool
	// apiReady: /readyz answered 200 to the admin certificate; k3sReady: K3s's supervisor
	// says its runtime core runs.
	apiReady, k3sReady bool
	message            string
	// etcdChecked: the server runs an embedded etcd member, asked for its health.
	etcdChecked, etcdHealthy bool
	etcdMessage              string
}

func (h serverHealth) ready() bool {
	return h.apiReady && h.k3sReady && (!h.etcdChecked || h.etcdHealthy)
}

// why is what keeps the server from serving, in the operator's checks.
func (h serverHealth) why() string {
	if h.apiReady && h.k3sReady && h.etcdChecked && !h.etcdHealthy {
		return h.etcdMessage
	}
	return h.message
}

// reachable: some server's API answered, so the checks speak for the cluster.
func (r probeResult) reachable() bool {
	for _, s := range r.servers {
		if s.reachable {
			return true
		}
	}
	return false
}

// nodeHealth is a Node's Ready condition.
type nodeHealth struct {
	ready   bool
	message string
}

// httpProbes is the HealthProber: one worker goroutine per watched cluster.
type httpProbes struct {
	timeout time.Duration
	// fast is the interval while something is not ready yet; slow once all is.
	fast, slow time.Duration

	ctx context.Context
	// changed is told whenever a cluster's result changed (it requeues the cluster).
	changed func(mesosbridge.ClusterKey)

	mu      sync.Mutex
	workers map[mesosbridge.ClusterKey]*probeWorker
	// stopped: Start has returned or is returning; Watch starts no worker any more (a
	// reconcile may still run while the manager stops, and wg.Add must not race wg.Wait).
	stopped bool
	wg      sync.WaitGroup
}

var _ HealthProber = (*httpProbes)(nil)

func newHTTPProbes(ctx context.Context, changed func(mesosbridge.ClusterKey)) *httpProbes {
	return &httpProbes{
		timeout: 3 * time.Second, fast: 500 * time.Millisecond, slow: 10 * time.Second,
		ctx: ctx, changed: changed, workers: map[mesosbridge.ClusterKey]*probeWorker{},
	}
}

// Start runs until ctx ends, then stops every worker (manager.Runnable).
func (p *httpProbes) Start(ctx context.Context) error {
	<-ctx.Done()
	p.mu.Lock()
	p.stopped = true
	for key, w := range p.workers {
		w.cancel()
		delete(p.workers, key)
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// NeedLeaderElection: only the leader reconciles, so only it needs the results.
func (p *httpProbes) NeedLeaderElection() bool { return true }

func (p *httpProbes) Watch(t probeTarget) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	if w := p.workers[t.key]; w != nil {
		w.update(t)
		return
	}
	ctx, cancel := context.WithCancel(p.ctx)
	w := &probeWorker{probes: p, cancel: cancel, wake: make(chan struct{}, 1), target: t, controlPlane: newControlPlaneProbe()}
	p.workers[t.key] = w
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		w.run(ctx)
	}()
}

func (p *httpProbes) Result(key mesosbridge.ClusterKey) (probeResult, bool) {
	p.mu.Lock()
	w := p.workers[key]
	p.mu.Unlock()
	if w == nil {
		return probeResult{}, false
	}
	return w.result()
}

func (p *httpProbes) Forget(key mesosbridge.ClusterKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w := p.workers[key]; w != nil {
		w.cancel()
		delete(p.workers, key)
	}
}

// probeWorker checks one cluster in rounds.
type probeWorker struct {
	probes       *httpProbes
	cancel       context.CancelFunc
	wake         chan struct{}
	controlPlane *controlPlaneProbe

	mu     sync.Mutex
	target probeTarget
	last   *probeResult
	// clients are rebuilt when the kubeconfig changes.
	clientsFor []byte
	admin      *http.Client
	workload   kubernetes.Interface
	// node asks K3s's supervisor with the node password (no client certificate).
	node *http.Client
	// etcd asks embedded etcd with a certificate from etcdFor (the CA), renewed at etcdUntil.
	etcd      *http.Client
	etcdFor   []byte
	etcdUntil time.Time
}

func (w *probeWorker) update(t probeTarget) {
	w.mu.Lock()
	changed := !sameTarget(w.target, t)
	w.target = t
	w.mu.Unlock()
	if changed {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

func (w *probeWorker) result() (probeResult, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == nil {
		return probeResult{}, false
	}
	return *w.last, true
}

func (w *probeWorker) run(ctx context.Context) {
	for ctx.Err() == nil {
		w.mu.Lock()
		t := w.target
		w.mu.Unlock()
		res := w.round(ctx, t)
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		changed := w.last == nil || !sameResult(*w.last, res)
		w.last = &res
		w.mu.Unlock()
		if changed {
			w.probes.changed(t.key)
		}
		interval := w.probes.slow
		if !res.allFine(t) {
			interval = w.probes.fast
		}
		timer := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-w.wake:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// allFine: every server answers as ready, the control plane is proven and Nodes were read.
func (r probeResult) allFine(t probeTarget) bool {
	if len(r.servers) != len(t.servers) || !r.controlPlane.proven || r.nodes == nil {
		return false
	}
	for _, s := range r.servers {
		if !s.ready() {
			return false
		}
	}
	return true
}

// round checks every server, then, through the cluster endpoint, the control plane and
// the Nodes.
func (w *probeWorker) round(ctx context.Context, t probeTarget) probeResult {
	res := probeResult{servers: map[string]serverHealth{}}
	admin, workload, err := w.clients(t)
	if err != nil {
		res.nodesErr = err.Error()
		res.controlPlane.message = err.Error()
		return res
	}
	w.mu.Lock()
	nodeClient := w.node
	w.mu.Unlock()
	anyReady := false
	for name, addr := range t.servers {
		h := w.probeServer(ctx, admin, nodeClient, addr, t.nodeSecret)
		res.servers[name] = h
		anyReady = anyReady || h.apiReady
	}
	if t.etcd != nil {
		w.checkEtcd(ctx, t, &res)
	}
	if !anyReady {
		res.nodesErr = "no server's API answers"
		res.controlPlane.message = res.nodesErr
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, 2*w.probes.timeout)
	defer cancel()
	res.nodes, res.nodesErr = readNodes(ctx, workload)
	if res.nodes != nil {
		res.workload = workload
	}
	res.controlPlane = w.controlPlane.check(ctx, workload, t.generation, anyNodeReady(res.nodes))
	return res
}

// probeServer asks one server's API server and K3s's supervisor.
func (w *probeWorker) probeServer(ctx context.Context, admin, node *http.Client, addr serverAddress, nodeSecret string) serverHealth {
	h := serverHealth{taskID: addr.taskID}
	code, body, err := get(ctx, admin, addr.url+"/readyz", "", "", w.probes.timeout)
	if err != nil {
		h.reachable, h.message = !unreachable(err), err.Error()
		return h
	}
	h.reachable = true
	if code != http.StatusOK {
		h.message = fmt.Sprintf("/readyz answered %d: %s", code, body)
		return h
	}
	h.apiReady = true
	code, body, err = get(ctx, node, addr.url+"/v1-k3s/readyz", "node", nodeSecret, w.probes.timeout)
	switch {
	case err != nil:
		h.message = "K3s supervisor: " + err.Error()
	case code != http.StatusOK:
		h.message = fmt.Sprintf("K3s supervisor /v1-k3s/readyz answered %d: %s", code, body)
	default:
		h.k3sReady, h.message = true, "ok"
	}
	return h
}

// clients are the admin HTTP client and the workload cluster's clientset, built once per
// kubeconfig.
func (w *probeWorker) clients(t probeTarget) (*http.Client, kubernetes.Interface, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.admin != nil && string(w.clientsFor) == string(t.kubeconfig) {
		return w.admin, w.workload, nil
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(t.kubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("admin kubeconfig: %w", err)
	}
	cfg.Timeout = w.probes.timeout
	workload, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	// The servers are asked at their own addresses, which the certificate K3s serves
	// names (its node IP or host name); the admin client certificate is the kubeconfig's.
	cert, err := tls.X509KeyPair(cfg.TLSClientConfig.CertData, cfg.TLSClientConfig.KeyData)
	if err != nil {
		return nil, nil, fmt.Errorf("admin client certificate: %w", err)
	}
	adminTLS := &tls.Config{RootCAs: pool(t.serverCA), Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	w.closeIdle()
	w.admin, w.workload, w.clientsFor = probeClient(adminTLS, w.probes.timeout), workload, t.kubeconfig
	w.node = probeClient(&tls.Config{RootCAs: pool(t.serverCA), MinVersion: tls.VersionTLS12}, w.probes.timeout)
	return w.admin, w.workload, nil
}

// probeClient is an HTTPS client whose every phase is bounded by timeout. http.Client's
// own Timeout ends the request, not the dial or TLS handshake the transport goes on with
// for its pool: without TLSHandshakeTimeout an API server that accepts connections and
// never answers kept one connection and its goroutines per probe round, for ever (found
// by hack/scale with ten hung servers: 220 connections in a minute).
func probeClient(cfg *tls.Config, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		TLSClientConfig:       cfg,
		DialContext:           (&net.Dialer{Timeout: timeout}).DialContext,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		IdleConnTimeout:       30 * time.Second,
		MaxIdleConnsPerHost:   2,
	}}
}

// closeIdle drops the idle connections of the clients about to be replaced.
func (w *probeWorker) closeIdle() {
	for _, c := range []*http.Client{w.admin, w.node} {
		if c != nil {
			c.CloseIdleConnections()
		}
	}
}

func pool(ca []byte) *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(ca)
	return p
}

// get GETs a URL and returns the status and the start of the body.
func get(ctx context.Context, c *http.Client, u, user, password string, timeout time.Duration) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, "", err
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, strings.TrimSpace(string(body)), nil
}

// unreachable tells "nothing answered" (refused, no route, no such host, timeout) from an
// answer we cannot accept (e.g. a certificate from another CA), which is a real problem.
func unreachable(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

// serverURL is a server's own address for the probes.
func serverURL(host string, port uint32) string {
	return (&url.URL{Scheme: "https", Host: net.JoinHostPort(host, fmt.Sprint(port))}).String()
}

func sameTarget(a, b probeTarget) bool {
	if a.key != b.key || string(a.kubeconfig) != string(b.kubeconfig) || string(a.serverCA) != string(b.serverCA) ||
		a.nodeSecret != b.nodeSecret || a.generation != b.generation || len(a.servers) != len(b.servers) ||
		(a.etcd == nil) != (b.etcd == nil) || (a.etcd != nil && string(a.etcd.ca.CertPEM) != string(b.etcd.ca.CertPEM)) {
		return false
	}
	for k, v := range a.servers {
		if b.servers[k] != v {
			return false
		}
	}
	return true
}

func sameResult(a, b probeResult) bool {
	if a.controlPlane != b.controlPlane || a.nodesErr != b.nodesErr || len(a.servers) != len(b.servers) ||
		len(a.nodes) != len(b.nodes) || (a.nodes == nil) != (b.nodes == nil) || !a.etcd.equal(b.etcd) {
		return false
	}
	for k, v := range a.servers {
		if b.servers[k] != v {
			return false
		}
	}
	for k, v := range a.nodes {
		if b.nodes[k] != v {
			return false
		}
	}
	return true
}
