// Package plan compares two translations and says what applying the second
// would change: listeners added, removed or rebound, Gateway listeners and
// their hostnames, route rules and matches added, removed or changed (match,
// filters, backends and weights, timeouts, retry, faults, rate limits,
// session persistence, policies), backends whose policy sections changed,
// and objects the new config rejects and why.
//
// `gateway plan` prints a Plan before anything is applied; the controller
// logs one on every reload. Diff is pure: it reads only its arguments.
package plan

import (
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/translate"
)

// Op is what happens to a thing.
type Op string

// Operations.
const (
	Added   Op = "added"
	Removed Op = "removed"
	Changed Op = "changed"
)

// Kind is what a Change is about.
type Kind string

// Kinds of change.
const (
	KindListener     Kind = "listener"         // a bound socket
	KindGatewayHost  Kind = "gateway-listener" // a Gateway listener's share of a socket (its hostname)
	KindRoute        Kind = "route"            // one match of one HTTP/GRPC route rule
	KindL4Route      Kind = "l4-route"         // one TCP/TLS/UDP route rule
	KindBackend      Kind = "backend"          // a backend and its policy sections
	KindCertificates Kind = "certificates"
)

// Change is one difference between the old and the new config.
type Change struct {
	Op   Op   `json:"op"`
	Kind Kind `json:"kind"`
	// ID names the thing: a listener address, "ns/gw/listener", "ns/name
	// rule N match M", a backend name.
	ID string `json:"id"`
	// Listener is the socket address the change is on ("" for backends).
	Listener string `json:"listener,omitempty"`
	// Route is the route's "namespace/name" for route changes, so live
	// figures can be looked up.
	Route string `json:"route,omitempty"`
	// Summary is one line describing the thing (added and removed) or
	// Details the fields that changed, "field: old → new".
	Summary string   `json:"summary,omitempty"`
	Details []string `json:"details,omitempty"`
}

// Rejection is an object the new config rejects.
type Rejection struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Reason    string `json:"reason"`
	// New is true when the object was not rejected for this reason by
	// the old config.
	New bool `json:"new"`
}

// ID is "Kind namespace/name".
func (r Rejection) ID() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// Live is what the running gateway carries now on the affected listeners
// and routes; filled by `gateway plan --against`.
type Live struct {
	Source string `json:"source"`
	// Window is how long the request counters were sampled over.
	Window time.Duration `json:"window"`
	// Connections are open client connections by listener address.
	Connections map[string]float64 `json:"connections,omitempty"`
	// RPS are requests per second by route ("namespace/name").
	RPS map[string]float64 `json:"requestsPerSecond,omitempty"`
	// Error says why the figures could not be read (metrics off...).
	Error string `json:"error,omitempty"`
}

// Plan is the difference between two translations.
type Plan struct {
	Changes []Change `json:"changes"`
	// Rejected are the objects the new config rejects.
	Rejected []Rejection `json:"rejected,omitempty"`
	// Fixed are objects the old config rejected and the new one accepts
	// (or no longer has).
	Fixed []string `json:"fixed,omitempty"`
	// Error is set when the new config could not be used at all (it does
	// not parse, or the translator failed).
	Error string `json:"error,omitempty"`
	// Live, when set, is the running gateway's traffic.
	Live *Live `json:"live,omitempty"`
}

// Empty reports whether the new config changes nothing the data plane
// serves.
func (p *Plan) Empty() bool { return len(p.Changes) == 0 }

// Invalid reports whether the new config has rejected objects or could
// not be used.
func (p *Plan) Invalid() bool { return p.Error != "" || len(p.Rejected) > 0 }

// Exit codes of `gateway plan`.
const (
	ExitNoChange = 0
	ExitInvalid  = 1
	ExitChanges  = 2
)

// ExitCode is 1 when the new config is invalid, else 2 when it changes
// something, else 0.
func (p *Plan) ExitCode() int {
	switch {
	case p.Invalid():
		return ExitInvalid
	case !p.Empty():
		return ExitChanges
	}
	return ExitNoChange
}

// Counts are the number of changes by operation.
func (p *Plan) Counts() (added, removed, changed int) {
	for _, c := range p.Changes {
		switch c.Op {
		case Added:
			added++
		case Removed:
			removed++
		default:
			changed++
		}
	}
	return
}

// AffectedRoutes are the routes ("namespace/name") a change touches,
// sorted, including the routes using a changed backend.
func (p *Plan) AffectedRoutes() []string {
	var out []string
	for _, c := range p.Changes {
		if c.Route != "" && !slices.Contains(out, c.Route) {
			out = append(out, c.Route)
		}
	}
	slices.Sort(out)
	return out
}

