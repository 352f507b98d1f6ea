// Package v1alpha1 holds Meshgate's own Kubernetes kinds in the API group
// gateway.meshgate.dev. They extend Gateway API through its standard
// attachment points (backendRefs with group and kind, ExtensionRef filters,
// policy targetRefs), so a user's manifests stay portable.
//
// The CustomResourceDefinitions in api/crds and zz_generated.deepcopy.go are
// generated from these types by `make generate` (controller-gen).
//
// +kubebuilder:object:generate=true
// +groupName=gateway.meshgate.dev
package v1alpha1
