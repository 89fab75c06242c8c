package k3scheck

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/mesosk3s/mesosk3s/k3s"
)

// certAuthority is a CA with its key, as the operator keeps it in the <name>-ca Secret.
// These helpers are deliberately separate from controllers/: the check must prove K3s's
// behaviour, not share a bug with the code it vouches for.
type certAuthority struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
}

func newCA(t *testing.T, commonName string) *certAuthority {
	t.Helper()
	key := newECKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &certAuthority{cert: cert, certPEM: pemBlock("CERTIFICATE", der), key: key}
}

// clientCert issues a client certificate; Kubernetes reads the user from the CN and the
// groups from O.
func (ca *certAuthority) clientCert(t *testing.T, user string, groups ...string) *tls.Certificate {
	t.Helper()
	key := newECKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: user, Organization: groups},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (ca *certAuthority) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// keyPair is the CA as PEM, the form the operator hands to K3s.
func (ca *certAuthority) keyPair(t *testing.T) k3s.KeyPair {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return k3s.KeyPair{Cert: ca.certPEM, Key: pemBlock("EC PRIVATE KEY", der)}
}

// clusterPKI is what the operator hands to a K3s server before its first start.
type clusterPKI struct {
	serverCA, clientCA, requestHeaderCA, etcdPeerCA, etcdServerCA *certAuthority
	serviceAccountKey                                             *rsa.PrivateKey
}

func newClusterPKI(t *testing.T) *clusterPKI {
	t.Helper()
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &clusterPKI{
		serverCA:          newCA(t, "mesosk3s-check-server-ca"),
		clientCA:          newCA(t, "mesosk3s-check-client-ca"),
		requestHeaderCA:   newCA(t, "mesosk3s-check-request-header-ca"),
		etcdPeerCA:        newCA(t, "mesosk3s-check-etcd-peer-ca"),
		etcdServerCA:      newCA(t, "mesosk3s-check-etcd-server-ca"),
		serviceAccountKey: saKey,
	}
}

// serverPKI is the PKI as the operator renders it for a server (k3s.ServerPKI).
func (p *clusterPKI) serverPKI(t *testing.T) *k3s.ServerPKI {
	t.Helper()
	return &k3s.ServerPKI{
		ServerCA: p.serverCA.keyPair(t), ClientCA: p.clientCA.keyPair(t), RequestHeaderCA: p.requestHeaderCA.keyPair(t),
		EtcdPeerCA: p.etcdPeerCA.keyPair(t), EtcdServerCA: p.etcdServerCA.keyPair(t),
		ServiceAccountKey: pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(p.serviceAccountKey)),
	}
}

// secureToken is K3s's full join token, K10<sha256 of the server CA bundle>::server:<secret>;
// agents check the hash against what the server's /cacerts serves.
func (p *clusterPKI) secureToken(t *testing.T) string {
	t.Helper()
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	return "K10" + caHash(p.serverCA.certPEM) + "::server:" + hex.EncodeToString(secret)
}

func caHash(bundle []byte) string {
	sum := sha256.Sum256(bundle)
	return hex.EncodeToString(sum[:])
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func pemBlock(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}
