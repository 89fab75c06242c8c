package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
)

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
