package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GroupName is the API group of every Meshgate kind.
const GroupName = "gateway.meshgate.dev"

// Version is the API version of the kinds in this package.
const Version = "v1alpha1"

// KindBackend is the kind name of Backend, as written in a backendRef.
const KindBackend = "Backend"

// Backend is a static set of endpoints that a route can send traffic to.
// It exists so a files-only configuration does not need a Service plus an
// EndpointSlice for every upstream; in a cluster it also reaches endpoints
// outside Kubernetes. A route names it with
//
//	backendRefs:
//	- group: gateway.meshgate.dev
//	  kind: Backend
//	  name: billing
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=gateway-api;meshgate,shortName=mbe
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Backend struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BackendSpec `json:"spec"`
}

// BackendList is a list of Backend.
//
// +kubebuilder:object:root=true
type BackendList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Backend `json:"items"`
}

// BackendSpec lists where a Backend's traffic goes.
type BackendSpec struct {
	// Endpoints are the addresses traffic is balanced over. At least one is
	// required.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	Endpoints []BackendEndpoint `json:"endpoints"`

	// AppProtocol names the protocol the endpoints speak, with the same
	// values as a Service port's appProtocol (for example
	// "kubernetes.io/h2c"). Empty means HTTP/1.1. With TLS set,
	// "kubernetes.io/h2c" (or "h2") means HTTP/2 over TLS (ALPN h2).
	// +kubebuilder:validation:MaxLength=256
	AppProtocol string `json:"appProtocol,omitempty"`

	// TLS, when set, makes the gateway connect to the endpoints over TLS
	// and verify their certificate.
	TLS *BackendTLS `json:"tls,omitempty"`
}

// BackendTLS is how the gateway verifies a Backend's certificate. There is
// deliberately no way to skip verification: an unverified TLS connection
// only looks secure.
type BackendTLS struct {
	// ServerName is sent as SNI and must be in the endpoints' certificate.
	// Required when an endpoint address is an IP address; otherwise it
	// defaults to the endpoint's host name.
	ServerName string `json:"serverName,omitempty"`
	// CACertificateRefs name Secrets in the Backend's namespace whose
	// "ca.crt" key holds PEM certificates to trust. Empty means the
	// system's roots.
	CACertificateRefs []LocalSecretReference `json:"caCertificateRefs,omitempty"`
}

// LocalSecretReference names a Secret in the referrer's namespace.
type LocalSecretReference struct {
	// Name is the Secret's name.
	Name string `json:"name"`
}

// BackendEndpoint is one upstream address.
type BackendEndpoint struct {
	// Address is an IP address or a host name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Address string `json:"address"`
	// Port is the TCP port, 1-65535.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
	// Weight is the endpoint's share of the Backend's traffic relative to
	// the other endpoints (1 when unset), for example to send a bigger
	// machine more requests.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Weight *int32 `json:"weight,omitempty"`
}
