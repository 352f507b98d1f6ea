package l4

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/upstream"
)

func TestTCPConcurrentStreams(t *testing.T) {
	be := startEcho(t)
	gw := startGateway(t, tcpListenerTo(be.addr()), quietOptions())
	const streams, size = 50, 256 << 10
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", gw.Addr().String(), ioTimeout)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := roundTrip(c, size); err != nil {
				errs <- fmt.Errorf("stream %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := be.accepted.Load(); got != streams {
		t.Errorf("backend accepted %d, want %d", got, streams)
	}
	waitFor(t, "connections to end", func() bool { return gw.Stats().Active == 0 })
	if st := gw.Stats(); st.Accepted != streams {
		t.Errorf("stats %+v, want %d accepted", st, streams)
	}
}

func TestTCPHalfClose(t *testing.T) {
	t.Run("client closes first", func(t *testing.T) {
		be := startEcho(t)
		gw := startGateway(t, tcpListenerTo(be.addr()), quietOptions())
		c := dial(t, gw.Addr())
		want := bytes.Repeat([]byte("half-close "), 10000)
		go func() {
			c.Write(want)
			c.CloseWrite()
		}()
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("got %d bytes back, want %d", len(got), len(want))
		}
	})
	t.Run("backend closes first", func(t *testing.T) {
		received := make(chan []byte, 1)
		be := startBackend(t, loopbackListener(t), func(c net.Conn) {
			c.Write([]byte("greeting"))
			c.(*net.TCPConn).CloseWrite()
			b, _ := io.ReadAll(c)
			received <- b
		})
		gw := startGateway(t, tcpListenerTo(be.addr()), quietOptions())
		c := dial(t, gw.Addr())
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "greeting" {
			t.Fatalf("got %q, %v; want the greeting then EOF", got, err)
		}
		// Our writing half is still open.
		if _, err := c.Write([]byte("late reply")); err != nil {
			t.Fatal(err)
		}
		c.CloseWrite()
		if b := <-received; string(b) != "late reply" {
			t.Fatalf("backend got %q", b)
		}
	})
}

func TestTCPWeightedSplit(t *testing.T) {
	a, b, zero := startEcho(t), startEcho(t), startEcho(t)
	l := streamListener(ir.ProtocolTCP, &ir.ListenerHost{Name: "h", L4Routes: []*ir.L4Route{l4Route("ns/r", nil,
		weighted(1, irBackend("a", a.addr())),
		weighted(1, irBackend("b", b.addr())),
		weighted(0, irBackend("zero", zero.addr())),
	)}})
	gw := startGateway(t, l, quietOptions())
	const conns = 60
	for range conns {
		c := dial(t, gw.Addr())
		if err := roundTrip(c, 16); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	na, nb := a.accepted.Load(), b.accepted.Load()
	if zero.accepted.Load() != 0 || na+nb != conns || na == 0 || nb == 0 {
		t.Fatalf("a=%d b=%d zero=%d; want %d split over a and b, none to zero", na, nb, zero.accepted.Load(), conns)
	}
}

func TestTCPSetTableKeepsOpenConnections(t *testing.T) {
	oldBE, newBE := startEcho(t), startEcho(t)
	gw := startGateway(t, tcpListenerTo(oldBE.addr()), quietOptions())
	open := dial(t, gw.Addr())
	if err := roundTrip(open, 1024); err != nil {
		t.Fatal(err)
	}
	gw.SetTable(mustCompile(t, tcpListenerTo(newBE.addr())))
	if err := roundTrip(open, 1024); err != nil {
		t.Fatalf("open connection after reload: %v", err)
	}
	fresh := dial(t, gw.Addr())
	if err := roundTrip(fresh, 1024); err != nil {
		t.Fatal(err)
	}
	if o, n := oldBE.accepted.Load(), newBE.accepted.Load(); o != 1 || n != 1 {
		t.Fatalf("old backend %d, new %d connections; want 1 and 1", o, n)
	}
}

func TestTCPShutdown(t *testing.T) {
	t.Run("drains", func(t *testing.T) {
		be := startEcho(t)
		gw := startGateway(t, tcpListenerTo(be.addr()), quietOptions())
		c := dial(t, gw.Addr())
		if err := roundTrip(c, 1024); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- gw.Shutdown(context.Background()) }()
		waitFor(t, "the socket to close", func() bool {
			nc, err := net.Dial("tcp", gw.Addr().String())
			if err == nil {
				nc.Close()
			}
			return err != nil
		})
		if err := roundTrip(c, 64<<10); err != nil {
			t.Fatalf("open connection while draining: %v", err)
		}
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v with a connection open", err)
		default:
		}
		c.Close()
		if err := <-done; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	})
	t.Run("closes what is left when ctx ends", func(t *testing.T) {
		be := startEcho(t)
		gw := startGateway(t, tcpListenerTo(be.addr()), quietOptions())
		c := dial(t, gw.Addr())
		if err := roundTrip(c, 1024); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := gw.Shutdown(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Shutdown: %v, want context.Canceled", err)
		}
		expectClosed(t, c)
		if st := gw.Stats(); st.Active != 0 {
			t.Fatalf("%d connections still active", st.Active)
		}
	})
}

