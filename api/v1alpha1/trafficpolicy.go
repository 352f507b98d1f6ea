package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// KindTrafficPolicy is the kind name of TrafficPolicy, as written in manifests.
const KindTrafficPolicy = "TrafficPolicy"

// TrafficPolicy sets how traffic reaches backends: load balancing, retries,
// timeouts, health checks, outlier detection, circuit breaking, rate limits
// and session persistence. It attaches to its targets the way Gateway API
// policies do (GEP-713): a Gateway (every route on it), an HTTPRoute or
// GRPCRoute (optionally one named rule through sectionName), or a Service or
// Backend (every route sending traffic there).
//
// Each section (loadBalancer, retry, timeouts, ...) is taken from the most
// specific policy that sets it: for route-level sections (retry, timeouts,
// rateLimit, sessionPersistence) a rule beats a route beats a Gateway; for
// backend-level sections (loadBalancer, healthCheck, outlierDetection,
// circuitBreaker, connectTimeout) a Service or Backend beats a rule beats a
// route beats a Gateway. Two policies setting the same section on the same
// target conflict: the older one (then the one first by namespace/name)
// wins and the other is reported Accepted=False, reason Conflicted.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=gateway-api;meshgate,shortName=mtp
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TrafficPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is what the policy sets.
	// +required
	Spec TrafficPolicySpec `json:"spec"`

	// Status says, per Gateway, whether the policy took effect.
	// +optional
	Status gwapiv1.PolicyStatus `json:"status,omitempty"`
}

// TrafficPolicyList is a list of TrafficPolicy.
//
// +kubebuilder:object:root=true
type TrafficPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TrafficPolicy `json:"items"`
}

// TrafficPolicySpec is the desired traffic behaviour for the targets.
//
// +kubebuilder:validation:XValidation:rule="has(self.loadBalancer) || has(self.retry) || has(self.timeouts) || has(self.healthCheck) || has(self.outlierDetection) || has(self.circuitBreaker) || has(self.rateLimit) || has(self.sessionPersistence)",message="a TrafficPolicy must set at least one section"
type TrafficPolicySpec struct {
	// TargetRefs are the objects the policy applies to, in the policy's
	// namespace: Gateway, HTTPRoute, GRPCRoute (group
	// gateway.networking.k8s.io), Service (core group "") or Backend
	// (gateway.meshgate.dev).
	//
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(r, (r.group == 'gateway.networking.k8s.io' && r.kind in ['Gateway', 'HTTPRoute', 'GRPCRoute']) || (r.group == '' && r.kind == 'Service') || (r.group == 'gateway.meshgate.dev' && r.kind == 'Backend'))",message="targetRefs must be a Gateway, HTTPRoute, GRPCRoute, Service or Backend"
	TargetRefs []gwapiv1.LocalPolicyTargetReferenceWithSectionName `json:"targetRefs"`

	// LoadBalancer chooses among a backend's endpoints.
	// +optional
	LoadBalancer *LoadBalancer `json:"loadBalancer,omitempty"`

	// Retry resends failed attempts.
	// +optional
	Retry *Retry `json:"retry,omitempty"`

	// Timeouts bound requests and upstream connections.
	// +optional
	Timeouts *Timeouts `json:"timeouts,omitempty"`

	// HealthCheck actively probes every endpoint.
	// +optional
	HealthCheck *HealthCheck `json:"healthCheck,omitempty"`

	// OutlierDetection ejects endpoints that fail real requests.
	// +optional
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`

	// CircuitBreaker caps the load put on each backend.
	// +optional
	CircuitBreaker *CircuitBreaker `json:"circuitBreaker,omitempty"`

	// RateLimit limits request rates per route, client, header value or
	// identity.
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`

	// SessionPersistence keeps a client on the backend and endpoint it was
	// first sent to. A rule's own sessionPersistence wins over this.
	// +optional
	SessionPersistence *gwapiv1.SessionPersistence `json:"sessionPersistence,omitempty"`
}

