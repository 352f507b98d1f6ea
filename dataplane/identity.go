package dataplane

import (
	"net/http"

	"github.com/meshgate/meshgate/proxy"
	"github.com/meshgate/meshgate/server"
	mgtls "github.com/meshgate/meshgate/tls"
)

// clientIdentity forwards a listener's verified client certificate identity
// upstream (the ClientAuth's identity header).
type clientIdentity struct {
	header string
	auth   *mgtls.ClientAuth
}

// setIdentity makes the handler forward the identity c verifies, or stop
// doing so when c has no identity header (or is nil).
func (h *listenerHandler) setIdentity(c *mgtls.ClientAuth) {
	if hdr := c.IdentityHeader(); hdr != "" {
		h.identity.Store(&clientIdentity{header: hdr, auth: c})
		return
	}
	h.identity.Store(nil)
}

// apply replaces the client's copy of the header by the connection's
// verified identity (none without one). The identity is computed once per
// connection (server.ConnInfo.ClientIdentity).
func (id *clientIdentity) apply(r *http.Request) {
	proxy.SetClientIdentity(r.Header, id.header, server.ConnInfoFrom(r.Context()).ClientIdentity(id.auth.Identity))
}
