//go:build tools

// Package deps pins modules that only tests and later packages use, until
// they import them directly.
package deps

import (
	_ "github.com/quic-go/quic-go/http3"
	_ "google.golang.org/grpc"
	_ "google.golang.org/grpc/interop"
)