// LoadBalancerType names an algorithm.
//
// +kubebuilder:validation:Enum=RoundRobin;LeastRequest;Random;RingHash;Maglev
type LoadBalancerType string

// LoadBalancer is how an endpoint is chosen for each request.
//
// +kubebuilder:validation:XValidation:rule="(self.type in ['RingHash', 'Maglev']) == has(self.consistentHash)",message="consistentHash is required for RingHash and Maglev and allowed only with them"
type LoadBalancer struct {
	// Type is the algorithm. LeastRequest picks the less busy of two
	// random endpoints; RingHash and Maglev keep requests with the same
	// hash key on the same endpoint.
	// +required
	Type LoadBalancerType `json:"type"`

	// ConsistentHash says what RingHash and Maglev hash.
	// +optional
	ConsistentHash *ConsistentHash `json:"consistentHash,omitempty"`

	// SlowStartWindow ramps a new endpoint's share of traffic up over this
	// time, so a cold instance is not flooded.
	// +optional
	SlowStartWindow *gwapiv1.Duration `json:"slowStartWindow,omitempty"`
}

// ConsistentHashType names the hash key.
//
// +kubebuilder:validation:Enum=Header;Cookie;SourceIP
type ConsistentHashType string

// ConsistentHash is the request property hashed.
//
// +kubebuilder:validation:XValidation:rule="self.type == 'SourceIP' ? !has(self.name) : has(self.name)",message="name is required for Header and Cookie and not allowed for SourceIP"
type ConsistentHash struct {
	// Type is Header, Cookie or SourceIP.
	// +required
	Type ConsistentHashType `json:"type"`
	// Name is the header or cookie name.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Name *string `json:"name,omitempty"`
}

// RetryOn names a kind of failure that is retried.
//
// +kubebuilder:validation:Enum=connect-failure;reset;timeout;5xx;gateway-error;retriable-status-codes
type RetryOn string

// Retry says when a failed attempt is sent again. Only requests safe to
// replay (idempotent methods, with a body small enough to keep) are
// retried unless allowNonIdempotent is set.
type Retry struct {
	// Attempts is the number of retries after the first attempt.
	// +optional
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	Attempts *int32 `json:"attempts,omitempty"`

	// RetryOn lists the failures retried ("on" would read as a YAML
	// boolean). 5xx is any 5xx answer; gateway-error
	// is 502, 503 and 504; retriable-status-codes are statusCodes.
	// Defaults to connect-failure, reset and gateway-error.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=6
	RetryOn []RetryOn `json:"retryOn,omitempty"`

	// StatusCodes are extra HTTP statuses retried.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Minimum=400
	// +kubebuilder:validation:items:Maximum=599
	StatusCodes []int32 `json:"statusCodes,omitempty"`

	// GRPCCodes are gRPC status names retried (for example Unavailable,
	// ResourceExhausted).
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Enum=Cancelled;Unknown;InvalidArgument;DeadlineExceeded;NotFound;AlreadyExists;PermissionDenied;ResourceExhausted;FailedPrecondition;Aborted;OutOfRange;Unimplemented;Internal;Unavailable;DataLoss;Unauthenticated
	GRPCCodes []string `json:"grpcCodes,omitempty"`

	// PerTryTimeout bounds each attempt.
	// +optional
	PerTryTimeout *gwapiv1.Duration `json:"perTryTimeout,omitempty"`

	// Backoff is the exponential backoff with full jitter between attempts.
	// +optional
	Backoff *Backoff `json:"backoff,omitempty"`

	// AllowNonIdempotent retries POST and PATCH too. Only for upstreams
	// known to deduplicate.
	// +optional
	AllowNonIdempotent bool `json:"allowNonIdempotent,omitempty"`

	// Budget caps retries in flight so retries cannot amplify an outage.
	// +optional
	Budget *RetryBudget `json:"budget,omitempty"`
}

