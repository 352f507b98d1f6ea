package tls

import (
	"crypto/sha256"
	ctls "crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"strings"
)

// Identity is the verified client certificate of a connection in Envoy's
// X-Forwarded-Client-Cert element format, for upstreams that authorise by
// client identity:
//
//	Hash=<sha256 of the leaf, hex>;Subject="<RFC 2253 subject>";URI=<URI SAN>;DNS=<DNS SAN>
//
// with one URI (a SPIFFE ID among them) and one DNS pair per SAN. It is ""
// when the connection has no certificate that verifies against c's CAs:
// with AllowValidOnly crypto/tls verified it in the handshake; with
// AllowInsecureFallback, where the handshake lets any certificate in, it is
// verified here, so an unverified certificate never becomes an identity.
// The data plane computes it once per connection (server.ConnInfo).
func (c *ClientAuth) Identity(st *ctls.ConnectionState) string {
	if c == nil || st == nil || len(st.PeerCertificates) == 0 {
		return ""
	}
	leaf := st.PeerCertificates[0]
	if len(st.VerifiedChains) == 0 {
		inter := x509.NewCertPool()
		for _, ic := range st.PeerCertificates[1:] {
			inter.AddCert(ic)
		}
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots: c.pool, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		if err != nil {
			return ""
		}
	}
	sum := sha256.Sum256(leaf.Raw)
	var b strings.Builder
	b.WriteString("Hash=")
	b.WriteString(hex.EncodeToString(sum[:]))
	b.WriteString(`;Subject="`)
	b.WriteString(escapeXFCC(leaf.Subject.String()))
	b.WriteByte('"')
	for _, u := range leaf.URIs {
		b.WriteString(";URI=")
		writeXFCCValue(&b, u.String())
	}
	for _, d := range leaf.DNSNames {
		b.WriteString(";DNS=")
		writeXFCCValue(&b, d)
	}
	return b.String()
}

// writeXFCCValue writes v, quoted when it holds a separator (',' ';' '=')
// or a quote, as Envoy does.
func writeXFCCValue(b *strings.Builder, v string) {
	if strings.ContainsAny(v, `,;="\ `) {
		b.WriteByte('"')
		b.WriteString(escapeXFCC(v))
		b.WriteByte('"')
		return
	}
	b.WriteString(escapeXFCC(v))
}

// escapeXFCC backslash-escapes quotes and backslashes and replaces control
// characters, which have no place in a header value, with '?'.
func escapeXFCC(v string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v))
}
