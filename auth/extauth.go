package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/proxy"
)

// ExtResult is an external authorization decision.
type ExtResult struct {
	// Allowed lets the request through; Upstream then holds headers to set
	// on it and Remove headers to remove.
	Allowed  bool
	Upstream http.Header
	Remove   []string
	// Unavailable is set when the service could not be asked (the
	// request is then let in only with failOpen).
	Unavailable bool
	// Status, Header and Body are the denial to send the client.
	Status int
	Header http.Header
	Body   []byte
	// Err says why the service was unavailable (no credentials in it).
	Err error
}

// Ext is a compiled extAuth section. The connections it uses come from a
// pool shared across configurations: Start takes them (and connects gRPC
// endpoints ahead of the first check), Stop gives them back once no check
// is in flight, so a reload that drops a service closes its connections
// after the old configuration's requests are done with them.
type Ext struct {
	ir   *ir.ExtAuth
	next atomic.Uint64
	pool *Conns
	// tlsKey and tlsCfg are the backend's TLS settings (nil cfg:
	// cleartext); tlsErr says why they are unusable, failing every
	// check rather than sending it unverified.
	tlsKey string
	tlsCfg *tls.Config
	tlsErr error

	mu      sync.Mutex
	active  int  // checks in flight
	held    bool // conns and client are taken from pool
	stopped bool
	conns   map[string]*grpc.ClientConn
	client  *http.Client
}

// NewExt compiles an extAuth section. Over TLS when its backend has TLS
// settings (a Backend's spec.tls, a Service's BackendTLSPolicy).
// Its connections come from pool.
func NewExt(e *ir.ExtAuth, pool *Conns) (*Ext, error) {
	if e.Backend == nil {
		return nil, errors.New("extAuth: no backend")
	}
	x := &Ext{ir: e, pool: pool}
	if u := e.Backend.TLS; u != nil {
		x.tlsKey = proxy.UpstreamTLSKey(u)
		if x.tlsCfg, x.tlsErr = proxy.ClientTLSConfig(u); x.tlsErr != nil {
			x.tlsErr = fmt.Errorf("extAuth backend %s: %w", e.Backend.Name, x.tlsErr)
		}
	}
	return x, nil
}

// Start takes the connections from the pool and, for gRPC, connects now so
// the first check does not spend its timeout on the handshake.
func (e *Ext) Start() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.acquire()
	for _, c := range e.conns {
		c.Connect()
	}
}

// Stop gives the connections back once no check is in flight (at once if
// none is); the last user of a connection closes it. A check still
// arriving later takes them again for its duration.
func (e *Ext) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stopped = true
	if e.active == 0 {
		e.release()
	}
}

// acquire takes the connections; e.mu is held.
func (e *Ext) acquire() {
	if e.held || e.tlsErr != nil {
		return
	}
	e.held = true
	if !e.ir.GRPC {
		e.client = e.pool.httpClient(e.tlsKey, e.tlsCfg)
		return
	}
	e.conns = make(map[string]*grpc.ClientConn, len(e.ir.Backend.Endpoints))
	for _, ep := range e.ir.Backend.Endpoints {
		if _, ok := e.conns[ep.Address]; ok {
			continue
		}
		if c, err := e.pool.grpcConn(ep.Address, e.tlsKey, e.tlsCfg); err == nil {
			e.conns[ep.Address] = c
		}
	}
}

// release gives the connections back; e.mu is held.
func (e *Ext) release() {
	if !e.held {
		return
	}
	e.held = false
	if !e.ir.GRPC {
		e.pool.releaseHTTP(e.tlsKey)
		e.client = nil
		return
	}
	for addr := range e.conns {
		e.pool.releaseGRPC(addr, e.tlsKey)
	}
	e.conns = nil
}

// begin marks a check in flight and returns the connections to use.
func (e *Ext) begin() (map[string]*grpc.ClientConn, *http.Client) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.acquire()
	e.active++
	return e.conns, e.client
}

// end marks a check done, giving the connections back if Stop was called.
func (e *Ext) end() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.active--
	if e.active == 0 && e.stopped {
		e.release()
	}
}

// endpoint picks the next endpoint round robin, skipping draining ones
// while others are left.
func (e *Ext) endpoint() (string, bool) {
	eps := e.ir.Backend.Endpoints
	if len(eps) == 0 {
		return "", false
	}
	n := e.next.Add(1)
	for i := range eps {
		ep := eps[(int(n)+i)%len(eps)]
		if !ep.Draining {
			return ep.Address, true
		}
	}
	return eps[int(n)%len(eps)].Address, true
}

