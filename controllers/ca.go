package controllers

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// The cluster's certificate authorities, by their names in the <name>-ca Secret. K3s uses
// CAs it finds in its data directory before its first start instead of generating its
// own (see k3s.ServerPKI), so the operator can issue the admin kubeconfig without ever
// asking the cluster.
const (
	caServer        = "server-ca"
	caClient        = "client-ca"
	caRequestHeader = "request-header-ca"
	caEtcdPeer      = "etcd-peer-ca"
	caEtcdServer    = "etcd-server-ca"
)

// clusterCAs lists every CA of a cluster, in a stable order.
var clusterCAs = []string{caServer, caClient, caRequestHeader, caEtcdPeer, caEtcdServer}

// Keys of the <name>-ca Secret besides "<ca>.crt" / "<ca>.key".
const serviceAccountKey = "service.key"

// caValidity is how long the CAs are valid. K3s's own CAs last ten years; ours do too.
const caValidity = 10 * 365 * 24 * time.Hour

// keyPair is a certificate and its private key, PEM encoded.
type keyPair struct {
	CertPEM []byte
	KeyPEM  []byte
}

// clusterPKI is the content of the <name>-ca Secret.
type clusterPKI struct {
	CAs map[string]keyPair
	// ServiceKeyPEM signs service-account tokens (K3s's service.key).
	ServiceKeyPEM []byte
}

// newClusterPKI generates every CA and the service-account key of a new cluster.
func newClusterPKI(clusterName string, now time.Time) (*clusterPKI, error) {
	p := &clusterPKI{CAs: map[string]keyPair{}}
	for _, name := range clusterCAs {
		kp, err := newCA(fmt.Sprintf("k3s-%s@%s", name, clusterName), now)
		if err != nil {
			return nil, fmt.Errorf("generating %s: %w", name, err)
		}
		p.CAs[name] = kp
	}
	sa, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generating service-account key: %w", err)
	}
	p.ServiceKeyPEM = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(sa)})
	return p, nil
}

// secretData is the <name>-ca Secret's data.
func (p *clusterPKI) secretData() map[string][]byte {
	data := map[string][]byte{serviceAccountKey: p.ServiceKeyPEM}
	for name, kp := range p.CAs {
		data[name+".crt"] = kp.CertPEM
		data[name+".key"] = kp.KeyPEM
	}
	return data
}

// pkiFromSecretData reads a <name>-ca Secret back, checking that every CA is there and
// parses: a damaged Secret is reported, never silently replaced (replacing a CA would
// lock every existing client and node out of the cluster).
func pkiFromSecretData(data map[string][]byte) (*clusterPKI, error) {
	p := &clusterPKI{CAs: map[string]keyPair{}}
	var problems []error
	for _, name := range clusterCAs {
		kp := keyPair{CertPEM: data[name+".crt"], KeyPEM: data[name+".key"]}
		if _, _, err := kp.parse(); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", name, err))
			continue
		}
		p.CAs[name] = kp
	}
	p.ServiceKeyPEM = data[serviceAccountKey]
	if _, err := parsePrivateKey(p.ServiceKeyPEM); err != nil {
		problems = append(problems, fmt.Errorf("%s: %w", serviceAccountKey, err))
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	return p, nil
}

// newCA makes a self-signed ECDSA P-256 CA, like the ones K3s generates.
func newCA(commonName string, now time.Time) (keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return keyPair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour), // tolerate clock skew between hosts
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return keyPair{}, err
	}
	return encodeKeyPair(der, key)
}

// signClientCert issues a client certificate from the CA kp.
func (kp keyPair) signClientCert(subject pkix.Name, notBefore time.Time, validity time.Duration) (keyPair, error) {
	caCert, caKey, err := kp.parse()
	if err != nil {
		return keyPair{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return keyPair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      subject,
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return keyPair{}, err
	}
	return encodeKeyPair(der, key)
}

func (kp keyPair) parse() (*x509.Certificate, crypto.Signer, error) {
	cert, err := parseCert(kp.CertPEM)
	if err != nil {
		return nil, nil, err
	}
	key, err := parsePrivateKey(kp.KeyPEM)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func parseCert(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parsePrivateKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM private key")
	}
	switch block.Type {
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
	}
	return nil, fmt.Errorf("unsupported private key type %q", block.Type)
}

func encodeKeyPair(der []byte, key *ecdsa.PrivateKey) (keyPair, error) {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return keyPair{}, err
	}
	return keyPair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand does not fail on supported platforms; a fixed serial would be worse
		// than stopping.
		panic(err)
	}
	return n
}

// newTokenSecret is a fresh random secret for a K3s token: 128 bits, hex.
func newTokenSecret() (string, error) {
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return "", err
	}
	return hex.EncodeToString(secret), nil
}
