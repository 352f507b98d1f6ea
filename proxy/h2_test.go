package proxy

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// TestH2CRespectsMaxConcurrentStreams sends more concurrent requests than
// an h2c backend allows streams per connection: all succeed, no connection
// ever carries more streams than the backend's SETTINGS_MAX_CONCURRENT_STREAMS,
// and connections are reused rather than opened per request.
func TestH2CRespectsMaxConcurrentStreams(t *testing.T) {
	const maxStreams, requests = 2, 12
	type connKey struct{}
	var mu sync.Mutex
	active := map[net.Conn]int{}
	conns := map[net.Conn]bool{}
	var worst atomic.Int32
	var arrived atomic.Int32

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := r.Context().Value(connKey{}).(net.Conn)
		mu.Lock()
		active[c]++
		conns[c] = true
		if n := int32(active[c]); n > worst.Load() {
			worst.Store(n)
		}
		mu.Unlock()
		arrived.Add(1)
		// Hold the stream a while so that the requests overlap and the
		// stream limit binds.
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		active[c]--
		mu.Unlock()
		w.Write([]byte("ok"))
	}))
	srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) }
	p := &http.Protocols{}
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = p
	srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: maxStreams}
	srv.Start()
	defer srv.Close()

	f := NewForwarder()
	defer f.Close()
	b := &ir.Backend{Name: "b", Protocol: ir.BackendH2C}
	ep := &ir.Endpoint{Address: srv.Listener.Addr().String()}
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	for i := 0; i < requests; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := httptest.NewRecorder()
			out := &Outbound{Method: "GET", RequestURI: "/", Host: "x", Header: http.Header{}, Deadline: time.Now().Add(15 * time.Second)}
			if err := f.Forward(context.Background(), b, ep, out, w, w.WriteHeader); err != nil {
				errs <- err
				return
			}
			if w.Body.String() != "ok" {
				errs <- &UpstreamError{Kind: ErrProtocol, Err: net.ErrClosed}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := worst.Load(); got > maxStreams {
		t.Errorf("a connection carried %d concurrent streams, backend allows %d", got, maxStreams)
	}
	mu.Lock()
	n := len(conns)
	mu.Unlock()
	t.Logf("%d connections, %d requests arrived", n, arrived.Load())
	if n < 2 || n >= requests {
		t.Errorf("%d connections for %d overlapping requests at %d streams each; want more than one (the limit binds) and fewer than one per request (reuse)", n, requests, maxStreams)
	}

}
