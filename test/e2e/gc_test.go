package e2e

import (
	"io"
	"net/http"
	"regexp"
	"testing"
)

// TestGCPercent: the gateway runs the Go GC at --gc-percent (200 unless
// told otherwise), and GOGC in the environment wins over the flag, as
// go_gc_gogc_percent on /metrics shows.
func TestGCPercent(t *testing.T) {
	tests := []struct {
		name  string
		env   string // GOGC, "" for unset
		flags []string
		want  string
	}{
		{name: "default", want: "200"},
		{name: "flag", flags: []string{"--gc-percent", "150"}, want: "150"},
		{name: "runtime default", flags: []string{"--gc-percent", "-1"}, want: "100"},
		{name: "GOGC wins", env: "250", flags: []string{"--gc-percent", "150"}, want: "250"},
	}
	gogc := regexp.MustCompile(`(?m)^go_gc_gogc_percent (\S+)$`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("GOGC", tc.env)
			}
			ip := newLoopbackIP(t)
			g := startGateway(t, ip, gatewayYAML(ip, listener{name: "http", port: freePort(t, ip)}), tc.flags...)
			resp, err := http.Get("http://" + g.adminAddr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			m := gogc.FindSubmatch(body)
			if m == nil {
				t.Fatal("no go_gc_gogc_percent on /metrics")
			}
			if string(m[1]) != tc.want {
				t.Errorf("go_gc_gogc_percent %s, want %s", m[1], tc.want)
			}
		})
	}
}