// AffectedListeners are the listener addresses a change touches, sorted.
func (p *Plan) AffectedListeners() []string {
	var out []string
	for _, c := range p.Changes {
		if c.Listener != "" && !slices.Contains(out, c.Listener) {
			out = append(out, c.Listener)
		}
	}
	slices.Sort(out)
	return out
}

// Lines are the changes, one line each (details joined with "; "), at most
// n of them (all when n <= 0): for logs.
func (p *Plan) Lines(n int) []string {
	var out []string
	for _, c := range p.Changes {
		if n > 0 && len(out) == n {
			break
		}
		out = append(out, c.line())
	}
	return out
}

func (c Change) line() string {
	s := opSign(c.Op) + " " + string(c.Kind) + " " + c.ID
	if c.Listener != "" && c.Kind != KindListener {
		s += " [" + c.Listener + "]"
	}
	if c.Summary != "" {
		s += ": " + c.Summary
	}
	if len(c.Details) > 0 {
		s += ": " + strings.Join(c.Details, "; ")
	}
	return s
}

func opSign(op Op) string {
	switch op {
	case Added:
		return "+"
	case Removed:
		return "-"
	}
	return "~"
}

// Write prints p for humans.
func (p *Plan) Write(w io.Writer) error {
	var b strings.Builder
	if p.Error != "" {
		fmt.Fprintf(&b, "new config cannot be used: %s\n", p.Error)
	}
	if p.Empty() {
		b.WriteString("No changes: the new config serves exactly what the old one does.\n")
	} else {
		sections := []struct {
			kind  Kind
			title string
		}{
			{KindListener, "Listeners (sockets)"},
			{KindCertificates, "Certificates"},
			{KindGatewayHost, "Gateway listeners and hostnames"},
			{KindRoute, "Routes (rule / match)"},
			{KindL4Route, "Layer-4 routes"},
			{KindBackend, "Backends and their policy sections"},
		}
		for _, s := range sections {
			first := true
			for _, c := range p.Changes {
				if c.Kind != s.kind {
					continue
				}
				if first {
					fmt.Fprintf(&b, "%s:\n", s.title)
					first = false
				}
				fmt.Fprintf(&b, "  %s %s", opSign(c.Op), c.ID)
				if c.Listener != "" && c.Kind != KindListener {
					fmt.Fprintf(&b, " [%s]", c.Listener)
				}
				if c.Summary != "" {
					fmt.Fprintf(&b, ": %s", c.Summary)
				}
				b.WriteString("\n")
				for _, d := range c.Details {
					fmt.Fprintf(&b, "      %s\n", d)
				}
			}
		}
	}
	if len(p.Rejected) > 0 {
		b.WriteString("Rejected objects (the new config is invalid):\n")
		for _, r := range p.Rejected {
			tag := "still rejected"
			if r.New {
				tag = "newly rejected"
			}
			fmt.Fprintf(&b, "  ! %s (%s): %s\n", r.ID(), tag, r.Reason)
		}
	}
	if len(p.Fixed) > 0 {
		b.WriteString("No longer rejected:\n")
		for _, f := range p.Fixed {
			fmt.Fprintf(&b, "  ✓ %s\n", f)
		}
	}
	if l := p.Live; l != nil {
		fmt.Fprintf(&b, "Live traffic now (%s, sampled over %s):\n", l.Source, l.Window.Round(time.Millisecond))
		if l.Error != "" {
			fmt.Fprintf(&b, "  unavailable: %s\n", l.Error)
		}
		for _, a := range p.AffectedListeners() {
			if v, ok := l.Connections[a]; ok {
				fmt.Fprintf(&b, "  listener %s: %.0f open connection(s)\n", a, v)
			}
		}
		for _, r := range p.AffectedRoutes() {
			fmt.Fprintf(&b, "  route %s: %.1f req/s\n", r, l.RPS[r])
		}
	}
	a, r, c := p.Counts()
	fmt.Fprintf(&b, "Plan: %d to add, %d to remove, %d to change", a, r, c)
	if n := len(p.Rejected); n > 0 {
		fmt.Fprintf(&b, ", %d object(s) rejected", n)
	}
	b.WriteString(".\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints p as indented JSON.
func (p *Plan) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}

// Diff says what replacing old with new changes. Either may be nil (or
// have a nil Config): everything is then added or removed.
func Diff(old, new *translate.Result) Plan {
	var p Plan
	var oc, nc *ir.Config
	var os, ns []translate.ObjectStatus
	if old != nil {
		oc, os = old.Config, old.Statuses
	}
	if new != nil {
		nc, ns = new.Config, new.Statuses
		if nc == nil {
			p.Error = "the translator produced no config"
		}
	}
	p.Changes = diffConfigs(oc, nc)
	p.Rejected, p.Fixed = diffStatuses(os, ns)
	return p
}

// DiffConfigs is Diff for bare configs (no statuses).
func DiffConfigs(old, new *ir.Config) Plan {
	return Plan{Changes: diffConfigs(old, new)}
}

func diffConfigs(oc, nc *ir.Config) []Change {
	var out []Change
	ol, nl := listenersByAddr(oc), listenersByAddr(nc)
	for _, addr := range unionKeys(ol, nl) {
		o, n := ol[addr], nl[addr]
		switch {
		case o == nil:
			out = append(out, Change{Op: Added, Kind: KindListener, ID: addr, Listener: addr, Summary: listenerSummary(n)})
		case n == nil:
			out = append(out, Change{Op: Removed, Kind: KindListener, ID: addr, Listener: addr, Summary: listenerSummary(o)})
		default:
			if o.Protocol != n.Protocol {
				out = append(out, Change{Op: Changed, Kind: KindListener, ID: addr, Listener: addr,
					Details: []string{fmt.Sprintf("rebound: protocol %s → %s", o.Protocol, n.Protocol)}})
			}
			if d := certDiff(o.Certificates, n.Certificates); d != nil {
				out = append(out, Change{Op: Changed, Kind: KindCertificates, ID: addr, Listener: addr, Details: d})
			}
			if a, b := clientAuthSummary(o.ClientAuth), clientAuthSummary(n.ClientAuth); a != b {
				out = append(out, Change{Op: Changed, Kind: KindListener, ID: addr, Listener: addr,
					Details: []string{fmt.Sprintf("client certificates: %s → %s", orNone(a), orNone(b))}})
			}
		}
		out = append(out, diffHosts(addr, o, n)...)
	}
	out = append(out, diffBackends(oc, nc)...)
	return out
}

// clientAuthSummary is a listener's client certificate policy: mode, CA
// source and identity header (and whether the CA's certificates changed,
// when both configs carry them).
func clientAuthSummary(c *ir.ClientAuth) string {
	if c == nil {
		return ""
	}
	s := fmt.Sprintf("%s, CA %s", c.Mode, c.CAName)
	if len(c.CAPEM) > 0 {
		sum := sha256.Sum256(c.CAPEM)
		s += fmt.Sprintf(" (%x)", sum[:4])
	}
	if c.IdentityHeader != "" {
		s += ", identity header " + c.IdentityHeader
	}
	return s
}

func listenersByAddr(c *ir.Config) map[string]*ir.Listener {
	m := map[string]*ir.Listener{}
	if c != nil {
		for _, l := range c.Listeners {
			m[l.Address] = l
		}
	}
	return m
}

func listenerSummary(l *ir.Listener) string {
	var hs []string
	for _, h := range l.Hosts {
		hs = append(hs, hostLabel(h))
	}
	return fmt.Sprintf("%s, Gateway listeners %s", l.Protocol, strings.Join(hs, ", "))
}

func hostLabel(h *ir.ListenerHost) string {
	hn := h.Hostname
	if hn == "" {
		hn = "*any*"
	}
	return h.Name + " (" + hn + ")"
}

func certDiff(o, n []*ir.Certificate) []string {
	f := func(cs []*ir.Certificate) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.Name+"["+strings.Join(c.Hostnames, ",")+"]")
		}
		return strings.Join(s, " ")
	}
	changed := f(o) != f(n) || len(o) != len(n)
	if !changed {
		for i := range o {
			// PEM data is not in /config: compare only when both sides have it.
			if len(o[i].CertPEM) > 0 && len(n[i].CertPEM) > 0 && string(o[i].CertPEM) != string(n[i].CertPEM) {
				changed = true
			}
		}
	}
	if !changed {
		return nil
	}
	if f(o) == f(n) {
		return []string{"certificate contents changed: " + f(n)}
	}
	return []string{fmt.Sprintf("certificates: %s → %s", orNone(f(o)), orNone(f(n)))}
}

