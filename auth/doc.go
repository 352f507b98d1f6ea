// Package auth checks requests against a SecurityPolicy: client IP lists,
// HTTP Basic users (bcrypt), JSON Web Tokens and external authorization
// (Envoy's ext_authz gRPC API, or plain HTTP).
//
// Everything a check needs is compiled once per configuration by Compile;
// state that must outlive reloads (remote JWKS caches, gRPC connections to
// authorization services) is kept per URL or address in this package.
// Credentials, tokens and Secret contents are never logged: failures carry
// only a short reason.
package auth
