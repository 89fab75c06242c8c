package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The demo workload: a web server from the locally built image, reached on a NodePort of
// every agent host. The port is outside the agents' Mesos port range (31000-31099), which
// the agents' own listeners take ports from.
const (
	demoName     = "hello"
	demoImage    = "docker.io/mesosk3s/busybox:1.35"
	demoNodePort = 30080
)

// withNodeAssets points the sample's agents at this machine's node assets (built by
// hack/node-assets.sh): through spec fields a real user sets the same way (a PATH with the
// CNI plugins, a flannel CNI config, images to preload).
func (p *playground) withNodeAssets(obj *unstructured.Unstructured) error {
	cni := filepath.Join(p.o.nodeAssets, "cni")
	for _, f := range []string{filepath.Join(cni, "flannel"), filepath.Join(p.o.nodeAssets, "busybox.tar")} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s is missing: run `make node-prereqs`", f)
		}
	}
	env, _, _ := unstructured.NestedSlice(obj.Object, "spec", "agents", "env")
	env = append(env, map[string]any{"name": "PATH", "value": cni + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"})
	args, _, _ := unstructured.NestedStringSlice(obj.Object, "spec", "agents", "args")
	args = append(args, "--flannel-cni-conf="+filepath.Join(p.o.nodeAssets, "flannel.conflist"))
	images, _, _ := unstructured.NestedStringSlice(obj.Object, "spec", "agents", "images")
	images = append(images, "file://"+filepath.Join(p.o.nodeAssets, "busybox.tar"))
	if err := unstructured.SetNestedSlice(obj.Object, env, "spec", "agents", "env"); err != nil {
		return err
	}
	if err := unstructured.SetNestedStringSlice(obj.Object, args, "spec", "agents", "args"); err != nil {
		return err
	}
	return unstructured.SetNestedStringSlice(obj.Object, images, "spec", "agents", "images")
}

// workloadClient reads the admin kubeconfig the operator wrote and writes it where the
// next steps say.
func (p *playground) workloadClient(ctx context.Context) (kubernetes.Interface, error) {
	secret := &corev1.Secret{}
	if err := p.api.Client.Get(ctx, client.ObjectKey{Namespace: p.cluster.Namespace, Name: p.cluster.Name + "-kubeconfig"}, secret); err != nil {
		return nil, err
	}
	data := secret.Data["value"]
	if err := os.WriteFile(p.clusterKubeconfig(), data, 0o600); err != nil {
		return nil, err
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(data)
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 10 * time.Second
	return kubernetes.NewForConfig(cfg)
}

func (p *playground) clusterKubeconfig() string {
	return filepath.Join(p.o.stateDir, p.cluster.Name+".kubeconfig")
}

// runDemo deploys the demo workload and waits until it answers on a NodePort.
func (p *playground) runDemo(ctx context.Context) error {
	start := time.Now()
	c, err := p.workloadClient(ctx)
	if err != nil {
		return err
	}
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, n := range nodes.Items {
		fmt.Fprintf(p.out, "    node %s Ready=%v %s\n", n.Name, nodeReady(&n), nodeAddress(&n))
		if p.demoHost == "" && nodeReady(&n) {
			p.demoHost = nodeAddress(&n)
		}
	}
	if p.demoHost == "" {
		return fmt.Errorf("no Node is Ready")
	}
	if err := applyDemo(ctx, c); err != nil {
		return err
	}
	p.step("deployed %s (image %s, imported from the agents' preloaded archive); waiting for it to answer…", demoName, demoImage)
	url := fmt.Sprintf("http://%s:%d/", p.demoHost, demoNodePort)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		body, err := fetchBody(ctx, url)
		if err == nil && strings.Contains(body, "hello from") {
			p.step("%s answers at %s after %.1fs: %s", demoName, url, time.Since(start).Seconds(), strings.TrimSpace(body))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer at %s within 3m: %v", demoName, url, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted while waiting for %s", demoName)
		case <-time.After(time.Second):
		}
	}
}

// applyDemo creates (or keeps) the demo Deployment and its NodePort Service.
func applyDemo(ctx context.Context, c kubernetes.Interface) error {
	labels := map[string]string{"app": demoName}
	replicas := int32(1)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: demoName, Namespace: metav1.NamespaceDefault},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: demoImage, ImagePullPolicy: corev1.PullNever,
					Command: []string{"sh", "-c", `echo "hello from $(hostname)" > /index.html && exec httpd -f -v -p 8080 -h /`},
					Ports:   []corev1.ContainerPort{{ContainerPort: 8080}},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
						HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 2},
				}}},
			},
		},
	}
	if _, err := c.AppsV1().Deployments(dep.Namespace).Create(ctx, dep, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the demo Deployment: %w", err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: demoName, Namespace: metav1.NamespaceDefault},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: labels,
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), NodePort: demoNodePort}}},
	}
	if _, err := c.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the demo Service: %w", err)
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func nodeAddress(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

func fetchBody(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}
