// Package k3scheck proves, on the real K3s binary (bin/k3s), what the operator relies on,
// running the very script the operator renders (package k3s) under /bin/sh as a task
// runner would: a K3s server adopts the CAs the script writes under <data-dir>/server/tls/
// before its first start, serves with a certificate from our server CA, accepts an admin
// client certificate from our client CA, and refuses anonymous users and certificates
// from other CAs; no secret is on its command line.
package k3scheck

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mesosk3s/mesosk3s/hack/hostguard"
	"github.com/mesosk3s/mesosk3s/k3s"
)

const (
	startTimeout = 90 * time.Second
	stopGrace    = 5 * time.Second
)

func TestK3sServerUsesOperatorPKI(t *testing.T) {
	binary := k3sBinary(t)
	// The server's private mounts need /etc/rancher on the host as their mount point:
	// put the machine back as it was (the directory was left behind before).
	machine := hostguard.Take()
	t.Cleanup(func() {
		if changed := machine.Restore(); len(changed) > 0 {
			t.Logf("put back: %v", changed)
		}
	})
	sandbox := t.TempDir()
	pki := newClusterPKI(t)
	token := pki.secureToken(t)
	port := freePortPair(t)
	endpoint := "https://127.0.0.1:" + strconv.Itoa(port)
	server := renderServer(t, binary, pki.serverPKI(t), token)

	started := time.Now()
	k3s := startK3s(t, server, sandbox, port)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			t.Logf("stop: %s", k3s.stop(t, stopGrace))
		}
	}
	t.Cleanup(stop)
	defer func() {
		if t.Failed() {
			t.Logf("k3s log (tail):\n%s", k3s.logTail(60))
		}
	}()

	// Anonymous clients still verify the server: every request below checks that the
	// serving certificate chains to our server CA and names 127.0.0.1.
	anonymous := httpsClient(pki.serverCA.pool(), nil)

	if err := waitFor(k3s, startTimeout, func() error {
		return expect(anonymous, endpoint+"/ping", http.StatusOK, "pong")
	}); err != nil {
		t.Fatalf("/ping: %v", err)
	}
	t.Logf("/ping answered pong after %s", time.Since(started).Round(time.Millisecond))

	admin := httpsClient(pki.serverCA.pool(), pki.clientCA.clientCert(t, "mesosk3s-admin", "system:masters"))
	if err := waitFor(k3s, startTimeout, func() error {
		return expect(admin, endpoint+"/readyz", http.StatusOK, "ok")
	}); err != nil {
		t.Fatalf("/readyz as admin: %v", err)
	}
	t.Logf("/readyz answered 200 to the admin certificate after %s", time.Since(started).Round(time.Millisecond))

	t.Run("serving certificate is issued by our server CA for 127.0.0.1", func(t *testing.T) {
		leaf := servingCert(t, endpoint, pki.serverCA.pool())
		if !bytes.Equal(leaf.RawIssuer, pki.serverCA.cert.RawSubject) {
			t.Errorf("serving certificate issuer = %s, want %s", leaf.Issuer, pki.serverCA.cert.Subject)
		}
		if !slices.ContainsFunc(leaf.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) }) {
			t.Errorf("serving certificate IP SANs %v lack 127.0.0.1", leaf.IPAddresses)
		}
	})
	t.Run("admin certificate is authorized", func(t *testing.T) {
		if err := expect(admin, endpoint+"/api/v1/namespaces/kube-system", http.StatusOK, `"name":"kube-system"`); err != nil {
			t.Error(err)
		}
	})
	t.Run("API server reports the K3s release", func(t *testing.T) {
		// Only true when hack/build-k3s.sh set k3s's version ldflags.
		if err := expect(admin, endpoint+"/version", http.StatusOK, `"gitVersion": "v1.25.4+k3s1"`); err != nil {
			t.Error(err)
		}
	})
	t.Run("anonymous /readyz is 401", func(t *testing.T) {
		if err := expect(anonymous, endpoint+"/readyz", http.StatusUnauthorized, ""); err != nil {
			t.Error(err)
		}
	})
	t.Run("client certificate from another CA is refused", func(t *testing.T) {
		stranger := newCA(t, "mesosk3s-check-other-client-ca")
		client := httpsClient(pki.serverCA.pool(), stranger.clientCert(t, "mesosk3s-admin", "system:masters"))
		// Refused means 401 from the API server, or a TLS alert if the handshake rejects it.
		err := expect(client, endpoint+"/readyz", http.StatusUnauthorized, "")
		var alert tls.AlertError
		switch {
		case err == nil:
			t.Log("refused with 401")
		case errors.As(err, &alert):
			t.Logf("refused in the TLS handshake: %v", err)
		default:
			t.Error(err)
		}
	})
	t.Run("/cacerts serves our server CA, matching the token's hash", func(t *testing.T) {
		body, err := get(anonymous, endpoint+"/cacerts")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(body, pki.serverCA.certPEM) {
			t.Errorf("/cacerts = %q, want our server CA", body)
		}
		if want := "K10" + caHash(body) + "::"; !strings.HasPrefix(token, want) {
			t.Errorf("token %q does not carry the hash of /cacerts", token)
		}
	})
	t.Run("no secret on the command line", func(t *testing.T) {
		line, err := k3s.cmdline()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(line, " server ") {
			t.Fatalf("the script did not exec K3s: %q", line)
		}
		for name, value := range server.Secrets {
			if strings.Contains(line, strings.TrimSpace(string(value))) {
				t.Errorf("secret %s is on K3s's command line", name)
			}
		}
	})
	t.Run("nothing written to the host's /etc/rancher", func(t *testing.T) {
		// K3s writes its node password to /etc/rancher/node/; the script gives it a private
		// mount namespace with the data directory's rancher/ bound there.
		var files []string
		_ = filepath.WalkDir("/etc/rancher", func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, path)
			}
			return nil
		})
		if len(files) > 0 {
			t.Errorf("K3s wrote to the host: %v", files)
		}
	})
	t.Run("controller manager runs without its HTTPS port", func(t *testing.T) {
		// The service account controller creates default/default.
		if err := waitFor(k3s, startTimeout, func() error {
			return expect(admin, endpoint+"/api/v1/namespaces/default/serviceaccounts/default", http.StatusOK, "")
		}); err != nil {
			t.Error(err)
		}
	})
	t.Run("listens on 127.0.0.1, on the given port and the next only", func(t *testing.T) {
		addrs, err := k3s.listeners()
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"127.0.0.1:" + strconv.Itoa(port), "127.0.0.1:" + strconv.Itoa(port+1)}
		if !slices.Equal(addrs, want) {
			t.Errorf("k3s listens on %v, want %v", addrs, want)
		}
	})

	stop()
}

