package k8sprovider

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Election runs Lease-based leader election so that, of several replicas
// all serving traffic, exactly one writes status. It campaigns again after
// losing the lease (an API server outage ends a term), so a replica never
// gives up for good.
type Election struct {
	Config *rest.Config
	// Namespace and Name locate the Lease (the gateway's own namespace
	// and "meshgate-leader" in a cluster).
	Namespace, Name string
	// Identity names this replica in the Lease (the pod name).
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's
	// timings; 15 s, 10 s and 2 s when zero.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// OnChange is called with true on becoming leader and false on
	// losing it.
	OnChange func(leader bool)
	Log      *slog.Logger
}

// Run campaigns until ctx ends.
func (e *Election) Run(ctx context.Context) error {
	log := e.Log
	if log == nil {
		log = slog.Default()
	}
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metaFor(e.Namespace, e.Name),
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
	}
	cfg := leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   or(e.LeaseDuration, 15*time.Second),
		RenewDeadline:   or(e.RenewDeadline, 10*time.Second),
		RetryPeriod:     or(e.RetryPeriod, 2*time.Second),
		ReleaseOnCancel: true,
		Name:            e.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {
				log.Info("leader election: now the leader; writing status", "lease", e.Namespace+"/"+e.Name, "identity", e.Identity)
				e.OnChange(true)
			},
			OnStoppedLeading: func() {
				log.Info("leader election: no longer the leader", "lease", e.Namespace+"/"+e.Name, "identity", e.Identity)
				e.OnChange(false)
			},
		},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(cfg)
		if err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
		le.Run(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(cfg.RetryPeriod):
		}
	}
	return nil
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func metaFor(ns, name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }
