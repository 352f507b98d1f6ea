package e2e

// Benchmarks of `gateway run --kubernetes` against a real kube-apiserver:
// how long a route change takes to reach traffic, and what reconciling
// 1,000 and 5,000 HTTPRoutes costs. They are benchmarks so that `make
// test` never runs them; bench/k8s.sh runs them once each
// (-benchtime 1x) and writes bench/results/DATE-k8s.md. Every workload is
// fixed (it does not scale with b.N).
//
// The e2e helpers take a *testing.T (they fail the test and register
// cleanups), so each benchmark runs its body as a test through
// testing.RunTests (asTest) and reports the numbers on its *testing.B.

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshgate/meshgate/internal/k8stest"
)

// asTest runs f as a test named after b, so the *testing.T helpers of this
// package work in a benchmark; b fails if the test does. The matcher
// accepts every name: bench/k8s.sh passes -run xxx to skip the tests.
func asTest(b *testing.B, f func(t *testing.T)) {
	b.Helper()
	ok := testing.RunTests(func(string, string) (bool, error) { return true, nil },
		[]testing.InternalTest{{Name: b.Name(), F: f}})
	if !ok {
		b.Fatal("the benchmark's test body failed (its log is above)")
	}
}

// benchDir is where bench/k8s.sh collects Markdown fragments, profiles
// and gateway logs ("" when run by hand: nothing is written).
func benchDir() string { return os.Getenv("MESHGATE_K8S_BENCH_DIR") }

// benchOut writes a Markdown fragment into benchDir.
func benchOut(b *testing.B, name, text string) {
	if benchDir() == "" {
		return
	}
	if err := os.WriteFile(filepath.Join(benchDir(), name), []byte(text), 0o644); err != nil {
		b.Errorf("write %s: %v", name, err)
	}
}

// saveLog writes the gateway's log into benchDir.
func saveLog(g *gateway, name string) {
	if benchDir() != "" {
		os.WriteFile(filepath.Join(benchDir(), name), []byte(g.logs.String()), 0o644)
	}
}

// ---------------------------------------------------------------------------
// Measuring.

// pct is the nearest-rank q-quantile (0 < q <= 1) of ds.
func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// servedBy sends one GET through the gateway and says which backend
// answered: its X-Backend header, or what went wrong.
func servedBy(url, host string) string {
	r, err := tryDo(defaultClient, request{url: url, host: host})
	if err != nil {
		return "error: " + err.Error()
	}
	if r.status != http.StatusOK {
		return fmt.Sprintf("status %d", r.status)
	}
	return r.header.Get("X-Backend")
}

// waitServed polls host through the gateway every 3 ms until backend want
// answers, and returns when that answer arrived. others counts answers
// that were neither want nor old (errors, 404, 503).
func waitServed(url, host, want, old string, bound time.Duration) (at time.Time, others int, last string, ok bool) {
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) {
		last = servedBy(url, host)
		if last == want {
			return time.Now(), others, last, true
		}
		if last != old {
			others++
		}
		time.Sleep(3 * time.Millisecond)
	}
	return time.Time{}, others, last, false
}

// changeStats are the route changes of one series.
type changeStats struct {
	// fromReturn: Update call returned -> first answer from the new
	// backend (the measure); fromStart: from the start of that Update
	// call (so it includes the API write).
	fromReturn, fromStart []time.Duration
	others                int             // answers neither from the old nor the new backend
	applies               []time.Duration // "config applied" durations meanwhile
	cpu                   cpuUse
}

// changeLatencies switches route rt between Services app-v1 and app-v2 n
// times. Each time it updates the route through the API (Get, edit,
// Update: what `kubectl apply` does; again on a conflict with a status
// write) and polls app.test every 3 ms for the new backend. A random
// 100-300 ms pause between changes keeps them from locking to the
// debounce timer.
func changeLatencies(t *testing.T, e *kubeEnv, g *gateway, cp []int, rt *gwapiv1.HTTPRoute, url string, n int) changeStats {
	t.Helper()
	var cs changeStats
	if err := e.c.Get(e.ctx(), client.ObjectKeyFromObject(rt), rt); err != nil {
		t.Fatal(err)
	}
	cur := strings.TrimPrefix(string(rt.Spec.Rules[0].BackendRefs[0].Name), "app-")
	if b := servedBy(url, "app.test"); b != cur {
		t.Fatalf("before the changes: app.test served by %q, want %q", b, cur)
	}
	nApplied := len(appliedLogs(g))
	m := startCPU(g, cp)
	for i := 0; i < n; i++ {
		next := map[string]string{"v1": "v2", "v2": "v1"}[cur]
		time.Sleep(100*time.Millisecond + rand.N(200*time.Millisecond))
		var start, returned time.Time
		for try := 0; ; try++ {
			if err := e.c.Get(e.ctx(), client.ObjectKeyFromObject(rt), rt); err != nil {
				t.Fatal(err)
			}
			rt.Spec.Rules[0].BackendRefs[0].Name = gwapiv1.ObjectName("app-" + next)
			start = time.Now()
			err := e.c.Update(e.ctx(), rt)
			returned = time.Now()
			if err == nil {
				break
			}
			if !apierrors.IsConflict(err) || try > 20 {
				t.Fatalf("update route: %v", err)
			}
		}
		at, o, last, ok := waitServed(url, "app.test", next, cur, 10*time.Second)
		if !ok {
			t.Fatalf("change %d (%s -> %s) not followed within 10 s; last answer: %s", i+1, cur, next, last)
		}
		cs.fromReturn = append(cs.fromReturn, at.Sub(returned))
		cs.fromStart = append(cs.fromStart, at.Sub(start))
		cs.others += o
		cur = next
	}
	cs.cpu = m.stop(0)
	cs.applies = durations(appliedLogs(g)[nApplied:])
	return cs
}

