// Package ir is the compiled, immutable configuration the data plane reads.
//
// The translator builds a fresh *Config from every snapshot; nothing in it is
// mutated afterwards, so a request can keep using the Config it started with
// while a newer one is swapped in. The types are plain data with yaml tags so
// the translator's golden files can print them. They carry no Gateway API or
// Kubernetes types: filters, router and proxy depend on ir, never on config.
package ir

import "time"

// Config is everything the data plane serves.
type Config struct {
	// Listeners are the sockets to bind, one per distinct address, sorted by
	// address. Several Gateway listeners on the same port share one entry.
	Listeners []*Listener `json:"listeners,omitempty"`
}

// Protocol is what a bound socket speaks.
type Protocol string

// Listener protocols.
const (
	// ProtocolHTTP is cleartext HTTP/1.1 and HTTP/2 with prior knowledge (h2c).
	ProtocolHTTP Protocol = "HTTP"
	// ProtocolHTTPS terminates TLS and serves HTTP/1.1 and HTTP/2 (ALPN),
	// and HTTP/3 on the UDP port of the same number.
	ProtocolHTTPS Protocol = "HTTPS"
	// ProtocolTCP relays TCP streams to the backends of its L4 routes.
	ProtocolTCP Protocol = "TCP"
	// ProtocolTLS routes TLS connections by SNI: passed through untouched
	// (ListenerHost.TLSMode Passthrough) or terminated and relayed as TCP.
	ProtocolTLS Protocol = "TLS"
	// ProtocolUDP relays datagrams, one upstream session per client address.
	ProtocolUDP Protocol = "UDP"
)

// TLSMode says what a TLS listener does with the connection.
type TLSMode string

// TLS modes, as in Gateway API.
const (
	TLSPassthrough TLSMode = "Passthrough"
	TLSTerminate   TLSMode = "Terminate"
)

// Listener is one bound socket and the virtual hosts served on it.
type Listener struct {
	// Name is stable across reloads: the address, e.g. "0.0.0.0:8080".
	Name string `json:"name"`
	// Address is the host:port to bind.
	Address string `json:"address"`
	// Protocol is HTTP or HTTPS; Gateway listeners of different protocols
	// on one port are a conflict the translator resolves before this point.
	Protocol Protocol `json:"protocol"`
	// Certificates are the TLS certificates for HTTPS, in SNI preference
	// order. Empty for HTTP.
	Certificates []*Certificate `json:"certificates,omitempty"`
	// Hosts are the Gateway listeners sharing this socket, each with the
	// routes attached to it. A request is matched to the Host whose
	// Hostname matches its host most specifically, then to that Host's
	// routes.
	Hosts []*ListenerHost `json:"hosts,omitempty"`
	// ClientAuth, when set on an HTTPS listener, asks every client for a
	// certificate and checks it against CAPEM (Gateway spec.tls.frontend).
	// It is per socket: every host on it shares one policy.
	ClientAuth *ClientAuth `json:"clientAuth,omitempty"`
	// ProxyProtocol makes every connection start with a PROXY protocol
	// v1 or v2 header whose source address is the client's (a
	// SecurityPolicy's proxyProtocol).
	ProxyProtocol bool `json:"proxyProtocol,omitempty"`
}

// ClientAuthMode says what happens to a client without a valid certificate.
type ClientAuthMode string

// Client certificate validation modes, as in Gateway API.
const (
	// ClientAuthAllowValidOnly fails the handshake unless the client
	// presents a certificate that verifies against the CAs.
	ClientAuthAllowValidOnly ClientAuthMode = "AllowValidOnly"
	// ClientAuthAllowInsecureFallback asks for a certificate but lets the
	// connection in whether or not one is presented or verifies.
	ClientAuthAllowInsecureFallback ClientAuthMode = "AllowInsecureFallback"
)

