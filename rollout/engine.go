package rollout

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mgv1alpha1 "github.com/meshgate/meshgate/api/v1alpha1"
	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/translate"
)

// Defaults for unset step and analysis fields.
const (
	DefaultMinDuration      = time.Minute
	DefaultMinRequests      = 100
	DefaultAnalysisRequests = 10
	// relativeMinStable is how many stable requests a window needs before
	// error thresholds relative to stable are judged.
	relativeMinStable = 10
	// latencySamples is how many requests a window needs before its p99 is
	// judged: with fewer, the p99 is the slowest request (one cold
	// connection would fail a healthy canary).
	latencySamples = 100
)

// Store keeps progress across restarts when there is no cluster: the
// status of each Rollout by "namespace/name".
type Store interface {
	Load() (map[string]mgv1alpha1.RolloutStatus, error)
	Save(map[string]mgv1alpha1.RolloutStatus) error
}

// StatusWriter publishes a Rollout's status (in a cluster).
type StatusWriter interface {
	WriteStatus(ctx context.Context, namespace, name string, st *mgv1alpha1.RolloutStatus) error
}

// Engine drives every Rollout of the snapshots it is shown. One goroutine
// (Run) judges the steps; Prepare, called by the controller before each
// translation, hands the translator the current weights.
//
// With several replicas only the leader drives (SetLeader): it decides from
// its own measurements, the share of traffic its load balancer sends it,
// and writes status; followers serve the weights in status as the API
// server gives it to them.
type Engine struct {
	// Sink is the measurement sink; it must be among the data plane's
	// observers.
	Sink *Sink
	// Store, when set, persists progress (--config mode).
	Store Store
	// Writer, when set, writes Rollout status (cluster mode).
	Writer StatusWriter
	// OnChange is called after a weight change, to re-translate at once
	// (controller.Reapply).
	OnChange func()
	// Interval between judgements (1s when zero).
	Interval time.Duration
	// Now is the clock (time.Now when nil), for tests.
	Now func() time.Time
	Log *slog.Logger

	mu        sync.Mutex
	leader    bool
	loaded    bool
	persisted map[string]mgv1alpha1.RolloutStatus
	objects   map[string]*mgv1alpha1.Rollout // latest specs (and API status)
	targets   map[string]target
	state     map[string]*mgv1alpha1.RolloutStatus
	base      map[string]baseline
	rollbacks map[string]int64
	version   uint64
	dirty     bool // state changed since last save
	written   map[string]*mgv1alpha1.RolloutStatus
	lastWrite map[string]time.Time
}

type target struct {
	translate.RolloutTarget
	problem        string
	canary, stable *counters
}

// baseline are the counters' readings when a step's window began.
type baseline struct {
	canary, stable reading
}

// NewEngine returns an engine that drives rollouts when leader is true.
func NewEngine(sink *Sink, leader bool) *Engine {
	return &Engine{Sink: sink, leader: leader}
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Engine) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.Default()
}

func (e *Engine) init() {
	if e.objects == nil {
		e.objects = map[string]*mgv1alpha1.Rollout{}
		e.targets = map[string]target{}
		e.state = map[string]*mgv1alpha1.RolloutStatus{}
		e.base = map[string]baseline{}
		e.rollbacks = map[string]int64{}
		e.written = map[string]*mgv1alpha1.RolloutStatus{}
		e.lastWrite = map[string]time.Time{}
	}
	if !e.loaded && e.Store != nil {
		e.loaded = true
		p, err := e.Store.Load()
		if err != nil {
			e.log().Warn("rollout state not loaded; rollouts start over", "error", err.Error())
		}
		e.persisted = p
	}
}

// SetLeader turns driving on or off. A new leader takes progress from the
// Rollouts' status as last seen.
func (e *Engine) SetLeader(leader bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if leader == e.leader {
		return
	}
	e.leader = leader
	e.state = map[string]*mgv1alpha1.RolloutStatus{}
	e.written = map[string]*mgv1alpha1.RolloutStatus{}
	e.version++
}

