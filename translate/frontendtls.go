package translate

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshgate/meshgate/ir"
	mgtls "github.com/meshgate/meshgate/tls"
)

// Gateway spec.tls (Gateway API v1.4+, GEP-91 and GEP-3155).
//
// How Meshgate reads it:
//   - frontend.default.validation applies to every HTTPS listener of the
//     Gateway (its ListenerSets' too) whose port has no frontend.perPort
//     entry; a perPort entry replaces it for its port, and an entry without
//     validation turns validation off there. TLS listeners (SNI routing)
//     are not HTTPS listeners and are not affected.
//   - caCertificateRefs name core ConfigMaps (the Core support level) or
//     core Secrets, with the PEM bundle under ca.crt, in the Gateway's
//     namespace or, with a ReferenceGrant to Gateways, another. Every valid
//     reference adds its CAs. Each bad one makes ResolvedRefs False on the
//     listeners it applies to (InvalidCACertificateRef,
//     InvalidCACertificateKind or RefNotPermitted); when none is valid the
//     listeners are Accepted False NoValidCACertificate and not bound, so
//     they never serve without the validation they were meant to have.
//   - mode AllowValidOnly (the default) fails the handshake of a client
//     without a certificate that verifies; AllowInsecureFallback asks for
//     one but lets every client in, and the Gateway then carries
//     InsecureFrontendValidationMode=True (ConfigurationChanged).
//   - Validation is per socket: Gateways sharing an address and port must
//     agree on it, or the newer Gateway's listener is not accepted
//     (PortUnavailable). That keeps one TLS config, and one set of session
//     ticket keys, per policy (see tls.ClientAuth).
//   - The verified client identity goes to upstreams in
//     X-Forwarded-Client-Cert, or the header a listener's
//     tls.options[gateway.meshgate.dev/client-identity-header] names ("none"
//     for no header); as part of the validation it is per socket too.
//   - backend.clientCertificateRef is a core Secret with tls.crt and
//     tls.key (of any type) that the gateway presents to backends it speaks
//     TLS to (BackendTLSPolicy, Backend spec.tls) through this Gateway's
//     routes. Those backends get a variant named
//     "<backend>~gateway-client-cert:<ns>/<secret>", so Gateways with
//     different certificates never share connections. A bad reference makes
//     the Gateway ResolvedRefs False (InvalidClientCertificateRef or
//     RefNotPermitted); the Gateway stays accepted and presents no
//     certificate.

// gatewayTLSState is what a Gateway's spec.tls resolved to.
type gatewayTLSState struct {
	// backendCert is the client certificate for backends; nil when unset
	// or invalid.
	backendCert *clientCert
	// ResolvedRefs=False on the Gateway when backendReason is set.
	backendReason gwapiv1.GatewayConditionReason
	backendMsg    string
	// insecure is set when any frontend validation allows insecure
	// fallback.
	insecure bool
}

// clientCert is a certificate and key the gateway presents to backends.
type clientCert struct {
	name            string // "<ns>/<secret>"
	certPEM, keyPEM []byte
}

// frontendValidation is one resolved frontend.*.validation.
type frontendValidation struct {
	ca *ir.ClientAuth // nil when no reference is valid
	// problems are the bad references; badMode is set for an unknown
	// mode.
	problems []refProblem
	badMode  string
}

