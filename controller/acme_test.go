package controller

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshgate/meshgate/acme"
	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/translate"
)

func TestMarkACME(t *testing.T) {
	cfg := &ir.Config{Listeners: []*ir.Listener{{Address: "0.0.0.0:443", Protocol: ir.ProtocolHTTPS, Hosts: []*ir.ListenerHost{
		{Name: "ns/gw/ok", Hostname: "ok.example.com", ACME: &ir.ACME{}},
		{Name: "ns/gw/bad", Hostname: "bad.example.com", ACME: &ir.ACME{}},
		{Name: "ns/gw/static", Hostname: "static.example.com"},
	}}}}
	programmed := []metav1.Condition{{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed"}}
	in := []translate.ObjectStatus{{Kind: "Gateway", Namespace: "ns", Name: "gw", Listeners: []gwapiv1.ListenerStatus{
		{Name: "ok", Conditions: programmed}, {Name: "bad", Conditions: programmed}, {Name: "static", Conditions: programmed},
	}}}
	states := map[string]acme.State{"ok.example.com": {Ready: true}, "bad.example.com": {Err: errors.New("connection refused"), Since: time.Now()}}
	out := markACME(in, cfg, states)
	if c := out[0].Listeners[1].Conditions[0]; c.Status != metav1.ConditionFalse || c.Reason != "Pending" || !strings.Contains(c.Message, "connection refused") {
		t.Errorf("bad: %+v", c)
	}
	for _, i := range []int{0, 2} {
		if c := out[0].Listeners[i].Conditions[0]; c.Status != metav1.ConditionTrue {
			t.Errorf("listener %d: %+v", i, c)
		}
	}
	if in[0].Listeners[1].Conditions[0].Status != metav1.ConditionTrue {
		t.Error("input statuses changed")
	}
	// Not known yet: waiting.
	if c := markACME(in, cfg, map[string]acme.State{"ok.example.com": {Ready: true}})[0].Listeners[1].Conditions[0]; c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "Waiting") {
		t.Errorf("pending: %+v", c)
	}
}