// Prepare returns s with each Rollout's status replaced by the progress
// the translator must apply (phase, step, weight, identity only, so
// measurement updates do not cause reloads), and a version that changes
// whenever that progress does. s is not modified.
func (e *Engine) Prepare(s *config.Snapshot) (*config.Snapshot, uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.init()
	if s == nil {
		return s, e.version
	}
	e.observe(s)
	if len(s.Rollouts) == 0 {
		return s, e.version
	}
	c := *s
	c.Rollouts = make([]*mgv1alpha1.Rollout, 0, len(s.Rollouts))
	for _, ro := range s.Rollouts {
		if ro == nil {
			continue
		}
		cp := *ro
		st := &ro.Status
		if x := e.state[nameOf(ro)]; x != nil && e.leader {
			st = x
		}
		cp.Status = mgv1alpha1.RolloutStatus{Phase: st.Phase, Step: st.Step, CanaryWeight: st.CanaryWeight, Identity: st.Identity}
		c.Rollouts = append(c.Rollouts, &cp)
	}
	return &c, e.version
}

func nameOf(ro *mgv1alpha1.Rollout) string { return ro.Namespace + "/" + ro.Name }

// observe records the Rollouts of s and applies their controls at once.
func (e *Engine) observe(s *config.Snapshot) {
	seen := map[string]bool{}
	keep := map[key]bool{}
	for _, ro := range s.Rollouts {
		if ro == nil {
			continue
		}
		n := nameOf(ro)
		seen[n] = true
		e.objects[n] = ro
		tg, problem := translate.RolloutTargetOf(s, ro)
		t := target{RolloutTarget: tg, problem: problem}
		if problem == "" {
			ck, sk := key{tg.Route, tg.Rule, tg.Canary}, key{tg.Route, tg.Rule, tg.Stable}
			keep[ck], keep[sk] = true, true
			t.canary, t.stable = e.Sink.track(ck), e.Sink.track(sk)
		}
		e.targets[n] = t
	}
	for n := range e.objects {
		if !seen[n] {
			delete(e.objects, n)
			delete(e.targets, n)
			delete(e.base, n)
			if _, ok := e.state[n]; ok {
				delete(e.state, n)
				e.dirty = true
			}
		}
	}
	e.Sink.retain(keep)
	if e.leader {
		e.step(e.now(), false)
	}
}

// Run judges every Rollout each Interval until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	iv := e.Interval
	if iv <= 0 {
		iv = time.Second
	}
	tk := time.NewTicker(iv)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		if changed := e.Tick(); changed && e.OnChange != nil {
			e.OnChange()
		}
		e.publish(ctx)
	}
}

// Tick judges every Rollout once and reports whether a weight changed.
func (e *Engine) Tick() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.init()
	if !e.leader {
		return false
	}
	before := e.version
	e.step(e.now(), true)
	return e.version != before
}

// step brings every Rollout's state up to date: adoption of saved
// progress, controls and (when judge) the analysis of its window.
func (e *Engine) step(now time.Time, judge bool) {
	names := make([]string, 0, len(e.objects))
	for n := range e.objects {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ro := e.objects[n]
		st := e.state[n]
		id := translate.RolloutIdentity(&ro.Spec)
		if st == nil {
			st = e.adopt(n, ro, id, now)
		} else if st.Identity != id {
			e.log().Info("rollout starts over: target, backends or revision changed", "rollout", n)
			st = e.fresh(n, ro, id, now)
		}
		e.control(n, ro, st, now)
		if judge {
			e.judge(n, ro, st, now)
		}
	}
	if e.dirty && e.Store != nil {
		e.save()
	}
}

// adopt takes saved progress for ro (state file or status), or starts it.
func (e *Engine) adopt(n string, ro *mgv1alpha1.Rollout, id string, now time.Time) *mgv1alpha1.RolloutStatus {
	var saved *mgv1alpha1.RolloutStatus
	if e.Store != nil {
		if p, ok := e.persisted[n]; ok {
			saved = &p
		}
	} else if ro.Status.Phase != "" {
		saved = ro.Status.DeepCopy()
	}
	if saved == nil || saved.Identity != id || saved.Phase == "" {
		return e.fresh(n, ro, id, now)
	}
	if saved.StepStartedAt == nil {
		saved.StepStartedAt = &metav1.Time{Time: now}
	}
	e.state[n] = saved
	e.rebase(n)
	e.version++
	e.log().Info("rollout continues", "rollout", n, "phase", string(saved.Phase), "step", saved.Step, "weight", saved.CanaryWeight)
	return saved
}

