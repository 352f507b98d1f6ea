//go:build tools

// Package conformance pins echo-basic, the backend the suite's pods run,
// so `go build sigs.k8s.io/gateway-api/conformance/echo-basic` works from
// this module at the suite's version.
package conformance

import (
	_ "sigs.k8s.io/gateway-api/conformance/echo-basic"
)
