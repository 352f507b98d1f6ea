package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshgate/meshgate/translate"
)

// unusableIP is in TEST-NET-1 (RFC 5737): never an address of this host, so
// binding it fails with EADDRNOTAVAIL.
const unusableIP = "192.0.2.10"

// TestBindFailure: a Gateway whose spec.addresses names an IP not on this
// host does not hold the others back. The good Gateway serves, /config
// reports the bad one Programmed=False (AddressNotUsable) with its listener
// not bound and why, a WARN names the address, and a later edit of the
// good Gateway's route still applies.
func TestBindFailure(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	badPort := freePort(t, ip)
	a, b := newBackend(t, "a"), newBackend(t, "b")
	badGateway := fmt.Sprintf(`---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: bad
  namespace: default
spec:
  gatewayClassName: meshgate
  addresses:
  - type: IPAddress
    value: %s
  listeners:
  - name: web
    protocol: HTTP
    port: %d
`, unusableIP, badPort)
	cfg := func(to string) string {
		return gatewayYAML(ip, listener{name: "http", port: port}) + badGateway + a.yaml() + b.yaml() +
			simpleRoute("main", nil, to)
	}
	g := startGateway(t, ip, cfg("a"))

	if r := get(t, g.url(port, "/"), "x"); r.backend() != "a" {
		t.Fatalf("good Gateway: %v, want backend a", r)
	}
	badAddr := net.JoinHostPort(unusableIP, strconv.Itoa(badPort))
	g.waitLogCount("listener not bound; the rest of the config is applied, retrying in the background", 1)
	if e := g.findLog("listener not bound; the rest of the config is applied, retrying in the background", func(e map[string]any) bool {
		return e["address"] == badAddr && e["level"] == "WARN" && strings.Contains(fmt.Sprint(e["error"]), "assign requested address")
	}); e == nil {
		t.Errorf("no WARN naming %s and its bind error", badAddr)
	}
	checkBadGateway := func() {
		t.Helper()
		st := adminConfigStatuses(t, g)
		bad, good := statusOf(st, "Gateway", "bad"), statusOf(st, "Gateway", "gw")
		if bad == nil || good == nil {
			t.Fatalf("/config statuses lack Gateway bad or gw: %+v", st)
		}
		if c := conditionOf(bad.Conditions, "Programmed"); c.Status != metav1.ConditionFalse || c.Reason != "AddressNotUsable" ||
			!strings.Contains(c.Message, unusableIP+" is not an address of this host") {
			t.Errorf("Gateway bad Programmed = %+v, want False/AddressNotUsable naming %s", c, unusableIP)
		}
		if c := conditionOf(bad.Conditions, "Accepted"); c.Status != metav1.ConditionTrue {
			t.Errorf("Gateway bad Accepted = %+v, want True", c)
		}
		if len(bad.Listeners) != 1 {
			t.Fatalf("Gateway bad listeners: %+v", bad.Listeners)
		}
		if c := conditionOf(bad.Listeners[0].Conditions, "Programmed"); c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, badAddr) {
			t.Errorf("listener bad/web Programmed = %+v, want False naming %s", c, badAddr)
		}
		if bad.Accepted || len(bad.Addresses) != 0 {
			t.Errorf("Gateway bad: accepted %v, addresses %v; want a problem and no bound address", bad.Accepted, bad.Addresses)
		}
		if c := conditionOf(good.Conditions, "Programmed"); c.Status != metav1.ConditionTrue || !good.Accepted {
			t.Errorf("Gateway gw Programmed = %+v, accepted %v", c, good.Accepted)
		}
	}
	checkBadGateway()

	// The good Gateway's route changes: applied although bad still fails.
	g.reload(cfg("b"))
	var last result
	if !pollUntil(5*time.Second, func() bool {
		last = get(t, g.url(port, "/"), "x")
		return last.backend() == "b"
	}) {
		t.Fatalf("route edit not applied while Gateway bad is unbound; last: %v", last)
	}
	checkBadGateway()
	if st := g.adminGet("/ready"); st != http.StatusOK {
		t.Errorf("/ready %d with one Gateway serving, want 200", st)
	}
	if n := g.countLogs("config not applied; previous config stays in force"); n != 0 {
		t.Errorf("%d configs refused as a whole", n)
	}
}

func adminConfigStatuses(t *testing.T, g *gateway) []translate.ObjectStatus {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + g.adminAddr + "/config")
	if err != nil {
		t.Fatalf("admin /config: %v", err)
	}
	defer resp.Body.Close()
	var st struct {
		Statuses []translate.ObjectStatus `json:"statuses"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("admin /config: %v", err)
	}
	return st.Statuses
}

func statusOf(sts []translate.ObjectStatus, kind, name string) *translate.ObjectStatus {
	for i := range sts {
		if sts[i].Kind == kind && sts[i].Name == name {
			return &sts[i]
		}
	}
	return nil
}

func conditionOf(cs []metav1.Condition, typ string) metav1.Condition {
	for _, c := range cs {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}
