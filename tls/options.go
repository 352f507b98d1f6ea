package tls

import (
	ctls "crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"slices"
	"sort"
	"strings"

	"github.com/meshgate/meshgate/ir"
)

// OptionPrefix starts every key of a Gateway listener's tls.options that
// Meshgate reads. Gateway API reserves unprefixed keys for itself and
// leaves prefixed ones to implementations.
const OptionPrefix = "gateway.meshgate.dev/"

// Listener option keys (tls.options of a Gateway listener).
const (
	// OptMinVersion is the oldest TLS version accepted: "1.2" or "1.3".
	OptMinVersion = OptionPrefix + "min-version"
	// OptCipherSuites are the TLS 1.2 cipher suites, by IANA name,
	// comma separated, in preference order.
	OptCipherSuites = OptionPrefix + "cipher-suites"
	// OptCurves are the key exchanges, comma separated, in preference
	// order (X25519, P-256, P-384, P-521, X25519MLKEM768, ...).
	OptCurves = OptionPrefix + "curves"
	// OptALPN are the protocols offered through ALPN, comma separated:
	// "h2,http/1.1" (the default) or "http/1.1" to turn HTTP/2 off.
	OptALPN = OptionPrefix + "alpn"
	// OptClientIdentityHeader names the header carrying a verified
	// client certificate's identity to upstreams, or "none".
	OptClientIdentityHeader = OptionPrefix + "client-identity-header"
)

// DefaultIdentityHeader carries the verified client identity of listeners
// with client certificate validation unless the listener names another.
const DefaultIdentityHeader = "X-Forwarded-Client-Cert"

// ListenerOptions is what a Gateway listener's tls.options ask for.
type ListenerOptions struct {
	// TLS are the handshake settings; nil when none was set.
	TLS *ir.TLSOptions
	// IdentityHeader is the client identity header (canonical form), ""
	// for "none"; meaningful only when IdentitySet.
	IdentityHeader string
	IdentitySet    bool
}

// ParseOptions validates a listener's tls.options. Keys of other
// implementations (another domain prefix) are left alone; an unknown key
// with Meshgate's prefix, an unprefixed key (reserved for Gateway API, none
// of which Meshgate supports yet) or a bad value is an error naming every
// offending key and value, so nothing a user asked for is silently ignored.
func ParseOptions(opts map[string]string) (ListenerOptions, error) {
	var out ListenerOptions
	var o ir.TLSOptions
	var errs []string
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := strings.TrimSpace(opts[k])
		var err error
		switch k {
		case OptMinVersion:
			if v != "1.2" && v != "1.3" {
				err = errors.New("not one of 1.2, 1.3")
			}
			o.MinVersion = v
		case OptCipherSuites:
			o.CipherSuites, err = parseList(v, cipherSuiteName)
		case OptCurves:
			o.Curves, err = parseList(v, curveName)
		case OptALPN:
			o.ALPN, err = parseList(v, alpnName)
		case OptClientIdentityHeader:
			out.IdentitySet = true
			out.IdentityHeader, err = identityHeaderName(v)
		default:
			if strings.HasPrefix(k, OptionPrefix) {
				err = fmt.Errorf("unknown key; Meshgate supports %s, %s, %s, %s and %s", OptMinVersion, OptCipherSuites, OptCurves, OptALPN, OptClientIdentityHeader)
			} else if !strings.Contains(k, "/") {
				err = fmt.Errorf("unprefixed keys are reserved for Gateway API and none is supported; Meshgate's keys start with %s", OptionPrefix)
			} else {
				continue // another implementation's key
			}
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("tls.options[%s]: %q: %v", k, opts[k], err))
		}
	}
	if len(o.CipherSuites) > 0 && o.MinVersion == "1.3" {
		errs = append(errs, fmt.Sprintf("tls.options[%s]: cipher suites apply to TLS 1.2 only, and %s is 1.3", OptCipherSuites, OptMinVersion))
	}
	if len(errs) > 0 {
		return ListenerOptions{}, errors.New(strings.Join(errs, "; "))
	}
	if o.MinVersion != "" || o.CipherSuites != nil || o.Curves != nil || o.ALPN != nil {
		out.TLS = &o
	}
	return out, nil
}