// Backoff bounds the wait between attempts.
//
// +kubebuilder:validation:XValidation:rule="!has(self.baseInterval) || !has(self.maxInterval) || duration(self.baseInterval) <= duration(self.maxInterval)",message="baseInterval must not exceed maxInterval"
type Backoff struct {
	// BaseInterval is the first backoff (25ms when unset).
	// +optional
	BaseInterval *gwapiv1.Duration `json:"baseInterval,omitempty"`
	// MaxInterval caps the backoff (10 times baseInterval when unset).
	// +optional
	MaxInterval *gwapiv1.Duration `json:"maxInterval,omitempty"`
}

// RetryBudget caps retries in flight at a share of requests in flight.
type RetryBudget struct {
	// Percent of the backend's requests in flight that may be retries.
	// +optional
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Percent *int32 `json:"percent,omitempty"`
	// MinRetryConcurrency retries are always allowed.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	MinRetryConcurrency *int32 `json:"minRetryConcurrency,omitempty"`
}

// Timeouts bound requests and connections.
type Timeouts struct {
	// Request bounds a whole request, retries included. A rule's own
	// timeouts.request wins over this.
	// +optional
	Request *gwapiv1.Duration `json:"request,omitempty"`
	// Connect bounds opening a connection to an endpoint.
	// +optional
	Connect *gwapiv1.Duration `json:"connect,omitempty"`
	// Idle closes pooled upstream connections unused this long.
	// +optional
	Idle *gwapiv1.Duration `json:"idle,omitempty"`
}

// HealthCheckType names a probe.
//
// +kubebuilder:validation:Enum=HTTP;TCP;GRPC
type HealthCheckType string

// HealthCheck is an active probe of every endpoint. An endpoint counts as
// healthy until unhealthyThreshold probes in a row fail.
//
// +kubebuilder:validation:XValidation:rule="self.type == 'HTTP' || !has(self.http)",message="http is only allowed with type HTTP"
// +kubebuilder:validation:XValidation:rule="self.type == 'GRPC' || !has(self.grpc)",message="grpc is only allowed with type GRPC"
type HealthCheck struct {
	// Type is HTTP, TCP or GRPC (grpc.health.v1).
	// +required
	Type HealthCheckType `json:"type"`
	// Interval between probes (5s when unset).
	// +optional
	Interval *gwapiv1.Duration `json:"interval,omitempty"`
	// Timeout of one probe (1s when unset).
	// +optional
	Timeout *gwapiv1.Duration `json:"timeout,omitempty"`
	// HealthyThreshold probes in a row bring an endpoint back.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	HealthyThreshold *int32 `json:"healthyThreshold,omitempty"`
	// UnhealthyThreshold probes in a row take it out.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	UnhealthyThreshold *int32 `json:"unhealthyThreshold,omitempty"`
	// HTTP configures HTTP probes.
	// +optional
	HTTP *HTTPHealthCheck `json:"http,omitempty"`
	// GRPC configures gRPC probes.
	// +optional
	GRPC *GRPCHealthCheck `json:"grpc,omitempty"`
	// PanicThreshold is the percentage of healthy endpoints under which
	// health is ignored and every endpoint gets traffic again (0 turns the
	// panic mode off).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	PanicThreshold *int32 `json:"panicThreshold,omitempty"`
}

// HTTPHealthCheck is the request an HTTP probe sends.
type HTTPHealthCheck struct {
	// Path is the request target ("/" when unset).
	// +optional
	// +kubebuilder:validation:Pattern=`^/[^\s]*$`
	// +kubebuilder:validation:MaxLength=1024
	Path string `json:"path,omitempty"`
	// Host is the Host header (the endpoint address when unset).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Host string `json:"host,omitempty"`
	// ExpectedStatuses count as healthy (200-399 when unset).
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Minimum=100
	// +kubebuilder:validation:items:Maximum=599
	ExpectedStatuses []int32 `json:"expectedStatuses,omitempty"`
}

// GRPCHealthCheck is the service a gRPC probe asks about.
type GRPCHealthCheck struct {
	// Service is the name asked of grpc.health.v1.Health ("" for the
	// whole server).
	// +optional
	Service string `json:"service,omitempty"`
}