func (e *Engine) fresh(n string, ro *mgv1alpha1.Rollout, id string, now time.Time) *mgv1alpha1.RolloutStatus {
	st := &mgv1alpha1.RolloutStatus{Identity: id}
	e.state[n] = st
	e.enterStep(n, ro, st, 0, now, "Started", "rollout started")
	return st
}

// enterStep moves st to step i (or Succeeded past the last one).
func (e *Engine) enterStep(n string, ro *mgv1alpha1.Rollout, st *mgv1alpha1.RolloutStatus, i int, now time.Time, reason, msg string) {
	steps := ro.Spec.Steps
	st.StepStartedAt = &metav1.Time{Time: now.Truncate(time.Millisecond)}
	if i >= len(steps) {
		st.Step = int32(len(steps) - 1)
		e.finish(n, st, mgv1alpha1.RolloutSucceeded, 100, "Completed", "every step passed; canary at 100%", now)
		return
	}
	st.Step = int32(i)
	st.Phase = mgv1alpha1.RolloutProgressing
	if ro.Spec.Paused {
		st.Phase = mgv1alpha1.RolloutPaused
	}
	st.CanaryWeight = clamp(steps[i].Weight)
	st.Message = fmt.Sprintf("%s: step %d/%d, canary at %d%%", msg, i+1, len(steps), st.CanaryWeight)
	e.setConditions(st, reason, now)
	e.rebase(n)
	e.changed()
	e.log().Info("rollout step", "rollout", n, "step", i+1, "of", len(steps), "weight", st.CanaryWeight, "reason", reason)
}

func (e *Engine) finish(n string, st *mgv1alpha1.RolloutStatus, phase mgv1alpha1.RolloutPhase, weight int32, reason, msg string, now time.Time) {
	st.Phase, st.CanaryWeight, st.Message = phase, weight, msg
	e.setConditions(st, reason, now)
	e.changed()
}

func (e *Engine) changed() {
	e.version++
	e.dirty = true
}

func (e *Engine) rebase(n string) {
	t := e.targets[n]
	var b baseline
	if t.canary != nil {
		b.canary, b.stable = t.canary.read(), t.stable.read()
	}
	e.base[n] = b
}

// control applies the spec's abort, promote and paused fields.
func (e *Engine) control(n string, ro *mgv1alpha1.Rollout, st *mgv1alpha1.RolloutStatus, now time.Time) {
	spec := &ro.Spec
	rb := meta.FindStatusCondition(st.Conditions, mgv1alpha1.RolloutConditionRolledBack)
	aborted := st.Phase == mgv1alpha1.RolloutRolledBack && rb != nil && rb.Reason == "Aborted"
	switch {
	case spec.Abort:
		if st.Phase != mgv1alpha1.RolloutRolledBack {
			e.finish(n, st, mgv1alpha1.RolloutRolledBack, 0, "Aborted", "aborted (spec.abort): every request goes to stable", now)
			e.log().Warn("rollout aborted", "rollout", n)
		}
	case spec.Promote:
		if st.Phase != mgv1alpha1.RolloutSucceeded {
			e.finish(n, st, mgv1alpha1.RolloutSucceeded, 100, "Promoted", "promoted (spec.promote): canary at 100%", now)
			e.log().Info("rollout promoted", "rollout", n)
		}
	case aborted:
		// spec.abort was removed: a new attempt from the first step.
		e.enterStep(n, ro, st, 0, now, "Restarted", "abort removed, starting over")
	case spec.Paused && st.Phase == mgv1alpha1.RolloutProgressing:
		st.Phase = mgv1alpha1.RolloutPaused
		st.Message = fmt.Sprintf("paused (spec.paused) at step %d/%d, canary at %d%%", st.Step+1, len(spec.Steps), st.CanaryWeight)
		e.setConditions(st, "PausedBySpec", now)
		e.changed()
		e.log().Info("rollout paused", "rollout", n, "step", st.Step+1, "weight", st.CanaryWeight)
	case !spec.Paused && st.Phase == mgv1alpha1.RolloutPaused:
		// The window starts again: what happened while paused is not
		// judged as part of the step.
		e.enterStep(n, ro, st, int(st.Step), now, "Resumed", "resumed")
	}
}