func hostsByName(l *ir.Listener) map[string]*ir.ListenerHost {
	m := map[string]*ir.ListenerHost{}
	if l != nil {
		for _, h := range l.Hosts {
			m[h.Name] = h
		}
	}
	return m
}

func diffHosts(addr string, ol, nl *ir.Listener) []Change {
	var out []Change
	oh, nh := hostsByName(ol), hostsByName(nl)
	for _, name := range unionKeys(oh, nh) {
		o, n := oh[name], nh[name]
		switch {
		case o == nil:
			out = append(out, Change{Op: Added, Kind: KindGatewayHost, ID: name, Listener: addr, Summary: "hostname " + hostname(n.Hostname)})
		case n == nil:
			out = append(out, Change{Op: Removed, Kind: KindGatewayHost, ID: name, Listener: addr, Summary: "hostname " + hostname(o.Hostname)})
		default:
			var d []string
			if o.Hostname != n.Hostname {
				d = append(d, fmt.Sprintf("hostname: %s → %s", hostname(o.Hostname), hostname(n.Hostname)))
			}
			if o.TLSMode != n.TLSMode {
				d = append(d, fmt.Sprintf("tls mode: %s → %s", orNone(string(o.TLSMode)), orNone(string(n.TLSMode))))
			}
			if a, b := compact(o.TLS), compact(n.TLS); a != b {
				d = append(d, fmt.Sprintf("tls options: %s → %s", orNone(a), orNone(b)))
			}
			if d != nil {
				out = append(out, Change{Op: Changed, Kind: KindGatewayHost, ID: name, Listener: addr, Details: d})
			}
		}
		out = append(out, diffRoutes(addr, name, o, n)...)
		out = append(out, diffL4Routes(addr, name, o, n)...)
	}
	return out
}

