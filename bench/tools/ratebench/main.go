// Command ratebench sends HTTP/1.1 GET requests at a fixed total rate over a
// fixed number of keep-alive connections, the way wrk2 does, for the
// constant-load latency measure of bench/run.sh. It exists because a general
// load generator costs several times more CPU per request than the proxies
// under test, and the load generator has one CPU (shared with the backend):
// at the rates that matter it would measure itself.
//
//	ratebench -url http://127.0.0.1:8083/ -rate 20000 -c 64 -d 8s
//
// Request i of the run is due at start + i/rate; connection j sends requests
// j, j+c, j+2c, ... one at a time. A request's latency runs from the time it
// was due, not from when it was sent: when an answer is late, the requests
// due meanwhile wait, and their wait counts (no coordinated omission). When
// the connections cannot keep up, requests go out late and the achieved rate
// falls below the requested one; the output shows both.
//
// It prints one line of key=value pairs:
//
//	rate=R conns=C secs=S sent=N achieved=A ok=K non2xx=X errors=E p50_ms=.. p99_ms=.. p999_ms=.. max_ms=.. error="first error"
//
// (achieved = sent / secs, secs = first due time to last send, scaled by
// sent/(sent-1); ok = 2xx/3xx answers, errors = failed dials, writes and
// reads; the percentiles are the nearest rank over every answered request,
// in ms).
// It exits 1 when no request was answered.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

func main() {
	rawURL := flag.String("url", "", "http:// URL to GET")
	rate := flag.Float64("rate", 1000, "requests per second, all connections together")
	conns := flag.Int("c", 64, "keep-alive connections")
	dur := flag.Duration("d", 8*time.Second, "how long to send")
	timeout := flag.Duration("timeout", 10*time.Second, "per-request dial, write and read timeout")
	flag.Parse()
	cfg, err := newConfig(*rawURL, *rate, *conns, *dur, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ratebench:", err)
		os.Exit(2)
	}
	res := run(cfg)
	fmt.Println(res.String())
	if res.ok+res.non2xx == 0 {
		os.Exit(1)
	}
}

// config is a validated run.
type config struct {
	addr, host, path string
	rate             float64
	conns            int
	dur, timeout     time.Duration
}

func newConfig(rawURL string, rate float64, conns int, dur, timeout time.Duration) (config, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return config{}, fmt.Errorf("-url %q: want an http:// URL with a host", rawURL)
	}
	if !(rate > 0) || conns <= 0 || dur <= 0 || timeout <= 0 {
		return config{}, errors.New("-rate, -c, -d and -timeout must be positive")
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return config{addr: addr, host: u.Host, path: u.RequestURI(), rate: rate, conns: conns, dur: dur, timeout: timeout}, nil
}

// result is what one run measured; lat holds the latency of every answered
// request in nanoseconds, last is when the last request went out.
type result struct {
	cfg                    config
	secs                   float64
	sent, ok, non2xx, errs int
	lat                    []int64
	last                   time.Time
	firstErr               string
}

func (r *result) String() string {
	slices.Sort(r.lat)
	q := func(p float64) string {
		if len(r.lat) == 0 {
			return "-"
		}
		i := int(p*float64(len(r.lat))+0.999999) - 1
		i = max(0, min(i, len(r.lat)-1))
		return strconv.FormatFloat(float64(r.lat[i])/1e6, 'f', 3, 64)
	}
	achieved := 0.0
	if r.secs > 0 {
		achieved = float64(r.sent) / r.secs
	}
	return fmt.Sprintf("rate=%.0f conns=%d secs=%.3f sent=%d achieved=%.0f ok=%d non2xx=%d errors=%d p50_ms=%s p99_ms=%s p999_ms=%s max_ms=%s error=%q",
		r.cfg.rate, r.cfg.conns, r.secs, r.sent, achieved, r.ok, r.non2xx, r.errs, q(0.50), q(0.99), q(0.999), q(1), r.firstErr)
}

