package ir

import "time"

// SecurityPolicy is the effective access control at one level (a Gateway
// listener, or a route rule): each section comes from the most specific
// SecurityPolicy setting it and names that policy. Sections are checked in
// the order IPAccess, BasicAuth, JWT, ExtAuth.
type SecurityPolicy struct {
	IPAccess  *IPAccess  `json:"ipAccess,omitempty"`
	BasicAuth *BasicAuth `json:"basicAuth,omitempty"`
	JWT       *JWTAuth   `json:"jwt,omitempty"`
	ExtAuth   *ExtAuth   `json:"extAuth,omitempty"`
}

// Empty reports whether no section is set.
func (p *SecurityPolicy) Empty() bool {
	return p == nil || (p.IPAccess == nil && p.BasicAuth == nil && p.JWT == nil && p.ExtAuth == nil)
}

// IPAccess lists client networks allowed and denied; deny wins.
type IPAccess struct {
	Policy string   `json:"policy"`
	Allow  []string `json:"allow,omitempty"`
	Deny   []string `json:"deny,omitempty"`
}

// BasicAuth is HTTP Basic authentication against bcrypt hashes.
type BasicAuth struct {
	Policy string `json:"policy"`
	Realm  string `json:"realm"`
	// Source names the Secret, for golden files and logs.
	Source string `json:"source"`
	// Users maps user names to bcrypt hashes; never serialised.
	Users map[string][]byte `json:"-"`
}

// JWTAuth requires a token from one of Providers.
type JWTAuth struct {
	Policy    string         `json:"policy"`
	Providers []*JWTProvider `json:"providers"`
	Optional  bool           `json:"optional,omitempty"`
	Rules     []ClaimRule    `json:"rules,omitempty"`
}

// JWTProvider is one issuer's verification settings.
type JWTProvider struct {
	Name       string   `json:"name"`
	Issuer     string   `json:"issuer,omitempty"`
	Audiences  []string `json:"audiences,omitempty"`
	Algorithms []string `json:"algorithms"`
	// JWKS is a key set from a Secret (never serialised); JWKSSource names
	// it.
	JWKS       []byte `json:"-"`
	JWKSSource string `json:"jwksSource,omitempty"`
	// RemoteJWKS is fetched and cached for CacheDuration.
	RemoteJWKS    string        `json:"remoteJWKS,omitempty"`
	CacheDuration time.Duration `json:"cacheDuration,omitempty"`
	// Header and Prefix, or Cookie, say where the token is; the default
	// is "Authorization: Bearer".
	Header         string          `json:"header,omitempty"`
	Prefix         string          `json:"prefix,omitempty"`
	Cookie         string          `json:"cookie,omitempty"`
	ClaimToHeaders []ClaimToHeader `json:"claimToHeaders,omitempty"`
}

// ClaimToHeader copies a claim to a request header.
type ClaimToHeader struct {
	Claim  string `json:"claim"`
	Header string `json:"header"`
}

// ClaimRule holds when the claim equals (or, as an array, contains) one of
// Values.
type ClaimRule struct {
	Claim  string   `json:"claim"`
	Values []string `json:"values"`
}

// ExtAuth is an external authorization service.
type ExtAuth struct {
	Policy string `json:"policy"`
	// GRPC selects Envoy's ext_authz gRPC API; otherwise HTTP.
	GRPC bool `json:"grpc,omitempty"`
	// Backend serves the checks; nil Target-like (no endpoints) fails
	// the check (open or closed per FailOpen).
	Backend *Backend `json:"backend"`
	// Path prefixes the request path in HTTP checks.
	Path             string        `json:"path,omitempty"`
	HeadersToBackend []string      `json:"headersToBackend,omitempty"`
	Timeout          time.Duration `json:"timeout"`
	FailOpen         bool          `json:"failOpen,omitempty"`
}
