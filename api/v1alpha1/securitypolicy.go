package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// KindSecurityPolicy is the kind name of SecurityPolicy, as written in manifests.
const KindSecurityPolicy = "SecurityPolicy"

// SecurityPolicy decides who may send requests: client IP allow and deny
// lists, JSON Web Tokens, HTTP Basic users and an external authorization
// service (Envoy ext_authz over gRPC, or plain HTTP). It attaches like a
// TrafficPolicy (GEP-713): to a Gateway (or one listener, through
// sectionName), or to an HTTPRoute or GRPCRoute (or one named rule).
//
// Each section (ipAccess, jwt, basicAuth, extAuth) is taken from the most
// specific policy that sets it: a rule beats a route beats a listener beats
// a Gateway. Two policies on the same target conflict: the older one (then
// the one first by namespace/name) wins, the other is reported
// Accepted=False, reason Conflicted.
//
// Sections from a Gateway or listener policy are checked before the
// request is matched to a route, so that jwt.providers[].claimToHeaders can
// drive header matches of the routes (claim-based routing). A failure there
// is held until the route is known: when that route's own policy sets the
// same section, the route's answer wins. When a route's or rule's jwt
// section copies claims to headers, a request passing that route's checks
// is matched once more with the headers set, and the route found serves it
// (sections already passed with the same policy are not checked again).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=gateway-api;meshgate,shortName=msp
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SecurityPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is what the policy requires.
	// +required
	Spec SecurityPolicySpec `json:"spec"`

	// Status says, per Gateway, whether the policy took effect.
	// +optional
	Status gwapiv1.PolicyStatus `json:"status,omitempty"`
}

// SecurityPolicyList is a list of SecurityPolicy.
//
// +kubebuilder:object:root=true
type SecurityPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SecurityPolicy `json:"items"`
}

// SecurityPolicySpec is the access control for the targets.
//
// +kubebuilder:validation:XValidation:rule="has(self.ipAccess) || has(self.jwt) || has(self.basicAuth) || has(self.extAuth) || (has(self.proxyProtocol) && self.proxyProtocol)",message="a SecurityPolicy must set at least one section"
type SecurityPolicySpec struct {
	// TargetRefs are the objects the policy applies to, in the policy's
	// namespace: Gateway, HTTPRoute or GRPCRoute.
	//
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(r, r.group == 'gateway.networking.k8s.io' && r.kind in ['Gateway', 'HTTPRoute', 'GRPCRoute'])",message="targetRefs must be a Gateway, HTTPRoute or GRPCRoute"
	TargetRefs []gwapiv1.LocalPolicyTargetReferenceWithSectionName `json:"targetRefs"`

	// ProxyProtocol makes the targeted Gateway listeners (their sockets)
	// expect a PROXY protocol v1 or v2 header on every connection, from a
	// load balancer in front; the address it carries is the client
	// address. Only allowed when every target is a Gateway.
	// +optional
	ProxyProtocol bool `json:"proxyProtocol,omitempty"`

	// IPAccess allows or denies clients by address.
	// +optional
	IPAccess *IPAccess `json:"ipAccess,omitempty"`

	// JWT requires a valid JSON Web Token.
	// +optional
	JWT *JWTAuth `json:"jwt,omitempty"`

	// BasicAuth requires an HTTP Basic user and password.
	// +optional
	BasicAuth *BasicAuth `json:"basicAuth,omitempty"`

	// ExtAuth asks an external service whether to let each request in.
	// +optional
	ExtAuth *ExtAuth `json:"extAuth,omitempty"`
}

// IPAccess is a client address check. The client address is the peer, the
// address from a PROXY protocol header when the listener expects one, or
// the right-most X-Forwarded-For entry not sent by a trusted proxy
// (--trusted-proxies). Deny wins over allow; with an allow list, any
// address not in it is denied.
//
// +kubebuilder:validation:XValidation:rule="(has(self.allow) && size(self.allow) > 0) || (has(self.deny) && size(self.deny) > 0)",message="set allow, deny or both"
type IPAccess struct {
	// Allow are CIDRs (or single addresses) let in.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +listType=atomic
	Allow []string `json:"allow,omitempty"`
	// Deny are CIDRs (or single addresses) refused with 403.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +listType=atomic
	Deny []string `json:"deny,omitempty"`
}

// JWTAuth requires a JSON Web Token from one of the providers.
type JWTAuth struct {
	// Providers issue the accepted tokens; a token is accepted when one
	// provider verifies it.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	Providers []JWTProvider `json:"providers"`

	// Optional lets requests without any token through (a token that is
	// present must still be valid).
	// +optional
	Optional bool `json:"optional,omitempty"`

	// Rules are requirements on the claims of a valid token, all of which
	// must hold; otherwise 403.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Rules []ClaimRequirement `json:"rules,omitempty"`
}

