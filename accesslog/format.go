package accesslog

import (
	"net"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/meshgate/meshgate/obs"
)

// appendJSON writes r as one JSON object and a newline. Empty strings and
// zero counters and timings are left out; status is always written (0 means
// none was sent) and rule whenever a route matched.
func (l *Logger) appendJSON(b []byte, r *obs.Request) []byte {
	f := l.fields
	b = append(b, '{')
	first := true
	key := func(b []byte, name string) []byte {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, name...)
		return append(b, '"', ':')
	}
	str := func(b []byte, i int, v string) []byte {
		if f&(1<<i) == 0 || v == "" {
			return b
		}
		b = key(b, FieldNames[i])
		return appendJSONString(b, v)
	}
	ms := func(b []byte, i int, d time.Duration, always bool) []byte {
		if f&(1<<i) == 0 || (d == 0 && !always) {
			return b
		}
		b = key(b, FieldNames[i])
		return appendMillis(b, d)
	}
	num := func(b []byte, i int, v int64, always bool) []byte {
		if f&(1<<i) == 0 || (v == 0 && !always) {
			return b
		}
		b = key(b, FieldNames[i])
		return strconv.AppendInt(b, v, 10)
	}

	if f&(1<<fTime) != 0 && !r.Start.IsZero() {
		b = key(b, "time")
		b = append(b, '"')
		b = r.Start.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = ms(b, fDuration, r.Duration, true)
	b = ms(b, fUpstreamConnect, r.UpstreamConnect, false)
	b = ms(b, fUpstreamFirstByte, r.UpstreamFirstByte, false)
	b = str(b, fListener, r.Listener)
	b = str(b, fGatewayListener, r.Gateway)
	b = str(b, fRoute, r.Route)
	if r.Route != "" && r.Rule >= 0 {
		b = num(b, fRule, int64(r.Rule), true)
	}
	b = str(b, fBackend, r.Backend)
	b = str(b, fEndpoint, r.Endpoint)
	b = str(b, fMethod, r.Method)
	b = str(b, fHost, r.Host)
	b = str(b, fPath, r.Path)
	b = str(b, fProto, r.Proto)
	b = str(b, fClient, r.Client)
	b = num(b, fStatus, int64(r.Status), true)
	b = str(b, fGRPCStatus, r.GRPCStatus)
	b = str(b, fUpgrade, r.Upgrade)
	b = num(b, fBytesReceived, r.BytesReceived, false)
	b = num(b, fBytesSent, r.BytesSent, false)
	b = str(b, fReason, r.Reason)
	b = str(b, fDeniedPolicy, r.DeniedPolicy)
	b = str(b, fDeniedSection, r.DeniedSection)
	b = str(b, fTraceID, r.TraceID)
	return append(b, '}', '\n')
}

// appendMillis writes d in milliseconds with microsecond precision.
func appendMillis(b []byte, d time.Duration) []byte {
	return strconv.AppendFloat(b, float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string; invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			// Valid JSON, but not valid JavaScript; encoding/json escapes
			// them too.
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendCommon writes r in Apache's common log format,
//
//	client - - [02/Jan/2006:15:04:05 -0700] "GET /path HTTP/1.1" 200 1234 12.345
//
// where the last field is the duration in milliseconds. The client is the
// peer's IP address, the size "-" when no body was sent.
func appendCommon(b []byte, r *obs.Request) []byte {
	client := r.Client
	if h, _, err := net.SplitHostPort(client); err == nil {
		client = h
	}
	b = appendCommonField(b, client)
	b = append(b, " - - ["...)
	b = r.Start.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = appendEscaped(b, r.Method)
	b = append(b, ' ')
	b = appendEscaped(b, r.Path)
	b = append(b, ' ')
	b = appendEscaped(b, r.Proto)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, ' ')
	if r.BytesSent > 0 {
		b = strconv.AppendInt(b, r.BytesSent, 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, ' ')
	b = appendMillis(b, r.Duration)
	return append(b, '\n')
}

// appendCommonField writes a space-free field, "-" when empty.
func appendCommonField(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	return appendEscaped(b, s)
}

// appendEscaped writes s with quotes, backslashes, control characters and
// bytes outside printable ASCII escaped the way Apache does (\", \\,
// \xhh), so a line cannot be split or forged.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c >= 0x7f:
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return b
}