// ClientAuth is downstream client certificate validation (mutual TLS).
type ClientAuth struct {
	Mode ClientAuthMode `json:"mode"`
	// CAPEM are the trusted roots for client certificates.
	CAPEM []byte `json:"-"`
	// CAName says where CAPEM came from, for golden files and logs.
	CAName string `json:"ca"`
	// IdentityHeader is the request header that carries a verified client
	// certificate's identity to upstreams (Envoy's
	// X-Forwarded-Client-Cert format); any copy the client sent is
	// removed first. Empty forwards none. Set by the listener option
	// gateway.meshgate.dev/client-identity-header.
	IdentityHeader string `json:"identityHeader,omitempty"`
}

// TLSOptions are a Gateway listener's TLS settings from its tls.options
// (gateway.meshgate.dev/* keys), validated and in canonical form. A zero
// field keeps the gateway's default.
type TLSOptions struct {
	// MinVersion is "1.2" or "1.3".
	MinVersion string `json:"minVersion,omitempty"`
	// CipherSuites are the TLS 1.2 cipher suites offered, by Go (IANA)
	// name, in preference order. TLS 1.3 suites are not configurable.
	CipherSuites []string `json:"cipherSuites,omitempty"`
	// Curves are the key exchanges, by Go name (X25519, CurveP256,
	// X25519MLKEM768, ...), in preference order.
	Curves []string `json:"curves,omitempty"`
	// ALPN are the application protocols offered over TLS ("h2",
	// "http/1.1"), in preference order.
	ALPN []string `json:"alpn,omitempty"`
}

// Certificate is a TLS certificate chain and key served for some hostnames.
type Certificate struct {
	// Name identifies the source, e.g. "secret/default/example-com".
	Name string `json:"name"`
	// Hostnames are the SNI names this certificate is chosen for, from the
	// Gateway listener's hostname ("*.example.com" allowed). Empty means
	// the certificate is a default for names nothing else matches.
	Hostnames []string `json:"hostnames,omitempty"`
	// CertPEM and KeyPEM are the chain and the private key. They are left out
	// of golden files.
	CertPEM []byte `json:"-"`
	KeyPEM  []byte `json:"-"`
}

// ListenerHost is one Gateway listener's share of a socket.
type ListenerHost struct {
	// Name is "namespace/gateway/listener".
	Name string `json:"name"`
	// Hostname is the listener's hostname: "" matches any host,
	// "*.example.com" any subdomain, otherwise an exact name.
	Hostname string `json:"hostname,omitempty"`
	// Routes are every route rule match attached to this listener, in no
	// particular order: the router sorts them by Gateway API precedence.
	// Only HTTP and HTTPS listeners have them.
	Routes []*Route `json:"routes,omitempty"`
	// TLSMode is set on TLS listeners only.
	TLSMode TLSMode `json:"tlsMode,omitempty"`
	// L4Routes are the TCPRoute, TLSRoute or UDPRoute rules attached to a
	// TCP, TLS or UDP listener, sorted by name.
	L4Routes []*L4Route `json:"l4Routes,omitempty"`
	// Security is the access control of the Gateway listener's
	// SecurityPolicies, checked before route matching (see
	// SecurityPolicy).
	Security *SecurityPolicy `json:"security,omitempty"`
	// TLS, set on an HTTPS listener's host, are its TLS settings, chosen
	// per handshake by the SNI name the host serves; nil keeps the
	// defaults.
	TLS *TLSOptions `json:"tls,omitempty"`
	// ACME, set on an HTTPS listener's host, means its certificate for
	// Hostname (always a concrete name) is obtained and renewed from an
	// ACME CA by the data plane (package acme), not from certificateRefs.
	ACME *ACME `json:"acme,omitempty"`
}

// ACME is an ACME-managed certificate's settings (Gateway annotations
// gateway.meshgate.dev/acme and gateway.meshgate.dev/acme-email).
type ACME struct {
	// Email is the ACME account's contact; may be empty.
	Email string `json:"email,omitempty"`
}

