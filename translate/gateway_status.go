package translate

import (
	"fmt"
	"net"
	"strings"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// finishGateways writes each ListenerSet's and Gateway's status once routes
// have attached. ListenerSets come first: a Gateway counts those accepted.
func (t *translator) finishGateways() {
	for _, ss := range t.sets {
		t.statuses = append(t.statuses, t.listenerSetStatus(ss))
	}
	for _, gs := range t.gateways {
		t.statuses = append(t.statuses, t.gatewayStatus(gs))
	}
}

// listenerReport is one listener's status and what its owner's status
// needs to know about it.
type listenerReport struct {
	status gwapiv1.ListenerStatus
	// problem is the first thing wrong with it, "" if nothing.
	problem  string
	bound    bool
	resolved bool
}

func (t *translator) listenerStatus(ls *listenerState, gen int64) listenerReport {
	r := listenerReport{resolved: true}
	lst := gwapiv1.ListenerStatus{
		Name:           ls.l.Name,
		SupportedKinds: ls.supportedKinds,
		AttachedRoutes: int32(len(ls.attached)),
	}
	var problem string
	if ls.accepted() {
		lst.Conditions = append(lst.Conditions, condition(string(gwapiv1.ListenerConditionAccepted), true, string(gwapiv1.ListenerReasonAccepted), "Listener is accepted", gen))
	} else {
		problem = ls.path() + "." + ls.acceptMsg
		lst.Conditions = append(lst.Conditions, condition(string(gwapiv1.ListenerConditionAccepted), false, string(ls.acceptReason), ls.path()+"."+ls.acceptMsg, gen))
	}
	if ls.conflictReason != "" {
		lst.Conditions = append(lst.Conditions, condition(string(gwapiv1.ListenerConditionConflicted), true, string(ls.conflictReason), ls.path()+"."+ls.acceptMsg, gen))
	} else {
		lst.Conditions = append(lst.Conditions, condition(string(gwapiv1.ListenerConditionConflicted), false, string(gwapiv1.ListenerReasonNoConflicts), "No conflicts", gen))
	}
	if len(ls.refs) == 0 {
		lst.Conditions = append(lst.Conditions, condition(string(gwapiv1.ListenerConditionResolvedRefs), true, string(gwapiv1.ListenerReasonResolvedRefs), "All references are resolved", gen))
	} else {
		r.resolved = false
		msgs := make([]string, len(ls.refs))
		for i, r := range ls.refs {
			msgs[i] = ls.path() + "." + r.msg
		}
		if problem == "" {
			problem = msgs[0]
		}
		lst.Conditions = append(lst.Conditions, condition(string(gwapiv1.ListenerConditionResolvedRefs), false, ls.refs[0].reason, strings.Join(msgs, "; "), gen))
	}
	switch {
	case ls.programmed() && len(ls.hosts) > 0:
		r.bound = true
		lst.Conditions = append(lst.Conditions, condition(string(gwapiv1.ListenerConditionProgrammed), true, string(gwapiv1.ListenerReasonProgrammed), "Listener is bound on "+listenerAddrs(ls), gen))
	case !ls.gs.accepted():
		lst.Conditions = append(lst.Conditions, condition(string(gwapiv1.ListenerConditionProgrammed), false, string(gwapiv1.ListenerReasonInvalid), "The Gateway is not accepted", gen))
	default:
		reason := gwapiv1.ListenerReasonInvalid
		if ls.conflictReason != "" {
			reason = ls.conflictReason
		}
		if problem == "" {
			problem = ls.path() + ": listener is not bound"
		}
		lst.Conditions = append(lst.Conditions, condition(string(gwapiv1.ListenerConditionProgrammed), false, string(reason), "Listener is not bound: "+problem, gen))
	}
	if ls.overlap != "" {
		lst.Conditions = append(lst.Conditions, condition(string(gwapiv1.ListenerConditionOverlappingTLSConfig), true, string(gwapiv1.ListenerReasonOverlappingHostnames), ls.path()+".hostname: "+ls.overlap, gen))
	}
	r.status, r.problem = lst, problem
	return r
}

func (t *translator) gatewayStatus(gs *gatewayState) ObjectStatus {
	gen := gs.gw.Generation
	st := ObjectStatus{Kind: kindGateway, Namespace: gs.gw.Namespace, Name: gs.gw.Name, Addresses: gs.addrs}
	var firstProblem string
	var bad, good []string
	programmed, resolved, acceptedListeners := 0, true, 0
	for _, ls := range gs.listeners {
		if ls.accepted() {
			acceptedListeners++
		}
		r := t.listenerStatus(ls, gen)
		if !r.resolved {
			resolved = false
		}
		if r.bound {
			programmed++
			good = append(good, string(ls.l.Name))
		}
		if r.problem != "" {
			bad = append(bad, string(ls.l.Name))
			if firstProblem == "" {
				firstProblem = r.problem
			}
		}
		st.Listeners = append(st.Listeners, r.status)
	}
	// GEP-1713: the Gateway's conditions keep describing its own
	// configuration; its ListenerSets only show in attachedListenerSets.
	if listenerSetsFrom(gs.gw) != gwapiv1.NamespacesFromNone || len(gs.sets) > 0 {
		n := int32(0)
		for _, ss := range gs.sets {
			if ss.accepted {
				n++
			}
		}
		st.AttachedListenerSets = &n
	}
	ownless := len(gs.listeners) == 0 && gs.accepted()

	accepted := condition(string(gwapiv1.GatewayConditionAccepted), true, string(gwapiv1.GatewayReasonAccepted), "Gateway is accepted", gen)
	switch {
	case !gs.accepted():
		accepted = condition(string(gwapiv1.GatewayConditionAccepted), false, string(gs.reason), gs.problem, gen)
		firstProblem = gs.problem
	case acceptedListeners == 0 && !ownless:
		accepted = condition(string(gwapiv1.GatewayConditionAccepted), false, string(gwapiv1.GatewayReasonListenersNotValid),
			"No listener is accepted: "+strings.Join(bad, ", "), gen)
	case len(bad) > 0:
		accepted = condition(string(gwapiv1.GatewayConditionAccepted), true, string(gwapiv1.GatewayReasonListenersNotValid),
			fmt.Sprintf("Listeners with problems: %s; listeners programmed: %s", strings.Join(bad, ", "), orNone(good)), gen)
	}
	st.Conditions = append(st.Conditions, accepted)
	switch {
	case programmed > 0:
		st.Conditions = append(st.Conditions, condition(string(gwapiv1.GatewayConditionProgrammed), true, string(gwapiv1.GatewayReasonProgrammed),
			"Gateway is bound on "+strings.Join(gs.addrs, ", "), gen))
	case ownless:
		// Its listeners all come from ListenerSets, which report
		// their own Programmed condition.
		st.Conditions = append(st.Conditions, condition(string(gwapiv1.GatewayConditionProgrammed), true, string(gwapiv1.GatewayReasonProgrammed),
			"Gateway has no listener of its own; its ListenerSets bind on "+strings.Join(gs.addrs, ", "), gen))
	default:
		st.Conditions = append(st.Conditions, condition(string(gwapiv1.GatewayConditionProgrammed), false, string(gwapiv1.GatewayReasonInvalid), "No listener is bound", gen))
	}
	tlsRefs, tlsConds := gs.gatewayTLSConditions(gen)
	switch {
	case tlsRefs != nil:
		// The Gateway's own reference comes before its listeners'.
		st.Conditions = append(st.Conditions, *tlsRefs)
		if firstProblem == "" {
			firstProblem = tlsRefs.Message
		}
	case resolved:
		st.Conditions = append(st.Conditions, condition(string(gwapiv1.GatewayConditionResolvedRefs), true, string(gwapiv1.GatewayReasonResolvedRefs), "All references are resolved", gen))
	default:
		st.Conditions = append(st.Conditions, condition(string(gwapiv1.GatewayConditionResolvedRefs), false, string(gwapiv1.GatewayReasonListenersNotResolved), "Some listeners have unresolved references", gen))
	}
	st.Conditions = append(st.Conditions, tlsConds...)
	st.Accepted = firstProblem == ""
	st.Reason = firstProblem
	return st
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func listenerAddrs(ls *listenerState) string {
	addrs := make([]string, len(ls.gs.addrs))
	for i, ip := range ls.gs.addrs {
		addrs[i] = net.JoinHostPort(ip, fmt.Sprint(ls.l.Port))
	}
	return strings.Join(addrs, ", ")
}
