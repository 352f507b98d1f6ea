package dashboard

import (
	"embed"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

//go:embed assets/index.html assets/app.js assets/style.css
var assets embed.FS

const (
	// writeTimeout bounds one write to a client; a client that cannot
	// take a snapshot in that time is disconnected.
	writeTimeout = 5 * time.Second
	// pingInterval keeps idle connections alive through proxies;
	// readTimeout drops clients that stop answering pings.
	pingInterval = 20 * time.Second
	readTimeout  = 60 * time.Second
	// queueLen is how many snapshots wait for a client at most.
	queueLen = 2
)

// Handler serves the dashboard; mount it at /dashboard/ on the admin mux:
//
//	GET /dashboard/               the page
//	GET /dashboard/app.js, style.css
//	GET /dashboard/api/snapshot   the current Snapshot as JSON
//	GET /dashboard/ws             a WebSocket pushing a Snapshot every Interval
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /dashboard", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/dashboard/", http.StatusMovedPermanently)
	})
	mux.HandleFunc("GET /dashboard/{$}", asset("assets/index.html", "text/html; charset=utf-8"))
	mux.HandleFunc("GET /dashboard/app.js", asset("assets/app.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /dashboard/style.css", asset("assets/style.css", "text/css; charset=utf-8"))
	mux.HandleFunc("GET /dashboard/api/snapshot", d.serveSnapshot)
	mux.HandleFunc("GET /dashboard/ws", d.serveWS)
	return securityHeaders(mux)
}

// securityHeaders forbids the page everything it does not need: it loads
// its own script and style and talks to its own host only.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "+
			"img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

func asset(name, ctype string) http.HandlerFunc {
	body, err := assets.ReadFile(name)
	if err != nil {
		panic("dashboard: missing embedded " + name)
	}
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ctype)
		w.Write(body)
	}
}

func (d *Dashboard) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	b, err := d.snapshotJSON()
	if err != nil {
		http.Error(w, "snapshot: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

// sameOrigin accepts requests without an Origin (not a browser) and
// browsers on a page of this very host, so that another site open in a
// browser on the admin port's machine cannot read the dashboard.
func sameOrigin(r *http.Request) bool {
	origin := r.Header["Origin"]
	if len(origin) == 0 {
		return true
	}
	u, err := url.Parse(origin[0])
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

var upgrader = websocket.Upgrader{
	HandshakeTimeout: 10 * time.Second,
	ReadBufferSize:   1024,
	WriteBufferSize:  16 << 10,
	CheckOrigin:      sameOrigin,
}

// hub is the set of connected WebSocket clients and the goroutine feeding
// them, which runs only while there are clients.
type hub struct {
	mu      sync.Mutex
	max     int
	clients map[*client]struct{}
	pending int // upgrades in progress, counted against max
	running bool
	closed  bool
	stop    chan struct{}
	// dropped counts snapshots a slow client never got.
	dropped atomic.Uint64
	// writeTimeout is writeTimeout; tests lengthen it.
	writeTimeout time.Duration
}

func (h *hub) init(max int) {
	h.max = max
	h.clients = map[*client]struct{}{}
	h.stop = make(chan struct{})
	h.writeTimeout = writeTimeout
}

// client is one WebSocket connection and its bounded queue.
type client struct {
	conn *websocket.Conn
	send chan []byte
	done chan struct{}
	once sync.Once
}

// offer queues b without blocking; when the queue is full the oldest
// snapshot makes room. It reports whether a snapshot was dropped.
func (c *client) offer(b []byte) (dropped bool) {
	for range 4 {
		select {
		case c.send <- b:
			return dropped
		default:
		}
		select {
		case <-c.send:
			dropped = true
		default:
		}
	}
	return true
}

func (c *client) close() {
	c.once.Do(func() {
		close(c.done)
		c.conn.Close()
	})
}

func (d *Dashboard) serveWS(w http.ResponseWriter, r *http.Request) {
	h := &d.hub
	h.mu.Lock()
	if h.closed || len(h.clients)+h.pending >= h.max {
		h.mu.Unlock()
		http.Error(w, "too many dashboard clients", http.StatusServiceUnavailable)
		return
	}
	h.pending++
	h.mu.Unlock()

	conn, err := upgrader.Upgrade(w, r, nil)
	h.mu.Lock()
	h.pending--
	if err != nil {
		h.mu.Unlock()
		d.log.Debug("dashboard websocket refused", "remote", r.RemoteAddr, "error", err.Error())
		return // Upgrade answered the request
	}
	c := &client{conn: conn, send: make(chan []byte, queueLen), done: make(chan struct{})}
	if h.closed {
		h.mu.Unlock()
		conn.Close()
		return
	}
	h.clients[c] = struct{}{}
	if !h.running {
		h.running = true
		go d.broadcastLoop()
	}
	h.mu.Unlock()

	if b, err := d.snapshotJSON(); err == nil {
		if c.offer(b) {
			h.dropped.Add(1)
		}
	}
	go d.writeLoop(c)
	d.readLoop(c)
}

// readLoop reads (and discards) what the client sends, so that pings,
// pongs and close frames are handled, until the connection ends.
func (d *Dashboard) readLoop(c *client) {
	defer d.remove(c)
	c.conn.SetReadLimit(4 << 10)
	c.conn.SetReadDeadline(time.Now().Add(readTimeout))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(readTimeout))
	})
	for {
		if _, _, err := c.conn.NextReader(); err != nil {
			return
		}
		c.conn.SetReadDeadline(time.Now().Add(readTimeout))
	}
}

