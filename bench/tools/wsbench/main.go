// Command wsbench measures WebSocket echo message rate for bench/protocols.sh.
//
//	wsbench server -addr 127.0.0.1:9061
//	    echo server (gorilla/websocket): every message comes back as it came,
//	    on any path; writes "listening ADDR" on stdout once bound.
//	wsbench client -url ws://127.0.0.1:8161/ -c 50 -d 8s -size 128
//	    opens c connections; each sends a message of size bytes, waits for
//	    its echo, and repeats until d has passed (request/response, one
//	    message in flight per connection). Prints one line:
//	    "conns=50 msgs=N secs=S rate=R p50_ms=X p99_ms=Y errors=E"
//	    (msgs = echoes received and checked; errors = failed dials, writes,
//	    reads and wrong echoes). Exit 1 if no message came back at all.
//	wsbench probe -url ws://127.0.0.1:8161/
//	    one connection, one echo; exit 0 if it came back intact.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	mode, args := os.Args[1], os.Args[2:]
	var err error
	switch mode {
	case "server":
		err = server(args)
	case "client":
		err = client(args)
	case "probe":
		err = probe(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsbench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: wsbench server|client|probe [flags] (wsbench MODE -h for the flags)")
	os.Exit(2)
}

func server(args []string) error {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:9061", "listen address")
	hold := fs.Duration("hold", time.Hour, "stop after this long (a bound for stray runs)")
	fs.Parse(args)

	up := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade has answered with an error status
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
	})
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", ln.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case <-sig:
		case <-time.After(*hold):
		}
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func dial(url string) (*websocket.Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %v (HTTP %d)", url, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial %s: %v", url, err)
	}
	return c, nil
}

// echo sends msg and checks that the next message is the same bytes.
func echo(c *websocket.Conn, msg []byte, deadline time.Time) error {
	c.SetWriteDeadline(deadline)
	c.SetReadDeadline(deadline)
	if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
		return err
	}
	_, got, err := c.ReadMessage()
	if err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo differs: sent %d bytes, got %d", len(msg), len(got))
	}
	return nil
}

func probe(args []string) error {
	fs := flag.NewFlagSet("probe", flag.ExitOnError)
	url := fs.String("url", "ws://127.0.0.1:9061/", "WebSocket URL")
	timeout := fs.Duration("timeout", 2*time.Second, "deadline for the whole probe")
	fs.Parse(args)
	c, err := dial(*url)
	if err != nil {
		return err
	}
	defer c.Close()
	return echo(c, []byte("wsbench probe"), time.Now().Add(*timeout))
}

func client(args []string) error {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	url := fs.String("url", "ws://127.0.0.1:9061/", "WebSocket URL")
	conns := fs.Int("c", 50, "connections")
	dur := fs.Duration("d", 8*time.Second, "how long to send")
	size := fs.Int("size", 128, "message size in bytes")
	ioTimeout := fs.Duration("timeout", 5*time.Second, "deadline for one echo")
	fs.Parse(args)
	if *conns < 1 || *size < 1 || *dur <= 0 {
		return errors.New("-c, -size and -d must be positive")
	}

	// Dial every connection first, so the timed part is messages only.
	cs := make([]*websocket.Conn, 0, *conns)
	var errs atomic.Int64
	var firstErr atomic.Value
	note := func(err error) {
		errs.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	for i := 0; i < *conns; i++ {
		c, err := dial(*url)
		if err != nil {
			note(err)
			continue
		}
		cs = append(cs, c)
	}

	lat := make([][]time.Duration, len(cs))
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(*dur)
	for i, c := range cs {
		wg.Add(1)
		go func(i int, c *websocket.Conn) {
			defer wg.Done()
			defer c.Close()
			msg := bytes.Repeat([]byte{byte('a' + i%26)}, *size)
			l := make([]time.Duration, 0, 1<<14)
			for {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				if err := echo(c, msg, t0.Add(*ioTimeout)); err != nil {
					note(err)
					break
				}
				l = append(l, time.Since(t0))
			}
			c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			lat[i] = l
		}(i, c)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()

	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := int(p*float64(len(all))+0.5) - 1
		i = max(0, min(i, len(all)-1))
		return float64(all[i]) / 1e6
	}
	fmt.Printf("conns=%d msgs=%d secs=%.2f rate=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d\n",
		len(cs), len(all), secs, float64(len(all))/secs, pct(0.50), pct(0.99), errs.Load())
	if e, ok := firstErr.Load().(string); ok {
		fmt.Fprintln(os.Stderr, "wsbench: first error:", e)
	}
	if len(all) == 0 {
		return errors.New("no echo came back")
	}
	return nil
}
