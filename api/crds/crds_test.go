package crds

import (
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const (
	route = "targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}]\n"
	// skipped is the API server's note that CEL rules did not run because
	// the object already failed a blocking OpenAPI check.
	skipped = "some validation rules were not checked because the object was invalid"
)

// object builds a decoded Meshgate object of kind from its spec in YAML.
func object(t *testing.T, kind, spec string) map[string]any {
	t.Helper()
	doc := "apiVersion: gateway.meshgate.dev/v1alpha1\nkind: " + kind + "\nmetadata: {name: x, namespace: default}\n"
	if spec != "" {
		doc += "spec:\n  " + strings.ReplaceAll(strings.TrimSuffix(spec, "\n"), "\n", "\n  ") + "\n"
	}
	js, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	var obj map[string]any
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// lookup returns the value at a dotted path such as spec.retry.attempts.
func lookup(obj map[string]any, path string) (any, bool) {
	var cur any = obj
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name, kind, spec string
		// errs are substrings, one per expected error, in any order.
		errs []string
		// defaults are values expected at dotted paths after defaulting.
		defaults map[string]any
		// absent are paths defaulting must not create.
		absent []string
	}{
		// Valid minimal objects of each kind, and their defaults.
		{
			name: "minimal Backend", kind: "Backend",
			spec:   "endpoints: [{address: 10.0.0.1, port: 8080}]",
			absent: []string{"spec.appProtocol", "spec.tls"},
		},
		{
			name: "Backend with TLS and appProtocol", kind: "Backend",
			spec: "endpoints: [{address: billing.example, port: 443}]\nappProtocol: kubernetes.io/h2c\ntls: {serverName: billing.example, caCertificateRefs: [{name: ca}]}",
		},
		{
			name: "minimal TrafficPolicy with defaults", kind: "TrafficPolicy",
			spec: route + "retry: {budget: {}}\noutlierDetection: {}\nhealthCheck: {type: TCP}",
			defaults: map[string]any{
				"spec.retry.attempts":                      int64(2),
				"spec.retry.budget.percent":                int64(20),
				"spec.retry.budget.minRetryConcurrency":    int64(3),
				"spec.outlierDetection.maxEjectionPercent": int64(50),
				"spec.outlierDetection.consecutive5xx":     int64(5),
				"spec.healthCheck.healthyThreshold":        int64(1),
				"spec.healthCheck.unhealthyThreshold":      int64(3),
			},
			absent: []string{"spec.loadBalancer", "spec.outlierDetection.consecutiveGatewayErrors"},
		},
		{
			name: "set values are not overwritten by defaults", kind: "TrafficPolicy",
			spec:     route + "retry: {attempts: 0}\noutlierDetection: {maxEjectionPercent: 10}",
			defaults: map[string]any{"spec.retry.attempts": int64(0), "spec.outlierDetection.maxEjectionPercent": int64(10)},
			absent:   []string{"spec.retry.budget"},
		},
		{
			name: "TrafficPolicy using every section", kind: "TrafficPolicy",
			spec: "targetRefs:\n- {group: gateway.networking.k8s.io, kind: Gateway, name: g}\n- {group: '', kind: Service, name: s, sectionName: http}\n- {group: gateway.meshgate.dev, kind: Backend, name: b}\n" +
				"loadBalancer: {type: RingHash, consistentHash: {type: Header, name: x-user}, slowStartWindow: 30s}\n" +
				"retry: {attempts: 10, retryOn: [5xx, reset], statusCodes: [429, 503], grpcCodes: [Unavailable], perTryTimeout: 1s, backoff: {baseInterval: 25ms, maxInterval: 1s}, allowNonIdempotent: true}\n" +
				"timeouts: {request: 10s, connect: 1s, idle: 1m}\n" +
				"healthCheck: {type: HTTP, interval: 5s, timeout: 1s, http: {path: /healthz, host: a.example, expectedStatuses: [200, 204]}, panicThreshold: 0}\n" +
				"circuitBreaker: {maxConnections: 100, maxPendingRequests: 0, maxRequests: 1000, maxRetries: 3}\n" +
				"rateLimit: {local: [{key: Header, header: x-api-key, requests: 10, unit: Second, burst: 20}], global: [{key: ClientIP, requests: 100, unit: Minute}], failOpen: true}\n" +
				"sessionPersistence: {type: Cookie, sessionName: s}",
		},
		{
			name: "minimal FaultInjection", kind: "FaultInjection",
			spec: "delay: {duration: 2s, percentage: '0.5'}",
		},
		{
			name: "FaultInjection abort with headers", kind: "FaultInjection",
			spec: "headers: [{name: x-test, value: chaos}]\nabort: {grpcStatus: Unavailable, percentage: '100'}",
		},

		// Each CEL rule of trafficpolicy.go and faultinjection.go.
		{
			name: "TrafficPolicy with no section", kind: "TrafficPolicy", spec: route,
			errs: []string{"spec: Invalid value: a TrafficPolicy must set at least one section"},
		},
		{
			name: "targetRef of another kind", kind: "TrafficPolicy",
			spec: "targetRefs: [{group: apps, kind: Deployment, name: d}]\nretry: {}",
			errs: []string{"spec.targetRefs: Invalid value: targetRefs must be a Gateway, HTTPRoute, GRPCRoute, Service or Backend"},
		},
		{
			name: "RingHash without consistentHash", kind: "TrafficPolicy",
			spec: route + "loadBalancer: {type: RingHash}",
			errs: []string{"spec.loadBalancer: Invalid value: consistentHash is required for RingHash and Maglev and allowed only with them"},
		},
		{
			name: "consistentHash with RoundRobin", kind: "TrafficPolicy",
			spec: route + "loadBalancer: {type: RoundRobin, consistentHash: {type: SourceIP}}",
			errs: []string{"spec.loadBalancer: Invalid value: consistentHash is required for RingHash and Maglev and allowed only with them"},
		},
		{
			name: "Header hash without name", kind: "TrafficPolicy",
			spec: route + "loadBalancer: {type: Maglev, consistentHash: {type: Header}}",
			errs: []string{"spec.loadBalancer.consistentHash: Invalid value: name is required for Header and Cookie and not allowed for SourceIP"},
		},
		{
			name: "SourceIP hash with name", kind: "TrafficPolicy",
			spec: route + "loadBalancer: {type: Maglev, consistentHash: {type: SourceIP, name: x}}",
			errs: []string{"spec.loadBalancer.consistentHash: Invalid value: name is required for Header and Cookie and not allowed for SourceIP"},
		},
		{
			name: "backoff base over max", kind: "TrafficPolicy",
			spec: route + "retry: {backoff: {baseInterval: 2s, maxInterval: 500ms}}",
			errs: []string{"spec.retry.backoff: Invalid value: baseInterval must not exceed maxInterval"},
		},
		{
			name: "http probe settings with type TCP", kind: "TrafficPolicy",
			spec: route + "healthCheck: {type: TCP, http: {path: /}}",
			errs: []string{"spec.healthCheck: Invalid value: http is only allowed with type HTTP"},
		},
		{
			name: "grpc probe settings with type HTTP", kind: "TrafficPolicy",
			spec: route + "healthCheck: {type: HTTP, grpc: {service: s}}",
			errs: []string{"spec.healthCheck: Invalid value: grpc is only allowed with type GRPC"},
		},
		{
			name: "rateLimit with no limit", kind: "TrafficPolicy",
			spec: route + "rateLimit: {failOpen: true}",
			errs: []string{"spec.rateLimit: Invalid value: set local or global"},
		},
		{
			name: "Header rate limit without header", kind: "TrafficPolicy",
			spec: route + "rateLimit: {local: [{key: Header, requests: 1, unit: Second}]}",
			errs: []string{"spec.rateLimit.local[0]: Invalid value: header is required for key Header and not allowed otherwise"},
		},
		{
			name: "Route rate limit with header", kind: "TrafficPolicy",
			spec: route + "rateLimit: {global: [{key: Route, header: x, requests: 1, unit: Hour}]}",
			errs: []string{"spec.rateLimit.global[0]: Invalid value: header is required for key Header and not allowed otherwise"},
		},
		{
			name: "Gateway API's own rule inside sessionPersistence", kind: "TrafficPolicy",
			spec: route + "sessionPersistence: {type: Cookie, cookieConfig: {lifetimeType: Permanent}}",
			errs: []string{"spec.sessionPersistence: Invalid value: AbsoluteTimeout must be specified when cookie lifetimeType is Permanent"},
		},
		{
			name: "FaultInjection with neither delay nor abort", kind: "FaultInjection",
			spec: "headers: [{name: x-test, value: a}]",
			errs: []string{"spec: Invalid value: set delay, abort or both"},
		},
		{
			name: "abort with no status", kind: "FaultInjection",
			spec: "abort: {percentage: '1'}",
			errs: []string{"spec.abort: Invalid value: set httpStatus, grpcStatus or both"},
		},

		// OpenAPI limits name the field.
		{
			name: "retry attempts over maximum", kind: "TrafficPolicy",
			spec: route + "retry: {attempts: 11}",
			errs: []string{"spec.retry.attempts: Invalid value: 11: spec.retry.attempts in body should be less than or equal to 10"},
		},
		{
			name: "retry attempts under minimum", kind: "TrafficPolicy",
			spec: route + "retry: {attempts: -1}",
			errs: []string{"spec.retry.attempts: Invalid value: -1: spec.retry.attempts in body should be greater than or equal to 0"},
		},
		{
			name: "status code item under minimum", kind: "TrafficPolicy",
			spec: route + "retry: {statusCodes: [503, 399]}",
			errs: []string{"spec.retry.statusCodes[1]: Invalid value: 399: spec.retry.statusCodes[1] in body should be greater than or equal to 400"},
		},
		{
			name: "maxEjectionPercent over maximum", kind: "TrafficPolicy",
			spec: route + "outlierDetection: {maxEjectionPercent: 101}",
			errs: []string{"spec.outlierDetection.maxEjectionPercent: Invalid value: 101: spec.outlierDetection.maxEjectionPercent in body should be less than or equal to 100"},
		},
		{
			name: "unknown load balancer (enum; CEL skipped)", kind: "TrafficPolicy",
			spec: route + "loadBalancer: {type: Fancy}",
			errs: []string{`spec.loadBalancer.type: Unsupported value: "Fancy": supported values: "RoundRobin", "LeastRequest", "Random", "RingHash", "Maglev"`, skipped},
		},
		{
			name: "unknown gRPC code item", kind: "TrafficPolicy",
			spec: route + "retry: {grpcCodes: [Unavailable, Nope]}",
			errs: []string{`spec.retry.grpcCodes[1]: Unsupported value: "Nope"`, skipped},
		},
		{
			name: "duplicate in a set list", kind: "TrafficPolicy",
			spec: route + "retry: {retryOn: [reset, reset]}",
			errs: []string{`spec.retry.retryOn[1]: Duplicate value: "reset"`},
		},
		{
			name: "health check path pattern", kind: "TrafficPolicy",
			spec: route + "healthCheck: {type: HTTP, http: {path: healthz}}",
			errs: []string{`spec.healthCheck.http.path: Invalid value: "healthz": spec.healthCheck.http.path in body should match '^/[^\s]*$'`},
		},
		{
			name: "duration pattern", kind: "TrafficPolicy",
			spec: route + "timeouts: {request: 10 seconds}",
			errs: []string{`spec.timeouts.request: Invalid value: "10 seconds": spec.timeouts.request in body should match`},
		},
		{
			name: "no targetRefs", kind: "TrafficPolicy",
			spec: "targetRefs: []\nretry: {}",
			errs: []string{"spec.targetRefs: Invalid value: 0: spec.targetRefs in body should have at least 1 items"},
		},
		{
			name: "missing spec", kind: "TrafficPolicy",
			errs: []string{"spec: Required value", skipped},
		},
		{
			name: "no endpoints", kind: "Backend", spec: "endpoints: []",
			errs: []string{"spec.endpoints: Invalid value: 0: spec.endpoints in body should have at least 1 items"},
		},
		{
			name: "too many endpoints", kind: "Backend",
			spec: "endpoints: [" + strings.Repeat("{address: a, port: 1}, ", 256) + "{address: a, port: 1}]",
			errs: []string{"spec.endpoints: Too many: 257: must have at most 256 items"},
		},
		{
			name: "port out of range", kind: "Backend",
			spec: "endpoints: [{address: a, port: 0}, {address: b, port: 65536}]",
			errs: []string{
				"spec.endpoints[0].port: Invalid value: 0: spec.endpoints[0].port in body should be greater than or equal to 1",
				"spec.endpoints[1].port: Invalid value: 65536: spec.endpoints[1].port in body should be less than or equal to 65535",
			},
		},
		{
			name: "port of the wrong type", kind: "Backend",
			spec: "endpoints: [{address: a, port: eighty}]",
			errs: []string{`spec.endpoints[0].port: Invalid value: "string": spec.endpoints[0].port in body must be of type integer: "string"`},
		},
		{
			name: "empty address and missing port", kind: "Backend",
			spec: "endpoints: [{address: ''}]",
			errs: []string{
				`spec.endpoints[0].address: Invalid value: "": spec.endpoints[0].address in body should be at least 1 chars long`,
				"spec.endpoints[0].port: Required value",
			},
		},
		{
			name: "address too long", kind: "Backend",
			spec: "endpoints: [{address: " + strings.Repeat("a", 254) + ", port: 1}]",
			errs: []string{"spec.endpoints[0].address: Too long: may not be more than 253 bytes"},
		},
		{
			name: "appProtocol too long", kind: "Backend",
			spec: "endpoints: [{address: a, port: 1}]\nappProtocol: " + strings.Repeat("p", 257),
			errs: []string{"spec.appProtocol: Too long: may not be more than 256 bytes"},
		},
		{
			name: "percentage pattern", kind: "FaultInjection",
			spec: "delay: {duration: 1s, percentage: '101'}",
			errs: []string{`spec.delay.percentage: Invalid value: "101": spec.delay.percentage in body should match`},
		},
		{
			name: "abort status out of range and unknown gRPC status", kind: "FaultInjection",
			spec: "abort: {httpStatus: 600, grpcStatus: Oops, percentage: '1'}",
			errs: []string{
				"spec.abort.httpStatus: Invalid value: 600: spec.abort.httpStatus in body should be less than or equal to 599",
				`spec.abort.grpcStatus: Unsupported value: "Oops"`,
				skipped,
			},
		},
	}
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj := object(t, tc.kind, tc.spec)
			errs := v.Validate(obj)
			if len(errs) != len(tc.errs) {
				t.Fatalf("errors:\n%s\nwant %d: %q", strings.Join(errs, "\n"), len(tc.errs), tc.errs)
			}
			for _, want := range tc.errs {
				if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, want) }) {
					t.Errorf("no error contains %q; errors:\n%s", want, strings.Join(errs, "\n"))
				}
			}
			for path, want := range tc.defaults {
				if got, ok := lookup(obj, path); !ok || !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v (set: %v), want %#v", path, got, ok, want)
				}
			}
			for _, path := range tc.absent {
				if got, ok := lookup(obj, path); ok {
					t.Errorf("%s = %#v, want it unset", path, got)
				}
			}
		})
	}
}

