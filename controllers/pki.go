package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/mesosk3s/mesosk3s/k3s"
)

// Keys of the <name>-token Secret: the server token (servers join with it; it never
// leaves them) and the agent token (what agents join with: --agent-token on the servers).
const (
	tokenKey      = "token"
	agentTokenKey = "agent-token"
)

// errSecretsLost stops a pass that must not go on without the cluster's identity; the
// reason is in the observation (Stalled).
var errSecretsLost = errors.New("the cluster's CA or token Secret is missing or damaged")

// reconcilePKI loads the cluster's CAs and tokens, creating them for a new cluster. They
// are never regenerated for a cluster that exists on Mesos (its framework is registered):
// its servers keep the CAs and tokens they started with, so new ones would lock every
// node and client out. The cluster is then Stalled with what was lost and how to restore it.
func (r *K3sClusterReconciler) reconcilePKI(ctx context.Context, s *clusterScope) error {
	c := s.cluster
	exists := c.Status.FrameworkID != ""
	lost := func(name, why string) error {
		s.obs.secretsLost = fmt.Sprintf("Secret %s %s. The cluster's servers keep running with what they were given; "+
			"a new one would lock every node and client out, so the operator will not make one. Restore the Secret from "+
			"a backup (kubectl apply -f <backup>), or delete and recreate the K3sCluster", name, why)
		return errSecretsLost
	}
	caName, tokenName := caSecretName(c.Name), tokenSecretName(c.Name)

	caSecret, err := r.getSecret(ctx, c.Namespace, caName)
	switch {
	case apierrors.IsNotFound(err) && exists:
		return lost(caName, "holding the cluster's CAs was deleted after the cluster was created")
	case apierrors.IsNotFound(err):
		if s.pki, err = newClusterPKI(c.Name, r.now()); err != nil {
			return err
		}
		if err := r.createOwnedSecret(ctx, c, caName, corev1.SecretTypeOpaque, s.pki.secretData(), nil); err != nil {
			return err
		}
		r.event(c, corev1.EventTypeNormal, "CAsCreated", "CreatePKI", "generated the cluster CAs and service-account key in Secret %s", caName)
	case err != nil:
		return err
	default:
		if s.pki, err = pkiFromSecretData(caSecret.Data); err != nil {
			return lost(caName, "is damaged ("+err.Error()+")")
		}
	}
	serverCA := s.pki.CAs[caServer].CertPEM

	tokenSecret, err := r.getSecret(ctx, c.Namespace, tokenName)
	switch {
	case apierrors.IsNotFound(err) && exists:
		return lost(tokenName, "holding the cluster's join tokens was deleted after the cluster was created")
	case apierrors.IsNotFound(err):
		server, err1 := newTokenSecret()
		agent, err2 := newTokenSecret()
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		s.token, s.agentToken = k3s.ServerToken(serverCA, server), k3s.AgentToken(serverCA, agent)
		return r.createOwnedSecret(ctx, c, tokenName, corev1.SecretTypeOpaque,
			map[string][]byte{tokenKey: []byte(s.token), agentTokenKey: []byte(s.agentToken)}, nil)
	case err != nil:
		return err
	}
	s.token, s.agentToken = string(tokenSecret.Data[tokenKey]), string(tokenSecret.Data[agentTokenKey])
	if want := k3s.ServerToken(serverCA, ""); !strings.HasPrefix(s.token, want) || k3s.TokenSecret(s.token) == "" {
		return lost(tokenName, "holds no server token for the cluster's server CA (key token must start with "+want+")")
	}
	if s.agentToken == "" {
		// A cluster from before agents had their own token: give it one. The servers learn it
		// on their next start (the rollout that follows this upgrade); until then agents join
		// as before.
		agent, err := newTokenSecret()
		if err != nil {
			return err
		}
		s.agentToken = k3s.AgentToken(serverCA, agent)
		tokenSecret.Data[agentTokenKey] = []byte(s.agentToken)
		if err := r.Update(ctx, tokenSecret); err != nil {
			return err
		}
		r.event(c, corev1.EventTypeNormal, "AgentTokenCreated", "CreatePKI", "added an agent token to Secret %s: agents no longer hold the server token", tokenName)
	}
	if want := k3s.AgentToken(serverCA, ""); !strings.HasPrefix(s.agentToken, want) || k3s.TokenSecret(s.agentToken) == "" {
		return lost(tokenName, "holds no agent token for the cluster's server CA (key agent-token must start with "+want+")")
	}
	return nil
}

// serverPKI is the PKI in the shape K3s takes it: what every server writes under
// <data-dir>/server/tls/ before its first start.
func (p *clusterPKI) serverPKI() *k3s.ServerPKI {
	pair := func(name string) k3s.KeyPair { return k3s.KeyPair{Cert: p.CAs[name].CertPEM, Key: p.CAs[name].KeyPEM} }
	return &k3s.ServerPKI{
		ServerCA: pair(caServer), ClientCA: pair(caClient), RequestHeaderCA: pair(caRequestHeader),
		EtcdPeerCA: pair(caEtcdPeer), EtcdServerCA: pair(caEtcdServer),
		ServiceAccountKey: p.ServiceKeyPEM,
	}
}
