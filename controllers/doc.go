// Package controllers holds the K3sCluster reconciler, which makes a K3sCluster real on
// Mesos through the mesosbridge package and reports what it observed in status.
//
// The RBAC markers below generate config/rbac/role.yaml: the least privilege the
// operator needs.
//
// +kubebuilder:rbac:groups=cluster.mesosk3s.io,resources=k3sclusters,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=cluster.mesosk3s.io,resources=k3sclusters/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=cluster.mesosk3s.io,resources=k3sclusters/finalizers,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
package controllers
