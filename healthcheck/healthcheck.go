// Package healthcheck actively probes upstream endpoints and reports health
// transitions to a Reporter (upstream.Balancer).
//
// One goroutine runs per (backend name, endpoint address) of every backend
// with a HealthCheck. Update is called on every config apply; a loop whose
// backend, address and effective settings (compared by value, after
// defaults) are unchanged keeps running with its counters, so a reload
// neither resets health nor causes a burst of probes.
//
// Semantics:
//   - An endpoint starts healthy and is reported unhealthy only after
//     UnhealthyThreshold consecutive failures (default 3); an unhealthy one
//     is reported healthy again after HealthyThreshold consecutive successes
//     (default 1). These are Envoy's defaults. Interval defaults to 5s,
//     Timeout to 1s; the next probe starts Interval after the previous one
//     ended. Only transitions are reported, each once.
//   - The first probe of a loop is delayed by a random fraction of Interval
//     so many endpoints do not probe in lockstep.
//   - A loop that ends (endpoint or health check removed, settings changed,
//     Close) and had reported its endpoint unhealthy reports it healthy
//     again, so a removed or changed check never leaves an endpoint out of
//     rotation; a restarted loop starts healthy with zeroed counters.
//   - HTTP: GET Path (default "/") with the Host header Host (default the
//     endpoint address) and User-Agent meshgate-healthcheck; over TLS when
//     Backend.TLS is set; HTTP/2 (h2c prior knowledge, or ALPN h2 over TLS)
//     when the backend protocol is H2C, else HTTP/1.1. Healthy when the
//     status is in ExpectedStatuses, or 200-399 if that is empty. Redirects
//     are not followed; at most 4 KiB of body is read; a new connection is
//     opened per probe.
//   - TCP: healthy when a connection opens within Timeout (no TLS handshake
//     even if Backend.TLS is set).
//   - GRPC: grpc.health.v1.Health/Check for GRPCService on a new
//     connection per probe, h2c unless Backend.TLS is set; healthy only when
//     the answer is SERVING.
package healthcheck

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/meshgate/meshgate/ir"
)

// Defaults for unset (zero or negative) HealthCheck fields.
const (
	DefaultInterval           = 5 * time.Second
	DefaultTimeout            = 1 * time.Second
	DefaultHealthyThreshold   = 1
	DefaultUnhealthyThreshold = 3
)

// UserAgent is sent with HTTP and gRPC probes.
const UserAgent = "meshgate-healthcheck"

// maxBody is how much of an HTTP probe's answer is read before closing.
const maxBody = 4 << 10

// Reporter receives health transitions. upstream.Balancer implements it.
type Reporter interface {
	SetHealth(backend, address string, healthy bool)
}

// Checker runs the probe loops. Set its fields before the first Update;
// the zero value (with a nil Reporter) probes but reports nothing.
type Checker struct {
	// Reporter receives transitions; nil reports nothing.
	Reporter Reporter
	// Log receives transitions and configuration problems; nil discards.
	Log *slog.Logger
	// DialContext opens every probe connection; nil uses a net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	updateMu sync.Mutex // serializes Update and Close
	closed   bool

	mu    sync.Mutex // guards loops
	loops map[loopKey]*loop
}

// EndpointStatus is one probed endpoint, for the admin API.
type EndpointStatus struct {
	Backend string             `json:"backend"`
	Address string             `json:"address"`
	Type    ir.HealthCheckType `json:"type"`
	Healthy bool               `json:"healthy"`
	// LastError is the last probe's error; empty after a success.
	LastError string `json:"lastError,omitempty"`
	// LastCheck is when the last probe ended; zero before the first.
	LastCheck            time.Time `json:"lastCheck,omitzero"`
	ConsecutiveSuccesses int       `json:"consecutiveSuccesses"`
	ConsecutiveFailures  int       `json:"consecutiveFailures"`
}

type loopKey struct{ backend, address string }

