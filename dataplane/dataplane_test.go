package dataplane

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// handedOut are the addresses freeAddr returned: the kernel may give a
// port just closed again, and two listeners of one test must differ.
var handedOut sync.Map

func freeAddr(t *testing.T) string {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if _, dup := handedOut.LoadOrStore(addr, true); !dup {
			return addr
		}
	}
}

func namedBackend(t *testing.T, name string) *ir.Backend {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return &ir.Backend{Name: "backend/default/" + name, Protocol: ir.BackendHTTP1,
		Endpoints: []ir.Endpoint{{Address: srv.Listener.Addr().String()}}}
}

func listenerTo(addr string, b *ir.Backend, pathRegex string) *ir.Listener {
	m := ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/"}}
	if pathRegex != "" {
		m.Path = ir.PathMatch{Type: ir.PathRegularExpression, Value: pathRegex}
	}
	return &ir.Listener{Name: addr, Address: addr, Protocol: ir.ProtocolHTTP,
		Hosts: []*ir.ListenerHost{{Name: "default/gw/http", Routes: []*ir.Route{{
			Name: "default/r", Match: m, Backends: []ir.WeightedBackend{{Weight: 1, Target: b}},
		}}}}}
}

// serveRoutes applies one HTTP listener with routes on a fresh data plane
// for the rest of the test and returns its address.
func serveRoutes(t *testing.T, routes ...*ir.Route) string {
	t.Helper()
	addr := freeAddr(t)
	d := New(Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), DrainTimeout: time.Second})
	t.Cleanup(func() { d.Shutdown(context.Background()) })
	if _, err := d.Apply(&ir.Config{Listeners: []*ir.Listener{{Name: addr, Address: addr, Protocol: ir.ProtocolHTTP,
		Hosts: []*ir.ListenerHost{{Name: "default/gw/http", Routes: routes}}}}}); err != nil {
		t.Fatal(err)
	}
	return addr
}

func get(t *testing.T, c *http.Client, addr string) (string, error) {
	t.Helper()
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestApply walks the data plane through the reload cases that matter to
// traffic: a route change on a kept socket, a listener that cannot be bound
// (the rest applies), a config that cannot be compiled (the old one stays),
// and a removed listener.
func TestApply(t *testing.T) {
	d := New(Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), DrainTimeout: time.Second})
	defer d.Shutdown(context.Background())
	one, two := namedBackend(t, "one"), namedBackend(t, "two")
	a1, a2 := freeAddr(t), freeAddr(t)
	keepAlive := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 5 * time.Second}
	reused := 0
	keepAlive.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		reused--
		var dl net.Dialer
		return dl.DialContext(ctx, network, addr)
	}

	if d.Ready() {
		t.Fatal("ready before any config")
	}
	if _, err := d.Apply(&ir.Config{Listeners: []*ir.Listener{listenerTo(a1, one, "")}}); err != nil {
		t.Fatal(err)
	}
	if !d.Ready() {
		t.Fatal("not ready after Apply")
	}
	if got, err := get(t, keepAlive, a1); err != nil || got != "one" {
		t.Fatalf("first config: %q %v", got, err)
	}

	// Same socket, new route; plus a new listener.
	if _, err := d.Apply(&ir.Config{Listeners: []*ir.Listener{listenerTo(a1, two, ""), listenerTo(a2, one, "")}}); err != nil {
		t.Fatal(err)
	}
	if got, err := get(t, keepAlive, a1); err != nil || got != "two" {
		t.Fatalf("after route change: %q %v", got, err)
	}
	if reused != -1 {
		t.Errorf("keep-alive connection not reused across Apply: %d dials", -reused)
	}
	if got, err := get(t, http.DefaultClient, a2); err != nil || got != "one" {
		t.Fatalf("new listener: %q %v", got, err)
	}

	// A port held by someone else: the rest applies, that listener is
	// reported with its bind error.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	unbound, err := d.Apply(&ir.Config{Listeners: []*ir.Listener{listenerTo(a1, one, ""), listenerTo(a2, one, ""), listenerTo(taken.Addr().String(), one, "")}})
	if err != nil || len(unbound) != 1 || unbound[0].Listener.Address != taken.Addr().String() || !errors.Is(unbound[0].Err, syscall.EADDRINUSE) {
		t.Fatalf("taken port: unbound %v, err %v", unbound, err)
	}
	if got, _ := get(t, keepAlive, a1); got != "one" {
		t.Fatalf("the bindable listener did not get its new route: %q", got)
	}
	if !d.Ready() {
		t.Fatal("not ready with one of two listeners bound")
	}

	// A config that does not compile: nothing changes.
	if _, err := d.Apply(&ir.Config{Listeners: []*ir.Listener{listenerTo(a1, two, "(")}}); err == nil {
		t.Fatal("invalid regex applied")
	}
	if got, _ := get(t, keepAlive, a1); got != "one" {
		t.Fatalf("a failed Apply changed the served config: %q", got)
	}

	// Removing a listener closes its socket after the drain.
	if _, err := d.Apply(&ir.Config{Listeners: []*ir.Listener{listenerTo(a2, two, "")}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", a1, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("removed listener still accepts")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, err := get(t, http.DefaultClient, a2); err != nil || got != "two" {
		t.Fatalf("kept listener: %q %v", got, err)
	}
	if addrs := d.Addresses(); len(addrs) != 1 || addrs[0] != a2 {
		t.Errorf("Addresses = %v", addrs)
	}
}

