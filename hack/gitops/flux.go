// Package gitops runs a real Flux (source-controller and kustomize-controller, built by
// hack/build-flux.sh into bin/flux) beside a test API server from hack/testenv, reconciling
// from a Git repository served over HTTP on 127.0.0.1 (GitServer). Tests use it to show
// that what the operator reads and writes works when users manage it through Flux.
//
// The controllers run as subprocesses of the test binary, with the test API server's
// admin kubeconfig and flags that need nothing from inside a cluster; each writes its log
// to a file in t.TempDir(), whose end is printed when the test fails. They are stopped on
// t.Cleanup, and killed with the test binary if it dies (Pdeathsig).
package gitops

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	kustomizev1 "github.com/fluxcd/kustomize-controller/api/v1"
	"github.com/fluxcd/pkg/apis/meta"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/mesosk3s/mesosk3s/hack/testenv"
)

// Namespace is where the harness's GitRepositories and Kustomizations live, as with a
// `flux bootstrap`.
const Namespace = "flux-system"

// Assets is the directory hack/build-flux.sh fills: $MESOSK3S_FLUX_ASSETS, or bin/flux at
// the repository's top. When the binaries are missing the test is skipped, unless
// MESOSK3S_REQUIRE_FLUX is set, which makes it fail.
func Assets(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("MESOSK3S_FLUX_ASSETS")
	if dir == "" {
		dir = filepath.Join(testenv.RepoRoot(), "bin", "flux")
	}
	for _, f := range []string{"source-controller", "kustomize-controller", "crds"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			msg := fmt.Sprintf("%s has no %s: run hack/build-flux.sh (about 20 min the first time)", dir, f)
			if os.Getenv("MESOSK3S_REQUIRE_FLUX") != "" {
				t.Fatal(msg + "; MESOSK3S_REQUIRE_FLUX is set, so this test may not be skipped")
			}
			t.Skip(msg)
		}
	}
	return dir
}

// AddToScheme registers Flux's source and kustomize types.
func AddToScheme(s *k8sruntime.Scheme) error {
	if err := sourcev1.AddToScheme(s); err != nil {
		return err
	}
	return kustomizev1.AddToScheme(s)
}

// StartEnv starts a test API server with the project's CRDs and Flux's (from
// Assets(t)/crds), and Flux's types registered in its client; it is stopped when the test
// ends. More testenv options may be added.
func StartEnv(t testing.TB, opts ...testenv.Option) *testenv.Env {
	t.Helper()
	assets := Assets(t)
	opts = append([]testenv.Option{
		testenv.WithCRDDirs(filepath.Join(assets, "crds")),
		testenv.WithScheme(AddToScheme),
	}, opts...)
	env, err := testenv.Start(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the API server: %v", err)
		}
	})
	return env
}

// InstallCRDs installs Flux's CRDs into an API server started without them (one not
// from StartEnv, e.g. the playground's) and waits until they are served.
func InstallCRDs(t testing.TB, cfg *rest.Config) {
	t.Helper()
	_, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{
		Paths:              []string{filepath.Join(Assets(t), "crds")},
		ErrorIfPathMissing: true,
	})
	if err != nil {
		t.Fatalf("installing Flux's CRDs: %v", err)
	}
}

// Flux is source-controller and kustomize-controller running against one API server.
type Flux struct {
	// Client is the API server's client (with Flux's types).
	Client client.Client
	// StorageAddr is where source-controller serves artifacts (127.0.0.1:PORT); it is
	// also the address it advertises in status.artifact.url.
	StorageAddr string
	// Started is how long the controllers took from exec to both answering /readyz.
	Started time.Duration

	source, kustomize *process
}

// StartFlux starts both controllers against env (from StartEnv) and waits until they are
// ready. They are stopped when the test ends; if it failed, the end of their logs is
// printed first.
func StartFlux(t testing.TB, env *testenv.Env) *Flux {
	t.Helper()
	return StartFluxAt(t, env.KubeconfigPath, env.Client)
}