// L4Route is one rule of a TCPRoute, TLSRoute or UDPRoute.
type L4Route struct {
	// Name is "namespace/name" of the route object.
	Name string `json:"name"`
	// RuleIndex locates the rule within the route.
	RuleIndex int `json:"ruleIndex"`
	// CreationTimestamp breaks ties between routes claiming the same
	// connections (oldest wins), then Name.
	CreationTimestamp time.Time `json:"creationTimestamp,omitzero"`
	// Hostnames are the SNI names a TLSRoute serves, intersected with the
	// listener's hostname; empty means any name the listener accepts.
	// Always empty for TCP and UDP.
	Hostnames []string `json:"hostnames,omitempty"`
	// Backends receive connections, chosen by weight per connection (per
	// client session for UDP). A nil Target is an invalid backendRef: its
	// share of connections is closed at once.
	Backends []WeightedBackend `json:"backends,omitempty"`
}

// Route is one match of one rule of one route, flattened so the router can
// order all of them by precedence.
type Route struct {
	// Name is "namespace/name" of the route object.
	Name string `json:"name"`
	// RuleIndex and MatchIndex locate the rule and match within the route.
	RuleIndex  int `json:"ruleIndex"`
	MatchIndex int `json:"matchIndex"`
	// RuleName is the rule's optional sectionName-style name.
	RuleName string `json:"ruleName,omitempty"`
	// CreationTimestamp breaks precedence ties (oldest first), then Name.
	CreationTimestamp time.Time `json:"creationTimestamp,omitzero"`
	// Hostnames are the route's hostnames intersected with the listener's;
	// empty means any host the listener accepts.
	Hostnames []string `json:"hostnames,omitempty"`
	// Match is what a request must satisfy.
	Match Match `json:"match"`
	// Filters run in order before the request is forwarded.
	Filters []Filter `json:"filters,omitempty"`
	// Backends receive the request, chosen by weight. A Backend with a nil
	// Target stands for an invalid backendRef: its share of requests gets
	// a 500. An empty list (or all weights zero) with no redirect filter
	// is also a 500.
	Backends []WeightedBackend `json:"backends,omitempty"`
	// Timeouts bound the request.
	Timeouts Timeouts `json:"timeouts,omitzero"`
	// DirectResponse, when set, answers every matching request without
	// forwarding it (used for rules the translator found invalid).
	DirectResponse *DirectResponse `json:"directResponse,omitempty"`
	// Retry, when set, resends failed attempts (HTTPRoute retry or a
	// TrafficPolicy's retry).
	Retry *Retry `json:"retry,omitempty"`
	// Fault, when set, delays or aborts a share of the matching requests
	// (a FaultInjection ExtensionRef filter).
	Fault *Fault `json:"fault,omitempty"`
	// RateLimits are checked in order before forwarding; the first one
	// exhausted answers 429.
	RateLimits []*RateLimit `json:"rateLimits,omitempty"`
	// SessionPersistence, when set, keeps a client on the backend and
	// endpoint it was first sent to.
	SessionPersistence *SessionPersistence `json:"sessionPersistence,omitempty"`
	// Policies name the TrafficPolicies that shaped this route, for
	// /explain and logs.
	Policies []string `json:"policies,omitempty"`
	// Security is the access control of the route's and rule's
	// SecurityPolicies, checked after matching.
	Security *SecurityPolicy `json:"security,omitempty"`
}

