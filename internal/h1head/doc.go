// Package h1head holds what both HTTP/1.1 head parsers share: the server's,
// which reads requests from clients, and the upstream client's, which reads
// responses from backends. Each piece replaces a general one (a map lookup,
// bufio.Reader.ReadSlice, a byte loop) on the per-request path.
package h1head

//go:generate go run gen_names.go