// run sends for cfg.dur and waits for the answers still due.
func run(cfg config) *result {
	req := []byte("GET " + cfg.path + " HTTP/1.1\r\nHost: " + cfg.host + "\r\nUser-Agent: meshgate-bench-ratebench\r\n\r\n")
	interval := float64(time.Second) / cfg.rate
	total := int(cfg.rate * cfg.dur.Seconds())
	start := time.Now().Add(50 * time.Millisecond) // every connection starts on the same schedule
	parts := make([]*result, cfg.conns)
	var wg sync.WaitGroup
	for j := range cfg.conns {
		parts[j] = &result{}
		wg.Add(1)
		go func(p *result) {
			defer wg.Done()
			w := worker{cfg: cfg, req: req, res: p}
			for i := j; i < total; i += cfg.conns {
				w.one(start.Add(time.Duration(float64(i) * interval)))
			}
			w.close()
		}(parts[j])
	}
	wg.Wait()
	// The sending rate: requests over the time from the first due time to
	// the last send (one interval short of the whole schedule).
	res := &result{cfg: cfg}
	for _, p := range parts {
		if p.last.After(res.last) {
			res.last = p.last
		}
		res.sent += p.sent
		res.ok += p.ok
		res.non2xx += p.non2xx
		res.errs += p.errs
		res.lat = append(res.lat, p.lat...)
		if res.firstErr == "" {
			res.firstErr = p.firstErr
		}
	}
	if res.sent > 1 {
		res.secs = res.last.Sub(start).Seconds() * float64(res.sent) / float64(res.sent-1)
	}
	return res
}

// worker is one connection's loop; it redials after an error or a
// "Connection: close".
type worker struct {
	cfg config
	req []byte
	res *result
	c   net.Conn
	br  *bufio.Reader
}

func (w *worker) one(due time.Time) {
	if d := time.Until(due); d > 0 {
		time.Sleep(d)
	}
	w.res.sent++
	w.res.last = time.Now()
	if w.c == nil {
		c, err := net.DialTimeout("tcp", w.cfg.addr, w.cfg.timeout)
		if err != nil {
			w.fail(fmt.Errorf("dial: %w", err))
			return
		}
		w.c = c
		if w.br == nil {
			w.br = bufio.NewReaderSize(c, 4096)
		} else {
			w.br.Reset(c)
		}
	}
	w.c.SetDeadline(time.Now().Add(w.cfg.timeout))
	if _, err := w.c.Write(w.req); err != nil {
		w.fail(fmt.Errorf("write: %w", err))
		return
	}
	status, keep, err := readResponse(w.br)
	if err != nil {
		w.fail(fmt.Errorf("read: %w", err))
		return
	}
	w.res.lat = append(w.res.lat, int64(time.Since(due)))
	if status >= 200 && status < 400 {
		w.res.ok++
	} else {
		w.res.non2xx++
	}
	if !keep {
		w.close()
	}
}

func (w *worker) fail(err error) {
	w.res.errs++
	if w.res.firstErr == "" {
		w.res.firstErr = err.Error()
	}
	w.close()
}

func (w *worker) close() {
	if w.c != nil {
		w.c.Close()
		w.c = nil
	}
}

// readResponse reads one HTTP/1.1 response to a GET, body included, and
// says whether the connection stays open. It does not allocate on the usual
// path: the generator's CPU is the budget.
func readResponse(br *bufio.Reader) (status int, keep bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.x NNN reason"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, fmt.Errorf("bad status line %q", bytes.TrimSpace(line))
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, false, fmt.Errorf("bad status line %q", bytes.TrimSpace(line))
		}
		status = status*10 + int(c-'0')
	}
	keep = line[7] == '1'
	length, chunked := int64(-1), false
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 { // end of the head
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			length = 0
			for _, c := range value {
				if c < '0' || c > '9' || length > 1<<40 {
					return 0, false, fmt.Errorf("bad Content-Length %q", value)
				}
				length = length*10 + int64(c-'0')
			}
			if len(value) == 0 {
				return 0, false, errors.New("empty Content-Length")
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				keep = true
			}
		}
	}
	switch {
	case status < 200 || status == 204 || status == 304:
	case chunked:
		err = discardChunked(br)
	case length >= 0:
		_, err = br.Discard(int(length))
	default: // the body runs to the end of the connection
		_, err = io.Copy(io.Discard, br)
		keep = false
	}
	return status, keep, err
}

func discardChunked(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(";"))
		n, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("bad chunk size %q", size)
		}
		if n == 0 { // trailers, then the blank line
			for {
				t, err := br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(t, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err := br.Discard(int(n) + 2); err != nil {
			return err
		}
	}
}
