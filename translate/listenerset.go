package translate

import (
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// ListenerSets (GEP-1713) let several teams add listeners to one shared
// Gateway. A ListenerSet is attached when its parentRef names a Gateway we
// serve that admits it through spec.allowedListeners; its listeners are then
// merged into the Gateway's: they bind the Gateway's addresses and share
// sockets with its listeners under the same rules, the Gateway's own
// listeners first, then the ListenerSets oldest first, then by
// namespace/name. Routes reach them only through a parentRef of kind
// ListenerSet; a route whose parentRef is the Gateway attaches to the
// Gateway's own listeners alone.

// listenerSetState is one ListenerSet whose parentRef names a Gateway of
// ours (or no Gateway at all).
type listenerSetState struct {
	set *gwapiv1.ListenerSet
	key nsName
	// gs is the parent Gateway; nil when it does not exist.
	gs *gatewayState
	// reason and problem are set when the ListenerSet is not attached to
	// its parent: NotAllowed, ParentNotAccepted or Invalid, and
	// "field: what is wrong".
	reason    gwapiv1.ListenerSetConditionReason
	problem   string
	listeners []*listenerState
	// accepted is set by its status: attached with at least one valid
	// listener. Such sets count in the Gateway's attachedListenerSets.
	accepted bool
}

func (s *listenerSetState) attached() bool { return s.gs != nil && s.problem == "" }

func (s *listenerSetState) fail(reason gwapiv1.ListenerSetConditionReason, format string, args ...any) {
	if s.problem != "" {
		return
	}
	s.reason = reason
	s.problem = fmt.Sprintf(format, args...)
}

// allListeners are the Gateway's own listeners followed by those of its
// attached ListenerSets, in precedence order.
func (g *gatewayState) allListeners() []*listenerState {
	if len(g.sets) == 0 {
		return g.listeners
	}
	out := append([]*listenerState(nil), g.listeners...)
	for _, s := range g.sets {
		if s.attached() {
			out = append(out, s.listeners...)
		}
	}
	return out
}

// listenerSetsFrom is the Gateway's spec.allowedListeners.namespaces.from;
// None when unset, as the API defaults it.
func listenerSetsFrom(gw *gwapiv1.Gateway) gwapiv1.FromNamespaces {
	al := gw.Spec.AllowedListeners
	if al == nil || al.Namespaces == nil || al.Namespaces.From == nil || *al.Namespaces.From == "" {
		return gwapiv1.NamespacesFromNone
	}
	return *al.Namespaces.From
}

// translateListenerSets resolves each ListenerSet's parent, checks the
// parent admits it and validates the listeners of those attached. It runs
// after the Gateways are validated and before listener conflicts are looked
// for, since the ListenerSets' listeners take part in those.
func (t *translator) translateListenerSets() {
	for _, set := range t.s.ListenerSets {
		if set == nil {
			continue
		}
		key := nsName{set.Namespace, set.Name}
		pr := set.Spec.ParentRef
		group, kind := gatewayGroup, kindGateway
		if pr.Group != nil {
			group = string(*pr.Group)
		}
		if pr.Kind != nil {
			kind = string(*pr.Kind)
		}
		ns := set.Namespace
		if pr.Namespace != nil && *pr.Namespace != "" {
			ns = string(*pr.Namespace)
		}
		gwKey := nsName{ns, string(pr.Name)}
		ignore := func(reason string) {
			t.foreignSets[key] = true
			t.statuses = append(t.statuses, ObjectStatus{
				Kind: kindListenerSet, Namespace: set.Namespace, Name: set.Name,
				Accepted: true, Ignored: true, Reason: reason,
			})
		}
		if group != gatewayGroup || kind != kindGateway {
			ignore(fmt.Sprintf("spec.parentRef: %s is not a Gateway", groupKind(group, kind)))
			continue
		}
		if t.foreignGWs[gwKey] {
			ignore(fmt.Sprintf("spec.parentRef: Gateway %s is not served by %s", gwKey, t.opts.ControllerName))
			continue
		}
		ss := &listenerSetState{set: set, key: key, gs: t.gatewayIndex[gwKey]}
		t.setIndex[key] = ss
		t.sets = append(t.sets, ss)
		switch {
		case ss.gs == nil:
			ss.fail(gwapiv1.ListenerSetReasonParentNotAccepted, "spec.parentRef: %s", t.notFound(kindGateway, ns, string(pr.Name)))
		case !t.admitsListenerSet(ss):
		case !ss.gs.accepted():
			ss.fail(gwapiv1.ListenerSetReasonParentNotAccepted, "spec.parentRef: Gateway %s is not accepted: %s", gwKey, ss.gs.problem)
		}
	}
	// Listener precedence across ListenerSets (GEP-1713): oldest first,
	// then by namespace/name.
	sort.SliceStable(t.sets, func(i, j int) bool { return olderFirst(t.sets[i].set, t.sets[j].set) })
	for _, ss := range t.sets {
		if !ss.attached() {
			continue
		}
		ss.gs.sets = append(ss.gs.sets, ss)
		t.validateListenerSet(ss)
	}
}

// admitsListenerSet applies the parent Gateway's spec.allowedListeners to
// ss, failing it with NotAllowed when it is not admitted.
func (t *translator) admitsListenerSet(ss *listenerSetState) bool {
	gs := ss.gs
	const field = "spec.allowedListeners.namespaces"
	switch from := listenerSetsFrom(gs.gw); from {
	case gwapiv1.NamespacesFromAll:
		return true
	case gwapiv1.NamespacesFromSame:
		if ss.key.ns == gs.key.ns {
			return true
		}
		ss.fail(gwapiv1.ListenerSetReasonNotAllowed, "spec.parentRef: Gateway %s admits ListenerSets from its own namespace only (%s.from: Same)", gs.key, field)
	case gwapiv1.NamespacesFromSelector:
		sel := gs.gw.Spec.AllowedListeners.Namespaces.Selector
		if sel == nil {
			ss.fail(gwapiv1.ListenerSetReasonNotAllowed, "spec.parentRef: Gateway %s admits no ListenerSet: %s.selector is required when from is Selector", gs.key, field)
			return false
		}
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			ss.fail(gwapiv1.ListenerSetReasonNotAllowed, "spec.parentRef: Gateway %s admits no ListenerSet: %s.selector: %v", gs.key, field, err)
			return false
		}
		if s.Matches(labels.Set(t.namespaceLabels(ss.key.ns))) {
			return true
		}
		ss.fail(gwapiv1.ListenerSetReasonNotAllowed, "spec.parentRef: Gateway %s does not admit ListenerSets from namespace %s (see its %s.selector)", gs.key, ss.key.ns, field)
	case gwapiv1.NamespacesFromNone:
		ss.fail(gwapiv1.ListenerSetReasonNotAllowed, "spec.parentRef: Gateway %s admits no ListenerSet (%s.from is None, the default)", gs.key, field)
	default:
		ss.fail(gwapiv1.ListenerSetReasonNotAllowed, "spec.parentRef: Gateway %s admits no ListenerSet: %s.from: %q is not one of Same, All, Selector, None", gs.key, field, from)
	}
	return false
}

