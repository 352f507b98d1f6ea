// Package xconnect turns on HTTP/2 extended CONNECT (RFC 8441, WebSocket
// over HTTP/2) in golang.org/x/net/http2 and net/http.
//
// Both read the switch from the GODEBUG environment variable once, in their
// package init, and leave it off by default (golang/go#71128: a server that
// advertises it must handle WebSocket over HTTP/2, which Meshgate does). Go
// initialises packages in import-path order once their imports are ready,
// and this package needs only os and strings, which those packages need too;
// so importing it from any package of the binary sets the variable before
// either reads it. Nothing is exported.
package xconnect

import (
	"os"
	"strings"
)

func init() {
	v := os.Getenv("GODEBUG")
	if strings.Contains(v, "http2xconnect=") {
		return // the operator decided
	}
	if v != "" {
		v += ","
	}
	os.Setenv("GODEBUG", v+"http2xconnect=1")
}
