package controller

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/filesprovider"
	"github.com/meshgate/meshgate/ir"
)

type recordingApplier struct {
	mu      sync.Mutex
	applied []*ir.Config
	fail    error
}

func (r *recordingApplier) Apply(cfg *ir.Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.applied = append(r.applied, cfg)
	return nil
}

const gateway = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: mg}
spec: {controllerName: gateway.meshgate.dev/controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: g}
spec:
  gatewayClassName: mg
  listeners: [{name: http, protocol: HTTP, port: PORT}]
`

func snapshot(t *testing.T, port string) *config.Snapshot {
	t.Helper()
	s, err := config.Parse("t.yaml", []byte(strings.Replace(gateway, "PORT", port, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestControllerHandle(t *testing.T) {
	app := &recordingApplier{}
	c := &Controller{Data: app, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	steps := []struct {
		name       string
		update     filesprovider.Update
		fail       error
		wantNew    bool
		wantGen    int64
		wantListen string
	}{
		{name: "first config applies", update: filesprovider.Update{Snapshot: snapshot(t, "8080")}, wantNew: true, wantGen: 1, wantListen: "0.0.0.0:8080"},
		{name: "identical snapshot is skipped", update: filesprovider.Update{Snapshot: snapshot(t, "8080")}, wantGen: 1, wantListen: "0.0.0.0:8080"},
		{name: "parse error keeps the old config", update: filesprovider.Update{Err: errors.New("t.yaml:3: bad")}, wantGen: 1, wantListen: "0.0.0.0:8080"},
		{name: "data plane failure keeps the old config", update: filesprovider.Update{Snapshot: snapshot(t, "9090")}, fail: errors.New("bind: address in use"), wantGen: 1, wantListen: "0.0.0.0:8080"},
		{name: "same change retried after the failure applies", update: filesprovider.Update{Snapshot: snapshot(t, "9090")}, wantNew: true, wantGen: 2, wantListen: "0.0.0.0:9090"},
	}
	for _, st := range steps {
		app.fail = st.fail
		if got := c.Handle(st.update); got != st.wantNew {
			t.Errorf("%s: Handle = %v, want %v", st.name, got, st.wantNew)
		}
		if got := c.Generation(); got != st.wantGen {
			t.Errorf("%s: generation %d, want %d", st.name, got, st.wantGen)
		}
		last := app.applied[len(app.applied)-1]
		if got := last.Listeners[0].Address; got != st.wantListen {
			t.Errorf("%s: serving %s, want %s", st.name, got, st.wantListen)
		}
	}
}

func TestControllerRetriesFailedApply(t *testing.T) {
	app := &recordingApplier{fail: errors.New("bind: address in use")}
	c := &Controller{Data: app, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	in := make(chan filesprovider.Update, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { c.Run(ctx, in); close(done) }()
	in <- filesprovider.Update{Snapshot: snapshot(t, "8080")}
	time.Sleep(200 * time.Millisecond)
	if c.Generation() != 0 {
		t.Fatal("applied while the data plane fails")
	}
	app.mu.Lock()
	app.fail = nil // the port became free
	app.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for c.Generation() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if c.Generation() != 1 {
		t.Fatal("failed config was not retried")
	}
	cancel()
	<-done
}
