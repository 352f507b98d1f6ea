// Package router turns one ir.Listener into an immutable lookup table and
// matches requests against it with Gateway API semantics.
//
// Compile does all the work that does not depend on the request: hostnames
// are lowercased and indexed, regular expressions compiled, filters built,
// backend weights summed and routes sorted by precedence. Match then only
// reads, allocates nothing and is safe for concurrent use, so a table can be
// published with atomic.Pointer and replaced wholesale on reload.
//
// Matching happens in two steps, as Gateway API prescribes:
//
//  1. The listener host: of the Gateway listeners sharing the socket, the one
//     whose hostname matches the request host most specifically (exact, then
//     the longest wildcard suffix, then the listener without a hostname).
//     There is no fallback to a less specific listener.
//  2. The route: among that listener's routes, those whose hostnames match
//     the request host, in precedence order (see Compile), first match wins.
package router