// JWTProvider is one token issuer.
//
// +kubebuilder:validation:XValidation:rule="has(self.jwksSecretRef) != has(self.remoteJWKS)",message="set exactly one of jwksSecretRef and remoteJWKS"
type JWTProvider struct {
	// Name names the provider in logs and status.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Name string `json:"name"`
	// Issuer, when set, must equal the token's iss claim.
	// +optional
	Issuer string `json:"issuer,omitempty"`
	// Audiences, when set, must include one of the token's aud values.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Audiences []string `json:"audiences,omitempty"`
	// JWKSSecretRef is a Secret in the policy's namespace whose key
	// "jwks" holds the JSON Web Key Set.
	// +optional
	JWKSSecretRef *gwapiv1.SecretObjectReference `json:"jwksSecretRef,omitempty"`
	// RemoteJWKS is fetched, cached and refreshed by the gateway.
	// +optional
	RemoteJWKS *RemoteJWKS `json:"remoteJWKS,omitempty"`
	// Algorithms the provider signs with; default RS256, RS384, RS512,
	// ES256, ES384, PS256 and EdDSA. "none" and HMAC are never accepted.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	Algorithms []string `json:"algorithms,omitempty"`
	// FromHeader takes the token from this header (after Prefix) instead
	// of "Authorization: Bearer".
	// +optional
	FromHeader *JWTHeader `json:"fromHeader,omitempty"`
	// FromCookie takes the token from this cookie.
	// +optional
	FromCookie string `json:"fromCookie,omitempty"`
	// ClaimToHeaders copies claims of a valid token to request headers;
	// route header matches see them, also from a route-level policy
	// (the request is then matched again). A client's own header of that
	// name is always removed before matching.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	ClaimToHeaders []ClaimToHeader `json:"claimToHeaders,omitempty"`
}

// RemoteJWKS is a JWKS served over HTTP(S).
type RemoteJWKS struct {
	// URI is the JWKS address.
	// +required
	URI string `json:"uri"`
	// CacheDuration is how long a fetched set is used before it is
	// fetched again; default 5m. A token with an unknown key id fetches
	// it sooner, at most once every 10s.
	// +optional
	CacheDuration *gwapiv1.Duration `json:"cacheDuration,omitempty"`
}

// JWTHeader names the header carrying the token.
type JWTHeader struct {
	// Name of the header.
	// +required
	Name string `json:"name"`
	// Prefix removed before the token, such as "Bearer ".
	// +optional
	Prefix string `json:"prefix,omitempty"`
}

// ClaimToHeader copies one claim to one header.
type ClaimToHeader struct {
	// Claim is the claim name; a dot walks into objects ("realm.role").
	// +required
	Claim string `json:"claim"`
	// Header is the request header set to the claim's value.
	// +required
	Header string `json:"header"`
}

// ClaimRequirement holds when the claim (a string, or an array holding a
// string) equals one of the values.
type ClaimRequirement struct {
	// Claim is the claim name; a dot walks into objects.
	// +required
	Claim string `json:"claim"`
	// Values the claim must equal (or, for an array claim, contain) one of.
	// +required
	// +kubebuilder:validation:MinItems=1
	Values []string `json:"values"`
}

// BasicAuth requires an HTTP Basic user.
type BasicAuth struct {
	// Users is a Secret in the policy's namespace whose key ".htpasswd"
	// holds "user:hash" lines; only bcrypt hashes ($2y$, $2a$, $2b$) are
	// accepted.
	// +required
	Users gwapiv1.SecretObjectReference `json:"users"`
	// Realm is sent in WWW-Authenticate; default "meshgate".
	// +optional
	Realm string `json:"realm,omitempty"`
}

// ExtAuth is an external authorization service. It is spoken to over TLS
// when the referenced Backend has spec.tls or the Service is targeted by a
// BackendTLSPolicy; a certificate that does not verify makes the service
// unavailable (see FailOpen).
//
// +kubebuilder:validation:XValidation:rule="has(self.grpc) != has(self.http)",message="set exactly one of grpc and http"
type ExtAuth struct {
	// GRPC is a service implementing Envoy's
	// envoy.service.auth.v3.Authorization (OPA-Envoy and others).
	// +optional
	GRPC *GRPCExtAuth `json:"grpc,omitempty"`
	// HTTP is a service asked with a copy of the request's method, path
	// and headers (no body); a 2xx answer lets the request in.
	// +optional
	HTTP *HTTPExtAuth `json:"http,omitempty"`
	// Timeout bounds one check; default 1s.
	// +optional
	Timeout *gwapiv1.Duration `json:"timeout,omitempty"`
	// FailOpen lets requests in when the service cannot be reached or
	// times out; by default they get 403 (as Envoy does), logged with
	// reason ext_auth_unavailable.
	// +optional
	FailOpen bool `json:"failOpen,omitempty"`
}

// GRPCExtAuth is an ext_authz gRPC service.
type GRPCExtAuth struct {
	// BackendRef is the Service (port required) or Backend serving it.
	// +required
	BackendRef gwapiv1.BackendObjectReference `json:"backendRef"`
}

// HTTPExtAuth is an HTTP authorization service.
type HTTPExtAuth struct {
	// BackendRef is the Service (port required) or Backend serving it.
	// +required
	BackendRef gwapiv1.BackendObjectReference `json:"backendRef"`
	// Path is prefixed to the request's path in the check; default "".
	// +optional
	Path string `json:"path,omitempty"`
	// HeadersToBackend are headers of the service's 2xx answer copied to
	// the request sent upstream.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	HeadersToBackend []string `json:"headersToBackend,omitempty"`
}
