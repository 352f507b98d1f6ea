package tracing

import (
	"net"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"

	"github.com/meshgate/meshgate/obs"
)

// startName is the span's name until the route is known.
func startName(method string) string {
	switch method {
	case http.MethodGet:
		return "HTTP GET"
	case http.MethodPost:
		return "HTTP POST"
	case http.MethodPut:
		return "HTTP PUT"
	case http.MethodDelete:
		return "HTTP DELETE"
	case http.MethodHead:
		return "HTTP HEAD"
	case http.MethodOptions:
		return "HTTP OPTIONS"
	case http.MethodPatch:
		return "HTTP PATCH"
	case http.MethodConnect:
		return "HTTP CONNECT"
	case http.MethodTrace:
		return "HTTP TRACE"
	}
	return "HTTP _OTHER"
}

// knownMethod reports whether m is one of the methods the semantic
// conventions name; others are recorded as "_OTHER".
func knownMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodHead,
		http.MethodOptions, http.MethodPatch, http.MethodConnect, http.MethodTrace:
		return true
	}
	return false
}

func methodAttributes(attrs []attribute.KeyValue, m string) []attribute.KeyValue {
	if knownMethod(m) {
		return append(attrs, attribute.String("http.request.method", m))
	}
	return append(attrs, attribute.String("http.request.method", "_OTHER"),
		attribute.String("http.request.method_original", m))
}

// hostPort appends key.address (and key.port when there is one) for
// addr, which may or may not carry a port.
func hostPort(attrs []attribute.KeyValue, key, addr string) []attribute.KeyValue {
	if addr == "" {
		return attrs
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return append(attrs, attribute.String(key+".address", addr))
	}
	attrs = append(attrs, attribute.String(key+".address", host))
	if p, err := strconv.Atoi(port); err == nil {
		attrs = append(attrs, attribute.Int(key+".port", p))
	}
	return attrs
}

// protocolVersion is network.protocol.version: "1.1", "2", "3".
func protocolVersion(r *http.Request) string {
	switch {
	case r.ProtoMajor == 1 && r.ProtoMinor == 1:
		return "1.1"
	case r.ProtoMajor == 1 && r.ProtoMinor == 0:
		return "1.0"
	case r.ProtoMajor == 2:
		return "2"
	case r.ProtoMajor == 3:
		return "3"
	}
	return strconv.Itoa(r.ProtoMajor) + "." + strconv.Itoa(r.ProtoMinor)
}

// requestAttributes are what is known when the request arrives.
func requestAttributes(r *http.Request) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 10)
	attrs = methodAttributes(attrs, r.Method)
	attrs = append(attrs, attribute.String("url.path", r.URL.Path))
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	attrs = append(attrs, attribute.String("url.scheme", scheme))
	attrs = hostPort(attrs, "server", r.Host)
	attrs = append(attrs, attribute.String("network.protocol.version", protocolVersion(r)))
	attrs = hostPort(attrs, "client", r.RemoteAddr)
	if ua := r.Header["User-Agent"]; len(ua) > 0 {
		attrs = append(attrs, attribute.String("user_agent.original", ua[0]))
	}
	return attrs
}

// responseAttributes are the server span's outcome.
func responseAttributes(r *obs.Request) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 14)
	if r.Status != 0 {
		attrs = append(attrs, attribute.Int("http.response.status_code", r.Status))
	}
	if r.Route != "" {
		attrs = append(attrs, attribute.String("http.route", r.Route), attribute.Int("meshgate.rule", r.Rule))
	}
	attrs = appendString(attrs, "meshgate.listener", r.Listener)
	attrs = appendString(attrs, "meshgate.gateway_listener", r.Gateway)
	attrs = appendString(attrs, "meshgate.backend", r.Backend)
	attrs = appendString(attrs, "meshgate.endpoint", r.Endpoint)
	attrs = grpcStatus(attrs, r)
	attrs = appendString(attrs, "meshgate.upgrade", r.Upgrade)
	attrs = appendString(attrs, "meshgate.reason", r.Reason)
	if r.BytesReceived > 0 {
		attrs = append(attrs, attribute.Int64("http.request.body.size", r.BytesReceived))
	}
	if r.BytesSent > 0 {
		attrs = append(attrs, attribute.Int64("http.response.body.size", r.BytesSent))
	}
	return attrs
}

// upstreamAttributes describe an upstream attempt, a CLIENT span: the
// endpoint is its server and network peer.
func upstreamAttributes(r *obs.Request) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 12)
	attrs = methodAttributes(attrs, r.Method)
	attrs = hostPort(attrs, "server", r.Endpoint)
	attrs = hostPort(attrs, "network.peer", r.Endpoint)
	attrs = appendString(attrs, "meshgate.backend", r.Backend)
	attrs = appendString(attrs, "meshgate.endpoint", r.Endpoint)
	if r.Status != 0 {
		attrs = append(attrs, attribute.Int("http.response.status_code", r.Status))
	}
	attrs = grpcStatus(attrs, r)
	attrs = appendString(attrs, "meshgate.reason", r.Reason)
	if r.UpstreamConnect > 0 {
		attrs = append(attrs, attribute.Float64("meshgate.upstream.connect_ms", float64(r.UpstreamConnect.Microseconds())/1000))
	}
	return attrs
}

func grpcStatus(attrs []attribute.KeyValue, r *obs.Request) []attribute.KeyValue {
	if r.GRPCStatus == "" {
		return attrs
	}
	if n, err := strconv.Atoi(r.GRPCStatus); err == nil {
		return append(attrs, attribute.Int("rpc.grpc.status_code", n))
	}
	return attrs
}

func appendString(attrs []attribute.KeyValue, key, v string) []attribute.KeyValue {
	if v == "" {
		return attrs
	}
	return append(attrs, attribute.String(key, v))
}

// errorType is error.type: the gateway's reason, else the status code.
func errorType(r *obs.Request) string {
	if r.Reason != "" {
		return r.Reason
	}
	if r.Status == 0 {
		return "aborted"
	}
	return strconv.Itoa(r.Status)
}