// TestApplyUnbound: listeners that cannot be bound (an address not on this
// host, a port another socket holds) are reported while the others serve;
// applying the same config again binds the port once it is free, and a
// config whose every listener is unbound is not ready.
func TestApplyUnbound(t *testing.T) {
	d := New(Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), DrainTimeout: time.Second})
	defer d.Shutdown(context.Background())
	one, two := namedBackend(t, "one"), namedBackend(t, "two")
	holder, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	busy := holder.Addr().String()
	good := freeAddr(t) // not busy's port: that one is held
	// 192.0.2.0/24 is TEST-NET-1: never an address of this host.
	foreign := net.JoinHostPort("192.0.2.1", strings.Split(freeAddr(t), ":")[1])
	udpFree, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udpAddr := udpFree.LocalAddr().String()
	udpFree.Close()
	udp := &ir.Listener{Name: "192.0.2.1:udp", Address: net.JoinHostPort("192.0.2.1", strings.Split(udpAddr, ":")[1]), Protocol: ir.ProtocolUDP,
		Hosts: []*ir.ListenerHost{{Name: "default/bad/udp", L4Routes: []*ir.L4Route{{Name: "default/u", Backends: []ir.WeightedBackend{{Weight: 1, Target: two}}}}}}}

	cfg := &ir.Config{Listeners: []*ir.Listener{listenerTo(busy, two, ""), listenerTo(foreign, two, ""), listenerTo(good, one, ""), udp}}
	unbound, err := d.Apply(cfg)
	if err != nil {
		t.Fatal(err)
	}
	why := map[string]error{}
	for _, u := range unbound {
		why[u.Listener.Address] = u.Err
	}
	if len(unbound) != 3 || !errors.Is(why[busy], syscall.EADDRINUSE) || !errors.Is(why[foreign], syscall.EADDRNOTAVAIL) || !errors.Is(why[udp.Address], syscall.EADDRNOTAVAIL) {
		t.Fatalf("unbound = %v", unbound)
	}
	if got, err := get(t, http.DefaultClient, good); err != nil || got != "one" {
		t.Fatalf("bindable listener: %q %v", got, err)
	}
	if !d.Ready() {
		t.Fatal("not ready although a listener serves")
	}
	if addrs := d.Addresses(); len(addrs) != 1 || addrs[0] != good {
		t.Errorf("Addresses = %v", addrs)
	}

	// The holder goes away: the same config applied again binds the port.
	holder.Close()
	unbound, err = d.Apply(cfg)
	if err != nil || len(unbound) != 2 {
		t.Fatalf("retry: unbound %v, err %v", unbound, err)
	}
	if got, err := get(t, http.DefaultClient, busy); err != nil || got != "two" {
		t.Fatalf("listener bound on retry: %q %v", got, err)
	}
	if got, err := get(t, http.DefaultClient, good); err != nil || got != "one" {
		t.Fatalf("kept listener after retry: %q %v", got, err)
	}

	// Nothing bindable at all: applied, but the replica is not ready.
	d2 := New(Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), DrainTimeout: time.Second})
	defer d2.Shutdown(context.Background())
	if unbound, err := d2.Apply(&ir.Config{Listeners: []*ir.Listener{listenerTo(foreign, one, "")}}); err != nil || len(unbound) != 1 {
		t.Fatalf("foreign only: unbound %v, err %v", unbound, err)
	}
	if d2.Ready() {
		t.Fatal("ready with no listener bound")
	}
	if _, err := d2.Apply(&ir.Config{}); err != nil || !d2.Ready() {
		t.Fatalf("empty config: err %v, ready %v", err, d2.Ready())
	}
}