func TestValidateUnknownKind(t *testing.T) {
	for _, obj := range []map[string]any{
		{"apiVersion": "gateway.meshgate.dev/v1alpha1", "kind": "Gizmo", "spec": map[string]any{}},
		{"apiVersion": "gateway.meshgate.dev/v1", "kind": "Backend", "spec": map[string]any{}},
		{"kind": "Backend"},
	} {
		errs := Validate(obj)
		if len(errs) != 1 || !strings.Contains(errs[0], "has no CustomResourceDefinition") {
			t.Errorf("%v: errs = %q, want one naming the missing CRD", obj, errs)
		}
	}
}

func TestKindsAndFiles(t *testing.T) {
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	// Every embedded CRD compiles: the API server would accept it.
	if err := v.Compile(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"gateway.meshgate.dev/v1alpha1/Backend",
		"gateway.meshgate.dev/v1alpha1/FaultInjection",
		"gateway.meshgate.dev/v1alpha1/Rollout",
		"gateway.meshgate.dev/v1alpha1/SecurityPolicy",
		"gateway.meshgate.dev/v1alpha1/TrafficPolicy",
	}
	if got := v.Kinds(); !slices.Equal(got, want) {
		t.Errorf("kinds = %q, want %q", got, want)
	}
	names, _ := fs.Glob(Files(), "*.yaml")
	if len(names) != len(want) {
		t.Errorf("files = %q, want one per kind", names)
	}
}

// The package-level validator is shared; concurrent use must be safe (run
// with -race).
func TestValidateConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for i := range 8 {
		obj := object(t, "TrafficPolicy", route+fmt.Sprintf("retry: {attempts: %d}\nloadBalancer: {type: Maglev}", i))
		wg.Go(func() {
			if errs := Validate(obj); len(errs) != 1 {
				t.Errorf("errs = %q, want the loadBalancer rule only", errs)
			}
		})
	}
	wg.Wait()
}
