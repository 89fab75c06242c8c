package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
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

// serverSecrets are the Mesos secrets a server task receives: K3s writes them to
// <data-dir>/server/tls/ before its first start.
func serverSecrets(p *clusterPKI, token string) map[string][]byte {
	return map[string][]byte{
		mesosbridge.SecretToken:               []byte(token),
		mesosbridge.SecretServerCACert:        p.CAs[caServer].CertPEM,
		mesosbridge.SecretServerCAKey:         p.CAs[caServer].KeyPEM,
		mesosbridge.SecretClientCACert:        p.CAs[caClient].CertPEM,
		mesosbridge.SecretClientCAKey:         p.CAs[caClient].KeyPEM,
		mesosbridge.SecretRequestHeaderCACert: p.CAs[caRequestHeader].CertPEM,
		mesosbridge.SecretRequestHeaderCAKey:  p.CAs[caRequestHeader].KeyPEM,
		mesosbridge.SecretEtcdPeerCACert:      p.CAs[caEtcdPeer].CertPEM,
		mesosbridge.SecretEtcdPeerCAKey:       p.CAs[caEtcdPeer].KeyPEM,
		mesosbridge.SecretEtcdServerCACert:    p.CAs[caEtcdServer].CertPEM,
		mesosbridge.SecretEtcdServerCAKey:     p.CAs[caEtcdServer].KeyPEM,
		mesosbridge.SecretServiceKey:          p.ServiceKeyPEM,
	}
}

func (r *K3sClusterReconciler) getSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s)
	return s, err
}

// ownedSecretMeta is the metadata of every Secret the operator writes for a cluster:
// the Cluster API cluster-name label and the cluster as controlling owner.
func (r *K3sClusterReconciler) ownedSecretMeta(c *v1alpha1.K3sCluster, name string, extra *v1alpha1.ObjectMeta) (metav1.ObjectMeta, error) {
	m := metav1.ObjectMeta{Name: name, Namespace: c.Namespace, Labels: map[string]string{}}
	if extra != nil {
		for k, v := range extra.Labels {
			m.Labels[k] = v
		}
		if len(extra.Annotations) > 0 {
			m.Annotations = map[string]string{}
			for k, v := range extra.Annotations {
				m.Annotations[k] = v
			}
		}
	}
	m.Labels[v1alpha1.ClusterNameLabel] = c.Name
	holder := &corev1.Secret{ObjectMeta: m}
	if err := controllerutil.SetControllerReference(c, holder, r.Scheme()); err != nil {
		return m, err
	}
	return holder.ObjectMeta, nil
}

func (r *K3sClusterReconciler) createOwnedSecret(ctx context.Context, c *v1alpha1.K3sCluster, name string, typ corev1.SecretType, data map[string][]byte, extra *v1alpha1.ObjectMeta) error {
	m, err := r.ownedSecretMeta(c, name, extra)
	if err != nil {
		return err
	}
	return r.Create(ctx, &corev1.Secret{ObjectMeta: m, Type: typ, Data: data})
}

// deleteOwnedSecrets removes the cluster's Secrets at once on delete, rather than leaving
// them to the garbage collector.
func (r *K3sClusterReconciler) deleteOwnedSecrets(ctx context.Context, c *v1alpha1.K3sCluster) error {
	for _, name := range []string{kubeconfigSecretName(c.Name), tokenSecretName(c.Name), caSecretName(c.Name)} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, Name: name}}
		if err := r.Delete(ctx, s); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// event records a Kubernetes event on the cluster when a recorder is configured.
func (r *K3sClusterReconciler) event(c *v1alpha1.K3sCluster, typ, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(c, nil, typ, reason, action, note, args...)
	}
}