// renderServer is the operator's server process (package k3s) with what this check needs
// on top, as a user would add it through spec.servers.args.
func renderServer(t *testing.T, binary string, pki *k3s.ServerPKI, token string) k3s.Process {
	t.Helper()
	p, err := k3s.Server{
		Common: k3s.Common{
			Executable: binary,
			NodeName:   "k3scheck-server-0",
			ExtraArgs: []string{
				// Not --advertise-address 127.0.0.1: the API server would then fail every 10 s
				// to publish a loopback address in the kubernetes Service's Endpoints. Left
				// out, it advertises the host's address, where nothing listens; only the
				// Service points there.
				"--bind-address=127.0.0.1",
				"--write-kubeconfig-mode=644",
				// The packaged add-ons would only wait for a node to run on.
				"--disable=traefik,servicelb,metrics-server,local-storage,coredns",
			},
		},
		TLSSANs: []string{"127.0.0.1"},
		Token:   token,
		PKI:     pki,
	}.Process()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func httpsClient(roots *x509.CertPool, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// expect GETs url and checks the status code and, when wantBody is set, that the body
// contains it.
func expect(c *http.Client, url string, wantStatus int, wantBody string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != wantStatus || !strings.Contains(string(body), wantBody) {
		return fmt.Errorf("GET %s = %d %q, want %d with %q", url, resp.StatusCode, truncate(body), wantStatus, wantBody)
	}
	return nil
}

func get(c *http.Client, url string) ([]byte, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s = %d", url, resp.StatusCode)
	}
	return io.ReadAll(resp.Body)
}

// servingCert returns the certificate the endpoint presents, verified against roots.
func servingCert(t *testing.T, endpoint string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(endpoint, "https://"), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// waitFor retries check until it succeeds, K3s exits or the timeout passes.
func waitFor(k3s *k3sProcess, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if exitErr := k3s.running(); exitErr != nil {
			return fmt.Errorf("%w (last: %v)", exitErr, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}