// gatewayTLS resolves the Gateway's spec.tls and applies the frontend
// validation to its HTTPS listeners. It runs once the Gateway's own and its
// ListenerSets' listeners are validated, before they are bound.
func (t *translator) gatewayTLS(gs *gatewayState) {
	spec := gs.gw.Spec.TLS
	if spec == nil {
		return
	}
	gt := &gatewayTLSState{}
	gs.tlsState = gt
	if spec.Backend != nil && spec.Backend.ClientCertificateRef != nil {
		t.gatewayBackendCert(gs, gt, spec.Backend.ClientCertificateRef)
	}
	f := spec.Frontend
	if f == nil {
		return
	}
	resolved := map[string]*frontendValidation{}
	resolve := func(path string, v *gwapiv1.FrontendTLSValidation) *frontendValidation {
		if fv := resolved[path]; fv != nil {
			return fv
		}
		fv := t.resolveFrontendValidation(gs, path, v)
		resolved[path] = fv
		return fv
	}
	if v := f.Default.Validation; v != nil && v.Mode == gwapiv1.AllowInsecureFallback {
		gt.insecure = true
	}
	for _, pp := range f.PerPort {
		if v := pp.TLS.Validation; v != nil && v.Mode == gwapiv1.AllowInsecureFallback {
			gt.insecure = true
		}
	}
	for _, ls := range gs.allListeners() {
		if ls.protocol != ir.ProtocolHTTPS {
			continue
		}
		v, path := f.Default.Validation, "spec.tls.frontend.default.validation"
		for i := range f.PerPort {
			if f.PerPort[i].Port == ls.l.Port {
				v, path = f.PerPort[i].TLS.Validation, fmt.Sprintf("spec.tls.frontend.perPort[%d].tls.validation", i)
				break
			}
		}
		if v == nil {
			continue
		}
		fv := resolve(path, v)
		what := "tls: client certificate validation: "
		if ls.set != nil {
			what = "tls: client certificate validation of Gateway " + gs.key.String() + ": "
		}
		for _, p := range fv.problems {
			ls.refs = append(ls.refs, refProblem{p.reason, what + p.msg})
		}
		switch {
		case fv.badMode != "":
			ls.reject(gwapiv1.ListenerReasonUnsupportedValue, "%s%s", what, fv.badMode)
		case fv.ca == nil:
			ls.reject(gwapiv1.ListenerReasonNoValidCACertificate, "%s%s: no valid CA certificate", what, path)
		default:
			ca := *fv.ca
			ca.IdentityHeader = mgtls.DefaultIdentityHeader
			if ls.tlsOpts.IdentitySet {
				ca.IdentityHeader = ls.tlsOpts.IdentityHeader
			}
			ls.clientAuth = &ca
		}
	}
}

// resolveFrontendValidation loads the CA certificates of one validation.
func (t *translator) resolveFrontendValidation(gs *gatewayState, path string, v *gwapiv1.FrontendTLSValidation) *frontendValidation {
	fv := &frontendValidation{}
	mode := ir.ClientAuthAllowValidOnly
	switch v.Mode {
	case "", gwapiv1.AllowValidOnly:
	case gwapiv1.AllowInsecureFallback:
		mode = ir.ClientAuthAllowInsecureFallback
	default:
		fv.badMode = fmt.Sprintf("%s.mode: %q is not one of AllowValidOnly, AllowInsecureFallback", path, v.Mode)
		return fv
	}
	gwNS := gs.gw.Namespace
	var pems [][]byte
	var names []string
	for i, ref := range v.CACertificateRefs {
		rpath := fmt.Sprintf("%s.caCertificateRefs[%d]", path, i)
		bad := func(reason gwapiv1.ListenerConditionReason, format string, args ...any) {
			fv.problems = append(fv.problems, refProblem{string(reason), rpath + ": " + fmt.Sprintf(format, args...)})
		}
		group, kind, name := string(ref.Group), string(ref.Kind), string(ref.Name)
		if group != "" || (kind != kindConfigMap && kind != kindSecret) {
			bad(gwapiv1.ListenerReasonInvalidCACertificateKind, "%s is not a supported kind; use a core ConfigMap or Secret with the CA certificates under ca.crt", groupKind(group, kind))
			continue
		}
		ns := gwNS
		if ref.Namespace != nil && *ref.Namespace != "" {
			ns = string(*ref.Namespace)
		}
		if !t.refGranted(gatewayGroup, kindGateway, gwNS, "", kind, ns, name) {
			bad(gwapiv1.ListenerReasonRefNotPermitted, "%s %s/%s is in another namespace and no ReferenceGrant there allows Gateways from %s", kind, ns, name, gwNS)
			continue
		}
		var pem []byte
		found := false
		if kind == kindConfigMap {
			if cm := t.configMap(ns, name); cm != nil {
				found = true
				pem = []byte(cm.Data["ca.crt"])
				if len(pem) == 0 {
					pem = cm.BinaryData["ca.crt"]
				}
			}
		} else if sec := t.secrets[nsName{ns, name}]; sec != nil {
			found = true
			pem = sec.Data["ca.crt"]
		}
		if !found {
			bad(gwapiv1.ListenerReasonInvalidCACertificateRef, "%s", t.notFound(kind, ns, name))
			continue
		}
		if len(pem) == 0 || !x509.NewCertPool().AppendCertsFromPEM(pem) {
			bad(gwapiv1.ListenerReasonInvalidCACertificateRef, "%s %s/%s has no PEM certificate under ca.crt", kind, ns, name)
			continue
		}
		pems = append(pems, pem)
		names = append(names, strings.ToLower(kind)+"/"+ns+"/"+name)
	}
	if len(pems) > 0 {
		fv.ca = &ir.ClientAuth{Mode: mode, CAPEM: bytes.Join(pems, []byte("\n")), CAName: strings.Join(names, ",")}
	}
	return fv
}