// judge analyses the current step's window and advances or rolls back.
func (e *Engine) judge(n string, ro *mgv1alpha1.Rollout, st *mgv1alpha1.RolloutStatus, now time.Time) {
	t := e.targets[n]
	if t.problem != "" {
		if msg := "not applied: " + t.problem; st.Message != msg {
			st.Message = msg
			e.dirty = true
			e.log().Warn("rollout not applied", "rollout", n, "reason", t.problem)
		}
		return
	}
	if t.canary == nil {
		return
	}
	b := e.base[n]
	canary, stable := t.canary.read().since(b.canary), t.stable.read().since(b.stable)
	if st.Phase != mgv1alpha1.RolloutProgressing {
		return
	}
	st.Canary, st.Stable = measurement(canary), measurement(stable)
	steps := ro.Spec.Steps
	i := int(st.Step)
	if i >= len(steps) {
		i = len(steps) - 1
	}
	step := steps[i]
	a := ro.Spec.Analysis
	minJudge := int64(DefaultAnalysisRequests)
	if a != nil && a.MinRequests != nil {
		minJudge = int64(*a.MinRequests)
	}
	if canary.Requests >= minJudge {
		if why := breach(a, canary, stable); why != "" {
			msg := fmt.Sprintf("rolled back at step %d/%d (%d%%): %s", i+1, len(steps), st.CanaryWeight, why)
			e.finish(n, st, mgv1alpha1.RolloutRolledBack, 0, "ThresholdBreached", msg, now)
			e.rollbacks[n]++
			e.log().Warn("rollout rolled back", "rollout", n, "step", i+1, "weight_was", clamp(step.Weight), "reason", why,
				"canary_requests", canary.Requests, "canary_error_rate", pct(canary.ErrorRate()), "canary_p99", canary.P99.String(),
				"stable_requests", stable.Requests, "stable_error_rate", pct(stable.ErrorRate()), "stable_p99", stable.P99.String())
			return
		}
	}
	minDur := DefaultMinDuration
	if step.MinDuration != nil {
		if d, err := time.ParseDuration(string(*step.MinDuration)); err == nil {
			minDur = d
		}
	}
	minReq := int64(DefaultMinRequests)
	if step.MinRequests != nil {
		minReq = int64(*step.MinRequests)
	}
	if step.Weight == 0 {
		minReq = 0
	}
	if st.StepStartedAt != nil && now.Sub(st.StepStartedAt.Time) >= minDur && canary.Requests >= minReq {
		e.log().Info("rollout step passed", "rollout", n, "step", i+1, "weight", st.CanaryWeight,
			"canary_requests", canary.Requests, "canary_error_rate", pct(canary.ErrorRate()), "canary_p99", canary.P99.String(),
			"stable_requests", stable.Requests, "stable_error_rate", pct(stable.ErrorRate()), "stable_p99", stable.P99.String())
		e.enterStep(n, ro, st, i+1, now, "StepPassed", fmt.Sprintf("step %d passed (canary %d requests, %s%% errors, p99 %s)", i+1, canary.Requests, pct(canary.ErrorRate()), canary.P99))
	}
}