// parseList splits a comma-separated value and canonicalises each item with
// name; empty items and repeats are errors.
func parseList(v string, name func(string) (string, error)) ([]string, error) {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, errors.New("empty item in a comma-separated list")
		}
		n, err := name(item)
		if err != nil {
			return nil, err
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("%s is listed twice", item)
		}
		out = append(out, n)
	}
	return out, nil
}

func cipherSuiteName(s string) (string, error) {
	for _, c := range ctls.InsecureCipherSuites() {
		if strings.EqualFold(c.Name, s) {
			return "", fmt.Errorf("%s is insecure", c.Name)
		}
	}
	for _, c := range ctls.CipherSuites() {
		if !strings.EqualFold(c.Name, s) {
			continue
		}
		if !slices.Contains(c.SupportedVersions, ctls.VersionTLS12) {
			return "", fmt.Errorf("%s is a TLS 1.3 suite; those are always on and not configurable", c.Name)
		}
		return c.Name, nil
	}
	return "", fmt.Errorf("%s is not a known TLS 1.2 cipher suite", s)
}

// curves are the key exchanges by the names accepted for them (lower
// case): Go's names and the usual short ones.
var curves = map[string]ctls.CurveID{
	"x25519": ctls.X25519,
	"p-256":  ctls.CurveP256, "curvep256": ctls.CurveP256, "secp256r1": ctls.CurveP256,
	"p-384": ctls.CurveP384, "curvep384": ctls.CurveP384, "secp384r1": ctls.CurveP384,
	"p-521": ctls.CurveP521, "curvep521": ctls.CurveP521, "secp521r1": ctls.CurveP521,
	"x25519mlkem768":     ctls.X25519MLKEM768,
	"secp256r1mlkem768":  ctls.SecP256r1MLKEM768,
	"secp384r1mlkem1024": ctls.SecP384r1MLKEM1024,
}

func curveName(s string) (string, error) {
	id, ok := curves[strings.ToLower(s)]
	if !ok {
		return "", fmt.Errorf("%s is not one of X25519, P-256, P-384, P-521, X25519MLKEM768, SecP256r1MLKEM768, SecP384r1MLKEM1024", s)
	}
	return id.String(), nil
}

func alpnName(s string) (string, error) {
	switch p := strings.ToLower(s); p {
	case "h2", "http/1.1":
		return p, nil
	}
	return "", fmt.Errorf("%s is not one of h2, http/1.1", s)
}

// notIdentityHeaders are headers that framing, routing or hop-by-hop
// handling own; carrying a client identity in them would break requests.
var notIdentityHeaders = []string{
	"Host", "Content-Length", "Content-Type", "Transfer-Encoding", "Connection", "Keep-Alive",
	"Proxy-Connection", "Te", "Trailer", "Upgrade", "Authorization", "Cookie",
}

func identityHeaderName(v string) (string, error) {
	if strings.EqualFold(v, "none") {
		return "", nil
	}
	if v == "" {
		return "", errors.New(`empty; name a header or say "none"`)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return "", errors.New("not a header name: use letters, digits and '-'")
		}
	}
	h := textproto.CanonicalMIMEHeaderKey(v)
	if slices.Contains(notIdentityHeaders, h) {
		return "", fmt.Errorf("%s is owned by HTTP itself", h)
	}
	return h, nil
}

// HostOptions are the TLS settings of an HTTPS socket's hosts, compiled
// once per config. A host's settings are picked by the handshake's SNI
// name, the way its certificate is, so Gateway listeners sharing a port
// keep their own; the 421 check (router.Table.Misdirected) stops a
// connection set up for one host from carrying requests for another. A nil
// *HostOptions (no host has settings) changes nothing.
type HostOptions struct {
	names sniMap[*ir.TLSOptions] // nil value: the defaults
}

