package filters

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/textproto"
	"regexp"
	"strings"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// Fault is a compiled FaultInjection filter: which requests it applies to,
// and which share of them is delayed and which aborted.
//
// Header conditions are canonicalized and their regular expressions compiled
// once here, and each percentage is turned into an integer threshold, so
// Decide is a few map reads and two comparisons. The randomness is supplied
// by the caller: production passes rand.Uint64(), tests pass fixed values, so
// the sampling itself is deterministic and testable.
type Fault struct {
	headers []faultHeader

	delay          time.Duration
	delayThreshold uint64 // draws of 32 bits below this are delayed; 1<<32 is always

	abortThreshold uint64
	abortHTTP      int
	abortGRPC      int // -1 when the config leaves the gRPC status to the caller's mapping
}

// faultHeader is one compiled header condition.
type faultHeader struct {
	name  string // canonical
	value string
	re    *regexp.Regexp // non-nil for RegularExpression
}

// FaultDecision is what Decide settled for one request. The zero value with
// GRPCStatus -1 (NoFault) means "leave the request alone".
type FaultDecision struct {
	// Delay is how long to hold the request before going on; 0 for none.
	Delay time.Duration
	// Abort is the HTTP status to answer instead of forwarding; 0 for none.
	// When both Delay and Abort are set the request is delayed first and
	// then aborted, as Envoy's fault filter does.
	Abort int
	// GRPCStatus is the gRPC status code to answer a gRPC call with when
	// Abort is set (a trailers-only response). It is -1 when the fault did
	// not name one: the caller then maps Abort with proxy.GRPCStatusFor, so
	// a fault abort looks like any other gateway error of that status.
	GRPCStatus int
}

// NoFault is the decision for a request the fault leaves alone.
var NoFault = FaultDecision{GRPCStatus: -1}

// CompileFault compiles f. It returns nil (and no error) when f is nil or
// injects nothing, so the caller can skip the filter entirely; a nil *Fault
// decides NoFault for every request.
//
// It fails on what the translator should have rejected: an empty or
// malformed header condition, a negative delay, an abort with no status or an
// HTTP status outside 200-599, a gRPC status outside 0-16, or a NaN
// percentage. Percentages outside 0-100 are clamped, as the mirror filter
// does, rather than failing the whole config.
//
// An abort that names only a gRPC status still needs an HTTP status for
// plain HTTP requests; it gets the one grpc-gateway maps that code to
// (HTTPStatusForGRPC).
func CompileFault(f *ir.Fault) (*Fault, error) {
	if f == nil || (f.Delay == nil && f.Abort == nil) {
		return nil, nil
	}
	out := &Fault{abortGRPC: -1}
	seen := make(map[string]bool, len(f.Headers))
	for i, m := range f.Headers {
		name := textproto.CanonicalMIMEHeaderKey(m.Name)
		if name == "" {
			return nil, fmt.Errorf("fault %s: headers[%d]: empty header name", f.Name, i)
		}
		// As in route matches, only the first of equivalent names counts.
		if seen[name] {
			continue
		}
		seen[name] = true
		fh := faultHeader{name: name, value: m.Value}
		switch m.Type {
		case ir.MatchExact, "":
		case ir.MatchRegularExpression:
			// Anchored at both ends like router matches: the whole value
			// must match.
			re, err := regexp.Compile("^(?:" + m.Value + ")$")
			if err != nil {
				return nil, fmt.Errorf("fault %s: header %q: invalid regular expression %q: %w", f.Name, m.Name, m.Value, err)
			}
			fh.re = re
		default:
			return nil, fmt.Errorf("fault %s: header %q: unsupported match type %q", f.Name, m.Name, m.Type)
		}
		out.headers = append(out.headers, fh)
	}
	if d := f.Delay; d != nil {
		if d.Duration < 0 {
			return nil, fmt.Errorf("fault %s: negative delay %v", f.Name, d.Duration)
		}
		t, err := percentThreshold(d.Percent)
		if err != nil {
			return nil, fmt.Errorf("fault %s: delay: %w", f.Name, err)
		}
		if d.Duration > 0 {
			out.delay, out.delayThreshold = d.Duration, t
		}
	}
	if a := f.Abort; a != nil {
		t, err := percentThreshold(a.Percent)
		if err != nil {
			return nil, fmt.Errorf("fault %s: abort: %w", f.Name, err)
		}
		if a.GRPCStatus != nil {
			if g := *a.GRPCStatus; g < 0 || g > 16 {
				return nil, fmt.Errorf("fault %s: abort: gRPC status %d outside 0-16", f.Name, g)
			}
			out.abortGRPC = *a.GRPCStatus
		}
		switch {
		case a.HTTPStatus != 0:
			if a.HTTPStatus < 200 || a.HTTPStatus > 599 {
				return nil, fmt.Errorf("fault %s: abort: HTTP status %d outside 200-599", f.Name, a.HTTPStatus)
			}
			out.abortHTTP = a.HTTPStatus
		case a.GRPCStatus != nil:
			out.abortHTTP = HTTPStatusForGRPC(*a.GRPCStatus)
		default:
			return nil, errors.New("fault " + f.Name + ": abort without an HTTP or gRPC status")
		}
		out.abortThreshold = t
	}
	return out, nil
}

