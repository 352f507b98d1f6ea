// Package translate compiles a config.Snapshot into the data plane's ir.Config
// and computes the Gateway API status of every object it considered.
//
// Translate is pure: it reads only the snapshot and the options, does no I/O,
// keeps no state between calls and sorts everything it emits, so the same
// snapshot always gives byte-identical output. That is what lets the golden
// files under testdata/ pin its behaviour and lets both providers (files and
// Kubernetes) share it without behaving differently.
//
// Invalid configuration never fails the whole translation. Following the
// Gateway API spec, each problem is reported on the object it belongs to, and
// the data plane gets the spec's answer for it: an unresolvable backend keeps
// its share of traffic and answers 500, a rule with a filter Meshgate cannot
// apply answers 500, a conflicted listener is not bound.
package translate

import (
	"fmt"
	"net/netip"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/ir"
)

// DefaultControllerName is the GatewayClass spec.controllerName Meshgate
// serves when Options.ControllerName is empty.
const DefaultControllerName = "gateway.meshgate.dev/controller"

// DefaultAddress is the IP a Gateway's listeners bind when the Gateway asks
// for no address and Options.DefaultAddress is empty: every IPv4 interface.
const DefaultAddress = "0.0.0.0"

// TimeoutDisabled is the ir.Timeouts value for a Gateway API timeout of "0s",
// which the spec says disables the timeout.
const TimeoutDisabled = ir.TimeoutDisabled

// Options carry what is not in the snapshot: facts about this Meshgate
// instance rather than about the configuration.
type Options struct {
	// ControllerName is the GatewayClass spec.controllerName this instance
	// serves. Gateways of classes with another controller are left alone,
	// so several implementations can share one cluster. Default
	// DefaultControllerName.
	ControllerName string
	// DefaultAddress is the IP a Gateway's listeners bind when the Gateway
	// has no spec.addresses. Default DefaultAddress.
	DefaultAddress string
	// AddressPool, when valid, gives each Gateway without spec.addresses
	// an address of its own from this prefix instead of DefaultAddress,
	// so Gateways sharing a port do not conflict (for example one
	// loopback IP per Gateway when running outside a cluster). The
	// choice is a hash of the Gateway's namespace and name, stable across
	// reloads, with collisions moved to the next free address.
	AddressPool netip.Prefix
}

// Result is everything one translation produces.
type Result struct {
	// Config is what the data plane should serve. It is nil only when the
	// translator hit an internal error (a bug); the caller must then keep
	// serving its previous Config.
	Config *ir.Config `json:"config"`
	// Statuses hold one entry per object considered, sorted by kind,
	// namespace, name and source, so that a status writer or the
	// `gateway validate` command can report them.
	Statuses []ObjectStatus `json:"statuses,omitempty"`
}

// ObjectStatus is the outcome of translation for one object. It carries both
// the Gateway API status a Kubernetes status writer publishes (Conditions,
// Listeners, Parents) and a one-line summary for humans (Accepted, Reason).
type ObjectStatus struct {
	// Kind, Namespace and Name identify the object; Namespace is empty for
	// cluster-scoped kinds.
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Accepted is false when the object was rejected in whole or in part:
	// any of its conditions reports a problem.
	Accepted bool `json:"accepted"`
	// Ignored is true for objects Meshgate does not act on (other
	// controllers' classes and Gateways, kinds it does not handle). They
	// are listed so a user can see why nothing happened, but a status
	// writer must not touch them, and they do not count as rejected.
	Ignored bool `json:"ignored,omitempty"`
	// Reason is one human readable line saying what is wrong, starting
	// with the field path, e.g. `spec.rules[0].backendRefs[1]: Service
	// default/foo not found`. Empty when Accepted. The caller prefixes the
	// kind, namespace and name.
	Reason string `json:"reason,omitempty"`
	// Source is where the loader read the object ("file:line"); set only
	// for objects the loader rejected or ignored, as translated objects do
	// not carry their position.
	Source string `json:"source,omitempty"`
	// Conditions are the object's own Gateway API conditions (for a
	// Gateway or GatewayClass status.conditions), without timestamps; the
	// status writer sets LastTransitionTime.
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Listeners is a Gateway's status.listeners, in spec order.
	Listeners []gwapiv1.ListenerStatus `json:"listeners,omitempty"`
	// ListenerEntries is a ListenerSet's status.listeners, in spec order;
	// set only for a ListenerSet attached to its Gateway.
	ListenerEntries []gwapiv1.ListenerEntryStatus `json:"listenerEntries,omitempty"`
	// AttachedListenerSets is a Gateway's status.attachedListenerSets:
	// how many ListenerSets are attached and accepted. Set for Gateways
	// that admit ListenerSets.
	AttachedListenerSets *int32 `json:"attachedListenerSets,omitempty"`
	// Addresses are the IPs a Gateway's listeners are bound to, for its
	// status.addresses (a provider may report others, such as its
	// Service's load balancer).
	Addresses []string `json:"addresses,omitempty"`
	// Parents is an HTTPRoute's status.parents: one entry per parentRef
	// that names a Gateway this controller serves (or a Gateway that does
	// not exist), in spec order.
	Parents []gwapiv1.RouteParentStatus `json:"parents,omitempty"`
	// Ancestors is a policy's status.ancestors (BackendTLSPolicy: one
	// entry per Gateway whose routes use a targeted Service).
	Ancestors []gwapiv1.PolicyAncestorStatus `json:"ancestors,omitempty"`
}

