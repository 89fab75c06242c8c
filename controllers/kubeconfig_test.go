package controllers

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// startAPIServerLike serves HTTPS with a certificate from the cluster's server CA and
// demands a client certificate from its client CA, as K3s does with the CAs we give it.
func startAPIServerLike(t *testing.T, p *clusterPKI) *httptest.Server {
	t.Helper()
	caCert, caKey, err := p.CAs[caServer].parse()
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(), Subject: pkix.Name{CommonName: "k3s"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	serving, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AppendCertsFromPEM(p.CAs[caClient].CertPEM)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if org := r.TLS.PeerCertificates[0].Subject.Organization; len(org) == 0 || org[0] != "system:masters" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serving}, ClientCAs: clientCAs, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func getReadyz(t *testing.T, kubeconfig []byte) error {
	t.Helper()
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		t.Fatalf("kubeconfig does not parse with client-go: %v", err)
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, cfg.Host+"/readyz", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &httpStatusError{resp.StatusCode}
	}
	return nil
}

type httpStatusError struct{ code int }

func (e *httpStatusError) Error() string { return http.StatusText(e.code) }

func TestAdminKubeconfigIsTrustedOnlyByItsCluster(t *testing.T) {
	now := time.Now()
	mine, _ := newClusterPKI("mine", now)
	other, _ := newClusterPKI("other", now)
	srv := startAPIServerLike(t, mine)

	good, err := buildAdminKubeconfig("mine", srv.URL, mine, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := getReadyz(t, good); err != nil {
		t.Fatalf("the cluster's own kubeconfig was refused: %v", err)
	}
	// A kubeconfig from another cluster's PKI neither trusts this server nor is trusted by it.
	bad, _ := buildAdminKubeconfig("mine", srv.URL, other, now)
	if err := getReadyz(t, bad); err == nil {
		t.Fatal("a kubeconfig from another PKI was accepted")
	}
}

func TestKubeconfigNeedsRefresh(t *testing.T) {
	now := time.Now()
	p, _ := newClusterPKI("c", now)
	other, _ := newClusterPKI("o", now)
	fresh, _ := buildAdminKubeconfig("c", "https://10.0.0.1:31000", p, now)
	foreign, _ := buildAdminKubeconfig("c", "https://10.0.0.1:31000", other, now)
	cases := []struct {
		name     string
		data     []byte
		endpoint string
		at       time.Time
		want     bool
	}{
		{"fresh", fresh, "https://10.0.0.1:31000", now, false},
		{"just before half life", fresh, "https://10.0.0.1:31000", now.Add(adminCertValidity/2 - time.Hour), false},
		{"past half life", fresh, "https://10.0.0.1:31000", now.Add(adminCertValidity / 2), true},
		{"endpoint moved", fresh, "https://10.0.0.2:31005", now, true},
		{"another cluster's CAs", foreign, "https://10.0.0.1:31000", now, true},
		{"garbage", []byte("not yaml: ["), "https://10.0.0.1:31000", now, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, why := kubeconfigNeedsRefresh(tc.data, tc.endpoint, p, tc.at)
			if got != tc.want {
				t.Fatalf("needsRefresh = %v (%s), want %v", got, why, tc.want)
			}
			if got && why == "" {
				t.Fatal("a refresh without a reason")
			}
		})
	}
}
