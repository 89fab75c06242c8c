package controllers

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mesosk3s/mesosk3s/k3s"
)

func TestClusterPKIRoundTripsThroughSecretData(t *testing.T) {
	now := time.Now()
	p, err := newClusterPKI("demo", now)
	if err != nil {
		t.Fatal(err)
	}
	data := p.secretData()
	for _, key := range []string{"server-ca.crt", "server-ca.key", "client-ca.crt", "client-ca.key",
		"request-header-ca.crt", "request-header-ca.key", "etcd-peer-ca.crt", "etcd-peer-ca.key",
		"etcd-server-ca.crt", "etcd-server-ca.key", "service.key"} {
		if len(data[key]) == 0 {
			t.Errorf("secret data lacks %s", key)
		}
	}
	back, err := pkiFromSecretData(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range clusterCAs {
		cert, _, err := back.CAs[name].parse()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !cert.IsCA || cert.NotAfter.Before(now.Add(9*365*24*time.Hour)) {
			t.Errorf("%s: IsCA=%v NotAfter=%v", name, cert.IsCA, cert.NotAfter)
		}
	}
	// Every CA is distinct: a client CA that could sign server certificates would let a
	// stolen kubeconfig impersonate the API server.
	seen := map[string]string{}
	for name, kp := range back.CAs {
		if other, dup := seen[string(kp.CertPEM)]; dup {
			t.Errorf("%s and %s are the same CA", name, other)
		}
		seen[string(kp.CertPEM)] = name
	}
}

func TestPKIFromSecretDataNamesWhatIsDamaged(t *testing.T) {
	p, err := newClusterPKI("demo", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	data := p.secretData()
	data["client-ca.key"] = []byte("garbage")
	delete(data, "etcd-peer-ca.crt")
	_, err = pkiFromSecretData(data)
	if err == nil {
		t.Fatal("damaged secret accepted")
	}
	for _, want := range []string{"client-ca", "etcd-peer-ca"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestTokensCarryTheServerCAHash(t *testing.T) {
	p, err := newClusterPKI("demo", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ca := p.CAs[caServer].CertPEM
	a, _ := newTokenSecret()
	b, _ := newTokenSecret()
	if a == b || len(a) != 32 {
		t.Fatalf("token secrets %q %q", a, b)
	}
	sum := sha256.Sum256(ca)
	for user, tok := range map[string]string{"server": k3s.ServerToken(ca, a), "node": k3s.AgentToken(ca, a)} {
		want := regexp.MustCompile(`^K10` + hex.EncodeToString(sum[:]) + `::` + user + `:[0-9a-f]{32}$`)
		if !want.MatchString(tok) || k3s.TokenSecret(tok) != a {
			t.Errorf("token %q is not in K3s's secure form for %s", tok, user)
		}
	}
}

func TestSignClientCertIsVerifiedByItsCAOnly(t *testing.T) {
	now := time.Now()
	a, _ := newClusterPKI("a", now)
	b, _ := newClusterPKI("b", now)
	client, err := a.CAs[caClient].signClientCert(adminSubject, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := parseCert(client.CertPEM)
	verify := func(p *clusterPKI) error {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(p.CAs[caClient].CertPEM)
		_, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: now.Add(time.Minute)})
		return err
	}
	if err := verify(a); err != nil {
		t.Fatalf("client cert does not verify against its own CA: %v", err)
	}
	if err := verify(b); err == nil {
		t.Fatal("client cert verifies against another cluster's CA")
	}
	if got := cert.Subject.Organization; len(got) != 1 || got[0] != "system:masters" {
		t.Fatalf("organization = %v, want system:masters", got)
	}
}