func hostname(h string) string {
	if h == "" {
		return "(any)"
	}
	return h
}

// routeKey identifies a route match across configs.
type routeKey struct {
	name        string
	rule, match int
}

func (k routeKey) String() string {
	return fmt.Sprintf("%s rule %d match %d", k.name, k.rule, k.match)
}

func routesOf(h *ir.ListenerHost) (map[routeKey]*ir.Route, []routeKey) {
	m := map[routeKey]*ir.Route{}
	var keys []routeKey
	if h != nil {
		for _, r := range h.Routes {
			k := routeKey{r.Name, r.RuleIndex, r.MatchIndex}
			if _, dup := m[k]; !dup {
				keys = append(keys, k)
			}
			m[k] = r
		}
	}
	return m, keys
}

func diffRoutes(addr, host string, oh, nh *ir.ListenerHost) []Change {
	om, ok := routesOf(oh)
	nm, nk := routesOf(nh)
	keys := append(ok, nk...)
	slices.SortFunc(keys, func(a, b routeKey) int {
		return cmp.Or(strings.Compare(a.name, b.name), a.rule-b.rule, a.match-b.match)
	})
	keys = slices.Compact(keys)
	var out []Change
	for _, k := range keys {
		o, n := om[k], nm[k]
		c := Change{Kind: KindRoute, ID: k.String(), Listener: addr, Route: k.name}
		switch {
		case o == nil:
			c.Op, c.Summary = Added, "via "+host+": "+RouteSummary(n)
		case n == nil:
			c.Op, c.Summary = Removed, "via "+host+": "+RouteSummary(o)
		default:
			c.Op, c.Details = Changed, routeDetails(o, n)
			if c.Details == nil {
				continue
			}
			c.Details = append([]string{"via " + host}, c.Details...)
		}
		out = append(out, c)
	}
	return out
}

// RouteSummary is a route match in one line: when it applies and what it
// does.
func RouteSummary(r *ir.Route) string {
	s := "when " + MatchSummary(r.Match)
	if len(r.Hostnames) > 0 {
		s += ", hosts " + strings.Join(r.Hostnames, ",")
	}
	if r.DirectResponse != nil {
		return s + " → direct response " + fmt.Sprint(r.DirectResponse.StatusCode)
	}
	for _, f := range r.Filters {
		if f.Type == ir.FilterRequestRedirect {
			return s + " → " + FilterSummary(f)
		}
	}
	return s + " → " + BackendsSummary(r.Backends)
}

// MatchSummary renders a route match the way a user wrote it.
func MatchSummary(m ir.Match) string {
	pt, pv := m.Path.Type, m.Path.Value
	if pt == "" {
		pt, pv = ir.PathPrefix, "/"
	}
	parts := []string{string(pt) + " " + pv}
	if m.Method != "" {
		parts = append(parts, "method "+m.Method)
	}
	for _, h := range m.Headers {
		parts = append(parts, "header "+stringMatch(h))
	}
	for _, q := range m.QueryParams {
		parts = append(parts, "query "+stringMatch(q))
	}
	return strings.Join(parts, ", ")
}

func stringMatch(m ir.StringMatch) string {
	op := "="
	if m.Type == ir.MatchRegularExpression {
		op = "~"
	}
	return fmt.Sprintf("%s %s %q", m.Name, op, m.Value)
}

// BackendsSummary is "a 90%, b 10%".
func BackendsSummary(bs []ir.WeightedBackend) string {
	if len(bs) == 0 {
		return "no backend (500)"
	}
	var total int64
	for _, b := range bs {
		total += int64(b.Weight)
	}
	var parts []string
	for _, b := range bs {
		share := 0.0
		if total > 0 {
			share = 100 * float64(b.Weight) / float64(total)
		}
		parts = append(parts, fmt.Sprintf("%s weight %d (%.0f%%)", backendName(b), b.Weight, share))
	}
	return strings.Join(parts, ", ")
}

func backendName(b ir.WeightedBackend) string {
	if b.Target == nil {
		return "(invalid reference: 500)"
	}
	return b.Target.Name
}

