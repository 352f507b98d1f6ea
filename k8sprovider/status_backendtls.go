package k8sprovider

import (
	"reflect"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// mergeAncestors replaces this controller's entries of a policy's
// status.ancestors with want (computed by the translator) and keeps other
// controllers' entries, keeping condition timestamps that did not change.
// The list holds at most 16 entries, the API's limit.
func (w *StatusWriter) mergeAncestors(have, want []gwapiv1.PolicyAncestorStatus) []gwapiv1.PolicyAncestorStatus {
	out := []gwapiv1.PolicyAncestorStatus{}
	for _, h := range have {
		if string(h.ControllerName) != w.ControllerName {
			out = append(out, h)
		}
	}
	for _, a := range want {
		if len(out) == 16 {
			break
		}
		var prev []metav1.Condition
		for _, h := range have {
			if string(h.ControllerName) == w.ControllerName && reflect.DeepEqual(h.AncestorRef, a.AncestorRef) {
				prev = h.Conditions
			}
		}
		a.ControllerName = gwapiv1.GatewayController(w.ControllerName)
		a.Conditions = mergeConditions(prev, a.Conditions)
		out = append(out, a)
	}
	return out
}
