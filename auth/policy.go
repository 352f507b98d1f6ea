package auth

import (
	"context"
	"fmt"
	"net/http"

	"github.com/meshgate/meshgate/ir"
)

// Section is one part of a SecurityPolicy, in the order they are checked.
type Section int

// Sections, in checking order.
const (
	SectionIP Section = iota
	SectionBasic
	SectionJWT
	SectionExt
	Sections
)

var sectionNames = [Sections]string{"ipAccess", "basicAuth", "jwt", "extAuth"}

func (s Section) String() string { return sectionNames[s] }

// Policy is a compiled ir.SecurityPolicy.
type Policy struct {
	ip     *IPList
	basic  *Basic
	jwt    *JWT
	ext    *Ext
	policy [Sections]string
}

// Compile builds the checks of p; nil for an empty policy. External
// authorization takes its connections from conns.
func Compile(p *ir.SecurityPolicy, conns *Conns) (*Policy, error) {
	if p.Empty() {
		return nil, nil
	}
	out := &Policy{}
	var err error
	if a := p.IPAccess; a != nil {
		if out.ip, err = NewIPList(a.Allow, a.Deny); err != nil {
			return nil, fmt.Errorf("SecurityPolicy %s: ipAccess.%v", a.Policy, err)
		}
		out.policy[SectionIP] = a.Policy
	}
	if b := p.BasicAuth; b != nil {
		out.basic = NewBasic(b.Realm, b.Users)
		out.policy[SectionBasic] = b.Policy
	}
	if j := p.JWT; j != nil {
		if out.jwt, err = NewJWT(j); err != nil {
			return nil, fmt.Errorf("SecurityPolicy %s: jwt: %v", j.Policy, err)
		}
		out.policy[SectionJWT] = j.Policy
	}
	if e := p.ExtAuth; e != nil {
		if out.ext, err = NewExt(e, conns); err != nil {
			return nil, fmt.Errorf("SecurityPolicy %s: %v", e.Policy, err)
		}
		out.policy[SectionExt] = e.Policy
	}
	return out, nil
}

// Has reports whether the policy sets section s.
func (p *Policy) Has(s Section) bool { return p != nil && p.policy[s] != "" }

// Denial is a refused request: what to answer and what to log.
type Denial struct {
	Status int
	// Reason is the metric reason (auth_denied_ip, auth_invalid_jwt, ...).
	Reason string
	// Policy and Section name what refused it; Detail says why, without
	// credentials.
	Policy  string
	Section Section
	Detail  string
	// Header and Body, when set, are sent to the client (an ext_authz
	// denial, a WWW-Authenticate challenge).
	Header http.Header
	Body   []byte
}

// Check runs section s against r from clientIP. A nil result lets the
// request continue; it may have changed r's headers (claimToHeaders, an
// authorization service's headers). The error result is the failOpen
// pass-through of an unavailable authorization service, for the log.
func (p *Policy) Check(ctx context.Context, s Section, r *http.Request, clientIP string) (*Denial, error) {
	deny := func(status int, reason, detail string) *Denial {
		return &Denial{Status: status, Reason: reason, Policy: p.policy[s], Section: s, Detail: detail}
	}
	switch s {
	case SectionIP:
		if !p.ip.Allowed(clientIP) {
			return deny(http.StatusForbidden, "auth_denied_ip", "client address not allowed"), nil
		}
	case SectionBasic:
		if _, ok := p.basic.Check(r.Header); !ok {
			d := deny(http.StatusUnauthorized, "auth_basic_failed", "missing or wrong user or password")
			d.Header = http.Header{"Www-Authenticate": {p.basic.Challenge}}
			return d, nil
		}
	case SectionJWT:
		if _, e := p.jwt.Verify(ctx, r.Header); e != nil {
			if e.Status == http.StatusForbidden {
				d := deny(http.StatusForbidden, "auth_forbidden", e.Reason)
				if e.Provider != "" {
					d.Detail = "provider " + e.Provider + ": " + e.Reason
				}
				return d, nil
			}
			d := deny(http.StatusUnauthorized, "auth_invalid_jwt", e.Reason)
			if e.Provider != "" {
				d.Detail = "provider " + e.Provider + ": " + e.Reason
			}
			d.Header = http.Header{"Www-Authenticate": {e.Challenge()}}
			return d, nil
		}
	case SectionExt:
		res := p.ext.Check(ctx, r, clientIP)
		switch {
		case res.Unavailable:
			if p.ext.ir.FailOpen {
				return nil, res.Err
			}
			d := deny(http.StatusForbidden, "ext_auth_unavailable", "authorization service unavailable")
			if res.Err != nil {
				d.Detail += ": " + res.Err.Error()
			}
			return d, nil
		case !res.Allowed:
			d := deny(res.Status, "ext_auth_denied", fmt.Sprintf("authorization service answered %d", res.Status))
			d.Header, d.Body = res.Header, res.Body
			return d, nil
		}
		for _, k := range res.Remove {
			r.Header.Del(k)
		}
		for k, vs := range res.Upstream {
			r.Header[k] = vs
		}
	}
	return nil, nil
}

// PolicyOf names the SecurityPolicy that set section s.
func (p *Policy) PolicyOf(s Section) string { return p.policy[s] }

// Start readies what the policy's checks need once its configuration goes
// live: connections to an authorization service are taken from the shared
// pool and opened. Safe on nil.
func (p *Policy) Start() {
	if p != nil && p.ext != nil {
		p.ext.Start()
	}
}

// Stop gives back what Start took once the configuration is replaced; the
// connections are closed after the checks in flight are done, unless a
// newer configuration uses them too. Safe on nil.
func (p *Policy) Stop() {
	if p != nil && p.ext != nil {
		p.ext.Stop()
	}
}

// ClaimHeaders are the headers the jwt section sets from claims
// (claimToHeaders of every provider), canonical; none without one. They
// drive claim-based routing, so a client's own copies must be removed
// before the request is matched.
func (p *Policy) ClaimHeaders() []string {
	if p == nil || p.jwt == nil {
		return nil
	}
	return p.jwt.headers
}
