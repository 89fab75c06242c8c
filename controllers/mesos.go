package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// Defaults the CRD applies too; repeated for objects stored before a default existed.
const (
	defaultFailoverTimeout = 7 * 24 * time.Hour
	defaultRole            = "mesosk3s"
)

// frameworkConfig derives the cluster's framework configuration from its spec and the
// Secrets it names. A problem a person must fix comes back as a conditionProblem (shown
// on MesosConnected); other errors are returned for a retry.
func (r *K3sClusterReconciler) frameworkConfig(ctx context.Context, c *v1alpha1.K3sCluster) (mesosbridge.FrameworkConfig, *conditionProblem, error) {
	m := c.Spec.Mesos
	cfg := mesosbridge.FrameworkConfig{
		ClusterNamespace: c.Namespace,
		ClusterName:      c.Name,
		ClusterUID:       string(c.UID),
		Name:             frameworkName(c),
		User:             frameworkUser,
		Role:             m.Role,
		FailoverTimeout:  defaultFailoverTimeout,
		FrameworkID:      c.Status.FrameworkID,
	}
	if cfg.Role == "" {
		cfg.Role = defaultRole
	}
	if m.FailoverTimeout != nil {
		cfg.FailoverTimeout = m.FailoverTimeout.Duration
	}
	master := m.Master
	if master == "" {
		master = r.DefaultMesosMaster
	}
	for _, addr := range strings.Split(master, ",") {
		if addr = strings.TrimSpace(addr); addr != "" {
			cfg.Masters = append(cfg.Masters, addr)
		}
	}
	if len(cfg.Masters) == 0 {
		return cfg, &conditionProblem{v1alpha1.ReasonMesosUnreachable, "no Mesos master configured: set spec.mesos.master or start the operator with --mesos-master"}, nil
	}

	if ref := m.CredentialsSecretRef; ref != nil {
		s, err := r.getSecret(ctx, c.Namespace, ref.Name)
		if apierrors.IsNotFound(err) {
			return cfg, &conditionProblem{v1alpha1.ReasonCredentialsNotFound, fmt.Sprintf("Secret %s named by spec.mesos.credentialsSecretRef does not exist", ref.Name)}, nil
		} else if err != nil {
			return cfg, nil, err
		}
		cfg.Principal, cfg.Secret = string(s.Data["principal"]), string(s.Data["secret"])
		if cfg.Principal == "" || cfg.Secret == "" {
			return cfg, &conditionProblem{v1alpha1.ReasonCredentialsNotFound, fmt.Sprintf("Secret %s needs the keys principal and secret", ref.Name)}, nil
		}
	}
	if t := m.TLS; t != nil {
		cfg.TLS.InsecureSkipVerify = t.InsecureSkipVerify
		if t.CASecretRef != nil {
			s, err := r.getSecret(ctx, c.Namespace, t.CASecretRef.Name)
			if apierrors.IsNotFound(err) {
				return cfg, &conditionProblem{v1alpha1.ReasonCredentialsNotFound, fmt.Sprintf("Secret %s named by spec.mesos.tls.caSecretRef does not exist", t.CASecretRef.Name)}, nil
			} else if err != nil {
				return cfg, nil, err
			}
			if cfg.TLS.CAData = s.Data["ca.crt"]; len(cfg.TLS.CAData) == 0 {
				return cfg, &conditionProblem{v1alpha1.ReasonCredentialsNotFound, fmt.Sprintf("Secret %s needs the key ca.crt", t.CASecretRef.Name)}, nil
			}
		}
	}
	return cfg, nil, nil
}

// externalDatastoreEndpoint reads the External datastore's endpoint from its Secret.
func (r *K3sClusterReconciler) externalDatastoreEndpoint(ctx context.Context, c *v1alpha1.K3sCluster) ([]byte, *conditionProblem, error) {
	ref := c.Spec.Datastore.ExternalSecretRef
	if ref == nil {
		return nil, &conditionProblem{v1alpha1.ReasonExternalNotFound, "datastore External needs externalSecretRef"}, nil
	}
	s, err := r.getSecret(ctx, c.Namespace, ref.Name)
	if apierrors.IsNotFound(err) {
		return nil, &conditionProblem{v1alpha1.ReasonExternalNotFound, fmt.Sprintf("Secret %s named by spec.datastore.externalSecretRef does not exist", ref.Name)}, nil
	} else if err != nil {
		return nil, nil, err
	}
	if len(s.Data["endpoint"]) == 0 {
		return nil, &conditionProblem{v1alpha1.ReasonExternalNotFound, fmt.Sprintf("Secret %s needs the key endpoint (the K3s --datastore-endpoint)", ref.Name)}, nil
	}
	return s.Data["endpoint"], nil, nil
}

// unsupportedSpec names what this version of the operator cannot do yet, so the cluster
// is Stalled with that reason instead of silently doing something else.
func unsupportedSpec(c *v1alpha1.K3sCluster) string {
	if c.Spec.Runtime == v1alpha1.RuntimeDocker {
		// The API refuses it now; a cluster stored before keeps running as it is.
		return "runtime Docker cannot deliver the cluster's CAs and tokens: the Docker containerizer does not resolve Mesos secrets (they arrive empty) and puts environment variables on the docker command line. Set spec.runtime to Image (the same image under the Mesos containerizer) or Binary; the tasks are replaced one by one"
	}
	switch c.Spec.Datastore.Type {
	case v1alpha1.DatastoreEtcd, v1alpha1.DatastoreMySQL:
		return fmt.Sprintf("datastore %s run as Mesos tasks is not supported yet; use SQLite, EmbeddedEtcd or External", c.Spec.Datastore.Type)
	}
	return ""
}