// validateListenerSet checks each listener of an attached ListenerSet on
// its own, as for a Gateway's listeners.
func (t *translator) validateListenerSet(ss *listenerSetState) {
	names := map[gwapiv1.SectionName]int{}
	for i := range ss.set.Spec.Listeners {
		l := gwapiv1.Listener(ss.set.Spec.Listeners[i])
		ls := &listenerState{gs: ss.gs, set: ss, idx: i, l: &l, attached: map[nsName]bool{}}
		ss.listeners = append(ss.listeners, ls)
		if first, dup := names[l.Name]; dup {
			ls.reject(gwapiv1.ListenerReasonUnsupportedValue, "name: %q is also the name of spec.listeners[%d]; listener names must be unique", l.Name, first)
		} else {
			names[l.Name] = i
		}
		t.validateListener(ls)
		if ls.accepted() && ls.terminatesTLS() && len(ls.certs) == 0 && ls.acme == nil {
			// GEP-1713 (conformance, "missing ReferenceGrant"): a
			// ListenerSet listener without a usable certificate is
			// not accepted, so it claims no hostname.
			ls.reject(gwapiv1.ListenerReasonInvalid, "tls.certificateRefs: no certificate can be used (see ResolvedRefs)")
		}
	}
}

// findSetConflicts checks the listeners of the Gateway's ListenerSets
// against each other and the Gateway's own, as if all were one Gateway's
// list, except that a winner is picked (GEP-1713, "Listener and
// ListenerSet Conflicts"): the Gateway's listeners, then older ListenerSets,
// keep their port and hostname, and a later listener clashing with them is
// Conflicted.
func findSetConflicts(gs *gatewayState) {
	var earlier []*listenerState
	for _, ls := range gs.listeners {
		if ls.accepted() {
			earlier = append(earlier, ls)
		}
	}
	for _, ss := range gs.sets {
		// Against those before it first, so that a listener losing to
		// the Gateway or an older set does not also take down its
		// siblings (conformance: ListenerSetProtocolConflict); then,
		// among what is left, no winner within one object.
		for _, ls := range ss.listeners {
			if ls.accepted() {
				precedenceConflict(ls, earlier)
			}
		}
		findListenerConflicts(ss.listeners, kindListenerSet)
		for _, ls := range ss.listeners {
			if ls.accepted() {
				earlier = append(earlier, ls)
			}
		}
	}
}