func (t *translator) configMap(ns, name string) *corev1.ConfigMap {
	for _, c := range t.s.ConfigMaps {
		if c != nil && c.Namespace == ns && c.Name == name {
			return c
		}
	}
	return nil
}

// gatewayBackendCert resolves spec.tls.backend.clientCertificateRef.
func (t *translator) gatewayBackendCert(gs *gatewayState, gt *gatewayTLSState, ref *gwapiv1.SecretObjectReference) {
	const path = "spec.tls.backend.clientCertificateRef"
	bad := func(reason gwapiv1.GatewayConditionReason, format string, args ...any) {
		gt.backendReason = reason
		gt.backendMsg = path + ": " + fmt.Sprintf(format, args...)
	}
	group, kind := "", kindSecret
	if ref.Group != nil {
		group = string(*ref.Group)
	}
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	if group != "" || kind != kindSecret {
		bad(gwapiv1.GatewayReasonInvalidClientCertificateRef, "%s is not supported; use a core Secret with tls.crt and tls.key", groupKind(group, kind))
		return
	}
	gwNS, name := gs.gw.Namespace, string(ref.Name)
	ns := gwNS
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	if !t.refGranted(gatewayGroup, kindGateway, gwNS, "", kindSecret, ns, name) {
		bad(gwapiv1.GatewayReasonRefNotPermitted, "Secret %s/%s is in another namespace and no ReferenceGrant there allows Gateways from %s", ns, name, gwNS)
		return
	}
	sec := t.secrets[nsName{ns, name}]
	if sec == nil {
		bad(gwapiv1.GatewayReasonInvalidClientCertificateRef, "%s", t.notFound(kindSecret, ns, name))
		return
	}
	crt, key := sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey]
	if _, err := tls.X509KeyPair(crt, key); err != nil {
		bad(gwapiv1.GatewayReasonInvalidClientCertificateRef, "Secret %s/%s does not hold a valid certificate and key under tls.crt and tls.key: %v", ns, name, err)
		return
	}
	gt.backendCert = &clientCert{name: ns + "/" + name, certPEM: crt, keyPEM: key}
}

// sameClientAuth reports whether two listeners' validations can share a
// socket.
func sameClientAuth(a, b *ir.ClientAuth) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Mode == b.Mode && a.CAName == b.CAName && a.IdentityHeader == b.IdentityHeader && bytes.Equal(a.CAPEM, b.CAPEM)
}

// gatewayTLSConditions are the Gateway's ResolvedRefs condition when its
// backend client certificate is bad (nil otherwise), and the
// InsecureFrontendValidationMode condition when it applies.
func (gs *gatewayState) gatewayTLSConditions(gen int64) (resolvedRefs *metav1.Condition, extra []metav1.Condition) {
	gt := gs.tlsState
	if gt == nil {
		return nil, nil
	}
	if gt.backendReason != "" {
		c := condition(string(gwapiv1.GatewayConditionResolvedRefs), false, string(gt.backendReason), gt.backendMsg, gen)
		resolvedRefs = &c
	}
	if gt.insecure {
		extra = append(extra, condition(string(gwapiv1.GatewayConditionInsecureFrontendValidationMode), true, string(gwapiv1.GatewayReasonConfigurationChanged),
			"spec.tls.frontend: a validation with mode AllowInsecureFallback lets clients in without a valid certificate", gen))
	}
	return resolvedRefs, extra
}