// NewHostOptions compiles hosts' TLS settings, checking every name again
// (ir may not come from the translator).
func NewHostOptions(hosts []*ir.ListenerHost) (*HostOptions, error) {
	var h *HostOptions
	for _, host := range hosts {
		if host.TLS == nil {
			continue
		}
		if err := applyOptions(&ctls.Config{}, host.TLS); err != nil {
			return nil, fmt.Errorf("host %s: %w", host.Name, err)
		}
		h = &HostOptions{}
	}
	if h == nil {
		return nil, nil
	}
	h.names = newSNIMap[*ir.TLSOptions]()
	for _, host := range hosts {
		h.names.add(host.Hostname, host.TLS)
	}
	return h, nil
}

// Apply makes base pick, per handshake, a variant of itself with the
// settings of the host its SNI names (a client naming a host without
// settings, or no host, gets base). Call it last: the variants are copies of
// base as it is now, certificates, client authentication, ticket keys and
// ALPN included (a protocol base adds beyond h2 and http/1.1, such as ACME's
// acme-tls/1, stays offered).
func (h *HostOptions) Apply(base *ctls.Config) *ctls.Config {
	if h == nil || base == nil {
		return base
	}
	variants := map[*ir.TLSOptions]*ctls.Config{}
	for _, o := range h.names.values() {
		if o == nil || variants[o] != nil {
			continue
		}
		v := base.Clone()
		_ = applyOptions(v, o) // checked by NewHostOptions
		if o.ALPN != nil {
			v.NextProtos = slices.Clone(o.ALPN)
			for _, p := range base.NextProtos {
				if p != "h2" && p != "http/1.1" {
					v.NextProtos = append(v.NextProtos, p)
				}
			}
		}
		variants[o] = v
	}
	names := h.names
	base.GetConfigForClient = func(hello *ctls.ClientHelloInfo) (*ctls.Config, error) {
		if o, ok := names.lookup(hello.ServerName); ok && o != nil {
			return variants[o], nil
		}
		return nil, nil
	}
	return base
}

// Unnamed reports whether a request for host, on a connection whose
// handshake named no server (no SNI: a client that dialled an IP address,
// or chose to leave it out), would be held to other settings than the
// ones that handshake got: those of the hostless listener, or the
// socket's defaults. Such a request gets 421 (RFC 9110 15.5.20), so
// leaving SNI out cannot bypass a host's minimum version or cipher suites;
// with SNI, router.Table.Misdirected does this job. A nil *HostOptions
// holds every host to the same settings.
func (h *HostOptions) Unnamed(host string) bool {
	if h == nil {
		return false
	}
	if name, _, err := net.SplitHostPort(host); err == nil {
		host = name
	}
	got, _ := h.names.lookup("")
	want, _ := h.names.lookup(host)
	return got != want
}

// applyOptions sets o's version, suites and curves on cfg (not ALPN, which
// depends on what else cfg offers).
func applyOptions(cfg *ctls.Config, o *ir.TLSOptions) error {
	switch o.MinVersion {
	case "":
	case "1.2":
		cfg.MinVersion = ctls.VersionTLS12
	case "1.3":
		cfg.MinVersion = ctls.VersionTLS13
	default:
		return fmt.Errorf("minimum TLS version %q is not 1.2 or 1.3", o.MinVersion)
	}
	if o.CipherSuites != nil {
		cfg.CipherSuites = cfg.CipherSuites[:0:0]
		for _, n := range o.CipherSuites {
			if _, err := cipherSuiteName(n); err != nil {
				return err
			}
			for _, c := range ctls.CipherSuites() {
				if c.Name == n {
					cfg.CipherSuites = append(cfg.CipherSuites, c.ID)
				}
			}
		}
	}
	if o.Curves != nil {
		cfg.CurvePreferences = nil
		for _, n := range o.Curves {
			id, ok := curves[strings.ToLower(n)]
			if !ok {
				return fmt.Errorf("curve %q is not known", n)
			}
			cfg.CurvePreferences = append(cfg.CurvePreferences, id)
		}
	}
	for _, p := range o.ALPN {
		if _, err := alpnName(p); err != nil {
			return err
		}
	}
	return nil
}
