package rollout

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports rollout progress as Prometheus metrics, read from the
// engine at scrape time:
//
//	meshgate_rollout_weight{rollout}          canary share in percent
//	meshgate_rollout_step{rollout}            current step, from 1
//	meshgate_rollout_phase{rollout,phase}     1 for the current phase
//	meshgate_rollout_rollbacks_total{rollout} threshold rollbacks since start
type Collector struct {
	E *Engine
}

var (
	weightDesc    = prometheus.NewDesc("meshgate_rollout_weight", "Canary share of the Rollout's traffic, in percent.", []string{"rollout"}, nil)
	stepDesc      = prometheus.NewDesc("meshgate_rollout_step", "Current step of the Rollout, from 1.", []string{"rollout"}, nil)
	phaseDesc     = prometheus.NewDesc("meshgate_rollout_phase", "1 for the Rollout's current phase (Progressing, Paused, Succeeded, RolledBack).", []string{"rollout", "phase"}, nil)
	rollbacksDesc = prometheus.NewDesc("meshgate_rollout_rollbacks_total", "Rollbacks of the Rollout on a breached threshold since the gateway started.", []string{"rollout"}, nil)
)

// Describe implements prometheus.Collector.
func (c Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- weightDesc
	ch <- stepDesc
	ch <- phaseDesc
	ch <- rollbacksDesc
}

// Collect implements prometheus.Collector.
func (c Collector) Collect(ch chan<- prometheus.Metric) {
	rbs := c.E.Rollbacks()
	for n, st := range c.E.Rollouts() {
		ch <- prometheus.MustNewConstMetric(weightDesc, prometheus.GaugeValue, float64(st.CanaryWeight), n)
		ch <- prometheus.MustNewConstMetric(stepDesc, prometheus.GaugeValue, float64(st.Step+1), n)
		ch <- prometheus.MustNewConstMetric(phaseDesc, prometheus.GaugeValue, 1, n, string(st.Phase))
		ch <- prometheus.MustNewConstMetric(rollbacksDesc, prometheus.CounterValue, float64(rbs[n]), n)
	}
}
