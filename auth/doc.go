// Package auth checks requests against a SecurityPolicy: client IP lists,
// HTTP Basic users (bcrypt), JSON Web Tokens and external authorization
// (Envoy's ext_authz gRPC API, or plain HTTP).
//
// Everything a check needs is compiled once per configuration by Compile;
// state that must outlive reloads is kept in this package: remote JWKS
// caches per URL, and connections to authorization services per address
// and TLS settings, counted by the configurations using them (Policy.Start
// and Policy.Stop) and closed when the last one is done.
// Credentials, tokens and Secret contents are never logged: failures carry
// only a short reason.
package auth