// applyGatewayBackendCerts gives the TLS backends of every route installed
// on a Gateway with spec.tls.backend.clientCertificateRef that Gateway's
// client certificate. Installed routes are per-listener copies, so only
// their backend lists (shared with the rule) need copying.
func (t *translator) applyGatewayBackendCerts() {
	for _, gs := range t.gateways {
		if gs.tlsState == nil || gs.tlsState.backendCert == nil {
			continue
		}
		c := gs.tlsState.backendCert
		for _, ls := range gs.allListeners() {
			for _, h := range ls.hosts {
				for _, r := range h.Routes {
					r.Backends = t.certBackends(r.Backends, c)
					r.Filters = t.certFilters(r.Filters, c)
				}
			}
		}
	}
}

func (t *translator) certBackends(bs []ir.WeightedBackend, c *clientCert) []ir.WeightedBackend {
	var out []ir.WeightedBackend
	for i, wb := range bs {
		nb := t.withClientCert(wb.Target, c)
		nf := t.certFilters(wb.Filters, c)
		if nb == wb.Target && sameFilters(nf, wb.Filters) {
			continue
		}
		if out == nil {
			out = slices.Clone(bs)
		}
		out[i].Target, out[i].Filters = nb, nf
	}
	if out == nil {
		return bs
	}
	return out
}

func sameFilters(a, b []ir.Filter) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func (t *translator) certFilters(fs []ir.Filter, c *clientCert) []ir.Filter {
	var out []ir.Filter
	for i, f := range fs {
		if f.RequestMirror == nil || f.RequestMirror.Target == nil {
			continue
		}
		nb := t.withClientCert(f.RequestMirror.Target, c)
		if nb == f.RequestMirror.Target {
			continue
		}
		if out == nil {
			out = slices.Clone(fs)
		}
		m := *f.RequestMirror
		m.Target = nb
		out[i].RequestMirror = &m
	}
	if out == nil {
		return fs
	}
	return out
}

// withClientCert returns b presenting c, one shared copy per backend and
// certificate; b itself when it is not spoken to over usable TLS.
func (t *translator) withClientCert(b *ir.Backend, c *clientCert) *ir.Backend {
	if b == nil || b.TLS == nil || b.TLS.Error != "" {
		return b
	}
	sep := "~"
	if strings.Contains(b.Name, "~") {
		sep = "+"
	}
	name := b.Name + sep + "gateway-client-cert:" + c.name
	key := name + "|" + string(b.Protocol)
	if shared := t.irBackends[key]; shared != nil {
		return shared
	}
	cp := *b
	tc := *b.TLS
	tc.ClientCertPEM, tc.ClientKeyPEM, tc.ClientCertName = c.certPEM, c.keyPEM, "secret/"+c.name
	cp.Name, cp.TLS = name, &tc
	t.irBackends[key] = &cp
	return &cp
}

// listenerTLSOptions reads a listener's tls.options (tls.ParseOptions). They
// are Meshgate's for HTTPS listeners only. A bad one makes the listener
// Accepted False UnsupportedValue, naming the key and value, and it is not
// bound: serving it with other TLS settings than asked (an older minimum
// version, say) would be worse than not serving it. It reports whether the
// listener is still accepted.
func (t *translator) listenerTLSOptions(ls *listenerState, opts map[gwapiv1.AnnotationKey]gwapiv1.AnnotationValue) bool {
	if len(opts) == 0 {
		return true
	}
	m := make(map[string]string, len(opts))
	for k, v := range opts {
		m[string(k)] = string(v)
	}
	if ls.protocol != ir.ProtocolHTTPS {
		for _, k := range sortedKeys(m) {
			if strings.HasPrefix(k, mgtls.OptionPrefix) {
				ls.reject(gwapiv1.ListenerReasonUnsupportedValue, "tls.options[%s]: Meshgate's TLS options apply to HTTPS listeners only", k)
				return false
			}
		}
		return true
	}
	lo, err := mgtls.ParseOptions(m)
	if err != nil {
		ls.reject(gwapiv1.ListenerReasonUnsupportedValue, "%v", err)
		return false
	}
	ls.tlsOpts = lo
	return true
}
