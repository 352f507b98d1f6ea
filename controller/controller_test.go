package controller

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/filesprovider"
	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/translate"
)

type recordingApplier struct {
	mu      sync.Mutex
	applied []*ir.Config
	fail    error
	// unbindable are addresses whose bind fails, with the error.
	unbindable map[string]error
}

func (r *recordingApplier) Apply(cfg *ir.Config) ([]ir.Unbound, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return nil, r.fail
	}
	r.applied = append(r.applied, cfg)
	var unbound []ir.Unbound
	for _, l := range cfg.Listeners {
		if err := r.unbindable[l.Address]; err != nil {
			unbound = append(unbound, ir.Unbound{Listener: l, Err: err})
		}
	}
	return unbound, nil
}

func (r *recordingApplier) setUnbindable(m map[string]error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unbindable = m
}

func (r *recordingApplier) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.applied)
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

// twoGateways: "bad" names an address (192.0.2.10) that cannot be bound and
// has a second address that can; "good" binds the default address.
const twoGateways = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: mg}
spec: {controllerName: gateway.meshgate.dev/controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: bad, namespace: default, generation: 3}
spec:
  gatewayClassName: mg
  addresses: [{value: 192.0.2.10}, {value: 127.0.0.2}]
  listeners: [{name: http, protocol: HTTP, port: 8080}, {name: other, protocol: HTTP, port: 8081}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: good, namespace: default}
spec:
  gatewayClassName: mg
  listeners: [{name: http, protocol: HTTP, port: PORT}]
`

type recordingStatus struct {
	mu  sync.Mutex
	got [][]translate.ObjectStatus
}

func (r *recordingStatus) Publish(st []translate.ObjectStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, st)
}

func (r *recordingStatus) last() []translate.ObjectStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		return nil
	}
	return r.got[len(r.got)-1]
}

func findStatus(sts []translate.ObjectStatus, kind, name string) *translate.ObjectStatus {
	for i := range sts {
		if sts[i].Kind == kind && sts[i].Name == name {
			return &sts[i]
		}
	}
	return nil
}

func findCond(cs []metav1.Condition, typ string) metav1.Condition {
	for _, c := range cs {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}

func listenerCond(st *translate.ObjectStatus, listener, typ string) metav1.Condition {
	for _, l := range st.Listeners {
		if string(l.Name) == listener {
			return findCond(l.Conditions, typ)
		}
	}
	return metav1.Condition{}
}

// TestControllerMarksUnbound: listeners the data plane could not bind are
// reported in the published statuses (Gateway Programmed=False
// AddressNotUsable, listener Programmed=False with the bind error,
// status.addresses without the address) while the rest is applied; a retry
// that binds them publishes the statuses again, and other updates apply
// meanwhile.
func TestControllerMarksUnbound(t *testing.T) {
	app := &recordingApplier{unbindable: map[string]error{
		"192.0.2.10:8080": &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRNOTAVAIL)},
		"192.0.2.10:8081": &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRNOTAVAIL)},
		"127.0.0.2:8081":  &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)},
	}}
	status := &recordingStatus{}
	c := &Controller{Data: app, Status: status, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	parse := func(port string) *config.Snapshot {
		s, err := config.Parse("t.yaml", []byte(strings.Replace(twoGateways, "PORT", port, 1)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if !c.Handle(filesprovider.Update{Snapshot: parse("9000")}) {
		t.Fatal("config with an unbindable listener not applied")
	}
	st := status.last()
	if st == nil {
		t.Fatal("nothing published")
	}
	bad, good := findStatus(st, "Gateway", "bad"), findStatus(st, "Gateway", "good")
	if got := findCond(bad.Conditions, "Programmed"); got.Status != metav1.ConditionFalse || got.Reason != "AddressNotUsable" ||
		!strings.Contains(got.Message, "192.0.2.10 is not an address of this host") || got.ObservedGeneration != 3 {
		t.Errorf("bad Gateway Programmed = %+v", got)
	}
	if got := findCond(bad.Conditions, "Accepted"); got.Status != metav1.ConditionTrue {
		t.Errorf("bad Gateway Accepted = %+v", got)
	}
	if got := listenerCond(bad, "http", "Programmed"); got.Status != metav1.ConditionFalse || got.Reason != "Pending" || !strings.Contains(got.Message, "192.0.2.10:8080") {
		t.Errorf("bad/http Programmed = %+v", got)
	}
	if got := listenerCond(bad, "other", "Programmed"); got.Status != metav1.ConditionFalse || got.Reason != "PortUnavailable" || !strings.Contains(got.Message, "port 8081 is in use") {
		t.Errorf("bad/other Programmed = %+v", got)
	}
	if bad.Accepted || !strings.Contains(bad.Reason, "listener other on 127.0.0.2:8081: port 8081 is in use") {
		t.Errorf("bad Gateway summary: accepted %v, reason %q", bad.Accepted, bad.Reason)
	}
	if strings.Join(bad.Addresses, ",") != "127.0.0.2" {
		t.Errorf("bad Gateway addresses %v, want only the bound 127.0.0.2", bad.Addresses)
	}
	if got := findCond(good.Conditions, "Programmed"); got.Status != metav1.ConditionTrue || !good.Accepted {
		t.Errorf("good Gateway Programmed = %+v", got)
	}
	if got := c.Statuses(); findCond(findStatus(got, "Gateway", "bad").Conditions, "Programmed").Reason != "AddressNotUsable" {
		t.Error("Statuses() (the admin /config) not marked")
	}
	if got := findCond(findStatus(c.applied.Statuses, "Gateway", "bad").Conditions, "Programmed"); got.Status != metav1.ConditionTrue {
		t.Errorf("the translation's own statuses were modified: %+v", got)
	}

	// Retry in the background: the port comes free, the address does not;
	// an update to the good Gateway applies meanwhile.
	in := make(chan filesprovider.Update, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	c2 := &Controller{Data: app, Status: status, Log: c.Log}
	go func() { c2.Run(ctx, in); close(done) }()
	in <- filesprovider.Update{Snapshot: parse("9000")}
	waitFor(t, "first apply", func() bool { return c2.Generation() == 1 })
	in <- filesprovider.Update{Snapshot: parse("9001")}
	waitFor(t, "update while a listener is unbound", func() bool { return c2.Generation() == 2 })
	app.setUnbindable(map[string]error{
		"192.0.2.10:8080": &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRNOTAVAIL)},
		"192.0.2.10:8081": &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRNOTAVAIL)},
	})
	waitFor(t, "retry publishes the bound listener", func() bool {
		bad := findStatus(status.last(), "Gateway", "bad")
		return listenerCond(bad, "other", "Programmed").Reason == "Pending"
	})
	if c2.Generation() != 2 {
		t.Errorf("a retry counted as a new config: generation %d", c2.Generation())
	}
	app.setUnbindable(nil)
	waitFor(t, "all bound", func() bool {
		bad := findStatus(status.last(), "Gateway", "bad")
		return findCond(bad.Conditions, "Programmed").Status == metav1.ConditionTrue && len(bad.Addresses) == 2
	})
	n := app.count()
	time.Sleep(1500 * time.Millisecond)
	if app.count() != n {
		t.Error("still retrying with every listener bound")
	}
	cancel()
	<-done
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