// baseName is a backend's name without the policies that shaped it.
func baseName(name string) string {
	base, _, _ := strings.Cut(name, "~")
	return base
}

func policiesOf(name string) string {
	_, p, ok := strings.Cut(name, "~")
	if !ok {
		return "none"
	}
	return strings.ReplaceAll(p, "+", ", ")
}

func routeDetails(o, n *ir.Route) []string {
	var d []string
	field := func(name, ov, nv string) {
		if ov != nv {
			d = append(d, fmt.Sprintf("%s: %s → %s", name, orNone(ov), orNone(nv)))
		}
	}
	field("rule name", o.RuleName, n.RuleName)
	field("hostnames", strings.Join(o.Hostnames, ","), strings.Join(n.Hostnames, ","))
	field("match", MatchSummary(o.Match), MatchSummary(n.Match))
	field("filters", filtersSummary(o.Filters), filtersSummary(n.Filters))
	d = append(d, backendRefDetails(o.Backends, n.Backends)...)
	field("timeouts", TimeoutsSummary(o.Timeouts), TimeoutsSummary(n.Timeouts))
	field("direct response", directSummary(o.DirectResponse), directSummary(n.DirectResponse))
	field("retry", RetrySummary(o.Retry), RetrySummary(n.Retry))
	field("fault", FaultSummary(o.Fault), FaultSummary(n.Fault))
	field("rate limits", rateLimitsSummary(o.RateLimits), rateLimitsSummary(n.RateLimits))
	field("session persistence", compact(o.SessionPersistence), compact(n.SessionPersistence))
	field("policies", strings.Join(o.Policies, ", "), strings.Join(n.Policies, ", "))
	return d
}

// backendRefDetails compares a rule's backendRefs, pairing them by backend
// (without the policies that shaped it).
func backendRefDetails(o, n []ir.WeightedBackend) []string {
	key := func(b ir.WeightedBackend) string { return baseName(backendName(b)) }
	var d []string
	share := func(bs []ir.WeightedBackend, i int) float64 {
		var t int64
		for _, b := range bs {
			t += int64(b.Weight)
		}
		if t == 0 {
			return 0
		}
		return 100 * float64(bs[i].Weight) / float64(t)
	}
	used := make([]bool, len(n))
	for i, ob := range o {
		j := -1
		for k, nb := range n {
			if !used[k] && key(nb) == key(ob) {
				j = k
				break
			}
		}
		if j < 0 {
			d = append(d, fmt.Sprintf("backend %s removed (was weight %d, %.0f%%)", backendName(ob), ob.Weight, share(o, i)))
			continue
		}
		used[j] = true
		nb := n[j]
		if ob.Weight != nb.Weight || share(o, i) != share(n, j) {
			d = append(d, fmt.Sprintf("weight %s: %d → %d (share %.0f%% → %.0f%%)", key(ob), ob.Weight, nb.Weight, share(o, i), share(n, j)))
		}
		if backendName(ob) != backendName(nb) {
			d = append(d, fmt.Sprintf("backend %s policies: %s → %s", key(ob), policiesOf(backendName(ob)), policiesOf(backendName(nb))))
		}
		if fo, fn := filtersSummary(ob.Filters), filtersSummary(nb.Filters); fo != fn {
			d = append(d, fmt.Sprintf("backend %s filters: %s → %s", key(ob), orNone(fo), orNone(fn)))
		}
	}
	for k, nb := range n {
		if !used[k] {
			d = append(d, fmt.Sprintf("backend %s added (weight %d, %.0f%%)", backendName(nb), nb.Weight, share(n, k)))
		}
	}
	return d
}

func filtersSummary(fs []ir.Filter) string {
	var s []string
	for _, f := range fs {
		s = append(s, FilterSummary(f))
	}
	return strings.Join(s, "; ")
}

