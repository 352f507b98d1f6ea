// Copyright 2026 The Meshgate Authors. Parts copied from golang.org/x/net/http2
// (BSD-style license, see FORK.md).

package http2

import (
	"slices"

	// WebSocket over HTTP/2 (RFC 8441) is switched on through GODEBUG,
	// which http2.go's init reads: importing xconnect makes it run first.
	_ "github.com/meshgate/meshgate/internal/xconnect"

	// The package this one copies. Importing it makes govulncheck's
	// package scan of this package (scripts/vulncheck.sh) report every
	// advisory against x/net/http2, which may concern this copy too.
	_ "golang.org/x/net/http2"
)

// strSliceContains is defined by x/net's transport.go, which the fork
// leaves out.
func strSliceContains(ss []string, s string) bool { return slices.Contains(ss, s) }

// The client's flow-control defaults, from x/net's transport.go:
// setConfigDefaults names them, the server never uses them.
const (
	transportDefaultConnFlow   = 1 << 30
	transportDefaultStreamFlow = 4 << 20
)