// Check asks the service about r, whose client address is clientIP.
func (e *Ext) Check(ctx context.Context, r *http.Request, clientIP string) ExtResult {
	addr, ok := e.endpoint()
	if !ok {
		return ExtResult{Unavailable: true, Err: errors.New("no endpoint")}
	}
	timeout := e.ir.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	if e.tlsErr != nil {
		return ExtResult{Unavailable: true, Err: e.tlsErr}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conns, client := e.begin()
	defer e.end()
	if e.ir.GRPC {
		conn := conns[addr]
		if conn == nil {
			return ExtResult{Unavailable: true, Err: fmt.Errorf("no connection to %s", addr)}
		}
		return e.checkGRPC(ctx, conn, r, clientIP)
	}
	return e.checkHTTP(ctx, client, addr, r)
}

// Hop-by-hop fields and framing are not sent to the HTTP service.
var extSkip = map[string]bool{"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Content-Length": true}

func (e *Ext) checkHTTP(ctx context.Context, client *http.Client, addr string, r *http.Request) ExtResult {
	scheme := "http://"
	if e.tlsCfg != nil {
		scheme = "https://"
	}
	u := scheme + addr + e.ir.Path + r.URL.RequestURI()
	req, err := http.NewRequestWithContext(ctx, r.Method, u, nil)
	if err != nil {
		return ExtResult{Unavailable: true, Err: err}
	}
	for k, vs := range r.Header {
		if !extSkip[k] {
			req.Header[k] = vs
		}
	}
	req.Host = r.Host
	resp, err := client.Do(req)
	if err != nil {
		// Not the URL: its query may hold credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return ExtResult{Unavailable: true, Err: fmt.Errorf("%s%s: %w", scheme, addr, err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		up := http.Header{}
		for _, name := range e.ir.HeadersToBackend {
			if vs := resp.Header.Values(name); len(vs) > 0 {
				up[http.CanonicalHeaderKey(name)] = vs
			}
		}
		return ExtResult{Allowed: true, Upstream: up}
	}
	if resp.StatusCode >= 500 {
		return ExtResult{Unavailable: true, Err: fmt.Errorf("authorization service answered %d", resp.StatusCode)}
	}
	h := http.Header{}
	for k, vs := range resp.Header {
		if !extSkip[k] && k != "Date" && k != "Server" {
			h[k] = vs
		}
	}
	status := resp.StatusCode
	if status < 400 && status >= 300 {
		// a redirect to a login page is passed on as is
	} else if status != http.StatusUnauthorized && status != http.StatusForbidden && status < 400 {
		status = http.StatusForbidden
	}
	return ExtResult{Status: status, Header: h, Body: body}
}

func (e *Ext) checkGRPC(ctx context.Context, conn *grpc.ClientConn, r *http.Request, clientIP string) ExtResult {
	headers := make(map[string]string, len(r.Header)+4)
	for k, vs := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	headers[":method"], headers[":path"], headers[":authority"], headers[":scheme"] = r.Method, r.URL.RequestURI(), r.Host, scheme
	src := &authv3.AttributeContext_Peer{Address: sockAddr(clientIP)}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: src,
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: r.Method, Headers: headers, Path: r.URL.RequestURI(), Host: r.Host, Scheme: scheme,
			Protocol: r.Proto, Size: r.ContentLength,
		}},
	}}
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, req)
	if err != nil {
		return ExtResult{Unavailable: true, Err: err}
	}
	if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		up := http.Header{}
		ok := resp.GetOkResponse()
		for _, hv := range ok.GetHeaders() {
			applyHeaderOption(up, hv)
		}
		return ExtResult{Allowed: true, Upstream: up, Remove: ok.GetHeadersToRemove()}
	}
	d := resp.GetDeniedResponse()
	status := http.StatusForbidden
	if c := int(d.GetStatus().GetCode()); c >= 400 && c <= 599 {
		status = c
	}
	h := http.Header{}
	for _, hv := range d.GetHeaders() {
		applyHeaderOption(h, hv)
	}
	return ExtResult{Status: status, Header: h, Body: []byte(d.GetBody())}
}

func applyHeaderOption(h http.Header, hv *corev3.HeaderValueOption) {
	k := hv.GetHeader().GetKey()
	if k == "" || strings.HasPrefix(k, ":") {
		return
	}
	v := hv.GetHeader().GetValue()
	if v == "" && len(hv.GetHeader().GetRawValue()) > 0 {
		v = string(hv.GetHeader().GetRawValue())
	}
	if hv.GetAppend().GetValue() {
		h.Add(k, v)
		return
	}
	h.Set(k, v)
}

func sockAddr(ip string) *corev3.Address {
	host, port, err := net.SplitHostPort(ip)
	if err != nil {
		host, port = ip, "0"
	}
	p, _ := strconv.Atoi(port)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)},
	}}}
}