// Retry says when and how often a failed attempt is sent again.
type Retry struct {
	// Attempts is the number of retries after the first attempt.
	Attempts int `json:"attempts"`
	// Codes are the upstream HTTP statuses that are retried.
	Codes []int `json:"codes,omitempty"`
	// GRPCCodes are the gRPC status codes (grpc-status of a trailers-only
	// answer) that are retried.
	GRPCCodes []int `json:"grpcCodes,omitempty"`
	// ConnectFailure retries when no connection could be made, Reset when
	// the upstream closed or reset the connection before answering.
	ConnectFailure bool `json:"connectFailure,omitempty"`
	Reset          bool `json:"reset,omitempty"`
	// Timeout retries an attempt that ran out of its per-try time
	// (Timeouts.BackendRequest).
	Timeout bool `json:"timeout,omitempty"`
	// BackoffBase and BackoffMax bound the exponential backoff with full
	// jitter between attempts.
	BackoffBase time.Duration `json:"backoffBase,omitempty"`
	BackoffMax  time.Duration `json:"backoffMax,omitempty"`
	// BackoffMin, when set, is a wait every retry has at least (Gateway
	// API's rules[].retry.backoff is a minimum); jitter is added above it.
	BackoffMin time.Duration `json:"backoffMin,omitempty"`
	// NonIdempotent allows retrying methods that are not safe to replay
	// (POST, PATCH); off unless a policy says so.
	NonIdempotent bool `json:"nonIdempotent,omitempty"`
	// BudgetPercent caps retries in flight at this share of the requests in
	// flight on the backend (20 by default); MinRetryConcurrency retries are
	// always allowed so a quiet backend can still be retried.
	BudgetPercent       float64 `json:"budgetPercent"`
	MinRetryConcurrency int     `json:"minRetryConcurrency"`
}

// Fault is an injected delay and/or abort.
type Fault struct {
	// Name is "namespace/name" of the FaultInjection object.
	Name string `json:"name"`
	// Headers, when set, limit the fault to requests matching all of them
	// (for example one tester's header).
	Headers []StringMatch `json:"headers,omitempty"`
	// Delay holds a share of requests for a fixed time before forwarding.
	Delay *FaultDelay `json:"delay,omitempty"`
	// Abort answers a share of requests at once without forwarding.
	Abort *FaultAbort `json:"abort,omitempty"`
}

// FaultDelay is an injected delay.
type FaultDelay struct {
	Duration time.Duration `json:"duration"`
	// Percent of requests delayed, 0 to 100.
	Percent float64 `json:"percent"`
}

// FaultAbort is an injected error answer.
type FaultAbort struct {
	// HTTPStatus is the status answered; for gRPC requests it is mapped
	// to a gRPC status unless GRPCStatus is set.
	HTTPStatus int `json:"httpStatus,omitempty"`
	// GRPCStatus, when set, is the gRPC status code answered to gRPC
	// requests (as a trailers-only response).
	GRPCStatus *int `json:"grpcStatus,omitempty"`
	// Percent of requests aborted, 0 to 100.
	Percent float64 `json:"percent"`
}

// RateLimitKeyType says what a rate limit counts requests by.
type RateLimitKeyType string

// Rate limit keys.
const (
	// RateLimitRoute counts every request of the route together.
	RateLimitRoute RateLimitKeyType = "Route"
	// RateLimitClientIP counts per client address (the real one, after
	// trusted X-Forwarded-For hops).
	RateLimitClientIP RateLimitKeyType = "ClientIP"
	// RateLimitHeader counts per value of a request header; requests
	// without the header are not limited by this rule.
	RateLimitHeader RateLimitKeyType = "Header"
	// RateLimitIdentity counts per authenticated identity (the
	// verified client certificate or token subject); requests without
	// one are counted per client address.
	RateLimitIdentity RateLimitKeyType = "Identity"
)

// RateLimit is a token bucket: Requests per Period, with bursts up to Burst.
type RateLimit struct {
	// Name is stable across reloads ("policy ns/name rule N"): buckets
	// and Redis keys are keyed by it, so a reload keeps the counts.
	Name string `json:"name"`
	// Key says what is counted separately; Header names the header for
	// RateLimitHeader.
	Key    RateLimitKeyType `json:"key"`
	Header string           `json:"header,omitempty"`
	// Requests per Period; Burst defaults to Requests.
	Requests uint32        `json:"requests"`
	Period   time.Duration `json:"period"`
	Burst    uint32        `json:"burst,omitempty"`
	// Global counts in Redis, shared by every gateway replica; otherwise
	// each replica counts alone.
	Global bool `json:"global,omitempty"`
	// FailOpen lets requests through when Redis cannot be reached;
	// otherwise they get 503.
	FailOpen bool `json:"failOpen,omitempty"`
}

// SessionPersistenceType says where the session key travels.
type SessionPersistenceType string