// Translate compiles s into an ir.Config and the status of every object.
// It is pure and deterministic and never panics: a panic (a translator bug)
// is turned into a Result with a nil Config and a status entry saying so. A
// nil snapshot translates as an empty one.
func Translate(s *config.Snapshot, opts Options) (res *Result) {
	defer func() {
		if r := recover(); r != nil {
			res = &Result{Statuses: []ObjectStatus{{
				Kind:   "Translator",
				Name:   "meshgate",
				Reason: fmt.Sprintf("internal error, previous configuration kept: %v", r),
			}}}
		}
	}()
	return translate(s, opts)
}

// translate is Translate without the recover, so the fuzz test sees panics.
func translate(s *config.Snapshot, opts Options) *Result {
	if s == nil {
		s = &config.Snapshot{}
	}
	if opts.ControllerName == "" {
		opts.ControllerName = DefaultControllerName
	}
	if opts.DefaultAddress == "" {
		opts.DefaultAddress = DefaultAddress
	}
	t := newTranslator(s, opts)
	t.translateClasses()
	t.translateGateways()
	t.translateBackends()
	t.translateFaults()
	t.translatePolicies()
	t.translateBackendTLSPolicies() // before the Service backends of extAuth are made
	t.translateSecurityPolicies()
	t.translateRoutes()
	t.applyGatewayBackendCerts()
	t.policyStatuses()
	t.securityPolicyStatuses()
	t.backendTLSPolicyStatuses()
	t.finishGateways()
	t.reportLoaderProblems()
	cfg := t.buildConfig()
	t.applyProxyProtocol(cfg)
	return &Result{Config: cfg, Statuses: t.sortedStatuses()}
}

// reportLoaderProblems carries the loader's rejected and ignored objects into
// the result, so one list tells the user about everything.
func (t *translator) reportLoaderProblems() {
	for _, p := range t.s.Rejected {
		t.statuses = append(t.statuses, ObjectStatus{
			Kind: p.Kind, Namespace: p.Namespace, Name: p.Name,
			Reason: p.Reason, Source: p.Position,
		})
	}
	for _, p := range t.s.Ignored {
		t.statuses = append(t.statuses, ObjectStatus{
			Kind: p.Kind, Namespace: p.Namespace, Name: p.Name,
			Accepted: true, Ignored: true, Reason: p.Reason, Source: p.Position,
		})
	}
}

func (t *translator) sortedStatuses() []ObjectStatus {
	st := t.statuses
	sort.SliceStable(st, func(i, j int) bool {
		a, b := st[i], st[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Source < b.Source
	})
	return st
}

// buildConfig assembles the sockets collected while translating gateways and
// routes, dropping sockets with no programmed listener and sorting every list.
func (t *translator) buildConfig() *ir.Config {
	cfg := &ir.Config{}
	for _, sock := range t.sockets {
		if len(sock.hosts) == 0 {
			continue
		}
		l := &ir.Listener{
			Name:     sock.address,
			Address:  sock.address,
			Protocol: sock.protocol,
			Hosts:    sock.hosts,
		}
		if sock.protocol == ir.ProtocolHTTPS {
			l.ClientAuth = sock.clientAuth
		}
		sort.Slice(l.Hosts, func(i, j int) bool { return l.Hosts[i].Name < l.Hosts[j].Name })
		for _, h := range l.Hosts {
			sortRoutes(h.Routes)
			sort.SliceStable(h.L4Routes, func(i, j int) bool {
				a, b := h.L4Routes[i], h.L4Routes[j]
				if a.Name != b.Name {
					return a.Name < b.Name
				}
				return a.RuleIndex < b.RuleIndex
			})
		}
		if len(sock.certs) > 0 {
			l.Certificates = sock.certs
			sortCertificates(l.Certificates)
		}
		cfg.Listeners = append(cfg.Listeners, l)
	}
	sort.Slice(cfg.Listeners, func(i, j int) bool { return cfg.Listeners[i].Address < cfg.Listeners[j].Address })
	return cfg
}

func sortRoutes(rs []*ir.Route) {
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.RuleIndex != b.RuleIndex {
			return a.RuleIndex < b.RuleIndex
		}
		return a.MatchIndex < b.MatchIndex
	})
}

// sortCertificates puts certificates in SNI preference order: exact
// hostnames, then wildcards (more labels first), then defaults (no
// hostname); ties by hostname and name.
func sortCertificates(cs []*ir.Certificate) {
	key := func(c *ir.Certificate) (int, int, string) {
		if len(c.Hostnames) == 0 {
			return 2, 0, ""
		}
		h := c.Hostnames[0]
		if isWildcard(h) {
			return 1, -labelCount(h), h
		}
		return 0, 0, h
	}
	sort.SliceStable(cs, func(i, j int) bool {
		ci, li, hi := key(cs[i])
		cj, lj, hj := key(cs[j])
		if ci != cj {
			return ci < cj
		}
		if li != lj {
			return li < lj
		}
		if hi != hj {
			return hi < hj
		}
		return cs[i].Name < cs[j].Name
	})
}