// precedenceConflict rejects ls when a listener before it in precedence
// uses its port with another protocol, or its port, protocol and hostname.
// Another team's ListenerSet is not named, so as not to leak it.
func precedenceConflict(ls *listenerState, earlier []*listenerState) {
	var sameHost *listenerState
	for _, o := range earlier {
		if o.l.Port != ls.l.Port {
			continue
		}
		if o.l.Protocol != ls.l.Protocol {
			ls.conflictReason = gwapiv1.ListenerReasonProtocolConflict
			ls.reject(gwapiv1.ListenerReasonProtocolConflict, "port: %d is already used with protocol %s by %s", ls.l.Port, o.l.Protocol, precedenceOwner(o))
			return
		}
		if sameHost == nil && o.hostname == ls.hostname {
			sameHost = o
		}
	}
	if sameHost != nil {
		shown := ls.hostname
		if shown == "" {
			shown = "(any)"
		}
		ls.conflictReason = gwapiv1.ListenerReasonHostnameConflict
		ls.reject(gwapiv1.ListenerReasonHostnameConflict, "hostname: %s on port %d is already used by %s", shown, ls.l.Port, precedenceOwner(sameHost))
	}
}

func precedenceOwner(o *listenerState) string {
	if o.set == nil {
		return fmt.Sprintf("listener %s of Gateway %s, which takes precedence", o.l.Name, o.gs.key)
	}
	return fmt.Sprintf("a listener of another ListenerSet attached to Gateway %s that takes precedence (older, or first by namespace/name)", o.gs.key)
}

// listenerSetStatus is a ListenerSet's status: Accepted and Programmed, and
// one entry per listener when attached. GEP-1713: Accepted=False with
// NotAllowed or ParentNotAccepted when not attached, ListenersNotValid when
// no listener is valid; Programmed mirrors it and otherwise reflects only
// this set's listeners.
func (t *translator) listenerSetStatus(ss *listenerSetState) ObjectStatus {
	gen := ss.set.Generation
	st := ObjectStatus{Kind: kindListenerSet, Namespace: ss.key.ns, Name: ss.key.name}
	if !ss.attached() {
		st.Conditions = []metav1.Condition{
			condition(string(gwapiv1.ListenerSetConditionAccepted), false, string(ss.reason), ss.problem, gen),
			condition(string(gwapiv1.ListenerSetConditionProgrammed), false, string(ss.reason), ss.problem, gen),
		}
		st.Reason = ss.problem
		return st
	}
	var firstProblem string
	var bad, good []string
	valid, bound := 0, 0
	for _, ls := range ss.listeners {
		r := t.listenerStatus(ls, gen)
		st.ListenerEntries = append(st.ListenerEntries, gwapiv1.ListenerEntryStatus(r.status))
		if ls.accepted() {
			valid++
		}
		if r.bound {
			bound++
			good = append(good, string(ls.l.Name))
		}
		if r.problem != "" {
			bad = append(bad, string(ls.l.Name))
			if firstProblem == "" {
				firstProblem = r.problem
			}
		}
	}
	notValid := string(gwapiv1.ListenerSetReasonListenersNotValid)
	switch {
	case len(ss.listeners) == 0:
		firstProblem = "spec.listeners: at least one listener is required"
		st.Conditions = []metav1.Condition{
			condition(string(gwapiv1.ListenerSetConditionAccepted), false, notValid, firstProblem, gen),
			condition(string(gwapiv1.ListenerSetConditionProgrammed), false, notValid, firstProblem, gen),
		}
	case valid == 0:
		msg := "No listener is accepted: " + strings.Join(bad, ", ")
		st.Conditions = []metav1.Condition{
			condition(string(gwapiv1.ListenerSetConditionAccepted), false, notValid, msg, gen),
			condition(string(gwapiv1.ListenerSetConditionProgrammed), false, notValid, msg, gen),
		}
	default:
		ss.accepted = true
		accepted := condition(string(gwapiv1.ListenerSetConditionAccepted), true, string(gwapiv1.ListenerSetReasonAccepted),
			"ListenerSet is attached to Gateway "+ss.gs.key.String(), gen)
		if len(bad) > 0 {
			accepted = condition(string(gwapiv1.ListenerSetConditionAccepted), true, notValid,
				fmt.Sprintf("Listeners with problems: %s; listeners programmed: %s", strings.Join(bad, ", "), orNone(good)), gen)
		}
		programmed := condition(string(gwapiv1.ListenerSetConditionProgrammed), false, string(gwapiv1.ListenerSetReasonInvalid), "No listener is bound", gen)
		if bound > 0 {
			programmed = condition(string(gwapiv1.ListenerSetConditionProgrammed), true, string(gwapiv1.ListenerSetReasonProgrammed),
				"ListenerSet is bound on "+strings.Join(ss.gs.addrs, ", "), gen)
		}
		st.Conditions = []metav1.Condition{accepted, programmed}
	}
	st.Accepted = firstProblem == ""
	st.Reason = firstProblem
	return st
}