// OutlierDetection ejects endpoints whose real requests fail.
type OutlierDetection struct {
	// Consecutive5xx answers in a row eject an endpoint (0 turns it off).
	// +optional
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=0
	Consecutive5xx *int32 `json:"consecutive5xx,omitempty"`
	// ConsecutiveGatewayErrors (connect failures, resets, timeouts, 502,
	// 503, 504) in a row eject an endpoint (0 turns it off).
	// +optional
	// +kubebuilder:validation:Minimum=0
	ConsecutiveGatewayErrors *int32 `json:"consecutiveGatewayErrors,omitempty"`
	// BaseEjectionTime is the first ejection's length (30s when unset);
	// each repeat ejection of an endpoint lasts one more multiple of it.
	// +optional
	BaseEjectionTime *gwapiv1.Duration `json:"baseEjectionTime,omitempty"`
	// MaxEjectionTime caps an ejection (300s when unset).
	// +optional
	MaxEjectionTime *gwapiv1.Duration `json:"maxEjectionTime,omitempty"`
	// MaxEjectionPercent caps the share of endpoints ejected at once.
	// +optional
	// +kubebuilder:default=50
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxEjectionPercent *int32 `json:"maxEjectionPercent,omitempty"`
}

// CircuitBreaker caps what the gateway sends one backend. A request over a
// cap is answered 503 (gRPC UNAVAILABLE) at once, with the response header
// x-meshgate-overloaded: circuit-breaker. Unset fields are no cap.
type CircuitBreaker struct {
	// MaxConnections caps open upstream connections.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxConnections *int32 `json:"maxConnections,omitempty"`
	// MaxPendingRequests caps requests waiting for a connection once
	// maxConnections is reached.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxPendingRequests *int32 `json:"maxPendingRequests,omitempty"`
	// MaxRequests caps requests in flight.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxRequests *int32 `json:"maxRequests,omitempty"`
	// MaxRetries caps retries in flight.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxRetries *int32 `json:"maxRetries,omitempty"`
}

// RateLimit is a list of limits; a request must pass every one that
// applies to it.
//
// +kubebuilder:validation:XValidation:rule="has(self.local) || has(self.global)",message="set local or global"
type RateLimit struct {
	// Local limits are counted by each gateway replica on its own.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Local []RateLimitRule `json:"local,omitempty"`
	// Global limits are counted in Redis (the gateway's --redis flag),
	// shared by every replica.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Global []RateLimitRule `json:"global,omitempty"`
	// FailOpen lets requests through global limits when Redis cannot be
	// reached; otherwise they get 503.
	// +optional
	FailOpen bool `json:"failOpen,omitempty"`
}

// RateLimitKeyType is what requests are counted by.
//
// +kubebuilder:validation:Enum=Route;ClientIP;Header;Identity
type RateLimitKeyType string

// RateLimitUnit is the period of a limit.
//
// +kubebuilder:validation:Enum=Second;Minute;Hour
type RateLimitUnit string

// RateLimitRule allows requests per unit of time, counted per key.
//
// +kubebuilder:validation:XValidation:rule="self.key == 'Header' ? has(self.header) : !has(self.header)",message="header is required for key Header and not allowed otherwise"
type RateLimitRule struct {
	// Key is what is counted separately: the Route as a whole, each
	// ClientIP, each value of a Header, or each authenticated Identity.
	// +required
	Key RateLimitKeyType `json:"key"`
	// Header is the header name for key Header.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Header *string `json:"header,omitempty"`
	// Requests allowed per unit.
	// +required
	// +kubebuilder:validation:Minimum=1
	Requests int32 `json:"requests"`
	// Unit is Second, Minute or Hour.
	// +required
	Unit RateLimitUnit `json:"unit"`
	// Burst is the most requests allowed at once (requests when unset).
	// +optional
	// +kubebuilder:validation:Minimum=1
	Burst *int32 `json:"burst,omitempty"`
}