// FilterSummary is one filter in one line.
func FilterSummary(f ir.Filter) string {
	switch {
	case f.RequestHeaderModifier != nil:
		return string(f.Type) + " " + headerMod(f.RequestHeaderModifier)
	case f.ResponseHeaderModifier != nil:
		return string(f.Type) + " " + headerMod(f.ResponseHeaderModifier)
	case f.RequestRedirect != nil:
		r := f.RequestRedirect
		var p []string
		if r.Scheme != nil {
			p = append(p, "scheme "+*r.Scheme)
		}
		if r.Hostname != nil {
			p = append(p, "host "+*r.Hostname)
		}
		if r.Port != nil {
			p = append(p, fmt.Sprint("port ", *r.Port))
		}
		if r.Path != nil {
			p = append(p, string(r.Path.Type)+" "+r.Path.Value)
		}
		code := r.StatusCode
		if code == 0 {
			code = 302
		}
		return fmt.Sprintf("redirect %d %s", code, strings.Join(p, " "))
	case f.URLRewrite != nil:
		var p []string
		if f.URLRewrite.Hostname != nil {
			p = append(p, "host "+*f.URLRewrite.Hostname)
		}
		if f.URLRewrite.Path != nil {
			p = append(p, string(f.URLRewrite.Path.Type)+" "+f.URLRewrite.Path.Value)
		}
		return "rewrite " + strings.Join(p, " ")
	case f.RequestMirror != nil:
		t := "(invalid reference)"
		if f.RequestMirror.Target != nil {
			t = f.RequestMirror.Target.Name
		}
		return fmt.Sprintf("mirror %g%% to %s", f.RequestMirror.Percent, t)
	case f.CORS != nil:
		c := f.CORS
		p := []string{"origins " + strings.Join(c.AllowOrigins, ",")}
		if len(c.AllowMethods) > 0 {
			p = append(p, "methods "+strings.Join(c.AllowMethods, ","))
		}
		if len(c.AllowHeaders) > 0 {
			p = append(p, "headers "+strings.Join(c.AllowHeaders, ","))
		}
		if len(c.ExposeHeaders) > 0 {
			p = append(p, "expose "+strings.Join(c.ExposeHeaders, ","))
		}
		if c.AllowCredentials {
			p = append(p, "credentials")
		}
		return fmt.Sprintf("cors %s max-age %d", strings.Join(p, " "), c.MaxAge)
	}
	return string(f.Type)
}

func headerMod(m *ir.HeaderModifier) string {
	var p []string
	for _, h := range m.Set {
		p = append(p, "set "+h.Name+"="+h.Value)
	}
	for _, h := range m.Add {
		p = append(p, "add "+h.Name+"="+h.Value)
	}
	for _, h := range m.Remove {
		p = append(p, "remove "+h)
	}
	return strings.Join(p, ", ")
}

// TimeoutsSummary is "request 5s, backendRequest 1s"; "" for defaults.
func TimeoutsSummary(t ir.Timeouts) string {
	f := func(d time.Duration) string {
		if d == ir.TimeoutDisabled {
			return "off"
		}
		return d.String()
	}
	var p []string
	if t.Request != 0 {
		p = append(p, "request "+f(t.Request))
	}
	if t.BackendRequest != 0 {
		p = append(p, "backendRequest "+f(t.BackendRequest))
	}
	return strings.Join(p, ", ")
}

func directSummary(d *ir.DirectResponse) string {
	if d == nil {
		return ""
	}
	return fmt.Sprintf("%d %q", d.StatusCode, d.Body)
}

// RetrySummary is a retry policy in one line; "" for none.
func RetrySummary(r *ir.Retry) string {
	if r == nil {
		return ""
	}
	on := []string{}
	if len(r.Codes) > 0 {
		on = append(on, fmt.Sprint("codes ", r.Codes))
	}
	if len(r.GRPCCodes) > 0 {
		on = append(on, fmt.Sprint("grpc codes ", r.GRPCCodes))
	}
	if r.ConnectFailure {
		on = append(on, "connect-failure")
	}
	if r.Reset {
		on = append(on, "reset")
	}
	if r.Timeout {
		on = append(on, "timeout")
	}
	s := fmt.Sprintf("%d attempt(s) on %s, backoff %s-%s, budget %g%% (min %d)", r.Attempts, strings.Join(on, " "),
		r.BackoffBase, r.BackoffMax, r.BudgetPercent, r.MinRetryConcurrency)
	if r.NonIdempotent {
		s += ", non-idempotent too"
	}
	return s
}

// FaultSummary is an injected fault in one line; "" for none.
func FaultSummary(f *ir.Fault) string {
	if f == nil {
		return ""
	}
	var p []string
	if f.Abort != nil {
		what := fmt.Sprint("abort ", f.Abort.HTTPStatus)
		if f.Abort.GRPCStatus != nil {
			what += fmt.Sprint(" (grpc ", *f.Abort.GRPCStatus, ")")
		}
		p = append(p, fmt.Sprintf("%s to %g%% of requests", what, f.Abort.Percent))
	}
	if f.Delay != nil {
		p = append(p, fmt.Sprintf("delay %s for %g%% of requests", f.Delay.Duration, f.Delay.Percent))
	}
	s := f.Name + ": " + strings.Join(p, ", ")
	if len(f.Headers) > 0 {
		var h []string
		for _, m := range f.Headers {
			h = append(h, stringMatch(m))
		}
		s += " (only with header " + strings.Join(h, ", ") + ")"
	}
	return s
}

func rateLimitsSummary(rls []*ir.RateLimit) string {
	var s []string
	for _, rl := range rls {
		s = append(s, RateLimitSummary(rl))
	}
	return strings.Join(s, "; ")
}