// StartFluxAt is StartFlux for any API server that has Flux's CRDs (InstallCRDs):
// kubeconfig is an admin kubeconfig file for the controllers, c a client whose scheme has
// Flux's types (AddToScheme) for the helpers. It creates the Namespace if missing.
func StartFluxAt(t testing.TB, kubeconfig string, c client.Client) *Flux {
	t.Helper()
	assets := Assets(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}
	if err := c.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := &Flux{Client: c, StorageAddr: freeAddr(t)}
	start := time.Now()
	sourceHealth, kustomizeHealth := freeAddr(t), freeAddr(t)
	storage := filepath.Join(dir, "storage") // source-controller wants it to exist
	if err := os.Mkdir(storage, 0o755); err != nil {
		t.Fatal(err)
	}
	common := []string{
		"--metrics-addr=0", // controller-runtime: 0 turns the metrics server off
		"--enable-leader-election=false",
		"--watch-all-namespaces=true", // otherwise only $RUNTIME_NAMESPACE is watched
		"--events-addr=",              // no notification-controller: Kubernetes Events only
		"--log-encoding=console",
		"--log-level=info",
	}
	f.source = startProcess(t, filepath.Join(assets, "source-controller"), filepath.Join(dir, "source-controller.log"),
		kubeconfig, append(common,
			"--health-addr="+sourceHealth,
			"--storage-path="+storage,
			"--storage-addr="+f.StorageAddr,
			// The address written into artifact URLs; by default it is derived from the
			// host name, which kustomize-controller could not reach here.
			"--storage-adv-addr="+f.StorageAddr,
		)...)
	f.kustomize = startProcess(t, filepath.Join(assets, "kustomize-controller"), filepath.Join(dir, "kustomize-controller.log"),
		kubeconfig, append(common,
			"--health-addr="+kustomizeHealth,
			"--no-remote-bases=true", // nothing outside the repository is fetched
		)...)
	t.Cleanup(func() {
		for _, p := range []*process{f.kustomize, f.source} {
			if t.Failed() {
				t.Logf("--- end of %s ---\n%s", filepath.Base(p.logPath), p.logTail(150))
			}
			p.stop(t, 10*time.Second)
		}
	})
	for _, w := range []struct {
		p    *process
		addr string
	}{{f.source, sourceHealth}, {f.kustomize, kustomizeHealth}} {
		if err := w.p.waitReady(w.addr, 60*time.Second); err != nil {
			t.Fatalf("%s: %v", filepath.Base(w.p.logPath), err) // the cleanup prints the logs
		}
	}
	f.Started = time.Since(start)
	return f
}

// Running fails the test when a controller has exited.
func (f *Flux) Running(t testing.TB) {
	t.Helper()
	for _, p := range []*process{f.source, f.kustomize} {
		if err := p.running(); err != nil {
			t.Fatalf("%s: %v", filepath.Base(p.logPath), err) // the cleanup prints the logs
		}
	}
}

// GitRepository is a GitRepository in Namespace that follows the branch of g.
func GitRepository(name string, g *GitServer, interval time.Duration) *sourcev1.GitRepository {
	return &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace},
		Spec: sourcev1.GitRepositorySpec{
			URL:       g.URL,
			Interval:  metav1.Duration{Duration: interval},
			Timeout:   &metav1.Duration{Duration: 20 * time.Second},
			Reference: &sourcev1.GitRepositoryRef{Branch: g.Branch},
		},
	}
}

// Kustomization is a Kustomization in Namespace that applies path of the GitRepository
// source with prune and wait on, retrying failures every 2 s.
func Kustomization(name, source, path string, interval time.Duration) *kustomizev1.Kustomization {
	return &kustomizev1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace},
		Spec: kustomizev1.KustomizationSpec{
			SourceRef:     kustomizev1.CrossNamespaceSourceReference{Kind: sourcev1.GitRepositoryKind, Name: source},
			Path:          path,
			Interval:      metav1.Duration{Duration: interval},
			RetryInterval: &metav1.Duration{Duration: 2 * time.Second},
			Timeout:       &metav1.Duration{Duration: 30 * time.Second},
			Prune:         true,
			Wait:          true,
		},
	}
}

// KubeConfigSecret makes k apply into the cluster whose kubeconfig is under key value of
// Secret secretName in Namespace, the form of the operator's "<name>-kubeconfig" Secret.
func KubeConfigSecret(k *kustomizev1.Kustomization, secretName string) *kustomizev1.Kustomization {
	k.Spec.KubeConfig = &meta.KubeConfigReference{SecretRef: &meta.SecretKeyReference{Name: secretName, Key: "value"}}
	return k
}

