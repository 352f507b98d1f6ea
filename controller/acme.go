package controller

import (
	"fmt"
	"slices"
	"strings"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshgate/meshgate/acme"
	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/translate"
)

// markACME returns statuses with every Gateway or ListenerSet listener whose
// ACME certificate is not obtained yet reported Programmed=False, reason
// Pending, with the last failure when there was one (the order is retried
// with backoff). A listener with a certificate whose renewal failed keeps
// serving it and stays Programmed; the failure is logged. The result shares
// nothing it changes with statuses.
func markACME(statuses []translate.ObjectStatus, cfg *ir.Config, states map[string]acme.State) []translate.ObjectStatus {
	if cfg == nil {
		return statuses
	}
	msgs := map[objectKey]map[string]string{} // object → listener → message
	for _, l := range cfg.Listeners {
		for _, h := range l.Hosts {
			if h.ACME == nil {
				continue
			}
			st, ok := states[strings.ToLower(h.Hostname)]
			if ok && st.Ready {
				continue
			}
			k, name, ok := hostOwner(h.Name)
			if !ok {
				continue
			}
			msg := fmt.Sprintf("Waiting for the ACME certificate of %s", h.Hostname)
			if st.Err != nil {
				msg = fmt.Sprintf("No ACME certificate for %s: the order failed at %s, retrying with backoff: %v", h.Hostname, st.Since.UTC().Format("2006-01-02T15:04:05Z"), st.Err)
			}
			if msgs[k] == nil {
				msgs[k] = map[string]string{}
			}
			msgs[k][name] = msg
		}
	}
	if len(msgs) == 0 {
		return statuses
	}
	out := slices.Clone(statuses)
	for i := range out {
		st := &out[i]
		m := msgs[objectKey{st.Kind, st.Namespace, st.Name}]
		if m == nil {
			continue
		}
		switch st.Kind {
		case "Gateway":
			st.Listeners = slices.Clone(st.Listeners)
			for j := range st.Listeners {
				if msg, ok := m[string(st.Listeners[j].Name)]; ok {
					st.Listeners[j].Conditions = setCondition(st.Listeners[j].Conditions, string(gwapiv1.ListenerConditionProgrammed), string(gwapiv1.ListenerReasonPending), msg)
				}
			}
		case "ListenerSet":
			st.ListenerEntries = slices.Clone(st.ListenerEntries)
			for j := range st.ListenerEntries {
				if msg, ok := m[string(st.ListenerEntries[j].Name)]; ok {
					st.ListenerEntries[j].Conditions = setCondition(st.ListenerEntries[j].Conditions, string(gwapiv1.ListenerConditionProgrammed), string(gwapiv1.ListenerReasonPending), msg)
				}
			}
		}
	}
	return out
}
