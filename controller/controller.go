// Package controller connects a provider to the data plane: each snapshot is
// translated and applied, unchanged snapshots are skipped, and a snapshot that
// cannot be used leaves the running config in force. Listeners the data plane
// could not bind are reported in the statuses (Programmed=False) and their
// binds retried in the background, without holding back later updates.
package controller

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgate/meshgate/acme"
	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/obs"
	"github.com/meshgate/meshgate/plan"
	"github.com/meshgate/meshgate/translate"
)

// Applier is the data plane as the controller sees it. Apply applies cfg
// except for the listeners it could not bind, which it returns; on error
// nothing changed. Applying the same cfg again retries those binds.
type Applier interface {
	Apply(cfg *ir.Config) ([]ir.Unbound, error)
}

// Controller applies provider updates.
type Controller struct {
	// Translate carries the translator's options.
	Translate translate.Options
	// Data is where configs go.
	Data Applier
	// Log receives one line per reload and one per rejected object.
	Log *slog.Logger
	// Observers are told of every reload attempt (metrics, dashboard).
	Observers *obs.Observers
	// Status, when set, receives the object statuses of each config
	// once it is in force (the Kubernetes status writer), so a Gateway
	// is reported Programmed only after its listeners are bound.
	Status interface {
		Publish(statuses []translate.ObjectStatus)
	}

	// Rollouts, when set, gives each snapshot the rollout progress to
	// apply (rollout.Engine.Prepare); a new version re-translates even an
	// unchanged snapshot. Reapply asks for that.
	Rollouts interface {
		Prepare(s *config.Snapshot) (*config.Snapshot, uint64)
	}

	// ACME, when set, tells which ACME-managed hostnames have no
	// certificate yet and why; their listeners are reported
	// Programmed=False until they do. Refresh publishes changes.
	ACME interface {
		States() map[string]acme.State
	}

	refreshOnce sync.Once
	refresh     chan struct{}
	kickOnce    sync.Once
	kick        chan struct{}
	generation  atomic.Int64
	statuses    atomic.Pointer[[]translate.ObjectStatus]
	lastHash    [32]byte
	applyFailed bool              // the last Handle failed in the data plane: worth a retry
	applied     *translate.Result // the translation in force, for the reload diff
	unbound     []ir.Unbound      // listeners of the config in force not bound yet

	// speculative is the translation of the last Tentative snapshot and
	// its hash, reused when the settled snapshot has the same hash.
	speculative     *translate.Result
	speculativeHash [32]byte
	// lastSnapshot is the Snapshot.Hash of the config in force (lastHash
	// also covers the rollout version).
	lastSnapshot [32]byte
}

// Generation counts applied configs; tests and /ready use it to see that a
// reload happened.
func (c *Controller) Generation() int64 { return c.generation.Load() }

// Statuses are the object statuses of the config in force, for the admin
// API; nil before the first config.
func (c *Controller) Statuses() []translate.ObjectStatus {
	if p := c.statuses.Load(); p != nil {
		return *p
	}
	return nil
}

// Reapply asks Run to translate the last snapshot again (rollout progress
// changed). It never blocks.
func (c *Controller) Reapply() {
	select {
	case c.kicks() <- struct{}{}:
	default:
	}
}

// Refresh asks Run to publish the statuses of the config in force again
// (an ACME certificate was obtained or failed). It never blocks.
func (c *Controller) Refresh() {
	select {
	case c.refreshes() <- struct{}{}:
	default:
	}
}

func (c *Controller) refreshes() chan struct{} {
	c.refreshOnce.Do(func() { c.refresh = make(chan struct{}, 1) })
	return c.refresh
}

func (c *Controller) kicks() chan struct{} {
	c.kickOnce.Do(func() { c.kick = make(chan struct{}, 1) })
	return c.kick
}

