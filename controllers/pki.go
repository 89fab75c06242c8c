package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/mesosk3s/mesosk3s/k3s"
)

const tokenKey = "token"

// reconcilePKI loads the cluster's CAs and join token, creating them on first use. An
// existing CA Secret is never regenerated: a new CA would lock out every node and client.
func (r *K3sClusterReconciler) reconcilePKI(ctx context.Context, s *clusterScope) error {
	c := s.cluster
	caSecret, err := r.getSecret(ctx, c.Namespace, caSecretName(c.Name))
	switch {
	case apierrors.IsNotFound(err):
		if s.pki, err = newClusterPKI(c.Name, r.now()); err != nil {
			return err
		}
		if err := r.createOwnedSecret(ctx, c, caSecretName(c.Name), corev1.SecretTypeOpaque, s.pki.secretData(), nil); err != nil {
			return err
		}
		r.event(c, corev1.EventTypeNormal, "CAsCreated", "CreatePKI", "generated the cluster CAs and service-account key in Secret %s", caSecretName(c.Name))
	case err != nil:
		return err
	default:
		if s.pki, err = pkiFromSecretData(caSecret.Data); err != nil {
			return fmt.Errorf("secret %s is damaged and will not be replaced (that would lock every node and client out): %w", caSecretName(c.Name), err)
		}
	}

	tokenSecret, err := r.getSecret(ctx, c.Namespace, tokenSecretName(c.Name))
	switch {
	case apierrors.IsNotFound(err):
		if s.token, err = joinToken(s.pki.CAs[caServer].CertPEM); err != nil {
			return err
		}
		return r.createOwnedSecret(ctx, c, tokenSecretName(c.Name), corev1.SecretTypeOpaque, map[string][]byte{tokenKey: []byte(s.token)}, nil)
	case err != nil:
		return err
	}
	s.token = string(tokenSecret.Data[tokenKey])
	if want := joinTokenWithSecret(s.pki.CAs[caServer].CertPEM, ""); !strings.HasPrefix(s.token, want) {
		return fmt.Errorf("secret %s holds a token for another server CA (it must start with %s)", tokenSecretName(c.Name), want)
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
