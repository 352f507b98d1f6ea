package e2e

import (
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// h2specVersion is the h2spec that scripts/test-deps.sh builds.
const h2specVersion = "v2.2.1+incompatible"

// knownH2specFailures are cases that fail because of how golang.org/x/net's
// HTTP/2 server (and net/http's h2c preface detection) behave, not because of
// Meshgate code. The test fails if any other case fails, so a regression
// shows, and also if one of these starts passing, so the list stays true.
var knownH2specFailures = map[string]map[string]bool{
	"tls": {
		"http2/4.2 Sends a large size HEADERS frame that exceeds the SETTINGS_MAX_FRAME_SIZE":                          true,
		"http2/6.5.3 Sends multiple values of SETTINGS_INITIAL_WINDOW_SIZE":                                            true,
		"http2/8.1.2.2 Sends a HEADERS frame that contains the connection-specific header field":                       true,
		"http2/8.1.2.2 Sends a HEADERS frame that contains the TE header field with any value other than \"trailers\"": true,
	},
	"h2c": {
		"http2/3.5 Sends invalid connection preface":                                                                   true,
		"http2/4.2 Sends a large size HEADERS frame that exceeds the SETTINGS_MAX_FRAME_SIZE":                          true,
		"http2/6.5.3 Sends multiple values of SETTINGS_INITIAL_WINDOW_SIZE":                                            true,
		"http2/8.1.2.2 Sends a HEADERS frame that contains the connection-specific header field":                       true,
		"http2/8.1.2.2 Sends a HEADERS frame that contains the TE header field with any value other than \"trailers\"": true,
	},
}

func h2specPath(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MESHGATE_TOOLS")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "meshgate")
	}
	p := filepath.Join(dir, "h2spec-"+h2specVersion, "h2spec")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("h2spec not found at %s: run `make test-deps` (make test does it): %v", p, err)
	}
	return p
}

type junit struct {
	Suites []struct {
		Package string `xml:"package,attr"`
		Cases   []struct {
			Package   string    `xml:"package,attr"`
			Classname string    `xml:"classname,attr"`
			Failure   *struct{} `xml:"failure"`
			Error     *struct{} `xml:"error"`
			Skipped   *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// TestH2spec runs the h2spec conformance suite for HTTP/2 (RFC 7540/9113 and
// HPACK) against the gateway's TLS (ALPN h2) and cleartext (h2c prior
// knowledge) listeners, proxying to a real backend.
func TestH2spec(t *testing.T) {
	t.Parallel()
	bin := h2specPath(t)
	ip := newLoopbackIP(t)
	pTLS, pPlain := freePort(t, ip), freePort(t, ip)
	cert := newTestCert(t, "h2spec.test")
	be := newBackend(t, "h2spec")
	cfg := gatewayYAML(ip,
		listener{name: "https", port: pTLS, protocol: "HTTPS", certs: []string{"h2spec-tls"}},
		listener{name: "http", port: pPlain},
	) + cert.secretYAML("h2spec-tls") + be.yaml() + simpleRoute("all", nil, "h2spec")
	startGateway(t, ip, cfg)

	modes := []struct {
		name string
		port int
		args []string
	}{
		{"tls", pTLS, []string{"-t", "-k"}},
		{"h2c", pPlain, nil},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			report := filepath.Join(t.TempDir(), "report.xml")
			args := append([]string{"-h", ip, "-p", strconv.Itoa(m.port), "-o", "3", "-j", report}, m.args...)
			cmd := exec.Command(bin, args...)
			done := make(chan struct{})
			var out []byte
			go func() { out, _ = cmd.CombinedOutput(); close(done) }()
			select {
			case <-done:
			case <-time.After(3 * time.Minute):
				cmd.Process.Kill()
				<-done
				t.Fatalf("h2spec did not finish in 3 minutes:\n%s", out)
			}
			data, err := os.ReadFile(report)
			if err != nil {
				t.Fatalf("h2spec wrote no report (%v):\n%s", err, out)
			}
			var r junit
			if err := xml.Unmarshal(data, &r); err != nil {
				t.Fatal(err)
			}
			total, passed := 0, 0
			var unexpected, fixed []string
			failed := map[string]bool{}
			for _, s := range r.Suites {
				for _, c := range s.Cases {
					total++
					id := c.Package + " " + c.Classname
					if c.Failure != nil || c.Error != nil {
						failed[id] = true
						if !knownH2specFailures[m.name][id] {
							unexpected = append(unexpected, id)
						}
					} else if c.Skipped == nil {
						passed++
					}
				}
			}
			for id := range knownH2specFailures[m.name] {
				if !failed[id] {
					fixed = append(fixed, id)
				}
			}
			sort.Strings(unexpected)
			sort.Strings(fixed)
			t.Logf("h2spec %s: %d cases, %d passed, %d known failures", m.name, total, passed, len(failed)-len(unexpected))
			if total < 140 {
				t.Errorf("h2spec ran only %d cases:\n%s", total, out)
			}
			if len(unexpected) > 0 {
				t.Errorf("new h2spec failures:\n  %s\n%s", strings.Join(unexpected, "\n  "), out)
			}
			if len(fixed) > 0 {
				t.Errorf("known failures now pass; remove them from knownH2specFailures:\n  %s", strings.Join(fixed, "\n  "))
			}
		})
	}
}
