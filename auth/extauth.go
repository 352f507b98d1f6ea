package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshgate/meshgate/ir"
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

// Ext is a compiled extAuth section.
type Ext struct {
	ir     *ir.ExtAuth
	next   atomic.Uint64
	client *http.Client
}

// NewExt compiles an extAuth section.
func NewExt(e *ir.ExtAuth) (*Ext, error) {
	if e.Backend == nil {
		return nil, errors.New("extAuth: no backend")
	}
	if e.GRPC {
		// Connect now, so the first check does not spend its timeout
		// on the handshake.
		for _, ep := range e.Backend.Endpoints {
			if c, err := grpcConn(ep.Address); err == nil {
				c.Connect()
			}
		}
	}
	return &Ext{ir: e, client: extHTTPClient}, nil
}

var extHTTPClient = &http.Client{
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, DisableCompression: true},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
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
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if e.ir.GRPC {
		return e.checkGRPC(ctx, addr, r, clientIP)
	}
	return e.checkHTTP(ctx, addr, r)
}

// Hop-by-hop fields and framing are not sent to the HTTP service.
var extSkip = map[string]bool{"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Content-Length": true}

func (e *Ext) checkHTTP(ctx context.Context, addr string, r *http.Request) ExtResult {
	u := "http://" + addr + e.ir.Path + r.URL.RequestURI()
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
	resp, err := e.client.Do(req)
	if err != nil {
		return ExtResult{Unavailable: true, Err: err}
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

// gRPC connections to ext_authz services, by address; they outlive
// reloads, as grpc-go reconnects by itself.
var (
	grpcMu    sync.Mutex
	grpcConns = map[string]*grpc.ClientConn{}
)

func grpcConn(addr string) (*grpc.ClientConn, error) {
	grpcMu.Lock()
	defer grpcMu.Unlock()
	if c := grpcConns[addr]; c != nil {
		return c, nil
	}
	c, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	grpcConns[addr] = c
	return c, nil
}

func (e *Ext) checkGRPC(ctx context.Context, addr string, r *http.Request, clientIP string) ExtResult {
	conn, err := grpcConn(addr)
	if err != nil {
		return ExtResult{Unavailable: true, Err: err}
	}
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
