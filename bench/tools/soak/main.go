// Command soak is the Go side of scripts/soak.sh: echo backends the demo
// backend does not provide, the load loops shell tools do not cover, and
// one sample of the gateway's admin /metrics.
//
//	soak serve -ws 127.0.0.1:19161 -tcp 127.0.0.1:19171
//	    a WebSocket echo server (any path) and a TCP line echo server
//	    (each line comes back as "tcp: LINE"); prints "listening" once both
//	    are bound; stops on SIGINT/SIGTERM or after -hold.
//	soak load -http 127.0.0.1:18080 -ws ws://127.0.0.1:18080/ws -tcp 127.0.0.1:19000 -d 30m
//	    runs until -d has passed (or SIGINT/SIGTERM): -h1 HTTP/1.1
//	    keep-alive loops and -h2c cleartext HTTP/2 loops on -http (0 when
//	    wrk and h2load do that job), -ws-conns WebSockets each echoing a
//	    message every -every (reconnecting after a failure), -tcp-sessions
//	    long TCP sessions echoing every -every, and one new short TCP
//	    session every -every/2. Prints one key=value line per kind:
//	    "kind=h1 requests=N ok=N errors=N non2xx=N reconnects=N".
//	soak sample -admin 127.0.0.1:19901
//	    one scrape of /metrics, printed as "RSS GOROUTINES FDS CONNECTIONS"
//	    (bytes, count, count, sum over meshgate_connections_active).
//
// Every loop is bounded by -d and by -max requests per worker.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/net/http2"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "load":
		err = load(os.Args[2:])
	case "sample":
		err = sample(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: soak serve|load|sample [flags] (soak MODE -h for the flags)")
	os.Exit(2)
}

// stopContext is canceled on SIGINT/SIGTERM or after d.
func stopContext(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case <-sig:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	wsAddr := fs.String("ws", "127.0.0.1:19161", "WebSocket echo server address")
	tcpAddr := fs.String("tcp", "127.0.0.1:19171", "TCP line echo server address")
	hold := fs.Duration("hold", 24*time.Hour, "stop after this long (a bound for stray runs)")
	fs.Parse(args)
	ctx, cancel := stopContext(*hold)
	defer cancel()

	up := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	})}
	wsLn, err := net.Listen("tcp", *wsAddr)
	if err != nil {
		return err
	}
	tcpLn, err := net.Listen("tcp", *tcpAddr)
	if err != nil {
		wsLn.Close()
		return err
	}
	go srv.Serve(wsLn)
	var conns sync.Map
	go func() {
		for {
			c, err := tcpLn.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			go func() {
				defer conns.Delete(c)
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, "tcp: "+line); err != nil {
						return
					}
				}
			}()
		}
	}()
	fmt.Printf("listening ws=%s tcp=%s\n", wsLn.Addr(), tcpLn.Addr())
	<-ctx.Done()
	tcpLn.Close()
	conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
	return srv.Close()
}

// counts is one kind of traffic.
type counts struct {
	kind                                    string
	requests, ok, errors, non2xx, reconnect atomic.Int64
	mu                                      sync.Mutex
	firstErr                                string
}

func (c *counts) fail(err error) {
	c.errors.Add(1)
	c.mu.Lock()
	if c.firstErr == "" {
		c.firstErr = err.Error()
	}
	c.mu.Unlock()
}

func (c *counts) line() string {
	s := fmt.Sprintf("kind=%s requests=%d ok=%d errors=%d non2xx=%d reconnects=%d",
		c.kind, c.requests.Load(), c.ok.Load(), c.errors.Load(), c.non2xx.Load(), c.reconnect.Load())
	if c.firstErr != "" {
		s += fmt.Sprintf(" first_error=%q", c.firstErr)
	}
	return s
}

