package metrics

import "testing"

func TestAuthDenied(t *testing.T) {
	m := New(Options{})
	tests := []struct {
		policy, section, reason string
		status                  int
	}{
		{"default/tiers", "jwt", "auth_invalid_jwt", 401},
		{"default/tiers", "jwt", "auth_invalid_jwt", 401},
		{"default/tiers", "jwt", "auth_forbidden", 403},
		{"default/office", "ipAccess", "auth_denied_ip", 403},
		{"", "", "no_route", 404}, // not a denial: no series
	}
	for _, tc := range tests {
		r := okRequest()
		r.Backend, r.Status, r.Reason = "", tc.status, tc.reason
		r.DeniedPolicy, r.DeniedSection = tc.policy, tc.section
		m.ObserveRequest(&r)
	}
	want := `meshgate_auth_denied_requests_total{policy="default/office",reason="auth_denied_ip",section="ipAccess"} 1
meshgate_auth_denied_requests_total{policy="default/tiers",reason="auth_forbidden",section="jwt"} 1
meshgate_auth_denied_requests_total{policy="default/tiers",reason="auth_invalid_jwt",section="jwt"} 2`
	if got := dump(t, m.Registry(), "meshgate_auth_denied_requests_total"); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
