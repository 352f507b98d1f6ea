package translate

import (
	"testing"

	"github.com/meshgate/meshgate/config"
)

// TestExtAuthBackendTLS: an extAuth service behind a Service targeted by a
// BackendTLSPolicy is spoken to over TLS, and a route using the same
// Service keeps its TLS too (the policies are resolved before either
// makes the Service's backend).
func TestExtAuthBackendTLS(t *testing.T) {
	s, err := config.Parse("exttls.yaml", []byte(extTLSCase))
	if err != nil {
		t.Fatal(err)
	}
	res := Translate(s, Options{})
	for _, st := range res.Statuses {
		for _, c := range st.Conditions {
			if c.Type == "Accepted" && c.Status != "True" {
				t.Fatalf("%s %s/%s not accepted: %s", st.Kind, st.Namespace, st.Name, c.Message)
			}
		}
	}
	if len(res.Config.Listeners) != 1 {
		t.Fatalf("%d listeners", len(res.Config.Listeners))
	}
	var checked int
	for _, h := range res.Config.Listeners[0].Hosts {
		for _, r := range h.Routes {
			ext := r.Security.ExtAuth
			if ext == nil || ext.Backend.TLS == nil || ext.Backend.TLS.ServerName != "authz.internal" {
				t.Fatalf("route %s: extAuth backend without TLS: %+v", r.Name, ext)
			}
			if b := r.Backends[0].Target; b == nil || b.TLS == nil {
				t.Fatalf("route %s: backend without TLS: %+v", r.Name, b)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no route")
	}
}

const extTLSCase = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: meshgate}
spec: {controllerName: gateway.meshgate.dev/controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: meshgate
  listeners: [{name: http, port: 8080, protocol: HTTP}]
---
apiVersion: v1
kind: Service
metadata: {name: authz, namespace: default}
spec:
  ports: [{name: grpc, port: 9000}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: authz-a, namespace: default, labels: {kubernetes.io/service-name: authz}}
addressType: IPv4
ports: [{name: grpc, port: 9000}]
endpoints: [{addresses: [10.0.0.7]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: authz-tls, namespace: default}
spec:
  targetRefs: [{group: "", kind: Service, name: authz}]
  validation:
    hostname: authz.internal
    caCertificateRefs: [{group: "", kind: ConfigMap, name: internal-ca}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: internal-ca, namespace: default}
data:
  ca.crt: |
    -----BEGIN CERTIFICATE-----
    MIIBajCCARGgAwIBAgIBATAKBggqhkjOPQQDAjAWMRQwEgYDVQQDEwtleGFtcGxl
    LmNvbTAgFw0yNTAxMDEwMDAwMDBaGA8yMTI1MDEwMTAwMDAwMFowFjEUMBIGA1UE
    AxMLZXhhbXBsZS5jb20wWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAT/g+Rv03fU
    Y4YtKbFD8xSHi+SUb75DxrzAuV4FkE32PnAouViaaygtmm3PBIk6bBQJ/gmTXG+1
    3gr2izoBQI7ko04wTDAOBgNVHQ8BAf8EBAMCB4AwEwYDVR0lBAwwCgYIKwYBBQUH
    AwEwJQYDVR0RBB4wHIILZXhhbXBsZS5jb22CDSouZXhhbXBsZS5jb20wCgYIKoZI
    zj0EAwIDRwAwRAIgScnmN1RK0eKlCyuEIgYpRQQlBIQPOVa4rHKusVBN+vACIFOn
    0jpmchbEHBmaGTmxSQn1s2UoIlZBeKN1qCuR5wdC
    -----END CERTIFICATE-----
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: authz, port: 9000}]
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: ext, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: web}]
  extAuth:
    grpc:
      backendRef: {name: authz, port: 9000}
`
