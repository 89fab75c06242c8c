// Command manager runs the mesosk3s operator: a controller-runtime manager that reconciles
// K3sCluster objects by driving one Mesos framework per cluster.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	clusterv1alpha1 "github.com/mesosk3s/mesosk3s/api/v1alpha1"
)

// version is the operator's release, set at build time (-ldflags -X main.version=...).
var version = "dev"

// options are the operator's command-line flags.
type options struct {
	metricsAddr          string
	probeAddr            string
	leaderElect          bool
	leaderElectionID     string
	leaderElectionNS     string
	mesosMaster          string
	logLevel             string
	logDevelopment       bool
	maxConcurrentWorkers int
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; 0 turns it off.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz endpoints bind to.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader so that only one replica of the operator drives Mesos at a time.")
	fs.StringVar(&o.leaderElectionID, "leader-election-id", "mesosk3s.cluster.mesosk3s.io", "Name of the Lease used for leader election.")
	fs.StringVar(&o.leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the operator's namespace).")
	fs.StringVar(&o.mesosMaster, "mesos-master", os.Getenv("MESOS_MASTER"), "Default Mesos master (host:port or URL, comma-separated for several) for clusters that do not set spec.mesos.master; also read from MESOS_MASTER.")
	fs.StringVar(&o.logLevel, "log-level", "info", "Log level: debug, info or error.")
	fs.BoolVar(&o.logDevelopment, "log-development", false, "Human-readable console logs instead of JSON.")
	fs.IntVar(&o.maxConcurrentWorkers, "max-concurrent-reconciles", 4, "How many K3sClusters are reconciled in parallel.")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.maxConcurrentWorkers < 1 {
		return o, fmt.Errorf("--max-concurrent-reconciles must be at least 1, got %d", o.maxConcurrentWorkers)
	}
	return o, nil
}

func newLogger(o options) (*zap.Logger, error) {
	var level zapcore.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	cfg := zap.NewProductionConfig()
	if o.logDevelopment {
		cfg = zap.NewDevelopmentConfig()
	}
	cfg.Level = zap.NewAtomicLevelAt(level)
	return cfg.Build()
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	zl, err := newLogger(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctrl.SetLogger(zapr.NewLogger(zl))
	if err := run(o); err != nil {
		ctrl.Log.Error(err, "manager exited")
		os.Exit(1)
	}
}

func run(o options) error {
	log := ctrl.Log.WithName("setup")
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(clusterv1alpha1.AddToScheme(scheme))

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        o.leaderElectionID,
		LeaderElectionNamespace: o.leaderElectionNS,
		// Tear the leader's Mesos loops down quickly on shutdown so a new leader can take
		// over the frameworks (Mesos keeps the tasks for the failover timeout meanwhile).
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if err := setupControllers(mgr, o); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("adding healthz check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("adding readyz check: %w", err)
	}
	log.Info("starting manager", "version", version, "mesosMaster", o.mesosMaster, "leaderElect", o.leaderElect)
	return mgr.Start(ctrl.SetupSignalHandler())
}
