package controllers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// APIProber asks the K3s API server whether it is ready, with the admin credentials.
type APIProber interface {
	// Readyz reports reachable=false when nothing answered at the endpoint (the Mesos
	// health checks are then all there is to go by).
	Readyz(ctx context.Context, kubeconfig []byte) (reachable, ready bool, message string)
}

// httpProber GETs /readyz with the kubeconfig's client certificate. K3s refuses an
// anonymous /readyz (401), so only the operator, which holds the admin certificate, can
// ask; a 200 also proves the CAs the server runs with are ours.
type httpProber struct{ timeout time.Duration }

func (p httpProber) Readyz(ctx context.Context, kubeconfig []byte) (bool, bool, string) {
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return false, false, err.Error()
	}
	cfg.Timeout = p.timeout
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return false, false, err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+"/readyz", nil)
	if err != nil {
		return false, false, err.Error()
	}
	resp, err := hc.Do(req)
	if err != nil {
		return !unreachable(err), false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode == http.StatusOK {
		return true, true, "ok"
	}
	return true, false, fmt.Sprintf("/readyz answered %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
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
