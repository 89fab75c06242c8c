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
	"os"
	"path/filepath"
	"testing"
	"time"
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

// writeTo stores the CA as <dir>/<name>.crt and <dir>/<name>.key, the file names K3s
// looks for before it would generate its own.
func (ca *certAuthority) writeTo(t *testing.T, dir, name string) {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(ca.key)
	if err != nil {
		t.Fatal(err)
	}
	writeSecretFile(t, filepath.Join(dir, name+".crt"), ca.certPEM)
	writeSecretFile(t, filepath.Join(dir, name+".key"), pemBlock("EC PRIVATE KEY", der))
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

// install writes the PKI into <dataDir>/server/tls/ with K3s's own layout.
func (p *clusterPKI) install(t *testing.T, dataDir string) {
	t.Helper()
	tlsDir := filepath.Join(dataDir, "server", "tls")
	p.serverCA.writeTo(t, tlsDir, "server-ca")
	p.clientCA.writeTo(t, tlsDir, "client-ca")
	p.requestHeaderCA.writeTo(t, tlsDir, "request-header-ca")
	p.etcdPeerCA.writeTo(t, filepath.Join(tlsDir, "etcd"), "peer-ca")
	p.etcdServerCA.writeTo(t, filepath.Join(tlsDir, "etcd"), "server-ca")
	writeSecretFile(t, filepath.Join(tlsDir, "service.key"),
		pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(p.serviceAccountKey)))
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

func writeSecretFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
