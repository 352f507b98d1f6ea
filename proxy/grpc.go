package proxy

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// gRPC status codes the gateway itself produces (grpc/codes).
const (
	grpcUnknown           = 2
	grpcDeadlineExceeded  = 4
	grpcPermissionDenied  = 7
	grpcResourceExhausted = 8
	grpcUnimplemented     = 12
	grpcInternal          = 13
	grpcUnavailable       = 14
	grpcUnauthenticated   = 16
)

// IsGRPC reports whether a request is a gRPC call (not gRPC-Web, which is
// translated before it gets here): its errors must then be gRPC statuses a
// client library can decode, not HTTP error pages.
func IsGRPC(h http.Header) bool {
	ct := headerValue(h, "Content-Type")
	if !strings.HasPrefix(ct, "application/grpc") {
		return false
	}
	rest := ct[len("application/grpc"):]
	return rest == "" || rest[0] == '+' || rest[0] == ';'
}

// GRPCStatusFor maps the HTTP status of a gateway-made error to the gRPC
// status a client sees, after grpc's http-grpc-status-mapping with two
// gateway-specific refinements: a gateway timeout is DEADLINE_EXCEEDED and
// a rate limit RESOURCE_EXHAUSTED, because that is what they are.
func GRPCStatusFor(status int) int {
	switch status {
	case http.StatusBadRequest, http.StatusRequestHeaderFieldsTooLarge, http.StatusInternalServerError:
		return grpcInternal
	case http.StatusUnauthorized:
		return grpcUnauthenticated
	case http.StatusForbidden:
		return grpcPermissionDenied
	case http.StatusNotFound:
		return grpcUnimplemented
	case http.StatusTooManyRequests:
		return grpcResourceExhausted
	case http.StatusGatewayTimeout:
		return grpcDeadlineExceeded
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return grpcUnavailable
	}
	return grpcUnknown
}

// writeGRPCError answers a gRPC call with a trailers-only response: HTTP 200
// and the status in the header block, which ends the stream.
func writeGRPCError(w http.ResponseWriter, status int, msg string, extra http.Header) {
	WriteGRPCStatus(w, GRPCStatusFor(status), msg, extra)
}

// WriteGRPCStatus answers a gRPC call with a trailers-only response carrying
// code and msg, plus the extra headers (for example a circuit breaker's or
// rate limiter's).
func WriteGRPCStatus(w http.ResponseWriter, code int, msg string, extra http.Header) {
	h := w.Header()
	clear(h)
	for k, v := range extra {
		h[k] = v
	}
	h["Content-Type"] = []string{"application/grpc"}
	h["Grpc-Status"] = []string{strconv.Itoa(code)}
	h["Grpc-Message"] = []string{grpcEncodeMessage(msg)}
	w.WriteHeader(http.StatusOK)
}

// grpcEncodeMessage percent-encodes a grpc-message value as the gRPC HTTP/2
// protocol requires (bytes outside printable ASCII, and '%').
func grpcEncodeMessage(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' || c == '%' {
			b.WriteString("%" + strings.ToUpper(strconv.FormatInt(int64(c)>>4, 16)+strconv.FormatInt(int64(c)&15, 16)))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// grpcDecodeMessage undoes grpcEncodeMessage, for tests and logs.
func grpcDecodeMessage(s string) string {
	if d, err := url.PathUnescape(s); err == nil {
		return d
	}
	return s
}

// GRPCTimeout parses a grpc-timeout header value ("100m", "5S"): at most 8
// digits and a unit of H, M, S, m (ms), u (µs) or n (ns).
func GRPCTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	if n > int64((1<<63-1)/unit) {
		return 1<<63 - 1, true
	}
	return time.Duration(n) * unit, true
}

// FormatGRPCTimeout encodes d as a grpc-timeout value with the finest unit
// that fits in 8 digits, so the upstream sees the time actually left.
func FormatGRPCTimeout(d time.Duration) string {
	if d <= 0 {
		return "0n"
	}
	const max = 1e8 - 1
	for _, u := range []struct {
		d time.Duration
		s string
	}{{time.Nanosecond, "n"}, {time.Microsecond, "u"}, {time.Millisecond, "m"}, {time.Second, "S"}, {time.Minute, "M"}} {
		if v := d / u.d; v <= max {
			if d%u.d != 0 {
				v++ // round up: never shorten the caller's deadline to zero
			}
			return strconv.FormatInt(int64(v), 10) + u.s
		}
	}
	v := d / time.Hour
	if d%time.Hour != 0 {
		v++
	}
	return strconv.FormatInt(int64(min(v, max)), 10) + "H"
}