// Run applies updates until ctx ends or in closes. A config the data plane
// could not apply is retried with backoff, from 1 s up to 30 s, until it
// applies or a newer update arrives. So are the listeners of the config in
// force it could not bind (say, a port still held by a process being
// replaced): the same config is applied again until they are bound or a
// newer config replaces it. Updates are handled as they come meanwhile;
// a Tentative one is only translated ahead (see speculate).
func (c *Controller) Run(ctx context.Context, in <-chan config.Update) {
	var (
		last    config.Update
		retry   <-chan time.Time
		backoff time.Duration
	)
	for {
		rebind := false
		select {
		case <-ctx.Done():
			return
		case u, ok := <-in:
			if !ok {
				return
			}
			if u.Tentative {
				// Translated ahead, never applied nor retried.
				c.speculate(u)
				continue
			}
			last, backoff = u, 0
		case <-retry:
			rebind = !c.applyFailed
		case <-c.kicks():
			if last.Snapshot == nil {
				continue
			}
		case <-c.refreshes():
			if c.applied != nil {
				c.publish(c.applied)
			}
			continue
		}
		retry = nil
		if rebind {
			c.rebind()
		} else {
			c.Handle(last)
		}
		if c.applyFailed || len(c.unbound) > 0 {
			backoff = min(max(2*backoff, time.Second), 30*time.Second)
			retry = time.After(backoff)
		} else {
			backoff = 0
		}
	}
}

// rebind applies the config in force again, so the data plane binds the
// listeners it could not bind before, and publishes the statuses again when
// that changed what is bound. It reports whether every listener is bound.
func (c *Controller) rebind() bool {
	if len(c.unbound) == 0 || c.applied == nil {
		return true
	}
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	unbound, err := c.Data.Apply(c.applied.Config)
	if err != nil {
		// Not expected: the same config applied before.
		log.Error("retrying unbound listeners failed", "error", err.Error())
		return false
	}
	still := map[string]bool{}
	for _, u := range unbound {
		still[u.Listener.Address] = true
	}
	changed := len(unbound) != len(c.unbound)
	for _, u := range c.unbound {
		if !still[u.Listener.Address] {
			changed = true
			log.Info("listener bound after retry", "address", u.Listener.Address, "protocol", u.Listener.Protocol, "gateway_listeners", hostNames(u.Listener))
		}
	}
	c.unbound = unbound
	if changed {
		c.publish(c.applied)
	}
	return len(unbound) == 0
}

// publish makes res's statuses, marked with the listeners not bound, the
// statuses in force and hands them to the status writer.
func (c *Controller) publish(res *translate.Result) {
	statuses := markUnbound(res.Statuses, res.Config, c.unbound)
	if c.ACME != nil {
		statuses = markACME(statuses, res.Config, c.ACME.States())
	}
	c.statuses.Store(&statuses)
	if c.Status != nil {
		c.Status.Publish(statuses)
	}
}

func hostNames(l *ir.Listener) string {
	names := make([]string, len(l.Hosts))
	for i, h := range l.Hosts {
		names[i] = h.Name
	}
	return strings.Join(names, ",")
}

// speculate translates a Tentative update's snapshot, so that the settled
// update that follows, if it has the same content, is applied without
// translating it again: the translation runs while the files provider
// waits for the files to settle. Nothing is logged, observed or applied.
// A snapshot with Rollouts is left alone when Rollouts is set, as
// Rollouts.Prepare records what it sees; without any, Prepare hands the
// translator the snapshot as it is.
func (c *Controller) speculate(u config.Update) {
	if u.Err != nil || u.Snapshot == nil || (c.Rollouts != nil && len(u.Snapshot.Rollouts) > 0) {
		return
	}
	hash := u.Snapshot.Hash()
	inForce := hash == c.lastSnapshot || (c.Rollouts == nil && hash == c.lastHash)
	if (inForce && c.generation.Load() > 0) || (c.speculative != nil && hash == c.speculativeHash) {
		return
	}
	c.speculative, c.speculativeHash = translate.Translate(u.Snapshot, c.Translate), hash
}

// speculated returns the speculative translation of u's snapshot, if any,
// and forgets it.
func (c *Controller) speculated(u config.Update, snapHash [32]byte) *translate.Result {
	res := c.speculative
	c.speculative = nil
	if res == nil || snapHash != c.speculativeHash || (c.Rollouts != nil && len(u.Snapshot.Rollouts) > 0) {
		return nil
	}
	return res
}