// breach says which threshold the canary's window breaks, or "".
func breach(a *mgv1alpha1.RolloutAnalysis, canary, stable Figures) string {
	if a == nil {
		return ""
	}
	cr, sr := canary.ErrorRate(), stable.ErrorRate()
	if a.MaxErrorRate != nil {
		if max, err := strconv.ParseFloat(*a.MaxErrorRate, 64); err == nil && cr > max {
			return fmt.Sprintf("canary error rate %s%% > maxErrorRate %s%% (%d of %d requests failed; stable %s%%)",
				pct(cr), *a.MaxErrorRate, canary.Errors, canary.Requests, pct(sr))
		}
	}
	if a.MaxP99Latency != nil && canary.Requests >= latencySamples {
		if max, err := time.ParseDuration(string(*a.MaxP99Latency)); err == nil && canary.P99 > max {
			return fmt.Sprintf("canary p99 latency %s > maxP99Latency %s (stable p99 %s)", round(canary.P99), max, round(stable.P99))
		}
	}
	if stable.Requests >= relativeMinStable {
		if a.MaxErrorRateIncrease != nil {
			if inc, err := strconv.ParseFloat(*a.MaxErrorRateIncrease, 64); err == nil && cr > sr+inc {
				return fmt.Sprintf("canary error rate %s%% > stable %s%% + maxErrorRateIncrease %s points (%d of %d canary requests failed)",
					pct(cr), pct(sr), *a.MaxErrorRateIncrease, canary.Errors, canary.Requests)
			}
		}
		if a.MaxP99Increase != nil && stable.P99 > 0 && canary.Requests >= latencySamples && stable.Requests >= latencySamples {
			limit := time.Duration(float64(stable.P99) * (1 + float64(*a.MaxP99Increase)/100))
			if canary.P99 > limit {
				return fmt.Sprintf("canary p99 latency %s > stable p99 %s + maxP99Increase %d%% (%s)",
					round(canary.P99), round(stable.P99), *a.MaxP99Increase, round(limit))
			}
		}
	}
	return ""
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

func pct(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }

func measurement(f Figures) *mgv1alpha1.RolloutMeasurement {
	m := &mgv1alpha1.RolloutMeasurement{Requests: f.Requests, Errors: f.Errors, ErrorRate: pct(f.ErrorRate())}
	if f.Requests > 0 {
		m.P99 = round(f.P99).String()
	}
	return m
}

func clamp(w int32) int32 { return min(max(w, 0), 100) }

// setConditions sets the four conditions from st.Phase; reason is the
// reason of the condition that is True (Progressing's when progressing).
func (e *Engine) setConditions(st *mgv1alpha1.RolloutStatus, reason string, now time.Time) {
	set := func(typ string, on bool, r string) {
		status := metav1.ConditionFalse
		if on {
			status = metav1.ConditionTrue
		}
		msg := st.Message
		if !on {
			msg = "phase is " + string(st.Phase)
		}
		c := metav1.Condition{Type: typ, Status: status, Reason: r, Message: msg}
		if old := meta.FindStatusCondition(st.Conditions, typ); old == nil || old.Status != status {
			c.LastTransitionTime = metav1.Time{Time: now.Truncate(time.Second)}
		} else {
			c.LastTransitionTime = old.LastTransitionTime
		}
		meta.SetStatusCondition(&st.Conditions, c)
	}
	ph := st.Phase
	progR := string(ph)
	if ph == mgv1alpha1.RolloutProgressing {
		progR = reason
	}
	set(mgv1alpha1.RolloutConditionProgressing, ph == mgv1alpha1.RolloutProgressing, progR)
	set(mgv1alpha1.RolloutConditionPaused, ph == mgv1alpha1.RolloutPaused, or(ph == mgv1alpha1.RolloutPaused, "PausedBySpec", "NotPaused"))
	set(mgv1alpha1.RolloutConditionSucceeded, ph == mgv1alpha1.RolloutSucceeded, or(ph == mgv1alpha1.RolloutSucceeded, reason, "NotSucceeded"))
	set(mgv1alpha1.RolloutConditionRolledBack, ph == mgv1alpha1.RolloutRolledBack, or(ph == mgv1alpha1.RolloutRolledBack, reason, "NotRolledBack"))
}

func or(c bool, a, b string) string {
	if c {
		return a
	}
	return b
}

// save writes every Rollout's state to the Store.
func (e *Engine) save() {
	out := make(map[string]mgv1alpha1.RolloutStatus, len(e.state))
	for n, st := range e.state {
		out[n] = *st.DeepCopy()
	}
	if err := e.Store.Save(out); err != nil {
		e.log().Warn("rollout state not saved; a restart would start rollouts over", "error", err.Error())
		return
	}
	e.persisted = out
	e.dirty = false
}

// publish writes changed statuses (leader, cluster mode): phase or weight
// changes at once, measurement-only changes at most every 5 s.
func (e *Engine) publish(ctx context.Context) {
	e.mu.Lock()
	if e.Writer == nil || !e.leader {
		if e.Store != nil {
			// Measurements go to the state file now and then, so it
			// shows the current window.
			e.saveMeasurements()
		}
		e.mu.Unlock()
		return
	}
	now := e.now()
	type job struct {
		ns, name string
		st       *mgv1alpha1.RolloutStatus
	}
	var jobs []job
	for n, st := range e.state {
		w := e.written[n]
		if w != nil && equality.Semantic.DeepEqual(w, st) {
			continue
		}
		major := w == nil || w.Phase != st.Phase || w.CanaryWeight != st.CanaryWeight || w.Step != st.Step || w.Identity != st.Identity
		if !major && now.Sub(e.lastWrite[n]) < 5*time.Second {
			continue
		}
		ro := e.objects[n]
		if ro == nil {
			continue
		}
		jobs = append(jobs, job{ro.Namespace, ro.Name, st.DeepCopy()})
	}
	e.mu.Unlock()
	for _, j := range jobs {
		n := j.ns + "/" + j.name
		if err := e.Writer.WriteStatus(ctx, j.ns, j.name, j.st); err != nil {
			e.log().Warn("rollout status not written", "rollout", n, "error", err.Error())
			continue
		}
		e.mu.Lock()
		e.written[n], e.lastWrite[n] = j.st, now
		e.mu.Unlock()
	}
}

func (e *Engine) saveMeasurements() {
	now := e.now()
	if now.Sub(e.lastWrite[""]) < 2*time.Second {
		return
	}
	e.lastWrite[""] = now
	for n, st := range e.state {
		p, ok := e.persisted[n]
		if !ok || !equality.Semantic.DeepEqual(p.Canary, st.Canary) || !equality.Semantic.DeepEqual(p.Stable, st.Stable) {
			e.dirty = true
		}
	}
	if e.dirty {
		e.save()
	}
}

// Rollouts is the current progress of every Rollout, for metrics and the
// admin API.
func (e *Engine) Rollouts() map[string]mgv1alpha1.RolloutStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]mgv1alpha1.RolloutStatus, len(e.state))
	for n, st := range e.state {
		out[n] = *st.DeepCopy()
	}
	return out
}