// Session persistence types, as in Gateway API.
const (
	SessionCookie SessionPersistenceType = "Cookie"
	SessionHeader SessionPersistenceType = "Header"
)

// SessionPersistence keeps a client on one backend and endpoint.
type SessionPersistence struct {
	Type SessionPersistenceType `json:"type"`
	// Name is the cookie or header name.
	Name string `json:"name"`
	// AbsoluteTimeout is the session's lifetime (cookie Max-Age); zero
	// for a browser-session cookie.
	AbsoluteTimeout time.Duration `json:"absoluteTimeout,omitempty"`
	// Permanent sets Max-Age on the cookie (Gateway API lifetimeType
	// Permanent); otherwise the cookie ends with the browser session.
	Permanent bool `json:"permanent,omitempty"`
}

// PathMatchType says how Match.Path is compared.
type PathMatchType string

// Path match types, as in Gateway API.
const (
	PathExact             PathMatchType = "Exact"
	PathPrefix            PathMatchType = "PathPrefix"
	PathRegularExpression PathMatchType = "RegularExpression"
)

// StringMatchType says how a header or query value is compared.
type StringMatchType string

// String match types, as in Gateway API.
const (
	MatchExact             StringMatchType = "Exact"
	MatchRegularExpression StringMatchType = "RegularExpression"
)

// Match holds every condition of one HTTPRouteMatch; all must hold.
type Match struct {
	// Path defaults to PathPrefix "/".
	Path PathMatch `json:"path"`
	// Method is an HTTP method, or "" for any.
	Method string `json:"method,omitempty"`
	// Headers match request headers; names are case-insensitive.
	Headers []StringMatch `json:"headers,omitempty"`
	// QueryParams match query parameters; names are case-sensitive.
	QueryParams []StringMatch `json:"queryParams,omitempty"`
}

// PathMatch matches the request path.
type PathMatch struct {
	Type  PathMatchType `json:"type"`
	Value string        `json:"value"`
}

// StringMatch matches one named header or query parameter.
type StringMatch struct {
	Type  StringMatchType `json:"type"`
	Name  string          `json:"name"`
	Value string          `json:"value"`
}

// FilterType names a filter.
type FilterType string

// Filter types, as in Gateway API.
const (
	FilterRequestHeaderModifier  FilterType = "RequestHeaderModifier"
	FilterResponseHeaderModifier FilterType = "ResponseHeaderModifier"
	FilterRequestRedirect        FilterType = "RequestRedirect"
	FilterURLRewrite             FilterType = "URLRewrite"
	FilterRequestMirror          FilterType = "RequestMirror"
	FilterCORS                   FilterType = "CORS"
)

// Filter is one filter; exactly the field for Type is set.
type Filter struct {
	Type                   FilterType      `json:"type"`
	RequestHeaderModifier  *HeaderModifier `json:"requestHeaderModifier,omitempty"`
	ResponseHeaderModifier *HeaderModifier `json:"responseHeaderModifier,omitempty"`
	RequestRedirect        *Redirect       `json:"requestRedirect,omitempty"`
	URLRewrite             *URLRewrite     `json:"urlRewrite,omitempty"`
	RequestMirror          *Mirror         `json:"requestMirror,omitempty"`
	CORS                   *CORS           `json:"cors,omitempty"`
}

// CORS is a Gateway API HTTPCORSFilter, validated: the gateway answers
// preflight requests itself and adds the CORS response headers to the
// responses of allowed origins.
type CORS struct {
	// AllowOrigins are "*" alone, or origins "scheme://host[:port]" whose
	// host may be "*" or start with "*." (any number of labels).
	AllowOrigins     []string `json:"allowOrigins,omitempty"`
	AllowCredentials bool     `json:"allowCredentials,omitempty"`
	// AllowMethods, AllowHeaders: a list, or "*" alone (the request's
	// Access-Control-Request-Method/-Headers are echoed).
	AllowMethods  []string `json:"allowMethods,omitempty"`
	AllowHeaders  []string `json:"allowHeaders,omitempty"`
	ExposeHeaders []string `json:"exposeHeaders,omitempty"`
	// MaxAge is Access-Control-Max-Age in seconds (5 when unset).
	MaxAge int32 `json:"maxAge"`
}