// RequestReconcile sets the reconcile.fluxcd.io/requestedAt annotation, as `flux reconcile`
// does, so the controller reconciles obj now instead of at its next interval.
func (f *Flux) RequestReconcile(t testing.TB, obj client.Object) {
	t.Helper()
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`,
		meta.ReconcileRequestAnnotation, time.Now().Format(time.RFC3339Nano)))
	if err := f.Client.Patch(context.Background(), obj, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		t.Fatalf("requesting a reconcile of %s: %v", obj.GetName(), err)
	}
}

// WaitGitRepository waits until the GitRepository is Ready with an artifact of revision
// (any revision if empty) and returns it.
func (f *Flux) WaitGitRepository(t testing.TB, name, revision string, timeout time.Duration) *sourcev1.GitRepository {
	t.Helper()
	repo := &sourcev1.GitRepository{}
	f.wait(t, timeout, repo, name, func() (bool, string) {
		ready := apimeta.FindStatusCondition(repo.Status.Conditions, meta.ReadyCondition)
		got := ""
		if repo.Status.Artifact != nil {
			got = repo.Status.Artifact.Revision
		}
		ok := ready != nil && ready.Status == metav1.ConditionTrue &&
			repo.Status.ObservedGeneration == repo.Generation && got != "" && (revision == "" || got == revision)
		return ok, fmt.Sprintf("artifact %q, Ready %s", got, condString(ready))
	})
	return repo
}

// WaitKustomizationReady waits until the Kustomization has applied revision and is Ready
// (with wait: true, once kstatus finds every applied object Current).
func (f *Flux) WaitKustomizationReady(t testing.TB, name, revision string, timeout time.Duration) *kustomizev1.Kustomization {
	t.Helper()
	k := &kustomizev1.Kustomization{}
	f.wait(t, timeout, k, name, func() (bool, string) {
		ready := apimeta.FindStatusCondition(k.Status.Conditions, meta.ReadyCondition)
		ok := ready != nil && ready.Status == metav1.ConditionTrue && k.Status.ObservedGeneration == k.Generation &&
			k.Status.LastAppliedRevision == revision
		return ok, fmt.Sprintf("applied %q, Ready %s", k.Status.LastAppliedRevision, condString(ready))
	})
	return k
}

// WaitKustomizationFailed waits until the Kustomization has tried revision and reports
// Ready=False, and returns it.
func (f *Flux) WaitKustomizationFailed(t testing.TB, name, revision string, timeout time.Duration) *kustomizev1.Kustomization {
	t.Helper()
	k := &kustomizev1.Kustomization{}
	f.wait(t, timeout, k, name, func() (bool, string) {
		ready := apimeta.FindStatusCondition(k.Status.Conditions, meta.ReadyCondition)
		ok := ready != nil && ready.Status == metav1.ConditionFalse && k.Status.LastAttemptedRevision == revision
		return ok, fmt.Sprintf("attempted %q, Ready %s", k.Status.LastAttemptedRevision, condString(ready))
	})
	return k
}

// WaitKustomization waits until done(k) holds for the Kustomization and returns it; done
// also says what it saw, for the failure message.
func (f *Flux) WaitKustomization(t testing.TB, name string, timeout time.Duration, done func(k *kustomizev1.Kustomization) (bool, string)) *kustomizev1.Kustomization {
	t.Helper()
	k := &kustomizev1.Kustomization{}
	f.wait(t, timeout, k, name, func() (bool, string) { return done(k) })
	return k
}

func (f *Flux) wait(t testing.TB, timeout time.Duration, obj client.Object, name string, done func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := "not found"
	for {
		err := f.Client.Get(context.Background(), client.ObjectKey{Namespace: Namespace, Name: name}, obj)
		switch {
		case err == nil:
			var ok bool
			if ok, last = done(); ok {
				return
			}
		case !apierrors.IsNotFound(err):
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%T %s/%s: not there after %s: %s", obj, Namespace, name, timeout, last)
		}
		f.Running(t)
		time.Sleep(100 * time.Millisecond)
	}
}

func condString(c *metav1.Condition) string {
	if c == nil {
		return "missing"
	}
	return fmt.Sprintf("%s (%s: %s)", c.Status, c.Reason, c.Message)
}

// freeAddr is a 127.0.0.1 address with a port nothing listens on right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// process is a controller running in its own process group.
type process struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error // valid once exited is closed
}

func startProcess(t testing.TB, binary, logPath, kubeconfig string, args ...string) *process {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(binary, args...)
	// controller-runtime reads the kubeconfig from $KUBECONFIG (Flux's pflag command line
	// has no --kubeconfig). HOME points into the test's directory so nothing of the
	// machine's user is read.
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "HOME="+filepath.Dir(logPath))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Pdeathsig: if the test binary dies without cleaning up, the controller goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", binary, err)
	}
	p := &process{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	return p
}

func (p *process) running() error {
	select {
	case <-p.exited:
		return fmt.Errorf("exited: %v", p.err)
	default:
		return nil
	}
}

// waitReady polls the controller's /readyz until it answers 200.
func (p *process) waitReady(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: time.Second}
	for {
		if err := p.running(); err != nil {
			return err
		}
		resp, err := hc.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("/readyz on %s not OK after %s: %v", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM to the group, SIGKILL after grace, and fails the test if any
// process of the group is left.
func (p *process) stop(t testing.TB, grace time.Duration) {
	t.Helper()
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		t.Logf("%s ignored SIGTERM for %s; killing it", filepath.Base(p.logPath), grace)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.exited
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(-pgid, 0) == nil {
		if time.Now().After(deadline) {
			t.Errorf("processes of %s's group %d are still alive after SIGKILL", filepath.Base(p.logPath), pgid)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logTail is the last lines of the log.
func (p *process) logTail(lines int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// ReadyMessage is the message of the Ready condition, or "" without one.
func ReadyMessage(conditions []metav1.Condition) string {
	if c := apimeta.FindStatusCondition(conditions, meta.ReadyCondition); c != nil {
		return c.Message
	}
	return ""
}
