package translate

import (
	"fmt"
	"net"
	"strings"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// finishGateways writes each Gateway's status once routes have attached.
func (t *translator) finishGateways() {
	for _, gs := range t.gateways {
		t.statuses = append(t.statuses, t.gatewayStatus(gs))
	}
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
		lst := gwapiv1.ListenerStatus{
			Name:           ls.l.Name,
			SupportedKinds: ls.supportedKinds,
			AttachedRoutes: int32(len(ls.attached)),
		}
		gen := gen
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
			resolved = false
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
			programmed++
			good = append(good, string(ls.l.Name))
			lst.Conditions = append(lst.Conditions, condition(string(gwapiv1.ListenerConditionProgrammed), true, string(gwapiv1.ListenerReasonProgrammed), "Listener is bound on "+listenerAddrs(ls), gen))
		case !gs.accepted():
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
		if problem != "" {
			bad = append(bad, string(ls.l.Name))
			if firstProblem == "" {
				firstProblem = problem
			}
		}
		st.Listeners = append(st.Listeners, lst)
	}

	accepted := condition(string(gwapiv1.GatewayConditionAccepted), true, string(gwapiv1.GatewayReasonAccepted), "Gateway is accepted", gen)
	switch {
	case !gs.accepted():
		accepted = condition(string(gwapiv1.GatewayConditionAccepted), false, string(gs.reason), gs.problem, gen)
		firstProblem = gs.problem
	case acceptedListeners == 0:
		accepted = condition(string(gwapiv1.GatewayConditionAccepted), false, string(gwapiv1.GatewayReasonListenersNotValid),
			"No listener is accepted: "+strings.Join(bad, ", "), gen)
	case len(bad) > 0:
		accepted = condition(string(gwapiv1.GatewayConditionAccepted), true, string(gwapiv1.GatewayReasonListenersNotValid),
			fmt.Sprintf("Listeners with problems: %s; listeners programmed: %s", strings.Join(bad, ", "), orNone(good)), gen)
	}
	st.Conditions = append(st.Conditions, accepted)
	if programmed > 0 {
		st.Conditions = append(st.Conditions, condition(string(gwapiv1.GatewayConditionProgrammed), true, string(gwapiv1.GatewayReasonProgrammed),
			"Gateway is bound on "+strings.Join(gs.addrs, ", "), gen))
	} else {
		st.Conditions = append(st.Conditions, condition(string(gwapiv1.GatewayConditionProgrammed), false, string(gwapiv1.GatewayReasonInvalid), "No listener is bound", gen))
	}
	if resolved {
		st.Conditions = append(st.Conditions, condition(string(gwapiv1.GatewayConditionResolvedRefs), true, string(gwapiv1.GatewayReasonResolvedRefs), "All references are resolved", gen))
	} else {
		st.Conditions = append(st.Conditions, condition(string(gwapiv1.GatewayConditionResolvedRefs), false, string(gwapiv1.GatewayReasonListenersNotResolved), "Some listeners have unresolved references", gen))
	}
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