// RateLimitSummary is one rate limit in one line.
func RateLimitSummary(rl *ir.RateLimit) string {
	key := string(rl.Key)
	if rl.Key == ir.RateLimitHeader {
		key += " " + rl.Header
	}
	s := fmt.Sprintf("%s: %d per %s by %s", rl.Name, rl.Requests, rl.Period, key)
	if rl.Burst != 0 {
		s += fmt.Sprintf(", burst %d", rl.Burst)
	}
	if rl.Global {
		if rl.FailOpen {
			s += ", global (fails open)"
		} else {
			s += ", global (fails closed)"
		}
	}
	return s
}

func l4Of(h *ir.ListenerHost) map[string]*ir.L4Route {
	m := map[string]*ir.L4Route{}
	if h != nil {
		for _, r := range h.L4Routes {
			m[fmt.Sprintf("%s rule %d", r.Name, r.RuleIndex)] = r
		}
	}
	return m
}

func diffL4Routes(addr, host string, oh, nh *ir.ListenerHost) []Change {
	om, nm := l4Of(oh), l4Of(nh)
	var out []Change
	for _, k := range unionKeys(om, nm) {
		o, n := om[k], nm[k]
		switch {
		case o == nil:
			out = append(out, Change{Op: Added, Kind: KindL4Route, ID: k, Listener: addr, Route: n.Name, Summary: "via " + host + ": " + l4Summary(n)})
		case n == nil:
			out = append(out, Change{Op: Removed, Kind: KindL4Route, ID: k, Listener: addr, Route: o.Name, Summary: "via " + host + ": " + l4Summary(o)})
		default:
			var d []string
			if a, b := strings.Join(o.Hostnames, ","), strings.Join(n.Hostnames, ","); a != b {
				d = append(d, fmt.Sprintf("hostnames: %s → %s", orNone(a), orNone(b)))
			}
			d = append(d, backendRefDetails(o.Backends, n.Backends)...)
			if d != nil {
				out = append(out, Change{Op: Changed, Kind: KindL4Route, ID: k, Listener: addr, Route: n.Name, Details: d})
			}
		}
	}
	return out
}

func l4Summary(r *ir.L4Route) string {
	s := ""
	if len(r.Hostnames) > 0 {
		s = "SNI " + strings.Join(r.Hostnames, ",") + " "
	}
	return s + "→ " + BackendsSummary(r.Backends)
}

// backendUse is a backend and the routes that use it.
type backendUse struct {
	b      *ir.Backend
	routes []string
	seen   map[string]bool // routes, as a set: a backend may serve 10,000 routes
}

func backendsOf(c *ir.Config) map[string]*backendUse {
	m := map[string]*backendUse{}
	add := func(b *ir.Backend, route string) {
		if b == nil {
			return
		}
		u := m[b.Name]
		if u == nil {
			u = &backendUse{b: b, seen: map[string]bool{}}
			m[b.Name] = u
		}
		if !u.seen[route] {
			u.seen[route] = true
			u.routes = append(u.routes, route)
		}
	}
	if c == nil {
		return m
	}
	for _, l := range c.Listeners {
		for _, h := range l.Hosts {
			for _, r := range h.Routes {
				for _, wb := range r.Backends {
					add(wb.Target, r.Name)
				}
				for _, f := range r.Filters {
					if f.RequestMirror != nil {
						add(f.RequestMirror.Target, r.Name)
					}
				}
			}
			for _, r := range h.L4Routes {
				for _, wb := range r.Backends {
					add(wb.Target, r.Name)
				}
			}
		}
	}
	return m
}

// diffBackends compares the backends both configs use, by name; a backend
// whose policies changed (its name carries them after "~") is paired with
// its previous self when that is unambiguous.
func diffBackends(oc, nc *ir.Config) []Change {
	om, nm := backendsOf(oc), backendsOf(nc)
	type pair struct{ o, n *backendUse }
	byBase := map[string]*[2][]string{}
	for name := range om {
		if nm[name] == nil {
			e := byBase[baseName(name)]
			if e == nil {
				e = &[2][]string{}
				byBase[baseName(name)] = e
			}
			e[0] = append(e[0], name)
		}
	}
	for name := range nm {
		if om[name] == nil {
			e := byBase[baseName(name)]
			if e == nil {
				e = &[2][]string{}
				byBase[baseName(name)] = e
			}
			e[1] = append(e[1], name)
		}
	}
	pairs := map[string]pair{}
	for name, u := range om {
		if n := nm[name]; n != nil {
			pairs[name] = pair{u, n}
		}
	}
	for base, e := range byBase {
		if len(e[0]) == 1 && len(e[1]) == 1 {
			pairs[base+" "] = pair{om[e[0][0]], nm[e[1][0]]}
			continue
		}
		for _, name := range e[0] {
			pairs[name] = pair{o: om[name]}
		}
		for _, name := range e[1] {
			pairs[name] = pair{n: nm[name]}
		}
	}
	var out []Change
	for _, k := range sortedKeys(pairs) {
		p := pairs[k]
		switch {
		case p.o == nil:
			out = append(out, Change{Op: Added, Kind: KindBackend, ID: p.n.b.Name, Route: firstRoute(p.n.routes), Summary: backendSummary(p.n.b)})
		case p.n == nil:
			out = append(out, Change{Op: Removed, Kind: KindBackend, ID: p.o.b.Name, Route: firstRoute(p.o.routes), Summary: backendSummary(p.o.b)})
		default:
			d := backendDetails(p.o.b, p.n.b)
			if d == nil {
				continue
			}
			c := Change{Op: Changed, Kind: KindBackend, ID: baseName(p.n.b.Name), Details: d}
			c.Details = append(c.Details, "used by "+strings.Join(p.n.routes, ", "))
			c.Route = firstRoute(p.n.routes)
			out = append(out, c)
		}
	}
	return out
}

