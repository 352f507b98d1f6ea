package dataplane

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
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
// traffic: a route change on a kept socket, a config that cannot be bound or
// compiled (the old one stays), and a removed listener.
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
	if err := d.Apply(&ir.Config{Listeners: []*ir.Listener{listenerTo(a1, one, "")}}); err != nil {
		t.Fatal(err)
	}
	if !d.Ready() {
		t.Fatal("not ready after Apply")
	}
	if got, err := get(t, keepAlive, a1); err != nil || got != "one" {
		t.Fatalf("first config: %q %v", got, err)
	}

	// Same socket, new route; plus a new listener.
	if err := d.Apply(&ir.Config{Listeners: []*ir.Listener{listenerTo(a1, two, ""), listenerTo(a2, one, "")}}); err != nil {
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

	// A port held by someone else: nothing changes.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	err = d.Apply(&ir.Config{Listeners: []*ir.Listener{listenerTo(a1, one, ""), listenerTo(taken.Addr().String(), one, "")}})
	if err == nil || !strings.Contains(err.Error(), "bind") {
		t.Fatalf("taken port: err = %v", err)
	}
	if got, _ := get(t, keepAlive, a1); got != "two" {
		t.Fatalf("a failed Apply changed the served config: %q", got)
	}

	// A config that does not compile: nothing changes.
	if err := d.Apply(&ir.Config{Listeners: []*ir.Listener{listenerTo(a1, one, "(")}}); err == nil {
		t.Fatal("invalid regex applied")
	}
	if got, _ := get(t, keepAlive, a1); got != "two" {
		t.Fatalf("a failed Apply changed the served config: %q", got)
	}

	// Removing a listener closes its socket after the drain.
	if err := d.Apply(&ir.Config{Listeners: []*ir.Listener{listenerTo(a2, two, "")}}); err != nil {
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
