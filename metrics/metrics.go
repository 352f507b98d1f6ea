package metrics

import (
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshgate/meshgate/dataplane"
	"github.com/meshgate/meshgate/obs"
)

// Options configure New.
type Options struct {
	// Stats returns the data plane's counters (normally
	// (*dataplane.Dataplane).Stats). It is called once per scrape, so
	// connection gauges, certificate expiry and layer-4 counters cost
	// nothing per request. Nil leaves those metrics out.
	Stats func() dataplane.Stats
}

// Metrics is the gateway's metrics: an obs.Sink and obs.ReloadSink that
// records into its own registry, and the handler that serves it. Its
// methods are safe for concurrent use.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler
	// families are the gateway's own metric families, kept so Names can
	// list them before any series exists.
	families []family

	req    requestMetrics
	reload reloadMetrics
	// memo names the slot of obs.Request records where ObserveRequest
	// keeps its last lookup (lookupMemo).
	memo obs.MemoKey
}

// family is one metric family the gateway defines, with its type, which
// decides the series names it exposes.
type family struct {
	name string
	kind kind
}

type kind uint8

const (
	counterKind kind = iota
	gaugeKind
	histogramKind
	summaryKind
)

var (
	_ obs.Sink       = (*Metrics)(nil)
	_ obs.ReloadSink = (*Metrics)(nil)
)

// New creates the metrics and their registry, with the Go runtime and
// process collectors registered next to the gateway's own metrics so one
// scrape shows memory, goroutines and file descriptors as well.
func New(opts Options) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.req.init(m)
	m.reload.init(m)
	sc := newStatsCollector(opts.Stats)
	m.families = append(m.families, sc.families()...)
	if opts.Stats != nil {
		m.reg.MustRegister(sc)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// ContinueOnError: a failing collector should cost its own series,
	// not the whole scrape (and with it every alert).
	m.handler = promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:            m.reg,
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
	}))
	return m
}

// Handler serves the registry in the Prometheus text (or, when asked,
// protobuf) format; mount it on the admin listener's /metrics, never on a
// gateway listener.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Registry is the registry behind Handler, for components that want their
// own collectors on the same /metrics (register them before the first
// scrape; names must not clash with the gateway's).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Names lists every series name a scrape can contain: the gateway's own
// families (histograms as their _bucket, _sum and _count series, which is
// what PromQL selects) whether or not they have series yet, and the Go,
// process and handler families present in a Gather now. Dashboard tests
// check every query against it, so a renamed metric cannot leave a panel
// silently empty.
func (m *Metrics) Names() []string {
	set := map[string]bool{}
	for _, f := range m.families {
		addSeriesNames(set, f.name, f.kind)
	}
	mfs, _ := m.reg.Gather() // a partial result is still the names present
	for _, mf := range mfs {
		// Compare the type by name to avoid importing the protobuf model
		// package only for its constants.
		k := gaugeKind
		switch mf.GetType().String() {
		case "HISTOGRAM", "GAUGE_HISTOGRAM":
			k = histogramKind
		case "SUMMARY":
			k = summaryKind
		}
		addSeriesNames(set, mf.GetName(), k)
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func addSeriesNames(set map[string]bool, name string, k kind) {
	switch k {
	case histogramKind:
		set[name+"_bucket"] = true
		set[name+"_sum"] = true
		set[name+"_count"] = true
	case summaryKind:
		set[name] = true
		set[name+"_sum"] = true
		set[name+"_count"] = true
	default:
		set[name] = true
	}
}

// newCounterVec, newGaugeVec and newHistogramVec create a vector, register
// it and note its family for Names.
func (m *Metrics) newCounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	m.reg.MustRegister(v)
	m.families = append(m.families, family{name, counterKind})
	return v
}

func (m *Metrics) newGauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	m.reg.MustRegister(g)
	m.families = append(m.families, family{name, gaugeKind})
	return g
}

// newHistogramVec creates a histogram family (histogram.go) of integer
// observations, per of them to one exposed unit, registers it and notes
// its family for Names.
func (m *Metrics) newHistogramVec(name, help string, buckets []float64, per float64, labels ...string) *histogramVec {
	v := newHistogramVec(name, help, buckets, per, labels...)
	m.reg.MustRegister(v)
	m.families = append(m.families, family{name, histogramKind})
	return v
}

// Bucket layouts. Request latencies span sub-millisecond cache hits to
// minute-long uploads; connects are usually far below a millisecond on a
// LAN; sizes grow by 4x from 64 B to 16 MiB.
var (
	// perSecond and perByte convert the recorded units (nanoseconds,
	// bytes) to the exposed ones.
	perSecond = float64(time.Second)
	perByte   = 1.0

	latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	connectBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	sizeBuckets    = prometheus.ExponentialBuckets(64, 4, 10)
	reloadBuckets  = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
)
