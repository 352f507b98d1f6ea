// Command gateway is the Meshgate edge gateway.
//
//	gateway run --config PATH        serve the manifests in PATH, reloading on change
//	gateway validate --config PATH   report every object as accepted or rejected
//	gateway plan --config NEW ...    what applying NEW would change (exit 0 none, 2 changes, 1 invalid)
//	gateway explain ...              which route, backend and endpoint serve a request, and why
//	gateway version                  print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshgate/meshgate/admin"
	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/controller"
	"github.com/meshgate/meshgate/dashboard"
	"github.com/meshgate/meshgate/dataplane"
	"github.com/meshgate/meshgate/filesprovider"
	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/metrics"
	"github.com/meshgate/meshgate/obs"
	"github.com/meshgate/meshgate/proxy"
	"github.com/meshgate/meshgate/ratelimit"
	"github.com/meshgate/meshgate/rollout"
	"github.com/meshgate/meshgate/server"
	"github.com/meshgate/meshgate/translate"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "plan":
		return cmdPlan(args[1:], stdout, stderr)
	case "explain":
		return cmdExplain(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "gateway: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  gateway run --config PATH [flags]       serve Gateway API manifests from a file or folder
  gateway validate --config PATH [flags]  check manifests; exit 1 if anything is rejected
  gateway plan --config NEW (--config-old OLD | --against ADMIN_URL) [--output json]
                                          print what applying NEW would change; exit 0 no change,
                                          2 changes, 1 invalid (an object rejected, a parse error, a usage error)
  gateway explain (--config PATH | --against ADMIN_URL) --host H --path /p [--method M]
          [--header name=value ...] [--listener PORT]
                                          which listener, route, rule, filters, policies, backend and
                                          endpoints serve a request, and what would happen to it
  gateway version
Run "gateway run -h" for the flags.
`)
}

func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 && v == "dev" {
				v += "+" + s.Value[:12]
			}
		}
		return fmt.Sprintf("gateway %s (%s)", v, bi.GoVersion)
	}
	return "gateway " + v
}

// translateFlags are shared by run and validate, so both judge the same way.
type translateFlags struct {
	controllerName string
	bindAddress    string
}

func (t *translateFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.controllerName, "controller-name", translate.DefaultControllerName, "GatewayClass spec.controllerName to serve")
	fs.StringVar(&t.bindAddress, "bind-address", translate.DefaultAddress, "IP to bind Gateway listeners on when a Gateway has no spec.addresses")
}

func (t *translateFlags) options() translate.Options {
	return translate.Options{ControllerName: t.controllerName, DefaultAddress: t.bindAddress}
}

func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("gateway run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "manifest file or folder (read recursively); required unless --kubernetes")
	var kf kubeFlags
	kf.register(fs)
	adminAddr := fs.String("admin-addr", "127.0.0.1:9901", "admin listener (/healthz, /ready); empty to disable")
	shutdownDelay := fs.Duration("shutdown-delay", 0, "on SIGTERM, fail readiness at once but keep serving this long before draining, so load balancers stop sending first (set it above their health-check interval in a cluster)")
	drain := fs.Duration("drain-timeout", 10*time.Second, "how long in-flight requests may finish on SIGTERM or when a listener is removed")
	debugFrom := fs.String("debug-header-from", "", `comma-separated CIDRs whose requests with "x-meshgate-debug: 1" get an x-meshgate-debug response header (route, rule, backend, endpoint, retries, typed failure reason); empty: off`)
	trusted := fs.String("trusted-proxies", "", "comma-separated CIDRs whose X-Forwarded-*/Forwarded headers are kept and appended to; all others are replaced")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	readHeader := fs.Duration("read-header-timeout", 10*time.Second, "time allowed to read request headers")
	idle := fs.Duration("idle-timeout", 60*time.Second, "keep-alive connections idle this long are closed")
	wsIdle := fs.Duration("websocket-idle-timeout", time.Hour, "WebSocket connections with no traffic either way for this long are closed (0: never)")
	wsLife := fs.Duration("websocket-max-lifetime", 0, "WebSocket connections are closed this long after they opened (0: never)")
	wsGrace := fs.Duration("websocket-removed-route-grace", 30*time.Second, "after a reload removes a route, its open WebSocket connections are closed after this long")
	l4Idle := fs.Duration("l4-idle-timeout", 0, "TCP/TLS connections and UDP sessions with no traffic for this long are closed (0: 1h for TCP and TLS, 60s for UDP)")
	http3On := fs.Bool("http3", true, "serve HTTP/3 (QUIC) on the UDP port of each HTTPS listener and advertise it with Alt-Svc")
	http3ZeroRTT := fs.Bool("http3-0rtt", false, "accept HTTP/3 requests in TLS early data (0-RTT); only GET, HEAD and OPTIONS are served from it, others get 425")
	maxTotal := fs.Int64("max-connections-total", 200000, "open connections over all HTTP listeners; beyond it new ones are closed at once (0: no cap)")
	maxConns := fs.Int64("max-connections", 100000, "open connections per HTTP listener; beyond it new ones are closed at once (0: no cap)")
	memLimit := fs.String("memory-limit", "auto", `shed load (503) while the process holds more memory than this many MiB; "auto" is 90% of the cgroup memory limit (none outside a limited cgroup), "off" turns it off`)
	gcPercent := fs.Int("gc-percent", 200, "Go GC target (as GOGC): the heap may grow this many percent over live data before a collection; a gateway's live heap is small, so a higher target buys less GC CPU per request for a few MB (GOGC in the environment, when set, wins; -1: the runtime default)")
	underscores := fs.String("headers-with-underscores", "drop", `request header names with "_": drop (remove them), reject (400), or allow`)
	dashboardOn := fs.Bool("dashboard", true, "serve the live dashboard on the admin listener under /dashboard/")
	metricsOn := fs.Bool("metrics", true, "record Prometheus metrics and serve them on the admin listener under /metrics")
	pprofOn := fs.Bool("pprof", false, "serve the Go profiler on the admin listener under /debug/pprof/")
	redisAddr := fs.String("redis", "", "Redis for global rate limits shared by every replica: host:port or a redis:// or rediss:// URL (empty: global limits fail open or closed as their policy says)")
	var tf translateFlags
	tf.register(fs)
	var rf rolloutFlags
	rf.register(fs)
	var of obsFlags
	of.register(fs)
	var af acmeFlags
	af.register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if (*configPath == "") == !kf.enabled {
		fmt.Fprintln(stderr, "gateway run: give exactly one of --config (files) or --kubernetes (the cluster's API)")
		return 2
	}
	topts := tf.options()
	if kf.addressPool != "" {
		p, err := netip.ParsePrefix(kf.addressPool)
		if err != nil {
			fmt.Fprintf(stderr, "gateway run: --gateway-address-pool: %v\n", err)
			return 2
		}
		topts.AddressPool = p
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "gateway run: --log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	prefixes, err := parseCIDRs(*trusted)
	if err != nil {
		fmt.Fprintf(stderr, "gateway run: --trusted-proxies: %v\n", err)
		return 2
	}

	debugPrefixes, err := parseCIDRs(*debugFrom)
	if err != nil {
		fmt.Fprintf(stderr, "gateway run: --debug-header-from: %v\n", err)
		return 2
	}

	switch dataplane.UnderscorePolicy(*underscores) {
	case dataplane.UnderscoresDrop, dataplane.UnderscoresReject, dataplane.UnderscoresAllow:
	default:
		fmt.Fprintf(stderr, "gateway run: --headers-with-underscores: %q is not drop, reject or allow\n", *underscores)
		return 2
	}

	var memoryLimit uint64
	switch *memLimit {
	case "auto":
		memoryLimit = dataplane.DefaultMemoryLimit()
	case "off", "0":
	default:
		mib, err := strconv.ParseUint(*memLimit, 10, 64)
		if err != nil {
			fmt.Fprintf(stderr, "gateway run: --memory-limit: %q is not auto, off or a number of MiB\n", *memLimit)
			return 2
		}
		memoryLimit = mib << 20
	}

	if _, set := os.LookupEnv("GOGC"); !set && *gcPercent >= 0 {
		debug.SetGCPercent(*gcPercent)
		if memoryLimit > 0 {
			// Collect harder, not later, as memory nears the point where
			// the gateway starts shedding load.
			debug.SetMemoryLimit(int64(memoryLimit) * 8 / 10)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	var observers obs.Observers
	var dp *dataplane.Dataplane  // set below; the metrics read it only when scraped
	var rollouts *rollout.Engine // set below; the dashboard reads it only when a browser asks
	var met *metrics.Metrics
	if *metricsOn {
		met = metrics.New(metrics.Options{Stats: func() dataplane.Stats { return dp.Stats() }})
		observers.Sinks = append(observers.Sinks, met)
		observers.ReloadSinks = append(observers.ReloadSinks, met)
	}
	var dash *dashboard.Dashboard
	if *dashboardOn {
		dash = dashboard.New(dashboard.Options{
			Config:   func() *ir.Config { return dp.Config() },
			Stats:    func() dataplane.Stats { return dp.Stats() },
			Rollouts: func() []rollout.View { return rollouts.Views() },
			Log:      log,
		})
		defer dash.Close()
		observers.Sinks = append(observers.Sinks, dash)
		observers.ReloadSinks = append(observers.ReloadSinks, dash)
	}
	closeObs, err := of.setup(ctx, &observers, version, os.Stdout)
	if err != nil {
		fmt.Fprintf(stderr, "gateway run: %v\n", err)
		return 2
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		closeObs(ctx)
	}()

	rollouts = rf.engine(*configPath, kf.enabled, &observers, met, log)

	limiter, err := ratelimit.New(*redisAddr)
	if err != nil {
		fmt.Fprintf(stderr, "gateway run: --redis: %v\n", err)
		return 2
	}
	defer limiter.Close()

	acmeMgr, err := af.manager(log, &kf)
	if err != nil {
		fmt.Fprintf(stderr, "gateway run: %v\n", err)
		return 2
	}
	defer acmeMgr.Stop()

	dp = dataplane.New(dataplane.Options{
		ACME:            acmeMgr,
		DebugHeaderFrom: debugPrefixes,
		Limiter:         limiter,
		Observers:       observers,
		Underscores:     dataplane.UnderscorePolicy(*underscores),
		Forwarded:       proxy.ForwardedPolicy{Trusted: prefixes},
		DrainTimeout:    *drain,
		Log:             log,
		Limits:          server.Limits{ReadHeaderTimeout: *readHeader, IdleTimeout: *idle, MaxConnections: *maxConns, Total: &server.ConnectionCap{Max: *maxTotal}},
		MemoryLimit:     memoryLimit,
		Tunnels:         dataplane.TunnelLimits{IdleTimeout: *wsIdle, MaxLifetime: *wsLife, RemovedRouteGrace: *wsGrace},
		DisableHTTP3:    !*http3On,
		L4IdleTimeout:   *l4Idle,
		HTTP3:           server.H3Options{Allow0RTT: *http3ZeroRTT},
	})
	ctrl := &controller.Controller{Translate: topts, Data: dp, Log: log, Observers: &observers, ACME: acmeMgr}
	acmeMgr.OnChange(ctrl.Refresh)
	wireRollouts(rollouts, ctrl, &kf)
	source := *configPath
	if kf.enabled {
		source = "kubernetes"
	}

	var adminSrv *http.Server
	if *adminAddr != "" {
		ln, err := net.Listen("tcp", *adminAddr)
		if err != nil {
			log.Error("admin listener", "address", *adminAddr, "error", err.Error())
			return 1
		}
		adminSrv = &http.Server{Handler: admin.Handler(admin.Options{
			Ready: dp.Ready,
			Pprof: *pprofOn,
			State: func() admin.State {
				return admin.State{Generation: ctrl.Generation(), Source: source, Config: dp.Config(), Statuses: ctrl.Statuses()}
			},
			Tables:    dp.Tables,
			Upstreams: dp.Stats,
			Metrics:   metricsHandler(met),
			Dashboard: dashboardHandler(dash),
		}), ReadHeaderTimeout: 5 * time.Second}
		go adminSrv.Serve(ln)
		log.Info("admin listening", "address", ln.Addr().String())
		if !isLoopback(ln.Addr()) {
			log.Warn("admin listener is reachable from other hosts: it shows the config and route table, and accepts no authentication; bind it to loopback unless a firewall guards it", "address", ln.Addr().String())
		}
	}

	updates := make(chan config.Update)
	provErr := make(chan error, 1)
	if kf.enabled {
		if err := kf.start(ctx, ctrl, topts.ControllerName, updates, provErr, log); err != nil {
			log.Error("kubernetes provider", "error", err.Error())
			return 1
		}
	} else {
		prov := &filesprovider.Provider{Path: *configPath, Log: log}
		go func() { provErr <- prov.Run(ctx, updates) }()
	}
	go ctrl.Run(ctx, updates)
	go rollouts.Run(ctx)

	select {
	case <-ctx.Done():
	case err := <-provErr:
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Error("config provider stopped", "error", err.Error())
			stop()
			shutdown(dp, adminSrv, *drain, log)
			return 1
		}
	}
	dp.Stopping()
	if *shutdownDelay > 0 {
		// Readiness is now failing; keep serving until load balancers
		// have noticed, or until a second signal.
		log.Info("shutting down: readiness off, still serving", "delay", shutdownDelay.String())
		again := make(chan os.Signal, 1)
		signal.Notify(again, syscall.SIGTERM, os.Interrupt)
		select {
		case <-time.After(*shutdownDelay):
		case <-again:
		}
		signal.Stop(again)
	}
	log.Info("shutting down: draining in-flight requests", "grace", drain.String())
	return shutdown(dp, adminSrv, *drain, log)
}

func shutdown(dp *dataplane.Dataplane, adminSrv *http.Server, grace time.Duration, log *slog.Logger) int {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	code := 0
	if err := dp.Shutdown(ctx); err != nil {
		log.Warn("drain cut short", "error", err.Error())
	}
	if adminSrv != nil {
		adminSrv.Close()
	}
	log.Info("stopped")
	return code
}

func parseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, err
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gateway validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "manifest file or folder (required)")
	var tf translateFlags
	tf.register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *configPath == "" {
		fmt.Fprintln(stderr, "gateway validate: --config is required")
		return 2
	}
	snap, err := config.LoadPath(*configPath)
	if err != nil {
		fmt.Fprintf(stdout, "REJECTED  %v\n", err)
		return 1
	}
	res := translate.Translate(snap, tf.options())
	bad := 0
	for _, st := range res.Statuses {
		id := st.Kind + " " + st.Name
		if st.Namespace != "" {
			id = st.Kind + " " + st.Namespace + "/" + st.Name
		}
		if st.Source != "" {
			id += " (" + st.Source + ")"
		}
		switch {
		case st.Ignored:
			fmt.Fprintf(stdout, "IGNORED   %s: %s\n", id, st.Reason)
		case st.Accepted:
			fmt.Fprintf(stdout, "ACCEPTED  %s\n", id)
		default:
			bad++
			fmt.Fprintf(stdout, "REJECTED  %s: %s%s\n", id, reasonPrefix(st), st.Reason)
		}
	}
	// Objects that only serve as references (Services, EndpointSlices,
	// Secrets, Namespaces, ReferenceGrants) have no status of their own:
	// a problem with one is reported on the object that uses it.
	for _, o := range referencedObjects(snap) {
		fmt.Fprintf(stdout, "LOADED    %s (checked where it is referenced)\n", o)
	}
	if res.Config == nil {
		bad++
	}
	if bad > 0 {
		fmt.Fprintf(stdout, "%d object(s) rejected\n", bad)
		return 1
	}
	fmt.Fprintln(stdout, "configuration valid")
	return 0
}

// referencedObjects names the snapshot's objects that get no status entry.
func referencedObjects(s *config.Snapshot) []string {
	var out []string
	add := func(kind, ns, name string) { out = append(out, kind+" "+ns+"/"+name) }
	for _, o := range s.EndpointSlices {
		add("EndpointSlice", o.Namespace, o.Name)
	}
	for _, o := range s.Namespaces {
		out = append(out, "Namespace "+o.Name)
	}
	for _, o := range s.ReferenceGrants {
		add("ReferenceGrant", o.Namespace, o.Name)
	}
	for _, o := range s.Secrets {
		add("Secret", o.Namespace, o.Name)
	}
	for _, o := range s.Services {
		add("Service", o.Namespace, o.Name)
	}
	return out
}

// isLoopback reports whether a bound address accepts only local
// connections.
func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// metricsHandler is m's /metrics handler, or nil when metrics are off.
func metricsHandler(m *metrics.Metrics) http.Handler {
	if m == nil {
		return nil
	}
	return m.Handler()
}

// dashboardHandler is d's handler, or nil when the dashboard is off.
func dashboardHandler(d *dashboard.Dashboard) http.Handler {
	if d == nil {
		return nil
	}
	return d.Handler()
}

// reasonPrefix is "Reason: " of the object's first false Accepted
// condition (TargetNotFound, Conflicted, ...), so validate says which kind
// of problem it is, as kubectl would show; "" when there is none.
func reasonPrefix(st translate.ObjectStatus) string {
	for _, c := range st.Conditions {
		if c.Type == "Accepted" && c.Status == "False" && c.Reason != "" {
			return c.Reason + ": "
		}
	}
	return ""
}