// Mirror sends a copy of a share of requests to another backend and ignores
// its answers.
type Mirror struct {
	// Target is where copies go; nil when the reference could not be
	// resolved, and then nothing is mirrored.
	Target *Backend `json:"target,omitempty"`
	// Percent of requests mirrored, 0 to 100.
	Percent float64 `json:"percent"`
}

// Header is a name and value.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// HeaderModifier edits headers: Set replaces, Add appends, Remove deletes.
type HeaderModifier struct {
	Set    []Header `json:"set,omitempty"`
	Add    []Header `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

// PathModifierType says how a redirect or rewrite changes the path.
type PathModifierType string

// Path modifier types, as in Gateway API.
const (
	FullPathReplace    PathModifierType = "ReplaceFullPath"
	PrefixMatchReplace PathModifierType = "ReplacePrefixMatch"
)

// PathModifier replaces the whole path or the prefix the route matched.
type PathModifier struct {
	Type  PathModifierType `json:"type"`
	Value string           `json:"value"`
}

// Redirect answers with a redirect; unset fields keep the request's value.
type Redirect struct {
	Scheme   *string       `json:"scheme,omitempty"`
	Hostname *string       `json:"hostname,omitempty"`
	Path     *PathModifier `json:"path,omitempty"`
	Port     *int32        `json:"port,omitempty"`
	// StatusCode is 301, 302, 303, 307 or 308; 302 when unset.
	StatusCode int `json:"statusCode"`
}

// URLRewrite changes the forwarded request's host and path.
type URLRewrite struct {
	Hostname *string       `json:"hostname,omitempty"`
	Path     *PathModifier `json:"path,omitempty"`
}

// WeightedBackend is one backendRef with its weight.
type WeightedBackend struct {
	// Weight is relative to the route rule's other backends; 0 means the
	// backend gets no traffic.
	Weight int32 `json:"weight"`
	// Target is nil when the backendRef could not be resolved (missing
	// object, not permitted, wrong kind): requests routed here get 500.
	Target *Backend `json:"target,omitempty"`
	// Filters are the backendRef's own filters, applied after the rule's.
	Filters []Filter `json:"filters,omitempty"`
}

// Backend is a set of endpoints with a stable identity, so that runtime state
// (connection pools, health) keyed by Name survives reloads.
type Backend struct {
	// Name is stable: "service/namespace/name:port" or
	// "backend/namespace/name".
	Name string `json:"name"`
	// Protocol is how to speak to the endpoints.
	Protocol BackendProtocol `json:"protocol"`
	// Endpoints are ready addresses. Empty means no healthy upstream: 503.
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// TLS, when set, means the endpoints are spoken to over TLS (HTTP/1.1
	// or HTTP/2 chosen by ALPN for HTTP backends).
	TLS *UpstreamTLS `json:"tls,omitempty"`
	// LoadBalancer picks among endpoints; nil is round robin.
	LoadBalancer *LoadBalancer `json:"loadBalancer,omitempty"`
	// HealthCheck, when set, probes every endpoint and takes failing ones
	// out of rotation.
	HealthCheck *HealthCheck `json:"healthCheck,omitempty"`
	// Outlier, when set, ejects endpoints that fail real requests.
	Outlier *OutlierDetection `json:"outlierDetection,omitempty"`
	// PanicThreshold is the percentage of healthy endpoints under which
	// health is ignored and every endpoint gets traffic (0 disables the
	// panic mode: only healthy endpoints are used, 503 when none).
	PanicThreshold float64 `json:"panicThreshold,omitempty"`
	// CircuitBreaker, when set, caps what the gateway sends the backend.
	CircuitBreaker *CircuitBreaker `json:"circuitBreaker,omitempty"`
	// ConnectTimeout bounds opening a connection to an endpoint; the
	// gateway's default when zero.
	ConnectTimeout time.Duration `json:"connectTimeout,omitempty"`
	// IdleTimeout closes pooled upstream connections unused this long;
	// the gateway's default when zero.
	IdleTimeout time.Duration `json:"idleTimeout,omitempty"`
}

// LoadBalancerType names a load-balancing algorithm.
type LoadBalancerType string

// Load-balancing algorithms.
const (
	LBRoundRobin LoadBalancerType = "RoundRobin"
	// LBLeastRequest picks the less busy of two random endpoints (power of
	// two choices), weighted.
	LBLeastRequest LoadBalancerType = "LeastRequest"
	LBRandom       LoadBalancerType = "Random"
	// LBRingHash and LBMaglev map a hash of the request (HashOn) to an
	// endpoint, so the same key keeps the same endpoint while the set is
	// stable and few keys move when it changes.
	LBRingHash LoadBalancerType = "RingHash"
	LBMaglev   LoadBalancerType = "Maglev"
)

// HashOnType says what consistent hashing hashes.
type HashOnType string

// Hash inputs.
const (
	HashHeader   HashOnType = "Header"
	HashCookie   HashOnType = "Cookie"
	HashSourceIP HashOnType = "SourceIP"
)

// LoadBalancer is how an endpoint is chosen.
type LoadBalancer struct {
	Type LoadBalancerType `json:"type"`
	// HashOn is the request property hashed by RingHash and Maglev.
	HashOn HashOnType `json:"hashOn,omitempty"`
	// HashName is the header or cookie name for HashHeader/HashCookie.
	HashName string `json:"hashName,omitempty"`
	// SlowStart ramps a new endpoint's share of traffic up over this
	// window instead of sending it a full share at once.
	SlowStart time.Duration `json:"slowStart,omitempty"`
}

// HealthCheckType says how an endpoint is probed.
type HealthCheckType string

// Health check kinds.
const (
	HealthHTTP HealthCheckType = "HTTP"
	HealthTCP  HealthCheckType = "TCP"
	HealthGRPC HealthCheckType = "GRPC"
)

// HealthCheck is an active probe of every endpoint.
type HealthCheck struct {
	Type     HealthCheckType `json:"type"`
	Interval time.Duration   `json:"interval"`
	Timeout  time.Duration   `json:"timeout"`
	// HealthyThreshold consecutive successes bring an endpoint back;
	// UnhealthyThreshold consecutive failures take it out.
	HealthyThreshold   int `json:"healthyThreshold"`
	UnhealthyThreshold int `json:"unhealthyThreshold"`
	// Path and Host are the HTTP probe's request target and Host header;
	// ExpectedStatuses the answers counted as healthy (200-399 if empty).
	Path             string `json:"path,omitempty"`
	Host             string `json:"host,omitempty"`
	ExpectedStatuses []int  `json:"expectedStatuses,omitempty"`
	// GRPCService is the service name asked of grpc.health.v1.Health
	// ("" for the server as a whole).
	GRPCService string `json:"grpcService,omitempty"`
}

// OutlierDetection ejects endpoints that fail real traffic.
type OutlierDetection struct {
	// Consecutive5xx ejects after this many 5xx answers in a row (0: off).
	Consecutive5xx int `json:"consecutive5xx,omitempty"`
	// ConsecutiveGatewayErrors ejects after this many connect failures,
	// resets, timeouts or 502/503/504 answers in a row (0: off).
	ConsecutiveGatewayErrors int `json:"consecutiveGatewayErrors,omitempty"`
	// BaseEjectionTime is the first ejection's length; each repeated
	// ejection of the same endpoint lasts one more multiple of it, up to
	// MaxEjectionTime.
	BaseEjectionTime time.Duration `json:"baseEjectionTime"`
	MaxEjectionTime  time.Duration `json:"maxEjectionTime"`
	// MaxEjectionPercent caps the share of a backend's endpoints ejected
	// at once.
	MaxEjectionPercent float64 `json:"maxEjectionPercent"`
}

// CircuitBreaker caps the load the gateway puts on a backend; a request over
// a cap is answered 503 at once (gRPC UNAVAILABLE) with
// "x-meshgate-overloaded: circuit-breaker". Zero means no cap.
type CircuitBreaker struct {
	// MaxConnections caps the backend's open upstream connections.
	MaxConnections int `json:"maxConnections,omitempty"`
	// MaxPendingRequests caps the requests waiting for a connection when
	// MaxConnections is reached.
	MaxPendingRequests int `json:"maxPendingRequests,omitempty"`
	// MaxRequests caps the requests in flight to the backend.
	MaxRequests int `json:"maxRequests,omitempty"`
	// MaxRetries caps the retries in flight to the backend.
	MaxRetries int `json:"maxRetries,omitempty"`
}

// UpstreamTLS is how the gateway verifies a backend's certificate.
type UpstreamTLS struct {
	// ServerName is the SNI sent and the name the certificate must carry.
	ServerName string `json:"serverName"`
	// CAPEM are the trusted roots; empty means the system roots.
	CAPEM []byte `json:"-"`
	// CAName says where CAPEM came from, for golden files and logs.
	CAName string `json:"ca,omitempty"`
	// SANDNSNames and SANURIs, when either is set, replace the check of
	// ServerName: the certificate must carry one of these DNS names (a
	// wildcard in the certificate matches) or URIs (exact).
	SANDNSNames []string `json:"sanDNSNames,omitempty"`
	SANURIs     []string `json:"sanURIs,omitempty"`
	// ClientCertPEM and ClientKeyPEM, when set, are the certificate the
	// gateway presents to endpoints asking for one (Gateway
	// spec.tls.backend.clientCertificateRef); ClientCertName says where
	// they came from.
	ClientCertPEM  []byte `json:"-"`
	ClientKeyPEM   []byte `json:"-"`
	ClientCertName string `json:"clientCert,omitempty"`
	// Error, when set, says why the TLS settings are unusable (a
	// BackendTLSPolicy with no valid CA certificate): every connection
	// fails with it rather than go out unverified.
	Error string `json:"error,omitempty"`
}

// BackendProtocol is the upstream protocol.
type BackendProtocol string

// Upstream protocols.
const (
	// BackendHTTP1 is HTTP/1.1 (ALPN "http/1.1" when Backend.TLS is set).
	BackendHTTP1 BackendProtocol = "HTTP/1.1"
	// BackendH2C is HTTP/2 only: prior knowledge in cleartext, ALPN "h2"
	// when Backend.TLS is set. GRPCRoute backends always use it.
	BackendH2C BackendProtocol = "H2C"
	// BackendTCP is a raw stream (TCPRoute, TLSRoute backends).
	BackendTCP BackendProtocol = "TCP"
	// BackendUDP is datagrams (UDPRoute backends).
	BackendUDP BackendProtocol = "UDP"
)

// Endpoint is one upstream address.
type Endpoint struct {
	// Address is "host:port" (IPv6 hosts in brackets).
	Address string `json:"address"`
	// Weight is the endpoint's share relative to its siblings; 0 means 1.
	Weight int32 `json:"weight,omitempty"`
	// Draining marks an endpoint that is terminating but still serving
	// (EndpointSlice serving=true, terminating=true): it gets no new
	// traffic unless no other endpoint is usable.
	Draining bool `json:"draining,omitempty"`
}

// Timeouts bound a request. Zero means the default (the upstream timeout of
// 15 s when neither is set); a negative value (TimeoutDisabled, from a
// route's "0s") means no timeout at all.
type Timeouts struct {
	// Request bounds the whole request, from the gateway receiving it to
	// the response being complete; 504 when exceeded.
	Request time.Duration `json:"request,omitempty"`
	// BackendRequest bounds one attempt to the backend; 504 when exceeded.
	BackendRequest time.Duration `json:"backendRequest,omitempty"`
}

// TimeoutDisabled marks a timeout the route turned off.
const TimeoutDisabled time.Duration = -1

// DirectResponse is a fixed answer.
type DirectResponse struct {
	StatusCode int    `json:"statusCode"`
	Body       string `json:"body,omitempty"`
}
