package controllers

import (
	"context"
	"crypto/x509/pkix"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
)

// kubeconfigKey is the data key of the kubeconfig Secret, as Cluster API defines it.
const kubeconfigKey = "value"

// adminCertValidity is the life of the admin client certificate in the kubeconfig
// Secret; it is renewed once half of it has passed, so a kubeconfig read from the Secret
// is always good for at least half that.
const adminCertValidity = 365 * 24 * time.Hour

// adminSubject is the identity of the kubeconfig's user: system:masters is the group the
// Kubernetes API server authorizes for everything, as in K3s's own admin kubeconfig.
var adminSubject = pkix.Name{CommonName: "mesosk3s-admin", Organization: []string{"system:masters"}}

// buildAdminKubeconfig renders a self-contained kubeconfig for the cluster: the server
// CA inline, a fresh admin client certificate from the client CA.
func buildAdminKubeconfig(clusterName, endpoint string, pki *clusterPKI, now time.Time) ([]byte, error) {
	client, err := pki.CAs[caClient].signClientCert(adminSubject, now.Add(-5*time.Minute), adminCertValidity)
	if err != nil {
		return nil, fmt.Errorf("issuing admin client certificate: %w", err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[clusterName] = &clientcmdapi.Cluster{
		Server:                   endpoint,
		CertificateAuthorityData: pki.CAs[caServer].CertPEM,
	}
	user := clusterName + "-admin"
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{
		ClientCertificateData: client.CertPEM,
		ClientKeyData:         client.KeyPEM,
	}
	cfg.Contexts[clusterName] = &clientcmdapi.Context{Cluster: clusterName, AuthInfo: user}
	cfg.CurrentContext = clusterName
	return clientcmd.Write(*cfg)
}

// kubeconfigNeedsRefresh says whether a stored kubeconfig must be rewritten: when it
// does not parse, points elsewhere than endpoint, trusts another server CA, or its client
// certificate is past half its life or not from the cluster's client CA.
func kubeconfigNeedsRefresh(data []byte, endpoint string, pki *clusterPKI, now time.Time) (bool, string) {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return true, "the stored kubeconfig does not parse"
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return true, "the stored kubeconfig has no current context"
	}
	cluster, user := cfg.Clusters[ctx.Cluster], cfg.AuthInfos[ctx.AuthInfo]
	if cluster == nil || user == nil {
		return true, "the stored kubeconfig is incomplete"
	}
	if cluster.Server != endpoint {
		return true, fmt.Sprintf("the endpoint moved from %s to %s", cluster.Server, endpoint)
	}
	if string(cluster.CertificateAuthorityData) != string(pki.CAs[caServer].CertPEM) {
		return true, "the stored kubeconfig trusts another server CA"
	}
	cert, err := parseCert(user.ClientCertificateData)
	if err != nil {
		return true, "the stored client certificate does not parse"
	}
	ca, _, err := pki.CAs[caClient].parse()
	if err != nil || cert.CheckSignatureFrom(ca) != nil {
		return true, "the stored client certificate is not from the cluster's client CA"
	}
	halfLife := cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) / 2)
	if !now.Before(halfLife) {
		return true, "the client certificate is past half its life"
	}
	return false, ""
}

// reconcileKubeconfig writes the admin kubeconfig Secret for endpoint, or rewrites it
// when the endpoint moved, the CAs differ or the client certificate is past half its
// life. It returns the kubeconfig in force (nil while the endpoint is unknown).
func (r *K3sClusterReconciler) reconcileKubeconfig(ctx context.Context, s *clusterScope, endpoint string) ([]byte, error) {
	c := s.cluster
	if endpoint == "" {
		return nil, nil
	}
	name := kubeconfigSecretName(c.Name)
	now := r.now()
	existing, err := r.getSecret(ctx, c.Namespace, name)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	found := err == nil
	if found {
		if refresh, _ := kubeconfigNeedsRefresh(existing.Data[kubeconfigKey], endpoint, s.pki, now); !refresh {
			c.Status.Endpoint = endpoint
			s.obs.endpoint, s.obs.kubeconfigWritten = endpoint, true
			return existing.Data[kubeconfigKey], nil
		}
	}
	data, err := buildAdminKubeconfig(c.Name, endpoint, s.pki, now)
	if err != nil {
		s.obs.kubeconfigErr = err.Error()
		return nil, err
	}
	m, err := r.ownedSecretMeta(c, name, c.Spec.Kubeconfig.SecretMetadata)
	if err != nil {
		return nil, err
	}
	secret := &corev1.Secret{ObjectMeta: m, Type: v1alpha1.KubeconfigSecretType, Data: map[string][]byte{kubeconfigKey: data}}
	if found {
		_, why := kubeconfigNeedsRefresh(existing.Data[kubeconfigKey], endpoint, s.pki, now)
		secret.ResourceVersion = existing.ResourceVersion
		if err := r.Update(ctx, secret); err != nil {
			return nil, err
		}
		r.event(c, corev1.EventTypeNormal, "KubeconfigRotated", "WriteKubeconfig", "rewrote Secret %s: %s", name, why)
	} else {
		if err := r.Create(ctx, secret); err != nil {
			return nil, err
		}
		r.event(c, corev1.EventTypeNormal, "KubeconfigWritten", "WriteKubeconfig", "wrote the admin kubeconfig for %s to Secret %s", endpoint, name)
	}
	c.Status.Endpoint = endpoint
	s.obs.endpoint, s.obs.kubeconfigWritten = endpoint, true
	return data, nil
}
