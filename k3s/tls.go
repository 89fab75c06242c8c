package k3s

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// KeyPair is a PEM certificate and its PEM private key.
type KeyPair struct {
	Cert, Key []byte
}

// ServerPKI is the identity of a cluster that a server needs before its first start:
// K3s adopts CAs it finds under <data-dir>/server/tls/ instead of generating its own
// (verified on the real binary by hack/k3scheck), so whoever issues them can also issue
// client certificates the cluster accepts.
type ServerPKI struct {
	ServerCA, ClientCA, RequestHeaderCA, EtcdPeerCA, EtcdServerCA KeyPair
	// ServiceAccountKey signs service-account tokens (service.key).
	ServiceAccountKey []byte
}

// tlsFile is one file under <data-dir>/server/tls/ and the secret variable carrying it.
type tlsFile struct {
	path string // relative to <data-dir>/server/tls/
	data []byte
}

// files lists the PKI as K3s names its files, in a stable order.
func (p ServerPKI) files() []tlsFile {
	pair := func(name string, kp KeyPair) []tlsFile {
		return []tlsFile{{name + ".crt", kp.Cert}, {name + ".key", kp.Key}}
	}
	var out []tlsFile
	out = append(out, pair("server-ca", p.ServerCA)...)
	out = append(out, pair("client-ca", p.ClientCA)...)
	out = append(out, pair("request-header-ca", p.RequestHeaderCA)...)
	out = append(out, pair("etcd/peer-ca", p.EtcdPeerCA)...)
	out = append(out, pair("etcd/server-ca", p.EtcdServerCA)...)
	return append(out, tlsFile{"service.key", p.ServiceAccountKey})
}

// empty reports a file without content: a PKI with a missing part is refused rather than
// written, because K3s keeps whatever it finds at first start forever.
func (f tlsFile) empty() bool { return len(f.data) == 0 }

// TLSVariablePrefix starts the name of every secret variable that carries a PKI file.
const TLSVariablePrefix = "MESOSK3S_TLS_"

// secretVar is the variable that carries the file: MESOSK3S_TLS_ETCD_PEER_CA_KEY.
func (f tlsFile) secretVar() string {
	return TLSVariablePrefix + envSuffix(f.path)
}

// Environment variables K3s reads itself, so the token and a datastore endpoint that may
// hold a password reach K3s without ever being on a command line.
const (
	EnvToken             = "K3S_TOKEN"
	EnvAgentToken        = "K3S_AGENT_TOKEN"
	EnvDatastoreEndpoint = "K3S_DATASTORE_ENDPOINT"
)

// ServerToken and AgentToken are K3s's "secure" tokens: K10<sha256 of the server CA
// bundle>::<user>:<secret>. A node that joins with one checks the CA hash against what the
// server's /cacerts serves, so it cannot be pointed at an impostor. K3s authenticates the
// user "server" with the server token and "node" with the agent secret
// (pkg/daemons/control/deps readTokens, pkg/server/auth.go).
func ServerToken(serverCACert []byte, secret string) string {
	return secureToken(serverCACert, "server", secret)
}

// AgentToken is what agents join with when servers run with --agent-token=secret.
func AgentToken(serverCACert []byte, secret string) string {
	return secureToken(serverCACert, "node", secret)
}

func secureToken(serverCACert []byte, user, secret string) string {
	sum := sha256.Sum256(serverCACert)
	return "K10" + hex.EncodeToString(sum[:]) + "::" + user + ":" + secret
}

// TokenSecret is the secret of a secure token, "" when it is not one.
func TokenSecret(token string) string {
	i := strings.LastIndex(token, "::")
	if !strings.HasPrefix(token, "K10") || i < 0 {
		return ""
	}
	_, secret, ok := strings.Cut(token[i+2:], ":")
	if !ok {
		return ""
	}
	return secret
}