// writeLoop sends queued snapshots and pings until the client goes away
// or a write fails or times out.
func (d *Dashboard) writeLoop(c *client) {
	defer d.remove(c)
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	for {
		select {
		case b := <-c.send:
			c.conn.SetWriteDeadline(time.Now().Add(d.hub.writeTimeout))
			if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
				d.log.Debug("dashboard client dropped", "remote", c.conn.RemoteAddr().String(), "error", err.Error())
				return
			}
		case <-ping.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(d.hub.writeTimeout)); err != nil {
				return
			}
		case <-c.done:
			return
		}
	}
}

func (d *Dashboard) remove(c *client) {
	c.close()
	d.hub.mu.Lock()
	delete(d.hub.clients, c)
	d.hub.mu.Unlock()
}

// broadcastLoop pushes a snapshot every interval while there are clients.
func (d *Dashboard) broadcastLoop() {
	t := time.NewTicker(d.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-d.hub.stop:
			return
		}
		d.hub.mu.Lock()
		if len(d.hub.clients) == 0 || d.hub.closed {
			d.hub.running = false
			d.hub.mu.Unlock()
			return
		}
		d.hub.mu.Unlock()
		d.broadcast()
	}
}

// broadcast builds one snapshot and queues it for every client; it never
// waits for a client.
func (d *Dashboard) broadcast() {
	b, err := d.snapshotJSON()
	if err != nil {
		d.log.Error("dashboard snapshot", "error", err.Error())
		return
	}
	d.hub.mu.Lock()
	defer d.hub.mu.Unlock()
	for c := range d.hub.clients {
		if c.offer(b) {
			d.hub.dropped.Add(1)
		}
	}
}

// Clients is the number of connected WebSocket clients.
func (d *Dashboard) Clients() int {
	d.hub.mu.Lock()
	defer d.hub.mu.Unlock()
	return len(d.hub.clients)
}

// Close disconnects every WebSocket client and refuses new ones; the
// counters keep working.
func (d *Dashboard) Close() error {
	d.hub.mu.Lock()
	defer d.hub.mu.Unlock()
	if d.hub.closed {
		return nil
	}
	d.hub.closed = true
	close(d.hub.stop)
	for c := range d.hub.clients {
		c.close()
	}
	return nil
}
