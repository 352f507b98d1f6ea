package controller

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mgv1alpha1 "github.com/meshgate/meshgate/api/v1alpha1"
	"github.com/meshgate/meshgate/config"
)

// countingRollouts is a Rollouts that changes nothing and counts calls.
type countingRollouts struct{ calls int }

func (r *countingRollouts) Prepare(s *config.Snapshot) (*config.Snapshot, uint64) {
	r.calls++
	return s, 7
}

// TestControllerSpeculates checks Tentative updates: they are translated
// but never applied, and the settled update reuses that translation only
// when its content is the same.
func TestControllerSpeculates(t *testing.T) {
	withRollout := func(s *config.Snapshot) *config.Snapshot {
		s.Rollouts = append(s.Rollouts, &mgv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "ro", Namespace: "default"}})
		return s
	}
	tests := []struct {
		name      string
		tentative string // port of the tentative snapshot
		settled   string // port of the settled one
		rollouts  bool   // wire a Rollouts
		// edit changes both snapshots.
		edit        func(*config.Snapshot) *config.Snapshot
		speculated  bool
		reused      bool
		wantPrepare int // Rollouts.Prepare calls, first config included
	}{
		{name: "same content reuses the translation", tentative: "9090", settled: "9090", speculated: true, reused: true},
		{name: "changed content is translated again", tentative: "9090", settled: "9191", speculated: true},
		{name: "tentative equal to the config in force is not translated", tentative: "8080", settled: "9292"},
		{name: "with Rollouts wired, a snapshot without Rollout objects is speculated", tentative: "9090", settled: "9090",
			rollouts: true, speculated: true, reused: true, wantPrepare: 2},
		{name: "a snapshot with Rollout objects is not", tentative: "9090", settled: "9090",
			rollouts: true, edit: withRollout, wantPrepare: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			edit := tt.edit
			if edit == nil {
				edit = func(s *config.Snapshot) *config.Snapshot { return s }
			}
			app := &recordingApplier{}
			c := &Controller{Data: app, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			ro := &countingRollouts{}
			if tt.rollouts {
				c.Rollouts = ro
			}
			if !c.Handle(config.Update{Snapshot: edit(snapshot(t, "8080"))}) {
				t.Fatal("first config not applied")
			}
			if c.Handle(config.Update{Snapshot: edit(snapshot(t, tt.tentative)), Tentative: true}) {
				t.Error("a tentative update was applied")
			}
			if got := app.count(); got != 1 || c.Generation() != 1 {
				t.Fatalf("after the tentative update: %d applies, generation %d; want 1 and 1", got, c.Generation())
			}
			spec := c.speculative
			if (spec != nil) != tt.speculated {
				t.Fatalf("speculative translation = %v, want one: %v", spec, tt.speculated)
			}
			if !c.Handle(config.Update{Snapshot: edit(snapshot(t, tt.settled))}) {
				t.Fatal("settled update not applied")
			}
			applied := app.applied[len(app.applied)-1]
			if got := applied.Listeners[0].Address; got != "0.0.0.0:"+tt.settled {
				t.Errorf("serving %s, want port %s", got, tt.settled)
			}
			if reused := spec != nil && spec.Config == applied; reused != tt.reused {
				t.Errorf("translation reused = %v, want %v", reused, tt.reused)
			}
			if c.speculative != nil {
				t.Error("the speculative translation is kept after use")
			}
			if ro.calls != tt.wantPrepare {
				t.Errorf("Rollouts.Prepare called %d times, want %d", ro.calls, tt.wantPrepare)
			}
		})
	}
}

// TestControllerRunNeverRetriesTentative checks that a Tentative update
// arriving while a failed config waits for its retry does not take its
// place: the retry applies the settled config.
func TestControllerRunNeverRetriesTentative(t *testing.T) {
	app := &recordingApplier{fail: errors.New("bind: address in use")}
	c := &Controller{Data: app, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	in := make(chan config.Update)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { c.Run(ctx, in); close(done) }()
	in <- config.Update{Snapshot: snapshot(t, "8080")}
	in <- config.Update{Snapshot: snapshot(t, "9090"), Tentative: true}
	// Run took the tentative update, so the failed apply is behind it.
	app.mu.Lock()
	app.fail = nil
	app.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for c.Generation() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	if c.Generation() != 1 {
		t.Fatal("failed config was not retried")
	}
	if got := app.applied[0].Listeners[0].Address; got != "0.0.0.0:8080" {
		t.Errorf("the retry applied %s, want the settled 0.0.0.0:8080", got)
	}
}
