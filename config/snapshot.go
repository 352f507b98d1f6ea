// Package config holds the Snapshot, the complete set of objects a provider
// hands to the translator, and the manifest loader both providers share.
//
// A Snapshot holds the same typed objects one would `kubectl apply`: Gateway
// API kinds, core Services, Secrets and Namespaces, EndpointSlices and
// Meshgate's own kinds. The files provider fills it from YAML; the Kubernetes
// provider from informers. The translator cannot tell the two apart, which is
// the point: a behaviour difference between providers is a bug.
package config

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	mgv1alpha1 "github.com/meshgate/meshgate/api/v1alpha1"
)

// Snapshot is every object a provider knows of at one moment. Slices are in
// the order the provider found the objects; the translator sorts what it
// needs sorted. A Snapshot is never modified after it is sent.
type Snapshot struct {
	GatewayClasses  []*gwapiv1.GatewayClass
	Gateways        []*gwapiv1.Gateway
	ListenerSets    []*gwapiv1.ListenerSet
	HTTPRoutes      []*gwapiv1.HTTPRoute
	GRPCRoutes      []*gwapiv1.GRPCRoute
	TCPRoutes       []*gwapiv1.TCPRoute
	TLSRoutes       []*gwapiv1.TLSRoute
	UDPRoutes       []*gwapiv1.UDPRoute
	ReferenceGrants []*gwapiv1.ReferenceGrant
	Services        []*corev1.Service
	EndpointSlices  []*discoveryv1.EndpointSlice
	Secrets         []*corev1.Secret
	Namespaces      []*corev1.Namespace
	Backends        []*mgv1alpha1.Backend
	TrafficPolicies []*mgv1alpha1.TrafficPolicy
	FaultInjections []*mgv1alpha1.FaultInjection
	Rollouts        []*mgv1alpha1.Rollout
	// SecurityPolicies are Meshgate's access-control policies.
	SecurityPolicies []*mgv1alpha1.SecurityPolicy

	// BackendTLSPolicies say how to reach Services over TLS; ConfigMaps
	// hold their CA bundles (key ca.crt).
	BackendTLSPolicies []*gwapiv1.BackendTLSPolicy
	ConfigMaps         []*corev1.ConfigMap

	// Rejected are objects the loader could not decode (unknown fields,
	// wrong types). They take no part in translation but are reported.
	Rejected []Problem
	// Ignored are objects of kinds Meshgate does not handle.
	Ignored []Problem

	// Digest, when set by the loader, is a hash of the source bytes, so
	// Hash need not serialise every object (40 ms for 10,000 routes).
	Digest [32]byte `json:"-"`
}

// Update is what a provider sends: a complete Snapshot, or the error that
// kept one from being made (a file that does not parse). On error the
// consumer keeps its previous config.
type Update struct {
	Snapshot *Snapshot
	Err      error
	// Tentative marks a snapshot of files that may still be changing: the
	// files provider sends one as soon as a change pauses, before its
	// settle window ends. A consumer may prepare work for it (translate
	// it) but must never apply it; the settled Update that follows may
	// reuse that work only if its content is the same (Snapshot.Hash).
	Tentative bool
}

// Problem is an object the loader reported instead of loading.
type Problem struct {
	// Position is "file:line" of the document's first line.
	Position string
	// Kind, Namespace and Name identify the object as far as they could be
	// read.
	Kind      string
	Namespace string
	Name      string
	// Reason says what is wrong.
	Reason string
}

// String renders the problem the way `gateway validate` prints it.
func (p Problem) String() string {
	id := p.Kind
	if p.Name != "" {
		if p.Namespace != "" {
			id += " " + p.Namespace + "/" + p.Name
		} else {
			id += " " + p.Name
		}
	}
	return fmt.Sprintf("%s: %s: %s", p.Position, id, p.Reason)
}

// Hash returns a digest of the snapshot's content, so a reconciler can skip
// a snapshot identical to the one it applied last.
func (s *Snapshot) Hash() [32]byte {
	if s.Digest != ([32]byte{}) {
		return s.Digest
	}
	b, err := json.Marshal(s)
	if err != nil {
		// Every field is plain JSON-encodable data; an error here is a
		// programming mistake, and an unique hash forces a re-apply.
		b = []byte(err.Error())
	}
	return sha256.Sum256(b)
}
