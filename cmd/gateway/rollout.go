package main

import (
	"flag"
	"log/slog"
	"time"

	"github.com/meshgate/meshgate/controller"
	"github.com/meshgate/meshgate/metrics"
	"github.com/meshgate/meshgate/obs"
	"github.com/meshgate/meshgate/rollout"
)

// rolloutFlags configure the Rollout engine of `gateway run`.
type rolloutFlags struct {
	state    string
	interval time.Duration
}

func (r *rolloutFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.state, "rollout-state", "", "with --config, the file keeping Rollout progress across restarts (default: $XDG_STATE_HOME/meshgate/rollouts-HASH.json, HASH of the config path); in a cluster progress is kept in Rollout status")
	fs.DurationVar(&r.interval, "rollout-interval", time.Second, "how often Rollout steps are judged")
}

// engine builds the Rollout engine and adds its measurement sink to the
// observers (before the data plane copies them) and its metrics.
func (r *rolloutFlags) engine(configPath string, kube bool, observers *obs.Observers, met *metrics.Metrics, log *slog.Logger) *rollout.Engine {
	e := rollout.NewEngine(rollout.NewSink(), !kube)
	e.Interval, e.Log = r.interval, log
	if !kube {
		path := r.state
		if path == "" {
			path = rollout.DefaultStatePath(configPath)
		}
		e.Store = &rollout.FileStore{Path: path}
		log.Info("rollout state file", "path", path)
	}
	observers.Sinks = append(observers.Sinks, e.Sink)
	if met != nil {
		met.Registry().MustRegister(rollout.Collector{E: e})
	}
	return e
}

// wire connects the engine and the controller both ways.
func wireRollouts(e *rollout.Engine, ctrl *controller.Controller, kf *kubeFlags) {
	ctrl.Rollouts = e
	e.OnChange = ctrl.Reapply
	kf.rollouts = e
}
