package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshgate/meshgate/obs"
)

// reloadMetrics describe configuration reloads: whether they work, how
// long they take and which config is in force, the first things to look at
// after a change to the manifests.
type reloadMetrics struct {
	success, failure prometheus.Counter
	generation       prometheus.Gauge
	duration         *histogram
	lastSuccess      prometheus.Gauge
	lastOK           prometheus.Gauge
	rejected         prometheus.Gauge
}

func (rl *reloadMetrics) init(m *Metrics) {
	reloads := m.newCounterVec("meshgate_config_reloads_total",
		"Attempts to apply a configuration, by result (a failure keeps the previous configuration).", "result")
	rl.success = reloads.WithLabelValues("success")
	rl.failure = reloads.WithLabelValues("failure")
	rl.generation = m.newGauge("meshgate_config_generation",
		"Generation of the configuration in force; it grows by one per applied configuration.")
	rl.duration = m.newHistogramVec("meshgate_config_reload_duration_seconds",
		"Time from receiving a configuration to serving it (or rejecting it).", reloadBuckets, perSecond).with()
	rl.lastSuccess = m.newGauge("meshgate_config_last_reload_success_timestamp_seconds",
		"Unix time the last configuration was applied.")
	rl.lastOK = m.newGauge("meshgate_config_last_reload_successful",
		"1 if the last reload attempt applied its configuration, 0 if the previous one was kept.")
	rl.rejected = m.newGauge("meshgate_config_rejected_objects",
		"Objects rejected by the last reload attempt (the rest of the configuration still applies).")
}

// ObserveReload records one reload attempt. It implements obs.ReloadSink.
func (m *Metrics) ObserveReload(r *obs.Reload) {
	if r == nil {
		return
	}
	rl := &m.reload
	rl.duration.observe(int64(r.Duration))
	rl.generation.Set(float64(r.Generation))
	rl.rejected.Set(float64(r.Rejected))
	if !r.OK {
		rl.failure.Inc()
		rl.lastOK.Set(0)
		return
	}
	rl.success.Inc()
	rl.lastOK.Set(1)
	done := r.Time.Add(r.Duration)
	rl.lastSuccess.Set(float64(done.UnixNano()) / 1e9)
}
