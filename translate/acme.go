package translate

import (
	"fmt"
	"strings"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshgate/meshgate/ir"
)

// Gateway annotations turning ACME on for its HTTPS listeners that have no
// certificateRefs (docs/acme.md).
const (
	AnnotationACME      = "gateway.meshgate.dev/acme"
	AnnotationACMEEmail = "gateway.meshgate.dev/acme-email"
)

// listenerACME makes an HTTPS listener without certificateRefs get its
// certificate from ACME when its Gateway asks for it, and reports whether
// it handled the listener. HTTP-01 and TLS-ALPN-01 prove one concrete name:
// a listener without a hostname or with a wildcard gets ResolvedRefs=False
// saying so (wildcards need DNS-01, which Meshgate does not do).
func (t *translator) listenerACME(ls *listenerState) bool {
	if ls.protocol != ir.ProtocolHTTPS || !strings.EqualFold(ls.gs.gw.Annotations[AnnotationACME], "true") {
		return false
	}
	switch {
	case ls.hostname == "":
		ls.refs = append(ls.refs, refProblem{string(gwapiv1.ListenerReasonInvalidCertificateRef), fmt.Sprintf("tls.certificateRefs: none, and ACME (annotation %s) needs a concrete hostname; set hostname or a certificateRef", AnnotationACME)})
	case strings.HasPrefix(ls.hostname, "*."):
		ls.refs = append(ls.refs, refProblem{string(gwapiv1.ListenerReasonInvalidCertificateRef), fmt.Sprintf("tls.certificateRefs: none, and ACME (annotation %s) cannot get a certificate for wildcard %s: that needs the DNS-01 challenge, which is not supported; set a certificateRef", AnnotationACME, ls.hostname)})
	default:
		ls.acme = &ir.ACME{Email: ls.gs.gw.Annotations[AnnotationACMEEmail]}
	}
	return true
}
