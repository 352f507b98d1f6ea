// Package dashboards holds the Grafana dashboards for the gateway's
// Prometheus metrics (grafana/*.json) and the test that keeps them honest:
// every PromQL expression in every panel and template variable must parse,
// and every metric it selects must be one the gateway exports
// (metrics.(*Metrics).Names), so renaming a metric cannot leave a
// dashboard panel silently empty.
//
// The package has no code of its own; it exists so `go test ./...` runs
// that check.
package dashboards