// Rollbacks counts threshold rollbacks per Rollout since start.
func (e *Engine) Rollbacks() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int64, len(e.rollbacks))
	for n, c := range e.rollbacks {
		out[n] = c
	}
	return out
}

// View is one Rollout as the dashboard shows it: what it targets, how many
// steps it has, and its progress.
type View struct {
	Namespace, Name string
	// Target is "Kind name" of the route, RuleName its rule ("" when the
	// targetRef names none).
	Target, RuleName string
	Stable, Canary   string
	Steps            int
	// Status is the engine's own progress when it drives (leader), else
	// the status last seen (a follower serves what the leader wrote).
	Status mgv1alpha1.RolloutStatus
}

// Views lists every Rollout of the config in force, by namespace/name.
func (e *Engine) Views() []View {
	e.mu.Lock()
	defer e.mu.Unlock()
	names := make([]string, 0, len(e.objects))
	for n := range e.objects {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]View, 0, len(names))
	for _, n := range names {
		ro := e.objects[n]
		st := &ro.Status
		if x := e.state[n]; x != nil && e.leader {
			st = x
		}
		v := View{
			Namespace: ro.Namespace, Name: ro.Name,
			Target: ro.Spec.TargetRef.Kind + " " + ro.Spec.TargetRef.Name,
			Stable: ro.Spec.StableBackend.Name, Canary: ro.Spec.CanaryBackend.Name,
			Steps:  len(ro.Spec.Steps),
			Status: *st.DeepCopy(),
		}
		if rn := ro.Spec.TargetRef.RuleName; rn != nil {
			v.RuleName = string(*rn)
		}
		out = append(out, v)
	}
	return out
}