func TestTCPConnectFailure(t *testing.T) {
	var logs logBuffer
	opts := quietOptions()
	opts.Log = logs.logger()
	gw := startGateway(t, tcpListenerTo(closedAddr(t)), opts)
	c := dial(t, gw.Addr())
	expectClosed(t, c)
	if st := gw.Stats(); st.ConnectFailed != 1 {
		t.Fatalf("stats %+v, want 1 connect_failed", st)
	}
	waitFor(t, "the log line", func() bool {
		return strings.Contains(logs.String(), "level=WARN msg=\"l4 connection closed\"")
	})
	for _, want := range []string{"reason=connect_failed", "route=default/r#0", "backend=svc/default/echo:80", "error="} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log %q lacks %q", logs.String(), want)
		}
	}
}

func TestTCPNoRouteOrBackend(t *testing.T) {
	empty := irBackend("empty")
	tests := []struct {
		name      string
		routes    []*ir.L4Route
		noRoute   uint64
		noBackend uint64
	}{
		{"no route", nil, 1, 0},
		{"no backends", []*ir.L4Route{l4Route("ns/r", nil)}, 0, 1},
		{"all weights zero", []*ir.L4Route{l4Route("ns/r", nil, weighted(0, irBackend("a", "127.0.0.1:1")))}, 0, 1},
		{"invalid reference", []*ir.L4Route{l4Route("ns/r", nil, weighted(1, nil))}, 0, 1},
		{"no endpoints", []*ir.L4Route{l4Route("ns/r", nil, weighted(1, empty))}, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := streamListener(ir.ProtocolTCP, &ir.ListenerHost{Name: "h", L4Routes: tc.routes})
			gw := startGateway(t, l, quietOptions())
			expectClosed(t, dial(t, gw.Addr()))
			st := gw.Stats()
			if st.NoRoute != tc.noRoute || st.NoBackend != tc.noBackend || st.ConnectFailed != 0 {
				t.Fatalf("stats %+v, want no_route %d no_backend %d", st, tc.noRoute, tc.noBackend)
			}
		})
	}
	t.Run("nil table", func(t *testing.T) {
		gw, err := Listen(context.Background(), "127.0.0.1:0", quietOptions())
		if err != nil {
			t.Fatal(err)
		}
		gw.Serve()
		defer gw.Shutdown(context.Background())
		expectClosed(t, dial(t, gw.Addr()))
		if st := gw.Stats(); st.NoRoute != 1 {
			t.Fatalf("stats %+v, want no_route 1", st)
		}
	})
}

// A client that sends without ever reading stalls only its own connection.
func TestTCPClientThatNeverReads(t *testing.T) {
	be := startEcho(t)
	gw := startGateway(t, tcpListenerTo(be.addr()), quietOptions())
	stuck := dial(t, gw.Addr())
	var written atomic.Int64
	flowing := make(chan struct{})
	var once sync.Once
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		defer once.Do(func() { close(flowing) })
		chunk := make([]byte, 64<<10)
		// 128 MiB, far more than the socket buffers on the path hold:
		// the writes block once they are full, until stuck is closed.
		for range 2048 {
			n, err := stuck.Write(chunk)
			written.Add(int64(n))
			once.Do(func() { close(flowing) })
			if err != nil {
				return
			}
		}
	}()
	<-flowing
	other := dial(t, gw.Addr())
	if err := roundTrip(other, 256<<10); err != nil {
		t.Fatalf("other client: %v", err)
	}
	stuck.Close()
	<-writerDone
	if written.Load() >= 2048*64<<10 {
		t.Fatal("the stuck client's writes never blocked; the test proves nothing")
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	be := startEcho(t)
	opts := quietOptions()
	opts.IdleTimeout = 50 * time.Millisecond
	gw := startGateway(t, tcpListenerTo(be.addr()), opts)
	c := dial(t, gw.Addr())
	if err := roundTrip(c, 1024); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c)
	waitFor(t, "the idle timeout to be counted", func() bool { return gw.Stats().IdleTimeouts == 1 })
}

func TestTCPPickerAndDialOverride(t *testing.T) {
	a, b := startEcho(t), startEcho(t)
	opts := quietOptions()
	opts.Picker = new(upstream.Balancer)
	var dialed []string
	var mu sync.Mutex
	opts.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, network+" "+addr)
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	gw := startGateway(t, tcpListenerTo(a.addr(), b.addr()), opts)
	for range 4 {
		c := dial(t, gw.Addr())
		if err := roundTrip(c, 16); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	// Round-robin over the two endpoints.
	if na, nb := a.accepted.Load(), b.accepted.Load(); na != 2 || nb != 2 {
		t.Fatalf("endpoints got %d and %d connections, want 2 each", na, nb)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dialed) != 4 || dialed[0] != "tcp "+b.addr() || dialed[1] != "tcp "+a.addr() {
		t.Fatalf("dialed %v", dialed)
	}

	t.Run("dial error", func(t *testing.T) {
		opts := quietOptions()
		opts.DialContext = func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("refused by test")
		}
		gw := startGateway(t, tcpListenerTo(a.addr()), opts)
		expectClosed(t, dial(t, gw.Addr()))
		if st := gw.Stats(); st.ConnectFailed != 1 {
			t.Fatalf("stats %+v, want 1 connect_failed", st)
		}
	})
}
