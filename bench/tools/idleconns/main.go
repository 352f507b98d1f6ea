// Command idleconns opens N HTTP/1.1 keep-alive connections to a server,
// sends one GET on each, reads the whole response, and then keeps every
// connection open and idle. It prints "ready OPEN" on stdout once all
// connections are done (OPEN = how many are still open), then waits until it
// gets SIGINT/SIGTERM or -hold elapses (with -stdin, also until its stdin is
// closed). bench/run.sh
// uses it to measure a proxy's memory per idle keep-alive connection.
//
//	idleconns -addr 127.0.0.1:8093 -n 5000 -host bench.local -path /
//
// Raise the open-file limit (ulimit -n) above N first.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "server address (host:port)")
	n := flag.Int("n", 5000, "number of connections")
	host := flag.String("host", "bench.local", "Host header")
	path := flag.String("path", "/", "request path")
	par := flag.Int("parallel", 64, "connections being opened at once")
	timeout := flag.Duration("timeout", 10*time.Second, "per-connection dial + request timeout")
	deadline := flag.Duration("deadline", 60*time.Second, "give up opening connections after this long")
	hold := flag.Duration("hold", 120*time.Second, "keep the connections open at most this long")
	useStdin := flag.Bool("stdin", false, "also stop when stdin is closed")
	flag.Parse()
	if *n <= 0 || *par <= 0 {
		fmt.Fprintln(os.Stderr, "idleconns: -n and -parallel must be positive")
		os.Exit(2)
	}

	req := []byte("GET " + *path + " HTTP/1.1\r\nHost: " + *host + "\r\nUser-Agent: meshgate-bench-idleconns\r\n\r\n")
	conns := make([]net.Conn, *n)
	var failed atomic.Int64
	var firstErr atomic.Value
	stopAt := time.Now().Add(*deadline)

	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < *par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if time.Now().After(stopAt) {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Errorf("deadline %v reached before connection %d", *deadline, i))
					continue
				}
				c, err := oneRequest(*addr, req, *timeout)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				conns[i] = c
			}
		}()
	}
	start := time.Now()
	for i := 0; i < *n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	open := *n - int(failed.Load())
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "idleconns: %d of %d connections failed; first error: %v\n", failed.Load(), *n, e)
	}
	fmt.Fprintf(os.Stderr, "idleconns: %d connections open after %.2fs\n", open, time.Since(start).Seconds())
	fmt.Printf("ready %d\n", open)

	// Wait: signal, -hold, or (with -stdin) stdin closed.
	done := make(chan struct{}, 1)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	if *useStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			done <- struct{}{}
		}()
	}
	select {
	case <-sig:
	case <-done:
	case <-time.After(*hold):
	}

	// Report how many the server had closed meanwhile (a read that does not
	// time out means EOF or an error). Checked all at once: one at a time
	// would take N milliseconds.
	var closed atomic.Int64
	var cwg sync.WaitGroup
	for _, c := range conns {
		if c == nil {
			continue
		}
		cwg.Add(1)
		go func(c net.Conn) {
			defer cwg.Done()
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
			var b [1]byte
			if _, err := c.Read(b[:]); err == nil || !isTimeout(err) {
				closed.Add(1)
			}
			c.Close()
		}(c)
	}
	cwg.Wait()
	fmt.Fprintf(os.Stderr, "idleconns: %d of %d connections had been closed by the server at exit\n", closed.Load(), open)
}

// oneRequest dials, sends req, reads one full response and returns the
// still-open connection.
func oneRequest(addr string, req []byte, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, err
	}
	// A bufio.Reader sized so that it cannot read past this one response
	// matters little: the server sends nothing more on an idle connection.
	br := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		c.Close()
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	if resp.Close {
		c.Close()
		return nil, fmt.Errorf("server asked to close the connection (Connection: close)")
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
