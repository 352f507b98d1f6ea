package controller

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/translate"
)

// bindFailure is one Gateway (or ListenerSet) listener on a socket the data
// plane could not bind.
type bindFailure struct {
	listener string // the listener's name in its Gateway or ListenerSet
	address  string // ip:port
	err      error
}

// objectKey is a Gateway's or ListenerSet's kind, namespace and name.
type objectKey struct{ kind, ns, name string }

// hostOwner splits an ir.ListenerHost name ("namespace/gateway/listener",
// or "listenerset/namespace/set/listener" for a ListenerSet's listener) into
// its object and listener name.
func hostOwner(name string) (objectKey, string, bool) {
	kind := "Gateway"
	if rest, ok := strings.CutPrefix(name, "listenerset/"); ok {
		kind, name = "ListenerSet", rest
	}
	parts := strings.SplitN(name, "/", 3)
	if len(parts) != 3 {
		return objectKey{}, "", false
	}
	return objectKey{kind, parts[0], parts[1]}, parts[2], true
}

// bindHint says what a bind error means for the user.
func bindHint(address string, err error) string {
	host, port, _ := net.SplitHostPort(address)
	switch {
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Sprintf("%s is not an address of this host; assign it to the node or remove it from spec.addresses (%v)", host, err)
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Sprintf("port %s is in use by another process (%v)", port, err)
	case errors.Is(err, syscall.EACCES):
		return fmt.Sprintf("port %s needs privileges the gateway lacks, e.g. CAP_NET_BIND_SERVICE (%v)", port, err)
	}
	return err.Error()
}

// markUnbound returns statuses with every Gateway and ListenerSet listener
// on a socket in unbound reported Programmed=False, with the bind error and
// what to do about it, and their owners' Programmed=False:
//
//   - a listener: reason PortUnavailable when its port is taken
//     (EADDRINUSE), Pending otherwise (an address not on this host, ...);
//     the controller keeps retrying the bind either way.
//   - a Gateway: reason AddressNotUsable, which Gateway API gives for "a
//     provided static address can't be used" and "the address is already in
//     use"; status.addresses drops the IPs none of its sockets are bound on.
//   - a ListenerSet: reason Pending (GEP-1713 has no address reasons; the
//     Gateway only describes its own listeners).
//
// cfg is the applied config, to tell which IPs are still bound. The result
// shares nothing it changes with statuses, which stays the translation's.
func markUnbound(statuses []translate.ObjectStatus, cfg *ir.Config, unbound []ir.Unbound) []translate.ObjectStatus {
	if len(unbound) == 0 {
		return statuses
	}
	failures := map[objectKey][]bindFailure{}
	failedAddr := map[string]bool{}
	for _, u := range unbound {
		failedAddr[u.Listener.Address] = true
		for _, h := range u.Listener.Hosts {
			if k, l, ok := hostOwner(h.Name); ok {
				failures[k] = append(failures[k], bindFailure{listener: l, address: u.Listener.Address, err: u.Err})
			}
		}
	}
	// boundIPs are, per Gateway, the IPs at least one of its sockets is
	// bound on.
	boundIPs := map[objectKey]map[string]bool{}
	for _, l := range cfg.Listeners {
		if failedAddr[l.Address] {
			continue
		}
		ip, _, err := net.SplitHostPort(l.Address)
		if err != nil {
			continue
		}
		for _, h := range l.Hosts {
			if k, _, ok := hostOwner(h.Name); ok {
				if boundIPs[k] == nil {
					boundIPs[k] = map[string]bool{}
				}
				boundIPs[k][ip] = true
			}
		}
	}

	out := slices.Clone(statuses)
	for i := range out {
		st := &out[i]
		k := objectKey{st.Kind, st.Namespace, st.Name}
		fs := failures[k]
		if len(fs) == 0 {
			continue
		}
		var summary []string
		for _, f := range fs {
			summary = append(summary, fmt.Sprintf("listener %s on %s: %s", f.listener, f.address, bindHint(f.address, f.err)))
		}
		msg := "Not bound, retrying: " + strings.Join(summary, "; ")
		switch st.Kind {
		case "Gateway":
			st.Conditions = setCondition(st.Conditions, string(gwapiv1.GatewayConditionProgrammed), string(gwapiv1.GatewayReasonAddressNotUsable), msg)
			st.Listeners = slices.Clone(st.Listeners)
			for j := range st.Listeners {
				st.Listeners[j].Conditions = markListener(st.Listeners[j].Conditions, string(st.Listeners[j].Name), fs)
			}
			var addrs []string
			for _, ip := range st.Addresses {
				if boundIPs[k][ip] {
					addrs = append(addrs, ip)
				}
			}
			st.Addresses = addrs
		case "ListenerSet":
			st.Conditions = setCondition(st.Conditions, string(gwapiv1.ListenerSetConditionProgrammed), string(gwapiv1.ListenerSetReasonPending), msg)
			st.ListenerEntries = slices.Clone(st.ListenerEntries)
			for j := range st.ListenerEntries {
				st.ListenerEntries[j].Conditions = markListener(st.ListenerEntries[j].Conditions, string(st.ListenerEntries[j].Name), fs)
			}
		}
		if st.Accepted {
			st.Accepted = false
			st.Reason = summary[0]
		}
	}
	return out
}

// markListener sets the Programmed condition of the listener named name
// when it is among fs.
func markListener(conds []metav1.Condition, name string, fs []bindFailure) []metav1.Condition {
	var msgs []string
	inUse := false
	for _, f := range fs {
		if f.listener != name {
			continue
		}
		msgs = append(msgs, f.address+": "+bindHint(f.address, f.err))
		if errors.Is(f.err, syscall.EADDRINUSE) {
			inUse = true
		}
	}
	if len(msgs) == 0 {
		return conds
	}
	reason := string(gwapiv1.ListenerReasonPending)
	if inUse {
		reason = string(gwapiv1.ListenerReasonPortUnavailable)
	}
	return setCondition(conds, string(gwapiv1.ListenerConditionProgrammed), reason, "Listener is not bound, retrying: "+strings.Join(msgs, "; "))
}

// setCondition returns conds (copied) with the condition typ set to False
// with reason and msg, keeping its observed generation.
func setCondition(conds []metav1.Condition, typ, reason, msg string) []metav1.Condition {
	out := slices.Clone(conds)
	for i := range out {
		if out[i].Type == typ {
			out[i].Status = metav1.ConditionFalse
			out[i].Reason = reason
			out[i].Message = msg
			return out
		}
	}
	var gen int64
	if len(out) > 0 {
		gen = out[0].ObservedGeneration
	}
	return append(out, metav1.Condition{Type: typ, Status: metav1.ConditionFalse, Reason: reason, Message: msg, ObservedGeneration: gen})
}
