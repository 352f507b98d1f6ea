// Package benchcfg generates the manifests Meshgate's benchmarks load, so
// the Go benchmarks measure the very config bench/run.sh serves.
package benchcfg

import (
	"fmt"
	"strings"
)

// HostRoutes is the reload benchmark's manifest (bench/run.sh): one Gateway,
// a Backend with its CRD validation, and n HTTPRoutes, one per host.
func HostRoutes(n int) []byte {
	var b strings.Builder
	b.WriteString(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: meshgate}
spec: {controllerName: gateway.meshgate.dev/controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: bench, namespace: default}
spec:
  gatewayClassName: meshgate
  addresses: [{type: IPAddress, value: 127.0.0.1}]
  listeners:
  - {name: http, protocol: HTTP, port: 8093}
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: Backend
metadata: {name: origin, namespace: default}
spec:
  endpoints: [{address: 127.0.0.1, port: 9001}]
`)
	for i := range n {
		fmt.Fprintf(&b, `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r%d, namespace: default}
spec:
  parentRefs: [{name: bench}]
  hostnames: [h%d.bench.local]
  rules:
  - matches: [{path: {type: PathPrefix, value: /p%d}}]
    backendRefs: [{group: gateway.meshgate.dev, kind: Backend, name: origin}]
`, i, i, i)
	}
	return []byte(b.String())
}