// settings is everything a probe depends on, with defaults applied; it is
// comparable so loops are matched by value.
type settings struct {
	typ                ir.HealthCheckType
	interval, timeout  time.Duration
	healthy, unhealthy int
	path, host         string
	expected           string // sorted, comma-separated
	grpcService        string
	protocol           ir.BackendProtocol
	tls                bool
	serverName, caPEM  string
	// clientCertPEM and clientKeyPEM are the certificate the gateway
	// presents to the backend (Gateway spec.tls.backend).
	clientCertPEM, clientKeyPEM string
}

func settingsOf(b *ir.Backend) settings {
	hc := b.HealthCheck
	s := settings{
		typ:         hc.Type,
		interval:    hc.Interval,
		timeout:     hc.Timeout,
		healthy:     hc.HealthyThreshold,
		unhealthy:   hc.UnhealthyThreshold,
		path:        hc.Path,
		host:        hc.Host,
		grpcService: hc.GRPCService,
		protocol:    b.Protocol,
	}
	if s.interval <= 0 {
		s.interval = DefaultInterval
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.healthy <= 0 {
		s.healthy = DefaultHealthyThreshold
	}
	if s.unhealthy <= 0 {
		s.unhealthy = DefaultUnhealthyThreshold
	}
	if s.path == "" {
		s.path = "/"
	} else if !strings.HasPrefix(s.path, "/") {
		s.path = "/" + s.path
	}
	if len(hc.ExpectedStatuses) > 0 {
		codes := slices.Clone(hc.ExpectedStatuses)
		slices.Sort(codes)
		codes = slices.Compact(codes)
		parts := make([]string, len(codes))
		for i, c := range codes {
			parts[i] = strconv.Itoa(c)
		}
		s.expected = strings.Join(parts, ",")
	}
	if b.TLS != nil {
		s.tls = true
		s.serverName = b.TLS.ServerName
		s.caPEM = string(b.TLS.CAPEM)
		s.clientCertPEM, s.clientKeyPEM = string(b.TLS.ClientCertPEM), string(b.TLS.ClientKeyPEM)
	}
	return s
}

// state is a loop's counters; guarded by loop.mu.
type state struct {
	healthy   bool
	successes int
	failures  int
	lastErr   string
	lastCheck time.Time
}

// observe records one probe result and reports whether health flipped.
func (s *state) observe(err error, now time.Time, healthyThreshold, unhealthyThreshold int) bool {
	s.lastCheck = now
	if err == nil {
		s.successes++
		s.failures = 0
		s.lastErr = ""
		if !s.healthy && s.successes >= healthyThreshold {
			s.healthy = true
			return true
		}
		return false
	}
	s.failures++
	s.successes = 0
	s.lastErr = err.Error()
	if s.healthy && s.failures >= unhealthyThreshold {
		s.healthy = false
		return true
	}
	return false
}

type loop struct {
	key    loopKey
	set    settings
	cancel context.CancelFunc
	done   chan struct{}

	// Built once per loop.
	tlsConfig *tls.Config
	tlsErr    error
	transport *http.Transport

	mu sync.Mutex
	st state
}

// Update makes the running loops match backends: it starts a loop per
// endpoint of every backend with a HealthCheck, keeps loops whose backend,
// address and settings are unchanged, and stops (and waits for) the rest.
// ctx only supplies values to the loops: they run until a later Update
// drops them or Close. Update after Close does nothing.
func (c *Checker) Update(ctx context.Context, backends []*ir.Backend) {
	c.updateMu.Lock()
	defer c.updateMu.Unlock()
	if c.closed {
		return
	}
	want := map[loopKey]settings{}
	var order []loopKey
	for _, b := range backends {
		if b == nil || b.HealthCheck == nil {
			continue
		}
		s := settingsOf(b)
		for _, ep := range b.Endpoints {
			if ep.Address == "" {
				continue
			}
			k := loopKey{b.Name, ep.Address}
			if _, dup := want[k]; dup {
				continue // first occurrence of a backend name wins
			}
			want[k] = s
			order = append(order, k)
		}
	}

	c.mu.Lock()
	var stop []*loop
	for k, l := range c.loops {
		if s, ok := want[k]; !ok || s != l.set {
			stop = append(stop, l)
			delete(c.loops, k)
		}
	}
	c.mu.Unlock()
	c.stop(stop)

	base := context.WithoutCancel(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loops == nil {
		c.loops = map[loopKey]*loop{}
	}
	for _, k := range order {
		if _, ok := c.loops[k]; ok {
			continue
		}
		l := c.newLoop(k, want[k])
		lctx, cancel := context.WithCancel(base)
		l.cancel = cancel
		c.loops[k] = l
		go c.run(lctx, l)
	}
}

// Close stops every loop and waits for them. Later Updates do nothing.
func (c *Checker) Close() {
	c.updateMu.Lock()
	defer c.updateMu.Unlock()
	c.closed = true
	c.mu.Lock()
	stop := make([]*loop, 0, len(c.loops))
	for _, l := range c.loops {
		stop = append(stop, l)
	}
	c.loops = nil
	c.mu.Unlock()
	c.stop(stop)
}

// stop cancels loops, waits for all of them, then withdraws the unhealthy
// reports of those that made one.
func (c *Checker) stop(loops []*loop) {
	for _, l := range loops {
		l.cancel()
	}
	for _, l := range loops {
		<-l.done
	}
	for _, l := range loops {
		l.mu.Lock()
		unhealthy := !l.st.healthy
		l.mu.Unlock()
		if unhealthy {
			c.logger().Info("health check stopped; endpoint back in rotation",
				"backend", l.key.backend, "address", l.key.address)
			c.report(l.key, true)
		}
	}
}

// Status returns every probed endpoint, sorted by backend then address.
func (c *Checker) Status() []EndpointStatus {
	c.mu.Lock()
	loops := make([]*loop, 0, len(c.loops))
	for _, l := range c.loops {
		loops = append(loops, l)
	}
	c.mu.Unlock()
	out := make([]EndpointStatus, 0, len(loops))
	for _, l := range loops {
		l.mu.Lock()
		out = append(out, EndpointStatus{
			Backend:              l.key.backend,
			Address:              l.key.address,
			Type:                 l.set.typ,
			Healthy:              l.st.healthy,
			LastError:            l.st.lastErr,
			LastCheck:            l.st.lastCheck,
			ConsecutiveSuccesses: l.st.successes,
			ConsecutiveFailures:  l.st.failures,
		})
		l.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b EndpointStatus) int {
		return cmp.Or(cmp.Compare(a.Backend, b.Backend), cmp.Compare(a.Address, b.Address))
	})
	return out
}

func (c *Checker) logger() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (c *Checker) report(k loopKey, healthy bool) {
	if c.Reporter != nil {
		c.Reporter.SetHealth(k.backend, k.address, healthy)
	}
}

func (c *Checker) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if c.DialContext != nil {
		return c.DialContext(ctx, network, addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func (c *Checker) newLoop(k loopKey, s settings) *loop {
	l := &loop{key: k, set: s, done: make(chan struct{}), st: state{healthy: true}}
	if s.tls {
		l.tlsConfig = &tls.Config{ServerName: s.serverName, MinVersion: tls.VersionTLS12}
		if s.caPEM != "" {
			pool := x509.NewCertPool()
			if pool.AppendCertsFromPEM([]byte(s.caPEM)) {
				l.tlsConfig.RootCAs = pool
			} else {
				l.tlsErr = errors.New("backend TLS: no usable CA certificate")
				c.logger().Warn("health check cannot verify backend",
					"backend", k.backend, "address", k.address, "error", l.tlsErr)
			}
		}
		if s.clientCertPEM != "" {
			if pair, err := tls.X509KeyPair([]byte(s.clientCertPEM), []byte(s.clientKeyPEM)); err == nil {
				l.tlsConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
			} else if l.tlsErr == nil {
				l.tlsErr = fmt.Errorf("backend TLS client certificate: %w", err)
			}
		}
	}
	if s.typ == ir.HealthHTTP {
		t := &http.Transport{
			// Proxy stays nil: probes go to the endpoint, never through an
			// environment-configured proxy.
			DialContext:        c.dial,
			DisableKeepAlives:  true,
			DisableCompression: true,
			TLSClientConfig:    l.tlsConfig,
			Protocols:          new(http.Protocols),
		}
		switch {
		case s.protocol == ir.BackendH2C && s.tls:
			t.Protocols.SetHTTP2(true)
		case s.protocol == ir.BackendH2C:
			t.Protocols.SetUnencryptedHTTP2(true)
		default:
			t.Protocols.SetHTTP1(true)
		}
		l.transport = t
	}
	return l
}

func (c *Checker) run(ctx context.Context, l *loop) {
	defer close(l.done)
	if l.transport != nil {
		defer l.transport.CloseIdleConnections()
	}
	t := time.NewTimer(rand.N(l.set.interval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := c.probe(ctx, l)
		if ctx.Err() != nil {
			return // stopped mid-probe: the result means nothing
		}
		l.mu.Lock()
		flipped := l.st.observe(err, time.Now(), l.set.healthy, l.set.unhealthy)
		healthy := l.st.healthy
		l.mu.Unlock()
		if flipped {
			log := c.logger()
			if healthy {
				log.Info("endpoint healthy", "backend", l.key.backend, "address", l.key.address,
					"check", l.set.typ)
			} else {
				log.Warn("endpoint unhealthy", "backend", l.key.backend, "address", l.key.address,
					"check", l.set.typ, "error", err)
			}
			c.report(l.key, healthy)
		}
		t.Reset(l.set.interval)
	}
}

// probe runs one check bounded by the loop's timeout; nil means healthy.
func (c *Checker) probe(ctx context.Context, l *loop) error {
	ctx, cancel := context.WithTimeout(ctx, l.set.timeout)
	defer cancel()
	switch l.set.typ {
	case ir.HealthHTTP:
		return c.probeHTTP(ctx, l)
	case ir.HealthTCP:
		conn, err := c.dial(ctx, "tcp", l.key.address)
		if err != nil {
			return err
		}
		return conn.Close()
	case ir.HealthGRPC:
		return c.probeGRPC(ctx, l)
	default:
		return fmt.Errorf("unknown health check type %q", l.set.typ)
	}
}

func (c *Checker) probeHTTP(ctx context.Context, l *loop) error {
	if l.tlsErr != nil {
		return l.tlsErr
	}
	scheme := "http"
	if l.set.tls {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+l.key.address+l.set.path, nil)
	if err != nil {
		return err
	}
	if l.set.host != "" {
		req.Host = l.set.host
	}
	req.Header.Set("User-Agent", UserAgent)
	resp, err := l.transport.RoundTrip(req)
	if err != nil {
		return err
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxBody)
	resp.Body.Close()
	if !statusOK(resp.StatusCode, l.set.expected) {
		return fmt.Errorf("unexpected HTTP status %d", resp.StatusCode)
	}
	return nil
}

// statusOK says whether code is healthy given the canonical expected list.
func statusOK(code int, expected string) bool {
	if expected == "" {
		return code >= 200 && code < 400
	}
	for e := range strings.SplitSeq(expected, ",") {
		if e == strconv.Itoa(code) {
			return true
		}
	}
	return false
}

func (c *Checker) probeGRPC(ctx context.Context, l *loop) error {
	creds := insecure.NewCredentials()
	if l.set.tls {
		if l.tlsErr != nil {
			return l.tlsErr
		}
		creds = credentials.NewTLS(l.tlsConfig)
	}
	// passthrough: dial the configured address as is, no resolver or
	// service config lookups. One connection per probe, so a recovered
	// endpoint is seen at the next probe, not after reconnect backoff.
	conn, err := grpc.NewClient("passthrough:///"+l.key.address,
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return c.dial(ctx, "tcp", addr)
		}),
		grpc.WithDisableServiceConfig(),
		grpc.WithUserAgent(UserAgent),
	)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: l.set.grpcService})
	if err != nil {
		return err
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("gRPC health status %s", s)
	}
	return nil
}