// pause waits d or until ctx is done; false when ctx is done.
func pause(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func load(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	httpAddr := fs.String("http", "127.0.0.1:18080", "gateway HTTP listener (h1 and h2c)")
	path := fs.String("path", "/", "path of the HTTP requests")
	wsURL := fs.String("ws", "ws://127.0.0.1:18080/ws", "WebSocket URL through the gateway")
	tcpAddr := fs.String("tcp", "127.0.0.1:19000", "gateway TCP listener")
	dur := fs.Duration("d", 30*time.Minute, "how long to run")
	h1 := fs.Int("h1", 0, "HTTP/1.1 keep-alive loops")
	h2c := fs.Int("h2c", 0, "h2c (prior knowledge) loops")
	wsConns := fs.Int("ws-conns", 50, "WebSocket connections")
	tcpSessions := fs.Int("tcp-sessions", 20, "long TCP sessions")
	every := fs.Duration("every", time.Second, "echo interval of each WebSocket and TCP session")
	maxReq := fs.Int("max", 50_000_000, "at most this many requests per worker")
	fs.Parse(args)
	ctx, cancel := stopContext(*dur)
	defer cancel()

	kinds := map[string]*counts{}
	for _, k := range []string{"h1", "h2c", "websocket", "tcp", "tcp-new"} {
		kinds[k] = &counts{kind: k}
	}
	var wg sync.WaitGroup
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	httpLoop := func(c *http.Client, st *counts) {
		defer wg.Done()
		url := "http://" + *httpAddr + *path
		for i := 0; i < *maxReq && ctx.Err() == nil; i++ {
			st.requests.Add(1)
			rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
			req, _ := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
			resp, err := c.Do(req)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			rcancel()
			switch {
			case err != nil && ctx.Err() != nil:
				st.requests.Add(-1) // cut short by the end of the run
			case err != nil:
				st.fail(err)
				pause(ctx, 50*time.Millisecond)
			case resp.StatusCode/100 != 2:
				st.non2xx.Add(1)
			default:
				st.ok.Add(1)
			}
		}
	}
	for i := 0; i < *h1; i++ {
		wg.Add(1)
		tr := &http.Transport{DialContext: dialer.DialContext, MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}
		go httpLoop(&http.Client{Transport: tr}, kinds["h1"])
	}
	for i := 0; i < *h2c; i++ {
		wg.Add(1)
		tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		}}
		go httpLoop(&http.Client{Transport: tr}, kinds["h2c"])
	}

	// WebSockets: echo every interval; after a failure, reconnect.
	for i := 0; i < *wsConns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := kinds["websocket"]
			d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
			var c *websocket.Conn
			connected := false
			defer func() {
				if c != nil {
					c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
					c.Close()
				}
			}()
			pause(ctx, time.Duration(i)*(*every)/time.Duration(max(1, *wsConns))) // spread the echoes
			for n := 0; n < *maxReq && ctx.Err() == nil; n++ {
				if c == nil {
					var err error
					if c, _, err = d.DialContext(ctx, *wsURL, nil); err != nil {
						c = nil
						if ctx.Err() == nil {
							st.fail(err)
						}
						pause(ctx, *every)
						continue
					}
					if connected {
						st.reconnect.Add(1)
					}
					connected = true
				}
				st.requests.Add(1)
				msg := fmt.Sprintf("ws %d msg %d", i, n)
				c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				err := c.WriteMessage(websocket.TextMessage, []byte(msg))
				var got []byte
				if err == nil {
					_, got, err = c.ReadMessage()
				}
				switch {
				case err != nil:
					st.fail(err)
					c.Close()
					c = nil
				case string(got) != msg:
					st.fail(fmt.Errorf("echo %q, want %q", got, msg))
				default:
					st.ok.Add(1)
				}
				pause(ctx, *every)
			}
		}()
	}

	// Long TCP sessions, same pattern.
	echoLine := func(c net.Conn, br *bufio.Reader, line string) error {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, line); err != nil {
			return err
		}
		got, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if got != "tcp: "+line {
			return fmt.Errorf("echo %q, want %q", got, "tcp: "+line)
		}
		return nil
	}
	for i := 0; i < *tcpSessions; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := kinds["tcp"]
			var c net.Conn
			var br *bufio.Reader
			connected := false
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			pause(ctx, time.Duration(i)*(*every)/time.Duration(max(1, *tcpSessions)))
			for n := 0; n < *maxReq && ctx.Err() == nil; n++ {
				if c == nil {
					var err error
					if c, err = dialer.DialContext(ctx, "tcp", *tcpAddr); err != nil {
						c = nil
						if ctx.Err() == nil {
							st.fail(err)
						}
						pause(ctx, *every)
						continue
					}
					br = bufio.NewReader(c)
					if connected {
						st.reconnect.Add(1)
					}
					connected = true
				}
				st.requests.Add(1)
				if err := echoLine(c, br, fmt.Sprintf("session %d line %d\n", i, n)); err != nil {
					st.fail(err)
					c.Close()
					c = nil
				} else {
					st.ok.Add(1)
				}
				pause(ctx, *every)
			}
		}()
	}
	// Short TCP sessions: connect, one echo, close.
	wg.Add(1)
	go func() {
		defer wg.Done()
		st := kinds["tcp-new"]
		for n := 0; n < *maxReq && pause(ctx, *every/2); n++ {
			st.requests.Add(1)
			c, err := dialer.DialContext(ctx, "tcp", *tcpAddr)
			if err != nil {
				st.fail(err)
				continue
			}
			if err := echoLine(c, bufio.NewReader(c), fmt.Sprintf("short %d\n", n)); err != nil {
				st.fail(err)
			} else {
				st.ok.Add(1)
			}
			c.Close()
		}
	}()

	<-ctx.Done()
	wg.Wait()
	for _, k := range []string{"h1", "h2c", "websocket", "tcp", "tcp-new"} {
		if k == "h1" && *h1 == 0 || k == "h2c" && *h2c == 0 {
			continue
		}
		fmt.Println(kinds[k].line())
	}
	return nil
}

func sample(args []string) error {
	fs := flag.NewFlagSet("sample", flag.ExitOnError)
	admin := fs.String("admin", "127.0.0.1:19901", "gateway admin address")
	fs.Parse(args)
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + *admin + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/metrics: %s", resp.Status)
	}
	want := []string{"process_resident_memory_bytes", "go_goroutines", "process_open_fds", "meshgate_connections_active"}
	sums := make([]float64, len(want))
	seen := make([]bool, len(want))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(name, '{'); i >= 0 {
			// Labels may hold spaces: the value follows the closing brace.
			j := strings.LastIndexByte(line, '}')
			name, rest = line[:i], strings.TrimSpace(line[j+1:])
		}
		for k, w := range want {
			if name != w {
				continue
			}
			f := strings.Fields(rest)
			if len(f) == 0 {
				return fmt.Errorf("no value: %s", line)
			}
			v, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				return fmt.Errorf("%s: %v", line, err)
			}
			sums[k] += v
			seen[k] = true
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	for k, w := range want {
		// meshgate_connections_active has no series while nothing is
		// connected; the others must be there.
		if !seen[k] && w != "meshgate_connections_active" {
			return errors.New("/metrics has no " + w)
		}
	}
	fmt.Printf("%.0f %.0f %.0f %.0f\n", sums[0], sums[1], sums[2], sums[3])
	return nil
}
