package config

import "testing"

// TestLoadBackendTLSPolicyAndConfigMap checks that BackendTLSPolicy (v1,
// and v1alpha3 manifests) and ConfigMap load, and that BackendTLSPolicy
// under a version never served is ignored.
func TestLoadBackendTLSPolicyAndConfigMap(t *testing.T) {
	s, err := Parse("btls.yaml", []byte(`
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: p}
spec:
  targetRefs: [{group: "", kind: Service, name: svc, sectionName: https}]
  validation:
    hostname: api.internal
    caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]
    subjectAltNames: [{type: URI, uri: "spiffe://td/sa/api"}]
  options: {example.com/x: "on"}
---
apiVersion: gateway.networking.k8s.io/v1alpha3
kind: BackendTLSPolicy
metadata: {name: old, namespace: ns}
spec:
  targetRefs: [{group: "", kind: Service, name: svc}]
  validation: {hostname: api.internal, wellKnownCACertificates: System}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: BackendTLSPolicy
metadata: {name: never}
spec: {}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ca}
data: {ca.crt: pem}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Rejected) != 0 {
		t.Fatalf("rejected: %v", s.Rejected)
	}
	if len(s.BackendTLSPolicies) != 2 || len(s.ConfigMaps) != 1 || len(s.Ignored) != 1 {
		t.Fatalf("got %d policies, %d ConfigMaps, ignored %v", len(s.BackendTLSPolicies), len(s.ConfigMaps), s.Ignored)
	}
	p := s.BackendTLSPolicies[0]
	if p.Namespace != DefaultNamespace || string(p.Spec.Validation.Hostname) != "api.internal" || *p.Spec.TargetRefs[0].SectionName != "https" || string(p.Spec.Validation.SubjectAltNames[0].URI) != "spiffe://td/sa/api" {
		t.Errorf("policy decoded wrong: %+v", p)
	}
	if s.BackendTLSPolicies[1].Namespace != "ns" || s.ConfigMaps[0].Data["ca.crt"] != "pem" || s.ConfigMaps[0].Namespace != DefaultNamespace {
		t.Errorf("decoded wrong: %+v %+v", s.BackendTLSPolicies[1], s.ConfigMaps[0])
	}
}
