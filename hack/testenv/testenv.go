// Package testenv starts a real kube-apiserver and etcd (controller-runtime's envtest)
// with the project's CRDs installed, for the test suites of every package. The binaries
// come from hack/envtest-assets.sh, which `make test` runs and exports as
// KUBEBUILDER_ASSETS.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"

	clusterv1alpha1 "github.com/mesosk3s/mesosk3s/api/v1alpha1"
)

// Env is a running API server with the CRDs installed.
type Env struct {
	// Config reaches the API server as a cluster admin.
	Config *rest.Config
	// Client is a controller-runtime client with the project's types registered.
	Client client.Client
	// Scheme has client-go's and the project's types.
	Scheme *k8sruntime.Scheme
	// KubeconfigPath is a kubeconfig file for the real kubectl binary.
	KubeconfigPath string

	env *envtest.Environment
	dir string
}

// RepoRoot is the repository's top directory, found from this file's location so that
// tests work from any package directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Option changes what Start installs.
type Option func(*options)

type options struct {
	crdDirs []string
	schemes []func(*k8sruntime.Scheme) error
}

// WithCRDDirs installs the CRDs of these directories (or files) too, after the project's:
// for example Flux's, copied into bin/flux/crds by hack/build-flux.sh. A missing
// directory fails Start.
func WithCRDDirs(dirs ...string) Option {
	return func(o *options) { o.crdDirs = append(o.crdDirs, dirs...) }
}

// WithScheme registers more types in Env.Scheme, and so in Env.Client.
func WithScheme(addToScheme ...func(*k8sruntime.Scheme) error) Option {
	return func(o *options) { o.schemes = append(o.schemes, addToScheme...) }
}

// Start starts the API server. It fails with a clear message when the envtest binaries are
// missing instead of letting envtest look for them somewhere else.
func Start(opts ...Option) (*Env, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			return nil, fmt.Errorf("KUBEBUILDER_ASSETS=%s has no %s: run hack/envtest-assets.sh", assets, bin)
		}
	}
	scheme := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := clusterv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	for _, add := range o.schemes {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	e := &envtest.Environment{
		CRDDirectoryPaths:     append([]string{filepath.Join(RepoRoot(), "config", "crd", "bases")}, o.crdDirs...),
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	cfg, err := e.Start()
	if err != nil {
		// envtest leaves etcd and kube-apiserver running when a later step (installing
		// the CRDs) fails; stop what it started.
		_ = e.Stop()
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	env := &Env{Config: cfg, Scheme: scheme, env: e}
	if env.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		_ = e.Stop()
		return nil, err
	}
	if err := env.writeKubeconfig(); err != nil {
		_ = e.Stop()
		return nil, err
	}
	return env, nil
}

// writeKubeconfig gives the real kubectl binary an admin user of the test API server.
func (e *Env) writeKubeconfig() error {
	user, err := e.env.AddUser(envtest.User{Name: "test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding kubectl user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return err
	}
	if e.dir, err = os.MkdirTemp("", "mesosk3s-testenv-"); err != nil {
		return err
	}
	e.KubeconfigPath = filepath.Join(e.dir, "kubeconfig")
	return os.WriteFile(e.KubeconfigPath, data, 0o600)
}

// Stop stops the API server and removes the kubeconfig.
func (e *Env) Stop() error {
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
	return e.env.Stop()
}

// Main is a package's TestMain: it starts the API server into *env, runs the tests, stops
// the server and exits with the tests' code.
func Main(m *testing.M, env **Env, opts ...Option) {
	var err error
	if *env, err = Start(opts...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := (*env).Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping envtest:", err)
	}
	os.Exit(code)
}

// Kubectl runs the real kubectl binary against the API server and returns its output,
// failing the test when it fails.
func (e *Env) Kubectl(t testing.TB, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl is not on PATH (install the Debian package kubernetes-client): %v", err)
	}
	out, err := exec.Command(path, append([]string{"--kubeconfig", e.KubeconfigPath}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
