package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// KindFaultInjection is the kind name of FaultInjection, as written in an
// ExtensionRef filter.
const KindFaultInjection = "FaultInjection"

// FaultInjection delays or aborts a share of a route rule's requests, to try
// how clients and callers cope with a slow or failing service. A rule uses it
// through an ExtensionRef filter:
//
//	filters:
//	- type: ExtensionRef
//	  extensionRef:
//	    group: gateway.meshgate.dev
//	    kind: FaultInjection
//	    name: checkout-faults
//
// With headers set, only matching requests are affected, so a fault can be
// tried on one tester's traffic in production.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=gateway-api;meshgate,shortName=mfi
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type FaultInjection struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the fault.
	// +required
	Spec FaultInjectionSpec `json:"spec"`
}

// FaultInjectionList is a list of FaultInjection.
//
// +kubebuilder:object:root=true
type FaultInjectionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []FaultInjection `json:"items"`
}

// FaultInjectionSpec is a delay, an abort, or both.
//
// +kubebuilder:validation:XValidation:rule="has(self.delay) || has(self.abort)",message="set delay, abort or both"
type FaultInjectionSpec struct {
	// Headers limit the fault to requests matching every one of them.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Headers []gwapiv1.HTTPHeaderMatch `json:"headers,omitempty"`

	// Delay holds requests before they are forwarded.
	// +optional
	Delay *FaultDelay `json:"delay,omitempty"`

	// Abort answers requests at once without forwarding them.
	// +optional
	Abort *FaultAbort `json:"abort,omitempty"`
}

// FaultDelay is a fixed delay for a share of requests.
type FaultDelay struct {
	// Duration of the delay.
	// +required
	Duration gwapiv1.Duration `json:"duration"`
	// Percentage of requests delayed, 0 to 100 (fractions allowed, as a
	// string such as "0.5").
	// +required
	// +kubebuilder:validation:Pattern=`^(100(\.0+)?|[0-9]{1,2}(\.[0-9]+)?)$`
	Percentage string `json:"percentage"`
}

// FaultAbort is an error answer for a share of requests.
//
// +kubebuilder:validation:XValidation:rule="has(self.httpStatus) || has(self.grpcStatus)",message="set httpStatus, grpcStatus or both"
type FaultAbort struct {
	// HTTPStatus is answered to HTTP requests (and, mapped, to gRPC ones
	// when grpcStatus is unset).
	// +optional
	// +kubebuilder:validation:Minimum=200
	// +kubebuilder:validation:Maximum=599
	HTTPStatus *int32 `json:"httpStatus,omitempty"`
	// GRPCStatus is the gRPC status name answered to gRPC requests (for
	// example Unavailable).
	// +optional
	// +kubebuilder:validation:Enum=Cancelled;Unknown;InvalidArgument;DeadlineExceeded;NotFound;AlreadyExists;PermissionDenied;ResourceExhausted;FailedPrecondition;Aborted;OutOfRange;Unimplemented;Internal;Unavailable;DataLoss;Unauthenticated
	GRPCStatus *string `json:"grpcStatus,omitempty"`
	// Percentage of requests aborted, 0 to 100 (fractions allowed, as a
	// string such as "0.5").
	// +required
	// +kubebuilder:validation:Pattern=`^(100(\.0+)?|[0-9]{1,2}(\.[0-9]+)?)$`
	Percentage string `json:"percentage"`
}