// percentThreshold turns a percentage into the number of 32-bit draws (out
// of 1<<32) that fire: 0 never fires, 1<<32 always does. The resolution is
// 2^-32, far finer than any configurable fraction; a positive percentage too
// small to be represented still fires sometimes rather than never.
func percentThreshold(p float64) (uint64, error) {
	if math.IsNaN(p) {
		return 0, errors.New("percent is NaN")
	}
	p = min(max(p, 0), 100)
	t := uint64(p / 100 * (1 << 32))
	if p > 0 && t == 0 {
		t = 1
	}
	return t, nil
}

// Decide settles the fault for one request with headers h. rnd must be a
// uniform random 64-bit value (rand.Uint64()).
//
// Requests not matching every header condition get NoFault. For the others,
// the delay is sampled from the high 32 bits of rnd and the abort from the
// low 32 bits: for a uniform rnd the two halves are independent, so
// "10% delayed, 10% aborted" delays and aborts 1% of requests, not 10% or
// 0%. A percentage of 0 never fires and 100 always does, whatever rnd is.
//
// Go keeps the Host header out of http.Header, so a "Host" condition never
// matches here.
func (f *Fault) Decide(h http.Header, rnd uint64) FaultDecision {
	if f == nil {
		return NoFault
	}
	for i := range f.headers {
		if !f.headers[i].match(h) {
			return NoFault
		}
	}
	d := NoFault
	if rnd>>32 < f.delayThreshold {
		d.Delay = f.delay
	}
	if rnd&(1<<32-1) < f.abortThreshold {
		d.Abort, d.GRPCStatus = f.abortHTTP, f.abortGRPC
	}
	return d
}

// match compares a request header the way route header matches do: a
// repeated header is compared as its values joined with ",", the combined
// form of RFC 9110 §5.3.
func (fh *faultHeader) match(h http.Header) bool {
	vals := h[fh.name]
	var v string
	switch len(vals) {
	case 0:
		return false
	case 1:
		v = vals[0]
	default:
		v = strings.Join(vals, ",") // rare: allocates
	}
	if fh.re != nil {
		return fh.re.MatchString(v)
	}
	return v == fh.value
}

// HTTPStatusForGRPC maps a gRPC status code to the HTTP status a plain HTTP
// client sees for it, as grpc-gateway's HTTPStatusFromCode does. It is the
// reverse of proxy.GRPCStatusFor and is needed only where a config names a
// gRPC status but the request is not a gRPC call.
func HTTPStatusForGRPC(code int) int {
	switch code {
	case 0: // OK
		return http.StatusOK
	case 1: // CANCELLED
		return 499 // client closed request
	case 3, 9, 11: // INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE
		return http.StatusBadRequest
	case 4: // DEADLINE_EXCEEDED
		return http.StatusGatewayTimeout
	case 5: // NOT_FOUND
		return http.StatusNotFound
	case 6, 10: // ALREADY_EXISTS, ABORTED
		return http.StatusConflict
	case 7: // PERMISSION_DENIED
		return http.StatusForbidden
	case 8: // RESOURCE_EXHAUSTED
		return http.StatusTooManyRequests
	case 12: // UNIMPLEMENTED
		return http.StatusNotImplemented
	case 14: // UNAVAILABLE
		return http.StatusServiceUnavailable
	case 16: // UNAUTHENTICATED
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError // UNKNOWN, INTERNAL, DATA_LOSS, anything else
}