// Handle applies one update and reports whether a new config is in force.
// A Tentative update is only translated ahead (see speculate).
func (c *Controller) Handle(u config.Update) bool {
	if u.Tentative {
		c.speculate(u)
		return false
	}
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	c.applyFailed = false
	start := time.Now()
	failed := func(err string, rejected int) bool {
		c.Observers.Reload(&obs.Reload{Time: start, Generation: c.generation.Load(), Error: err,
			Duration: time.Since(start), Rejected: rejected})
		return false
	}
	if u.Err != nil {
		log.Error("config rejected; previous config stays in force", "error", u.Err.Error())
		return failed(u.Err.Error(), 0)
	}
	snap := u.Snapshot
	// The snapshot's own hash, for speculation: free when the loader set
	// Digest, else (the Kubernetes provider, which never speculates) a
	// serialisation only worth it to check a speculative translation.
	var snapHash [32]byte
	if c.speculative != nil || snap.Digest != ([32]byte{}) {
		snapHash = snap.Hash()
	}
	var hash [32]byte
	if c.Rollouts != nil {
		// Hashed after Prepare: Rollout status in the snapshot is
		// reduced to what the translator reads.
		var v uint64
		snap, v = c.Rollouts.Prepare(snap)
		h := snap.Hash()
		hash = sha256.Sum256(fmt.Appendf(h[:], "rollouts %d", v))
	} else if snapHash != ([32]byte{}) {
		hash = snapHash
	} else {
		hash = snap.Hash()
	}
	if hash == c.lastHash && c.generation.Load() > 0 {
		return false
	}
	res := c.speculated(u, snapHash)
	if res == nil {
		res = translate.Translate(snap, c.Translate)
	}
	rejected := 0
	for _, st := range res.Statuses {
		switch {
		case st.Ignored:
			log.Warn("object ignored", "kind", st.Kind, "namespace", st.Namespace, "name", st.Name, "reason", st.Reason)
		case !st.Accepted:
			rejected++
			log.Warn("object rejected", "kind", st.Kind, "namespace", st.Namespace, "name", st.Name, "reason", st.Reason)
		}
	}
	if res.Config == nil {
		log.Error("config not applied; previous config stays in force", "error", "translator failed")
		return failed("translator failed", rejected)
	}
	unbound, err := c.Data.Apply(res.Config)
	if err != nil {
		log.Error("config not applied; previous config stays in force", "error", err.Error())
		c.applyFailed = true
		return failed(err.Error(), rejected)
	}
	c.unbound = unbound
	for _, u := range unbound {
		log.Warn("listener not bound; the rest of the config is applied, retrying in the background",
			"address", u.Listener.Address, "protocol", u.Listener.Protocol, "gateway_listeners", hostNames(u.Listener), "error", u.Err.Error())
	}
	c.lastHash, c.lastSnapshot = hash, snapHash
	gen := c.generation.Add(1)
	took := time.Since(start)
	log.Info("config applied", "generation", gen, "listeners", len(res.Config.Listeners), "unbound_listeners", len(unbound),
		"rejected_objects", rejected, "duration", took.String())
	c.Observers.Reload(&obs.Reload{Time: start, Generation: gen, OK: true, Duration: took,
		Listeners: len(res.Config.Listeners), Rejected: rejected})
	logDiff(log, gen, plan.Diff(c.applied, res))
	c.applied = res
	c.publish(res)
	return true
}

// diffLogLines is how many changes a reload's "config diff" line names.
const diffLogLines = 20

// logDiff logs what a reload changed: counts and the first changes.
func logDiff(log *slog.Logger, gen int64, p plan.Plan) {
	added, removed, changed := p.Counts()
	log.Info("config diff", "generation", gen, "added", added, "removed", removed, "changed", changed,
		"rejected_objects", len(p.Rejected), "changes", p.Lines(diffLogLines), "more", max(0, len(p.Changes)-diffLogLines))
}