// appliedLog is one "config applied" line of the gateway's log.
type appliedLog struct {
	at       time.Time
	duration time.Duration
	gen      int
}

func appliedLogs(g *gateway) []appliedLog {
	var out []appliedLog
	for _, e := range g.logs.entries() {
		if e["msg"] != "config applied" {
			continue
		}
		var a appliedLog
		if s, ok := e["time"].(string); ok {
			a.at, _ = time.Parse(time.RFC3339Nano, s)
		}
		if s, ok := e["duration"].(string); ok {
			a.duration, _ = time.ParseDuration(s)
		}
		if f, ok := e["generation"].(float64); ok {
			a.gen = int(f)
		}
		out = append(out, a)
	}
	return out
}

func durations(as []appliedLog) []time.Duration {
	var out []time.Duration
	for _, a := range as {
		out = append(out, a.duration)
	}
	return out
}

// waitQuiet waits until the gateway applied no config for quiet (at most
// bound) and says whether it got there.
func waitQuiet(g *gateway, quiet, bound time.Duration) bool {
	deadline := time.Now().Add(bound)
	n, since := g.applied(), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		if m := g.applied(); m != n {
			n, since = m, time.Now()
		} else if time.Since(since) >= quiet {
			return true
		}
	}
	return false
}

// procStatusMB reads one "Key: value kB" field of /proc/PID/status in MB.
func procStatusMB(pid int, key string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb / 1024
			}
		}
	}
	return -1
}

// cpuTicks is utime+stime of pid in clock ticks (USER_HZ, 100 on Linux).
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// After "pid (comm) ", field 3 (state) is f[0]; utime and stime are
	// fields 14 and 15.
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

// busyTicks is the machine's non-idle CPU time from /proc/stat, in ticks,
// without irq and softirq time (not charged to any process).
func busyTicks() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var busy int64
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseInt(f, 10, 64)
		switch i {
		case 0, 1, 2, 7: // user nice system steal
			busy += v
		}
	}
	return busy
}

// controlPlanePIDs are the processes (etcd, kube-apiserver) whose command
// line names the control plane's dir.
func controlPlanePIDs(cp *k8stest.ControlPlane) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.Contains(string(b), cp.Dir) {
			out = append(out, pid)
		}
	}
	return out
}

// cpuUse is CPU used over a span, in % of one CPU: by the gateway, by the
// control plane (etcd + kube-apiserver), by this process (client,
// backends) and by everything else on the machine (noise: other jobs).
type cpuUse struct {
	gateway, controlPlane, bench, other float64
	secs                                float64 // length of the span
}

type cpuMeter struct {
	gw              int
	cp              []int
	g0, cp0, s0, b0 int64
	t0              time.Time
}

func sumTicks(pids []int) int64 {
	var n int64
	for _, p := range pids {
		n += cpuTicks(p)
	}
	return n
}

func startCPU(g *gateway, cp []int) *cpuMeter {
	m := &cpuMeter{gw: g.cmd.Process.Pid, cp: cp}
	m.g0, m.cp0, m.s0, m.b0, m.t0 = cpuTicks(m.gw), sumTicks(cp), cpuTicks(os.Getpid()), busyTicks(), time.Now()
	return m
}

// stop ends the span; extra are ticks of known children to leave out of
// "other" (wrk).
func (m *cpuMeter) stop(extra float64) cpuUse {
	secs := time.Since(m.t0).Seconds()
	gw, cp, self, busy := cpuTicks(m.gw)-m.g0, sumTicks(m.cp)-m.cp0, cpuTicks(os.Getpid())-m.s0, busyTicks()-m.b0
	return cpuUse{
		gateway:      float64(gw) / secs,
		controlPlane: float64(cp) / secs,
		bench:        float64(self) / secs,
		other:        max(0, (float64(busy-gw-cp-self)-extra)/secs),
		secs:         secs,
	}
}

