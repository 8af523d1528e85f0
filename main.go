// Command manager runs the Herald operator: the DeviceFleet and FirmwareRollout
// controllers, with metrics, health probes and leader election as kubebuilder
// lays them out.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	heraldv1alpha1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/controllers"
	"github.com/heraldiot/herald/internal/memlimit"
)

// options are the manager's flags.
type options struct {
	metricsAddr    string
	probeAddr      string
	secureMetrics  bool
	enableHTTP2    bool
	leaderElect    bool
	watchNamespace string
	shardSelector  string
	leaderElectID  string
	warmStandby    bool
	memoryRatio    float64
}

func main() {
	var o options
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", "0",
		"Address the metrics endpoint binds to, e.g. :8443 (HTTPS) or :8080 (HTTP). 0 disables it.")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address the health probe endpoint binds to.")
	flag.BoolVar(&o.secureMetrics, "metrics-secure", true,
		"Serve metrics over HTTPS, authenticated and authorized by the apiserver.")
	flag.BoolVar(&o.enableHTTP2, "enable-http2", false,
		"Allow HTTP/2 on the metrics server; off by default because of HTTP/2 rapid reset (CVE-2023-44487).")
	flag.BoolVar(&o.leaderElect, "leader-elect", false,
		"Elect a leader so only one manager connects to brokers and reconciles at a time.")
	flag.StringVar(&o.watchNamespace, "watch-namespace", "",
		"Comma-separated namespaces whose DeviceFleets and FirmwareRollouts the manager reconciles; empty means every namespace.")
	flag.StringVar(&o.shardSelector, "watch-label-selector", "",
		"Serve only the DeviceFleets and FirmwareRollouts this label selector matches, e.g. "+controllers.ShardLabel+"=shard1; "+
			"run one manager Deployment per shard, and one with '!"+controllers.ShardLabel+"' for unlabeled objects.")
	flag.StringVar(&o.leaderElectID, "leader-election-id", "herald-manager.herald.dev",
		"Name of the leader election Lease; give each shard its own.")
	flag.BoolVar(&o.warmStandby, "warm-standby", false,
		"While not the leader, keep each fleet's device state current over a read-only broker session, so a takeover needs no replay (memory as the leader's).")
	flag.Float64Var(&o.memoryRatio, "memory-limit-ratio", 0.9,
		"Set the Go runtime's soft memory limit to this fraction of the container's memory limit, unless GOMEMLIMIT is set; 0 leaves the runtime's default.")
	opts := zap.Options{Development: false}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")
	setMemoryLimit(log, o.memoryRatio)

	if err := run(o); err != nil {
		log.Error(err, "manager exited")
		os.Exit(1)
	}
}

func run(o options) error {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(heraldv1alpha1.AddToScheme(scheme))

	namespaces, err := parseNamespaces(o.watchNamespace)
	if err != nil {
		return err
	}
	shard, err := controllers.ParseShardSelector(o.shardSelector)
	if err != nil {
		return err
	}
	var tlsOpts []func(*tls.Config)
	if !o.enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{
		BindAddress:   o.metricsAddr,
		SecureServing: o.secureMetrics,
		TLSOpts:       tlsOpts,
	}
	if o.secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsOpts,
		HealthProbeBindAddress: o.probeAddr,
		LeaderElection:         o.leaderElect,
		LeaderElectionID:       o.leaderElectID,
		// Brokers allow one session per client ID, so a new leader must not
		// connect before the old one has stopped: release the lease only on
		// a clean shutdown, after every controller has returned.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         controllers.ShardCache(cacheOptions(namespaces), shard),
	})
	if err != nil {
		return err
	}
	if len(namespaces) > 0 {
		ctrl.Log.WithName("setup").Info("watching only some namespaces", "namespaces", namespaces)
	}
	ctx := ctrl.SetupSignalHandler()
	if !shard.Empty() {
		ctrl.Log.WithName("setup").Info("serving one shard", "selector", shard.String())
	}
	copts := controllers.Options{Shard: o.shardSelector}
	if o.warmStandby {
		// The pod name: unique among the replicas, so is each standby's
		// client ID.
		if copts.StandbyID, err = os.Hostname(); err != nil {
			return fmt.Errorf("--warm-standby needs a host name for its client IDs: %w", err)
		}
	}
	if err := controllers.Setup(ctx, mgr, copts); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// parseNamespaces splits --watch-namespace at commas, leaving out blanks
// and repeats, and refuses a name no namespace can have: a typo would
// otherwise watch a namespace that never exists, and the manager would run
// and reconcile nothing.
func parseNamespaces(list string) ([]string, error) {
	var out []string
	for _, ns := range strings.Split(list, ",") {
		ns = strings.TrimSpace(ns)
		if ns == "" || slices.Contains(out, ns) {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("--watch-namespace: %q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
		out = append(out, ns)
	}
	return out, nil
}

// cacheOptions restricts the manager's cache to namespaces, none meaning
// every namespace. The controllers see DeviceFleets and FirmwareRollouts
// only through the cache, so they never reconcile one elsewhere, and
// Secrets follow: they are read uncached, one by one, and only in the
// namespace of a fleet the cache delivered. With namespaces, the manager
// needs rights only in them (the chart's watchNamespaces grants Roles).
func cacheOptions(namespaces []string) cache.Options {
	if len(namespaces) == 0 {
		return cache.Options{}
	}
	o := cache.Options{DefaultNamespaces: make(map[string]cache.Config, len(namespaces))}
	for _, ns := range namespaces {
		o.DefaultNamespaces[ns] = cache.Config{}
	}
	return o
}

// setMemoryLimit sets the runtime's soft memory limit under the
// container's, so that the garbage collector works harder as the heap
// nears it instead of letting it double past what is live: a fleet of a
// million devices keeps about 400 MiB live, and the default would put the
// heap past a 512 MiB limit. GOMEMLIMIT, when set, wins.
func setMemoryLimit(log logr.Logger, ratio float64) {
	if os.Getenv("GOMEMLIMIT") != "" || ratio <= 0 {
		return
	}
	limit, from, err := memlimit.Limit(os.DirFS("/"))
	if err != nil || limit == 0 {
		log.V(1).Info("no container memory limit; the Go runtime's soft limit stays off", "reason", err)
		return
	}
	soft := int64(float64(limit) * min(ratio, 1))
	debug.SetMemoryLimit(soft)
	log.Info("soft memory limit set under the container's", "limitBytes", limit, "from", from, "softLimitBytes", soft)
}
