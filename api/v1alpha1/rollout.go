package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// KindRollout is the kind name of Rollout, as written in manifests.
const KindRollout = "Rollout"

// Rollout moves one route rule's traffic from a stable backend to a canary
// backend in steps, judging each step from the gateway's own measurements
// of both backends (error rate, p99 latency), and rolls back to 0% at once
// when the canary breaches a threshold. No metrics system is involved.
//
// The target is one rule of an HTTPRoute or GRPCRoute (ruleName is the
// rule's name). The rule must list both backends among its backendRefs;
// the gateway overrides their weights (stable 100-w, canary w) while the
// Rollout exists, and drops the one at 0% so sticky sessions leave it.
//
// Controls are spec fields, so they work the same by editing a file or with
// kubectl: paused holds the current step, promote jumps to 100%, abort goes
// back to 0%. Changing canaryBackend or revision starts over from the
// first step. Progress lives in status (in a cluster) or in the gateway's
// state file (with --config), so a restart continues where it stopped.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=meshgate,shortName=mro
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Step",type=integer,JSONPath=`.status.step`
// +kubebuilder:printcolumn:name="Weight",type=integer,JSONPath=`.status.canaryWeight`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Rollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the rollout plan and its controls.
	// +required
	Spec RolloutSpec `json:"spec"`

	// Status is the rollout's progress, written by the gateway.
	// +optional
	Status RolloutStatus `json:"status,omitempty"`
}

// RolloutList is a list of Rollout.
//
// +kubebuilder:object:root=true
type RolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Rollout `json:"items"`
}

// RolloutSpec is the plan.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.promote) && self.promote && has(self.abort) && self.abort)",message="promote and abort cannot both be set"
// +kubebuilder:validation:XValidation:rule="self.stableBackend.name != self.canaryBackend.name || (has(self.stableBackend.port) && has(self.canaryBackend.port) && self.stableBackend.port != self.canaryBackend.port)",message="stableBackend and canaryBackend must differ"
type RolloutSpec struct {
	// TargetRef is the route rule whose traffic is shifted, in the
	// Rollout's namespace.
	// +required
	TargetRef RolloutTarget `json:"targetRef"`

	// StableBackend is the backendRef of that rule serving the current
	// version.
	// +required
	StableBackend RolloutBackend `json:"stableBackend"`

	// CanaryBackend is the backendRef of that rule serving the new version.
	// +required
	CanaryBackend RolloutBackend `json:"canaryBackend"`

	// Revision labels the canary version (an image tag, a commit). Changing
	// it starts the rollout over from the first step, for a new attempt
	// after a rollback.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Revision string `json:"revision,omitempty"`

	// Steps are the canary weights in order, each held at least
	// minDuration and minRequests canary requests, and judged before
	// moving on. After the last step the canary gets 100%.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	Steps []RolloutStep `json:"steps"`

	// Analysis is what the canary must satisfy during every step.
	// +optional
	Analysis *RolloutAnalysis `json:"analysis,omitempty"`

	// Override sends requests carrying this header or cookie to the canary
	// whatever the step, so testers can reach it at 0%.
	// +optional
	Override *RolloutOverride `json:"override,omitempty"`

	// SessionSticky keeps a client on the version it was first sent to
	// (a cookie), so users do not bounce between versions. A rollback
	// moves canary sessions back to stable at once.
	// +optional
	SessionSticky bool `json:"sessionSticky,omitempty"`

	// Paused holds the current step (weight and window) until unset.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// Promote skips the remaining steps: the canary gets 100%.
	// +optional
	Promote bool `json:"promote,omitempty"`

	// Abort sends every request back to stable (0%), as a rollback.
	// +optional
	Abort bool `json:"abort,omitempty"`
}

// RolloutTarget names one rule of an HTTPRoute or GRPCRoute.
type RolloutTarget struct {
	// Group is gateway.networking.k8s.io.
	// +optional
	// +kubebuilder:default=gateway.networking.k8s.io
	// +kubebuilder:validation:Enum=gateway.networking.k8s.io
	Group string `json:"group,omitempty"`
	// Kind is HTTPRoute or GRPCRoute.
	// +required
	// +kubebuilder:validation:Enum=HTTPRoute;GRPCRoute
	Kind string `json:"kind"`
	// Name of the route.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// RuleName is the rule's name (spec.rules[].name); optional when the
	// route has a single rule.
	// +optional
	RuleName *gwapiv1.SectionName `json:"ruleName,omitempty"`
}

// RolloutBackend is a backendRef of the target rule, by name (and port when
// the rule names the same object twice).
type RolloutBackend struct {
	// Name of the Service (or Meshgate Backend) in the backendRef.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Port of the backendRef, when the name alone is ambiguous.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`
}

