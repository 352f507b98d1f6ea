package metrics

import (
	"net/http"
	"strings"
	"unicode/utf8"
)

// none is the label value for a route, backend or listener that is not
// known: Prometheus treats an empty value as a missing label, which makes
// "no route matched" disappear from sum by (route).
const none = "none"

// methodLabel bounds the method label: a client can send any token as a
// method, and each would otherwise become a new series. The returned
// string is a constant, so the cache never keeps request memory alive.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodHead:
		return http.MethodHead
	case http.MethodPost:
		return http.MethodPost
	case http.MethodPut:
		return http.MethodPut
	case http.MethodPatch:
		return http.MethodPatch
	case http.MethodDelete:
		return http.MethodDelete
	case http.MethodConnect:
		return http.MethodConnect
	case http.MethodOptions:
		return http.MethodOptions
	case http.MethodTrace:
		return http.MethodTrace
	}
	return "OTHER"
}

// Status classes, indexed by classOf. "aborted" is a response that ended
// before a status was sent, which is neither a success nor an HTTP error.
var codeClasses = [...]string{"aborted", "1xx", "2xx", "3xx", "4xx", "5xx", "other"}

// classOf maps an HTTP status to an index into codeClasses; the index is
// what the request cache key holds, being smaller than the string.
func classOf(status int) uint8 {
	switch {
	case status == 0:
		return 0
	case status >= 100 && status < 600:
		return uint8(status / 100)
	}
	return 6
}

// grpcCodes are the gRPC status codes as sent on the wire ("0" is OK).
var grpcCodes = [...]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16"}

// grpcLabel bounds the grpc_status label: the value comes from the
// upstream's grpc-status field, which could hold anything. It is "" for
// calls that are not gRPC (so the label is absent), "none" for a gRPC call
// that got no status, and "other" for a value that is not a gRPC code.
func grpcLabel(isGRPC bool, s string) string {
	if !isGRPC {
		return ""
	}
	switch len(s) {
	case 0:
		return none
	case 1:
		if c := s[0]; c >= '0' && c <= '9' {
			return grpcCodes[c-'0']
		}
	case 2:
		if s[0] == '1' && s[1] >= '0' && s[1] <= '6' {
			return grpcCodes[10+s[1]-'0']
		}
	}
	return "other"
}

// protoLabel bounds the proto label to the HTTP versions the gateway
// serves.
func protoLabel(p string) string {
	switch p {
	case "HTTP/1.1":
		return "HTTP/1.1"
	case "HTTP/2.0":
		return "HTTP/2.0"
	case "HTTP/3.0":
		return "HTTP/3.0"
	case "HTTP/1.0":
		return "HTTP/1.0"
	}
	return "other"
}

// reasons are the values of obs.Request.Reason the gateway sets when it
// ends a request itself; meshgate_gateway_errors_total has one series per
// reason from the start (zero until it happens), and any reason not listed
// is counted as "other", so a new reason in the data plane cannot add
// series unnoticed.
var reasons = []string{
	"no_config",
	"no_route",
	"no_valid_backend",
	"no_healthy_upstream",
	"circuit_open",
	"upstream_connect_failure",
	"upstream_timeout",
	"upstream_protocol_error",
	"upstream_error",
	"upstream_reset",
	"client_canceled",
	"request_body_error",
	"too_many_header_fields",
	"ambiguous_path",
	"underscore_header", "misdirected_request",
	"connect_not_allowed",
	"overloaded",
	"rate_limited",
	"rate_limit_unavailable",
	"fault_abort",
	"direct_response",
	"redirect",
	"auth_denied_ip",
	"auth_invalid_jwt",
	"auth_forbidden",
	"auth_basic_failed",
	"ext_auth_denied",
	"ext_auth_unavailable",
	"policy_unavailable",
	"aborted",
	"other",
}

// upstreamReasons are the reasons that blame a backend; they are also
// counted by backend in meshgate_upstream_errors_total.
var upstreamReasons = map[string]bool{
	"no_healthy_upstream":      true,
	"circuit_open":             true,
	"upstream_connect_failure": true,
	"upstream_timeout":         true,
	"upstream_protocol_error":  true,
	"upstream_error":           true,
	"upstream_reset":           true,
}

// labelValue makes a configuration name safe as a label value: "" becomes
// "none", and invalid UTF-8 (which the client library rejects) is
// repaired rather than dropping the request's metrics.
func labelValue(s string) string {
	if s == "" {
		return none
	}
	if !utf8.ValidString(s) {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}