func firstRoute(rs []string) string {
	if len(rs) == 0 {
		return ""
	}
	return rs[0]
}

func backendSummary(b *ir.Backend) string {
	var eps []string
	for _, e := range b.Endpoints {
		eps = append(eps, e.Address)
	}
	return fmt.Sprintf("%s, endpoints %s, policies %s", b.Protocol, orNone(strings.Join(eps, " ")), policiesOf(b.Name))
}

func backendDetails(o, n *ir.Backend) []string {
	var d []string
	field := func(name, ov, nv string) {
		if ov != nv {
			d = append(d, fmt.Sprintf("%s: %s → %s", name, orNone(ov), orNone(nv)))
		}
	}
	field("policies", policiesOf(o.Name), policiesOf(n.Name))
	field("protocol", string(o.Protocol), string(n.Protocol))
	field("endpoints", compact(o.Endpoints), compact(n.Endpoints))
	field("tls", compact(o.TLS), compact(n.TLS))
	if o.TLS != nil && n.TLS != nil && compact(o.TLS) == compact(n.TLS) && len(o.TLS.CAPEM) > 0 && len(n.TLS.CAPEM) > 0 && string(o.TLS.CAPEM) != string(n.TLS.CAPEM) {
		d = append(d, "tls: trusted CA contents changed")
	}
	field("loadBalancer", Readable(o.LoadBalancer), Readable(n.LoadBalancer))
	field("healthCheck", Readable(o.HealthCheck), Readable(n.HealthCheck))
	field("outlierDetection", Readable(o.Outlier), Readable(n.Outlier))
	field("panicThreshold", fmt.Sprint(o.PanicThreshold), fmt.Sprint(n.PanicThreshold))
	field("circuitBreaker", Readable(o.CircuitBreaker), Readable(n.CircuitBreaker))
	field("connectTimeout", durOrDefault(o.ConnectTimeout), durOrDefault(n.ConnectTimeout))
	field("idleTimeout", durOrDefault(o.IdleTimeout), durOrDefault(n.IdleTimeout))
	return d
}

func durOrDefault(d time.Duration) string {
	if d == 0 {
		return "default"
	}
	return d.String()
}

// Readable is a policy section in one line with durations as "30s"; ""
// for nil.
func Readable(v any) string {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() || (rv.Kind() == reflect.Pointer && rv.IsNil()) {
		return ""
	}
	return fmt.Sprintf("%+v", reflect.Indirect(rv).Interface())
}

// compact is v as one line of JSON; "" for nil.
func compact(v any) string {
	b, err := json.Marshal(v)
	if err != nil || string(b) == "null" {
		return ""
	}
	return string(b)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func diffStatuses(old, new []translate.ObjectStatus) (rejected []Rejection, fixed []string) {
	key := func(s translate.ObjectStatus) string { return s.Kind + "|" + s.Namespace + "|" + s.Name }
	oldBad := map[string]string{}
	for _, s := range old {
		if !s.Accepted && !s.Ignored {
			oldBad[key(s)] = s.Reason
		}
	}
	newBad := map[string]bool{}
	for _, s := range new {
		if s.Accepted || s.Ignored {
			continue
		}
		reason, was := oldBad[key(s)]
		newBad[key(s)] = true
		r := s.Reason
		if s.Source != "" {
			r = s.Source + ": " + r
		}
		rejected = append(rejected, Rejection{Kind: s.Kind, Namespace: s.Namespace, Name: s.Name, Reason: r, New: !was || reason != s.Reason})
	}
	for _, s := range old {
		if !s.Accepted && !s.Ignored && !newBad[key(s)] {
			fixed = append(fixed, Rejection{Kind: s.Kind, Namespace: s.Namespace, Name: s.Name}.ID())
		}
	}
	slices.Sort(fixed)
	fixed = slices.Compact(fixed)
	return rejected, fixed
}

func unionKeys[V any](a, b map[string]V) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