// RolloutStep is one weight held for a while.
type RolloutStep struct {
	// Weight is the canary's share in percent.
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Weight int32 `json:"weight"`
	// MinDuration the step lasts at least (1m when unset).
	// +optional
	MinDuration *gwapiv1.Duration `json:"minDuration,omitempty"`
	// MinRequests the canary must have served in the step before it can
	// pass (100 when unset).
	// +optional
	// +kubebuilder:validation:Minimum=0
	MinRequests *int32 `json:"minRequests,omitempty"`
}

// RolloutAnalysis are the canary's thresholds over a step's window. Errors
// are HTTP 5xx answers, gRPC statuses other than OK, and requests the
// gateway could not complete upstream. Unset thresholds are not checked;
// with none set the canary only has to see traffic.
type RolloutAnalysis struct {
	// MaxErrorRate is the highest canary error rate in percent, as a
	// string such as "1" or "0.5".
	// +optional
	// +kubebuilder:validation:Pattern=`^(100(\.0+)?|[0-9]{1,2}(\.[0-9]+)?)$`
	MaxErrorRate *string `json:"maxErrorRate,omitempty"`
	// MaxP99Latency is the highest canary 99th percentile latency.
	// +optional
	MaxP99Latency *gwapiv1.Duration `json:"maxP99Latency,omitempty"`
	// MaxErrorRateIncrease is how many percentage points the canary's
	// error rate may exceed the stable backend's in the same window.
	// +optional
	// +kubebuilder:validation:Pattern=`^(100(\.0+)?|[0-9]{1,2}(\.[0-9]+)?)$`
	MaxErrorRateIncrease *string `json:"maxErrorRateIncrease,omitempty"`
	// MaxP99Increase is how many percent the canary's p99 latency may
	// exceed the stable backend's in the same window.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	MaxP99Increase *int32 `json:"maxP99Increase,omitempty"`
	// MinRequests the canary must have served in a step before a
	// threshold can fail it, so one early error is not a 100% error rate
	// (10 when unset).
	// +optional
	// +kubebuilder:validation:Minimum=1
	MinRequests *int32 `json:"minRequests,omitempty"`
}

// RolloutOverride selects the canary for chosen requests.
//
// +kubebuilder:validation:XValidation:rule="has(self.header) || has(self.cookie)",message="set header, cookie or both"
type RolloutOverride struct {
	// Header name and exact value that select the canary.
	// +optional
	Header *RolloutMatch `json:"header,omitempty"`
	// Cookie name and exact value that select the canary.
	// +optional
	Cookie *RolloutMatch `json:"cookie,omitempty"`
}

// RolloutMatch is a name and an exact value.
type RolloutMatch struct {
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_|~]+$`
	Name string `json:"name"`
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Value string `json:"value"`
}

// RolloutPhase is where a rollout stands.
type RolloutPhase string

// Rollout phases.
const (
	RolloutProgressing RolloutPhase = "Progressing"
	RolloutPaused      RolloutPhase = "Paused"
	RolloutSucceeded   RolloutPhase = "Succeeded"
	RolloutRolledBack  RolloutPhase = "RolledBack"
)

// Rollout condition types.
const (
	RolloutConditionProgressing = "Progressing"
	RolloutConditionPaused      = "Paused"
	RolloutConditionSucceeded   = "Succeeded"
	RolloutConditionRolledBack  = "RolledBack"
)

// RolloutStatus is the rollout's progress. The gateway derives the
// weights it serves from it, so it survives restarts and leader changes.
type RolloutStatus struct {
	// Phase is Progressing, Paused, Succeeded or RolledBack.
	// +optional
	Phase RolloutPhase `json:"phase,omitempty"`
	// Step is the index of the current step.
	// +optional
	Step int32 `json:"step,omitempty"`
	// CanaryWeight is the canary's share now served, in percent.
	// +optional
	CanaryWeight int32 `json:"canaryWeight,omitempty"`
	// StepStartedAt is when the current step (or its window, after a
	// resume) began.
	// +optional
	StepStartedAt *metav1.Time `json:"stepStartedAt,omitempty"`
	// Identity fingerprints the target, backends and revision this
	// progress belongs to; when the spec's differs, the rollout starts
	// over.
	// +optional
	Identity string `json:"identity,omitempty"`
	// Message says in one line what happened last and why.
	// +optional
	Message string `json:"message,omitempty"`
	// Canary and Stable are the measurements of the current (or, once
	// finished, the last) step's window.
	// +optional
	Canary *RolloutMeasurement `json:"canary,omitempty"`
	// +optional
	Stable *RolloutMeasurement `json:"stable,omitempty"`
	// Conditions are Progressing, Paused, Succeeded and RolledBack.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// RolloutMeasurement is one backend's figures over a step's window.
type RolloutMeasurement struct {
	// Requests completed in the window.
	Requests int64 `json:"requests"`
	// Errors among them.
	Errors int64 `json:"errors"`
	// ErrorRate in percent, as text ("1.25").
	ErrorRate string `json:"errorRate"`
	// P99 latency, as a duration ("12ms"); empty with no requests.
	// +optional
	P99 string `json:"p99,omitempty"`
}