// heapInuseMB is go_memstats_heap_inuse_bytes from the admin /metrics.
func heapInuseMB(g *gateway) float64 {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + g.adminAddr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^go_memstats_heap_inuse_bytes ([0-9.e+]+)$`).FindSubmatch(b)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v / (1 << 20)
}

// fetchProfile saves a CPU profile of secs seconds from the gateway's
// /debug/pprof/profile (the gateway runs with --pprof) into path.
func fetchProfile(g *gateway, secs int, path string) error {
	c := &http.Client{Timeout: time.Duration(secs+60) * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", g.adminAddr, secs))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: HTTP %d", resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// wrkResult is one wrk run.
type wrkResult struct {
	rps       float64
	requests  int64
	p50, p99  string
	nonOK     int
	sockErrs  string
	appliesIn int     // configs the gateway applied during the run
	usPerReq  float64 // gateway CPU time per request, µs
	cpu       cpuUse
}

var (
	wrkRPS    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkReqs   = regexp.MustCompile(`(\d+) requests in`)
	wrkLat    = regexp.MustCompile(`(?m)^\s+(50|99)%\s+(\S+)`)
	wrkNonOK  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSocket = regexp.MustCompile(`Socket errors: (.*)`)
)

const wrkRounds = 3

func wrkCmd(host, url string) string {
	return "wrk -t1 -c16 -d5s --latency -H 'Host: " + host + "' " + url
}

// runWrk runs wrk for 5 s against host through the gateway. With profile
// set, a CPU profile of the gateway covers the run.
func runWrk(t *testing.T, g *gateway, cp []int, url, host, profile string) wrkResult {
	t.Helper()
	var prof sync.WaitGroup
	if profile != "" {
		prof.Add(1)
		go func() {
			defer prof.Done()
			if err := fetchProfile(g, 5, profile); err != nil {
				t.Logf("wrk profile: %v", err)
			}
		}()
		time.Sleep(100 * time.Millisecond)
	}
	n := g.applied()
	m := startCPU(g, cp)
	cmd := exec.Command("wrk", "-t1", "-c16", "-d5s", "--latency", "-H", "Host: "+host, url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("wrk: %v: %s", err, out)
	}
	r := wrkResult{cpu: m.stop((cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds() * 100)}
	prof.Wait()
	r.appliesIn = g.applied() - n
	s := string(out)
	mm := wrkRPS.FindStringSubmatch(s)
	if mm == nil {
		t.Fatalf("wrk output without Requests/sec:\n%s", s)
	}
	r.rps, _ = strconv.ParseFloat(mm[1], 64)
	if mm := wrkReqs.FindStringSubmatch(s); mm != nil {
		r.requests, _ = strconv.ParseInt(mm[1], 10, 64)
	}
	for _, l := range wrkLat.FindAllStringSubmatch(s, -1) {
		if l[1] == "50" {
			r.p50 = l[2]
		} else {
			r.p99 = l[2]
		}
	}
	if mm := wrkNonOK.FindStringSubmatch(s); mm != nil {
		r.nonOK, _ = strconv.Atoi(mm[1])
	}
	if mm := wrkSocket.FindStringSubmatch(s); mm != nil {
		r.sockErrs = strings.TrimSpace(mm[1])
	}
	if r.requests > 0 {
		r.usPerReq = r.cpu.gateway / 100 * r.cpu.secs * 1e6 / float64(r.requests)
	}
	return r
}

// wrkSeries is a 1 s warm-up, then wrkRounds measured runs, then (with
// profile set) one more run under the CPU profiler, not counted.
func wrkSeries(t *testing.T, g *gateway, cp []int, url, host, profile string) []wrkResult {
	t.Helper()
	if out, err := exec.Command("wrk", "-t1", "-c16", "-d1s", "-H", "Host: "+host, url).CombinedOutput(); err != nil {
		t.Fatalf("wrk (warm-up): %v: %s", err, out)
	}
	var rs []wrkResult
	for i := 0; i < wrkRounds; i++ {
		rs = append(rs, runWrk(t, g, cp, url, host, ""))
	}
	if profile != "" {
		runWrk(t, g, cp, url, host, profile)
	}
	return rs
}

func medianOf(rs []wrkResult, f func(wrkResult) float64) float64 {
	var xs []float64
	for _, r := range rs {
		xs = append(xs, f(r))
	}
	return median(xs)
}

// ---------------------------------------------------------------------------
// Objects.

// perfGateway creates Gateway gw with one HTTP listener on ip:port.
func perfGateway(e *kubeEnv, ip string, port int) {
	addrType := gwapiv1.IPAddressType
	e.create(&gwapiv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: e.ns},
		Spec: gwapiv1.GatewaySpec{
			GatewayClassName: "meshgate",
			Addresses:        []gwapiv1.GatewaySpecAddress{{Type: &addrType, Value: ip}},
			Listeners:        []gwapiv1.Listener{{Name: "http", Port: gwapiv1.PortNumber(port), Protocol: gwapiv1.HTTPProtocolType}},
		},
	})
}

// newFastKubeBackend is a backend in a network namespace of its own that
// answers "ok" with X-Backend: fast and records nothing, so that wrk
// measures the gateway rather than the echo backend.
func newFastKubeBackend(t *testing.T) endpoint {
	t.Helper()
	_, nsIP, nsName := newNetns(t)
	ln := listenInNetns(t, nsName, "tcp", net.JoinHostPort(nsIP, "0"))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "fast")
		io.WriteString(w, "ok\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return endpoint{nsIP, ln.Addr().(*net.TCPAddr).Port}
}

// bulkClient is a client for the benchmark's own API load, without the
// client-side rate limit of the tests' client.
func bulkClient(t *testing.T, cp *k8stest.ControlPlane) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(cp.Config)
	cfg.QPS, cfg.Burst = 10000, 10000
	s, err := k8stest.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func routeHost(i int) string { return fmt.Sprintf("r%d.test", i) }

// createRoutes creates, for i in [from, to), Service svc-i with an
// EndpointSlice on ep and HTTPRoute r-i for host r<i>.test, with 16
// workers. It returns when the last route create returned, and which
// route that was.
func createRoutes(t *testing.T, e *kubeEnv, c client.Client, from, to int, ep endpoint) (last time.Time, lastIdx int) {
	t.Helper()
	const workers = 16
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	create := func(o client.Object) error {
		var err error
		for try := 0; try < 10; try++ {
			cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
			err = c.Create(cctx, o)
			ccancel()
			if err == nil || apierrors.IsAlreadyExists(err) {
				return nil
			}
			if !apierrors.IsTooManyRequests(err) && !apierrors.IsServerTimeout(err) && !apierrors.IsTimeout(err) {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
		return err
	}
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	idx := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				name := fmt.Sprintf("svc-%d", i)
				svc := &corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
					Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
				}
				es := &discoveryv1.EndpointSlice{
					ObjectMeta:  metav1.ObjectMeta{Name: name + "-1", Namespace: e.ns, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
					AddressType: discoveryv1.AddressTypeIPv4,
				}
				setSliceEndpoints(es, ep)
				rt := e.route(fmt.Sprintf("r-%d", i), routeHost(i), name)
				var err error
				for _, o := range []client.Object{svc, es, rt} {
					if err = create(o); err != nil {
						err = fmt.Errorf("create %T %s: %w", o, o.GetName(), err)
						break
					}
				}
				done := time.Now()
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if done.After(last) {
					last, lastIdx = done, i
				}
				mu.Unlock()
			}
		}()
	}
	for i := from; i < to; i++ {
		mu.Lock()
		stop := firstErr != nil
		mu.Unlock()
		if stop {
			break
		}
		idx <- i
	}
	close(idx)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	return last, lastIdx
}

// routesWithStatus counts the HTTPRoutes whose status has a parent entry
// written by Meshgate.
func routesWithStatus(t *testing.T, e *kubeEnv, c client.Client) int {
	t.Helper()
	var l gwapiv1.HTTPRouteList
	if err := c.List(e.ctx(), &l, client.InNamespace(e.ns)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range l.Items {
		for _, p := range r.Status.Parents {
			if p.ControllerName == "gateway.meshgate.dev/controller" {
				n++
				break
			}
		}
	}
	return n
}

// ---------------------------------------------------------------------------
// BenchmarkKubernetesRouteChange.

func changeRow(label string, cs changeStats) string {
	r, s := cs.fromReturn, cs.fromStart
	return fmt.Sprintf("| %s | %d | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %.0f / %.0f ms | %d (%.1f / %.0f ms) | %d | %.0f %% / %.0f %% / %.0f %% |\n",
		label, len(r), ms(pct(r, .5)), ms(pct(r, .9)), ms(pct(r, .99)), ms(pct(r, 1)), ms(pct(r, 1e-9)),
		ms(pct(s, .5)), ms(pct(s, .99)), len(cs.applies), ms(pct(cs.applies, .5)), ms(pct(cs.applies, 1)), cs.others,
		cs.cpu.gateway, cs.cpu.controlPlane, cs.cpu.other)
}

const changeHeader = "| series | changes | p50 | p90 | p99 | max | min | from Update start p50 / p99 | configs applied (p50 / max duration) | answers neither old nor new | CPU: gateway / etcd+apiserver / other processes |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|\n"

// BenchmarkKubernetesRouteChange: one Gateway and HTTPRoute app.test whose
// backendRef alternates between Services app-v1 and app-v2; 100 changes,
// each timed from the Update call returning to the first request through
// the gateway answered by the new backend (polled every 3 ms). The gateway
// runs as users run one replica: it also writes status.
func BenchmarkKubernetesRouteChange(b *testing.B) {
	const changes = 100
	var (
		cs        changeStats
		setupSecs float64
	)
	asTest(b, func(t *testing.T) {
		t0 := time.Now()
		e := newKubeEnv(t)
		v1, v2 := newKubeBackend(t, "v1"), newKubeBackend(t, "v2")
		ip := newLoopbackIP(t)
		port := freePort(t, ip)
		perfGateway(e, ip, port)
		e.service("app-v1", v1)
		e.service("app-v2", v2)
		rt := e.route("app", "app.test", "app-v1")
		e.create(rt)
		g := startGateway(t, ip, "", "--kubernetes", "--kubeconfig", e.cp.Kubeconfig, "--access-log", os.DevNull)
		url := g.url(port, "/")
		e.eventually("traffic to v1", func() (bool, string) { b := servedBy(url, "app.test"); return b == "v1", b })
		waitQuiet(g, 2*time.Second, 30*time.Second) // first status writes
		setupSecs = time.Since(t0).Seconds()
		cs = changeLatencies(t, e, g, controlPlanePIDs(e.cp), rt, url, changes)
		saveLog(g, "gateway-route-change.log")
	})
	if len(cs.fromReturn) != changes {
		return
	}
	r := cs.fromReturn
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(pct(r, .5)), "p50-ms")
	b.ReportMetric(ms(pct(r, .9)), "p90-ms")
	b.ReportMetric(ms(pct(r, .99)), "p99-ms")
	b.ReportMetric(ms(pct(r, 1)), "max-ms")
	var sb strings.Builder
	fmt.Fprintf(&sb, "### Route change to traffic (1 HTTPRoute, %d changes)\n\n", changes)
	sb.WriteString("Latency from the `Update` call returning to the first answer from the new backend (polled every 3 ms), and from the start of that call. " +
		"The gateway writes status (one replica, default flags).\n\n")
	sb.WriteString(changeHeader)
	sb.WriteString(changeRow("1 route, status-writing gateway", cs))
	fmt.Fprintf(&sb, "\n%.2f configs applied per change (1.00: the gateway's own status writes do not re-translate; "+
		"snapshots leave out status, resourceVersion and managed fields). Set-up (control plane, CRDs, gateway) took %.1f s. "+
		"CPU columns are %% of one CPU over the series (utime+stime from /proc); \"other\" is the machine's busy time minus the gateway, "+
		"etcd, kube-apiserver and the benchmark process: noise from other jobs on the machine.\n", float64(len(cs.applies))/changes, setupSecs)
	b.Log("\n" + sb.String())
	benchOut(b, "route-change.md", sb.String())
}

// ---------------------------------------------------------------------------
// BenchmarkKubernetesScale.

// scalePoint is what BenchmarkKubernetesScale measures at one route count.
type scalePoint struct {
	routes     int
	created    int           // routes created for this step
	createTime time.Duration // first create to last create returning
	reconcile  time.Duration // last route create returning -> last route served
	lastRoute  int
	finalApply appliedLog // the config applied that made the last route served
	applies    []appliedLog
	sampled    int
	rssMB      float64
	heapMB     float64
	idle       cpuUse // 5 s without changes
	changes    changeStats
}

// stormResult is the second phase: a status-writing gateway started on
// the 5,000 routes.
type stormResult struct {
	coldStart    time.Duration // process start -> last route served
	firstApply   appliedLog
	statusBefore int
	statusAfter  int
	window       time.Duration
	appliesIn    []appliedLog
	cpu          cpuUse
	rssMB        float64
	changes      changeStats
}

// BenchmarkKubernetesScale grows one cluster from 10 to 1,000 to 5,000
// HTTPRoutes (host r<i>.test -> Service svc-i -> one EndpointSlice each),
// created with 16 concurrent workers while the gateway runs, and at each
// step measures reconcile time, the final config apply, RSS and route
// change latency. wrk measures requests to r0.test at 10 and at 5,000
// routes. This gateway is a non-leader replica (the Lease is held by
// another identity), so it writes no status and nothing but the
// benchmark changes the objects: the numbers are those of the translate
// and apply path alone. A second phase then starts a gateway that writes
// status (one replica, as by default) on the 5,000 routes, and measures
// its cold start, status write rate, reloads, CPU and route changes while
// it works through the status backlog.
func BenchmarkKubernetesScale(b *testing.B) {
	const changesAtScale = 20
	dir := benchDir()
	var (
		points        []*scalePoint
		wrk10, wrkN   []wrkResult
		rss10, heap10 float64
		storm         stormResult
		profErrs      []string
		totalSecs     float64
		wrkURL        string
	)
	profile := func(name string) string {
		if dir == "" {
			return ""
		}
		return filepath.Join(dir, name)
	}
	asTest(b, func(t *testing.T) {
		t0 := time.Now()
		e := newKubeEnv(t)
		cp := controlPlanePIDs(e.cp)
		bc := bulkClient(t, e.cp)
		fast := newFastKubeBackend(t)
		v1, v2 := newKubeBackend(t, "v1"), newKubeBackend(t, "v2")
		ip := newLoopbackIP(t)
		port := freePort(t, ip)
		perfGateway(e, ip, port)
		e.service("app-v1", v1)
		e.service("app-v2", v2)
		rt := e.route("app", "app.test", "app-v1")
		e.create(rt)
		now := metav1.NowMicro()
		holder, dur := "another-replica", int32(3600)
		e.create(&coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: "meshgate-leader", Namespace: e.ns},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &dur, AcquireTime: &now, RenewTime: &now},
		})
		createRoutes(t, e, bc, 0, 10, fast)
		g := startGateway(t, ip, "", "--kubernetes", "--kubeconfig", e.cp.Kubeconfig, "--access-log", os.DevNull, "--pprof",
			"--leader-elect", "--leader-elect-namespace", e.ns)
		url := g.url(port, "/")
		wrkURL = url
		pid := g.cmd.Process.Pid
		e.eventually("r9 served", func() (bool, string) { b := servedBy(url, routeHost(9)); return b == "fast", b })
		e.eventually("app served", func() (bool, string) { b := servedBy(url, "app.test"); return b == "v1", b })
		waitQuiet(g, 2*time.Second, 30*time.Second)
		rss10, heap10 = procStatusMB(pid, "VmRSS"), heapInuseMB(g)
		wrk10 = wrkSeries(t, g, cp, url, routeHost(0), profile("cpu-wrk-10.pb.gz"))

		from := 10
		for _, n := range []int{1000, 5000} {
			p := &scalePoint{routes: n, created: n - from}
			nApplied := len(appliedLogs(g))
			var prof sync.WaitGroup
			if path := profile("cpu-reconcile-5000.pb.gz"); n == 5000 && path != "" {
				prof.Add(1)
				go func() {
					defer prof.Done()
					time.Sleep(5 * time.Second) // into the burst
					if err := fetchProfile(g, 10, path); err != nil {
						profErrs = append(profErrs, "reconcile profile: "+err.Error())
					}
				}()
			}
			start := time.Now()
			last, lastIdx := createRoutes(t, e, bc, from, n, fast)
			p.createTime, p.lastRoute = last.Sub(start), lastIdx
			servedAt, _, lastAns, ok := waitServed(url, routeHost(lastIdx), "fast", "", 120*time.Second)
			if !ok {
				t.Fatalf("%d routes: %s not served within 120 s of the last create; last answer: %s", n, routeHost(lastIdx), lastAns)
			}
			p.reconcile = servedAt.Sub(last)
			for _, a := range appliedLogs(g)[nApplied:] {
				if !a.at.After(servedAt) {
					p.finalApply = a
				}
			}
			// Every 97th route and the highest one answer too.
			for i := 0; i < n; i += 97 {
				if b := servedBy(url, routeHost(i)); b != "fast" {
					e.eventually(routeHost(i)+" served", func() (bool, string) { b := servedBy(url, routeHost(i)); return b == "fast", b })
				}
				p.sampled++
			}
			e.eventually(routeHost(n-1)+" served", func() (bool, string) { b := servedBy(url, routeHost(n-1)); return b == "fast", b })
			prof.Wait()
			if !waitQuiet(g, 3*time.Second, 60*time.Second) {
				t.Logf("%d routes: the gateway kept applying configs for 60 s", n)
			}
			p.applies = appliedLogs(g)[nApplied:]
			p.rssMB, p.heapMB = procStatusMB(pid, "VmRSS"), heapInuseMB(g)
			m := startCPU(g, cp)
			time.Sleep(5 * time.Second)
			p.idle = m.stop(0)
			p.changes = changeLatencies(t, e, g, cp, rt, url, changesAtScale)
			points = append(points, p)
			from = n
		}
		waitQuiet(g, 2*time.Second, 30*time.Second)
		wrkN = wrkSeries(t, g, cp, url, routeHost(0), profile("cpu-wrk-5000.pb.gz"))
		saveLog(g, "gateway-scale-nonleader.log")

		// Phase two: a replica that writes status, cold-started on the
		// 5,000 routes (the non-leader is stopped first: same address).
		g.cmd.Process.Kill()
		<-g.exited
		waitRefused(t, g.addr(port))
		s := &storm
		ts := time.Now()
		g2 := startGateway(t, ip, "", "--kubernetes", "--kubeconfig", e.cp.Kubeconfig, "--access-log", os.DevNull, "--pprof")
		url2 := g2.url(port, "/")
		at, _, lastAns, ok := waitServed(url2, routeHost(4999), "fast", "", 120*time.Second)
		if !ok {
			t.Fatalf("cold start: %s not served within 120 s; last answer: %s", routeHost(4999), lastAns)
		}
		s.coldStart = at.Sub(ts)
		if as := appliedLogs(g2); len(as) > 0 {
			s.firstApply = as[0]
		}
		// Observe 30 s of status writing.
		s.statusBefore = routesWithStatus(t, e, bc)
		nA, m := len(appliedLogs(g2)), startCPU(g2, cp)
		w0 := time.Now()
		var prof sync.WaitGroup
		if path := profile("cpu-status-5000.pb.gz"); path != "" {
			prof.Add(1)
			go func() {
				defer prof.Done()
				if err := fetchProfile(g2, 10, path); err != nil {
					profErrs = append(profErrs, "status profile: "+err.Error())
				}
			}()
		}
		time.Sleep(30 * time.Second)
		prof.Wait()
		s.window = time.Since(w0)
		s.cpu = m.stop(0)
		s.appliesIn = appliedLogs(g2)[nA:]
		s.statusAfter = routesWithStatus(t, e, bc)
		s.rssMB = procStatusMB(g2.cmd.Process.Pid, "VmRSS")
		s.changes = changeLatencies(t, e, g2, cp, rt, url2, changesAtScale)
		saveLog(g2, "gateway-scale-leader.log")
		totalSecs = time.Since(t0).Seconds()
	})
	if len(points) != 2 || len(wrkN) == 0 {
		return
	}
	rps := func(r wrkResult) float64 { return r.rps }
	usPerReq := func(r wrkResult) float64 { return r.usPerReq }
	rps10, rpsN := medianOf(wrk10, rps), medianOf(wrkN, rps)
	us10, usN := medianOf(wrk10, usPerReq), medianOf(wrkN, usPerReq)
	writeRate := float64(storm.statusAfter-storm.statusBefore) / storm.window.Seconds()
	applyRate := float64(len(storm.appliesIn)) / storm.window.Seconds()

	b.ReportMetric(0, "ns/op")
	for _, p := range points {
		n := strconv.Itoa(p.routes)
		b.ReportMetric(ms(p.reconcile), "reconcile-"+n+"-ms")
		b.ReportMetric(ms(p.finalApply.duration), "apply-"+n+"-ms")
		b.ReportMetric(p.rssMB, "rss-"+n+"-MB")
		b.ReportMetric(ms(pct(p.changes.fromReturn, .5)), "change-p50-"+n+"-ms")
		b.ReportMetric(ms(pct(p.changes.fromReturn, .99)), "change-p99-"+n+"-ms")
	}
	b.ReportMetric(rps10, "rps-10")
	b.ReportMetric(rpsN, "rps-5000")
	b.ReportMetric(rpsN/rps10, "rps-ratio")
	b.ReportMetric(usN/us10, "cpu-per-req-ratio")
	b.ReportMetric(writeRate, "status-writes/s")
	b.ReportMetric(applyRate, "storm-applies/s")
	b.ReportMetric(ms(pct(storm.changes.fromReturn, .99)), "storm-change-p99-ms")

	var sb strings.Builder
	sb.WriteString("### Reconcile at scale (non-leader replica: no status writes)\n\n")
	sb.WriteString("Routes are added to a running gateway in two steps (10 -> 1,000 -> 5,000), each route with its own Service and EndpointSlice " +
		"(3 objects per route), created by 16 concurrent workers. The gateway is a non-leader replica (the Lease is held by another identity), " +
		"so it writes no status and only the benchmark changes objects.\n\n")
	sb.WriteString("| routes | created (objects) | create time | reconcile: last create -> last route served | final \"config applied\" duration | configs applied in the step (p50 / max duration) | RSS after settling | Go heap in use | idle CPU: gateway / other (5 s) |\n|---|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(&sb, "| 10 | 10 (30) | - | - | - | - | %.1f MB | %.1f MB | - |\n", rss10, heap10)
	for _, p := range points {
		ad := durations(p.applies)
		fmt.Fprintf(&sb, "| %d | %d (%d) | %.1f s | %.0f ms | %.0f ms (gen %d) | %d (%.0f / %.0f ms) | %.1f MB | %.1f MB | %.1f %% / %.0f %% |\n",
			p.routes, p.created, 3*p.created, p.createTime.Seconds(), ms(p.reconcile), ms(p.finalApply.duration), p.finalApply.gen,
			len(p.applies), ms(pct(ad, .5)), ms(pct(ad, 1)), p.rssMB, p.heapMB, p.idle.gateway, p.idle.other)
	}
	sb.WriteString("\nThe reconcile time runs from the last route Create returning to the first 200 from that route's host (polled every 3 ms); " +
		"every 97th route and the highest one were then checked to answer too. \"config applied\" durations are the gateway's own " +
		"(snapshot hash + translate + data-plane apply; building the snapshot from the informer caches and the 100 ms debounce come on top).\n\n")
	fmt.Fprintf(&sb, "### Route change to traffic at scale (%d changes of app.test between two Services)\n\n", changesAtScale)
	sb.WriteString(changeHeader)
	for _, p := range points {
		sb.WriteString(changeRow(fmt.Sprintf("%d routes, non-leader", p.routes), p.changes))
	}
	sb.WriteString(changeRow("5000 routes, leader writing its status backlog", storm.changes))
	sb.WriteString("\n### Per-request cost: 10 vs 5,000 routes (same gateway process, no reloads during the runs)\n\n")
	sb.WriteString("| routes | run | rps | p50 | p99 | non-2xx | socket errors | configs applied during the run | gateway CPU per request | CPU: gateway / etcd+apiserver / other processes |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, w := range []struct {
		n  int
		rs []wrkResult
	}{{10, wrk10}, {5000, wrkN}} {
		for i, r := range w.rs {
			fmt.Fprintf(&sb, "| %d | %d | %.0f | %s | %s | %d | %s | %d | %.1f µs | %.0f %% / %.0f %% / %.0f %% |\n", w.n, i+1, r.rps, r.p50, r.p99, r.nonOK,
				cmp.Or(r.sockErrs, "none"), r.appliesIn, r.usPerReq, r.cpu.gateway, r.cpu.controlPlane, r.cpu.other)
		}
	}
	fmt.Fprintf(&sb, "\nMedians: %.0f rps at 10 routes, %.0f at 5,000: ratio **%.3f**; gateway CPU per request %.1f µs vs %.1f µs: ratio **%.3f**. "+
		"Command, %d runs each after a 1 s warm-up: `%s`; the backend is a minimal Go server in its own network namespace; the access log "+
		"is on (JSON, to /dev/null), as by default. After the counted runs one more run per route count ran under the CPU profiler (below).\n",
		rps10, rpsN, rpsN/rps10, us10, usN, usN/us10, wrkRounds, wrkCmd(routeHost(0), wrkURL))
	sb.WriteString("\n### Status-writing replica on 5,000 routes (cold start, then 30 s of its status backlog)\n\n")
	ad := durations(storm.appliesIn)
	fmt.Fprintf(&sb, "| cold start: process start -> r4999.test served | first \"config applied\" | routes with status at window start -> end | status writes/s | configs applied in %.0f s (p50 / max duration) | CPU: gateway / etcd+apiserver / other | RSS |\n|---|---|---|---|---|---|---|\n", storm.window.Seconds())
	fmt.Fprintf(&sb, "| %.2f s | %.0f ms | %d -> %d | %.1f | %d = %.1f/s (%.0f / %.0f ms) | %.0f %% / %.0f %% / %.0f %% | %.1f MB |\n",
		storm.coldStart.Seconds(), ms(storm.firstApply.duration), storm.statusBefore, storm.statusAfter, writeRate,
		len(storm.appliesIn), applyRate, ms(pct(ad, .5)), ms(pct(ad, 1)), storm.cpu.gateway, storm.cpu.controlPlane, storm.cpu.other, storm.rssMB)
	if writeRate > 0 {
		fmt.Fprintf(&sb, "\nAt %.1f writes/s the status of all 5,000 routes takes about %.0f s (%.0f min) to write (one every %.0f ms); "+
			"the gateway re-applied its config %.1f times a second meanwhile (status writes do not change the snapshot).\n",
			writeRate, float64(5000-storm.statusBefore)/writeRate, float64(5000-storm.statusBefore)/writeRate/60, 1000/writeRate, applyRate)
	}
	for _, e := range profErrs {
		fmt.Fprintf(&sb, "\n(%s)\n", e)
	}
	fmt.Fprintf(&sb, "\nWhole benchmark: %.0f s.\n", totalSecs)
	b.Log("\n" + sb.String())
	benchOut(b, "scale.md", sb.String())
}
