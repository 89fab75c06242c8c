package mesosbridge

import (
	"bytes"
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
	"time"
)

// Media type of every call and event: protobuf is what the master parses fastest and
// what keeps the OFFERS-to-ACCEPT path cheap.
const mediaProtobuf = "application/x-protobuf"

const (
	headerStreamID = "Mesos-Stream-Id"
	schedulerPath  = "/api/v1/scheduler"
	// maxErrorBody bounds how much of an error answer ends up in a message.
	maxErrorBody = 1 << 10
)

// transport is the HTTP side of one framework: TLS and credentials per cluster, no
// automatic redirects (a 307 is a leader change the bridge follows itself, reporting it),
// keep-alive for calls, and timeouts on everything but the body of the event stream.
type transport struct {
	client            *http.Client
	http              *http.Transport
	principal, secret string
	useTLS            bool
	timeout           time.Duration
}

func newTransport(cfg FrameworkConfig, timeout time.Duration) (*transport, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	useTLS := cfg.TLS.InsecureSkipVerify || len(cfg.TLS.CAData) > 0
	if len(cfg.TLS.CAData) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.TLS.CAData) {
			return nil, errors.New("TLS CA data holds no PEM certificate")
		}
		tlsConfig.RootCAs = pool
	}
	tlsConfig.InsecureSkipVerify = cfg.TLS.InsecureSkipVerify // only when explicitly asked
	ht := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}
	return &transport{
		client: &http.Client{
			Transport:     ht,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		http:      ht,
		principal: cfg.Principal,
		secret:    cfg.Secret,
		useTLS:    useTLS,
		timeout:   timeout,
	}, nil
}

// close drops idle keep-alive connections, whose reader and writer goroutines would
// otherwise outlive the framework.
func (t *transport) close() { t.http.CloseIdleConnections() }

// endpoint is the scheduler API URL of a master address: host:port (http, or https when
// TLS is configured) or a URL, with /api/v1/scheduler unless a path is given.
func (t *transport) endpoint(master string) (string, error) {
	raw := strings.TrimSpace(master)
	if !strings.Contains(raw, "://") {
		scheme := "http"
		if t.useTLS {
			scheme = "https"
		}
		raw = scheme + "://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("master address %q is not host:port or a URL", master)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = schedulerPath
	}
	return u.String(), nil
}

// redirectTarget resolves a Location header against the URL that answered it. Mesos
// sends "//host:port/api/v1/scheduler", which keeps the scheme of the request.
func redirectTarget(from, location string) (string, error) {
	if location == "" {
		return "", errors.New("redirect without a Location header")
	}
	base, err := url.Parse(from)
	if err != nil {
		return "", err
	}
	to, err := base.Parse(location)
	if err != nil || to.Host == "" {
		return "", fmt.Errorf("bad redirect Location %q", location)
	}
	return to.String(), nil
}

// post sends one encoded call. The caller closes the body of the answer.
func (t *transport) post(ctx context.Context, endpoint, streamID string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", mediaProtobuf)
	req.Header.Set("Accept", mediaProtobuf)
	if streamID != "" {
		req.Header.Set(headerStreamID, streamID)
	}
	if t.principal != "" {
		req.SetBasicAuth(t.principal, t.secret)
	}
	return t.client.Do(req)
}

// do sends a plain HTTP request (the operator endpoints) with the framework's credentials.
func (t *transport) do(ctx context.Context, method, endpoint, contentType string, body io.Reader) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	req, err := http.NewRequestWithContext(ctx, method, endpoint, body)
	if err != nil {
		cancel()
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if t.principal != "" {
		req.SetBasicAuth(t.principal, t.secret)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

// cancelOnClose ends a request's context once its body is read and closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// errorBody reads the start of an error answer for a message, and closes it.
func errorBody(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	msg := strings.TrimSpace(string(b))
	if msg == "" {
		return resp.Status
	}
	return resp.Status + ": " + msg
}
