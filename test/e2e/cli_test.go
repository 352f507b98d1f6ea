package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runCLI runs the gateway binary with args and returns its exit code and
// combined output.
func runCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gatewayBin, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	}
	t.Fatalf("gateway %s: %v", strings.Join(args, " "), err)
	return 0, ""
}

// TestCLI covers `gateway validate` and `gateway version`.
func TestCLI(t *testing.T) {
	t.Parallel()

	t.Run("validate demo config", func(t *testing.T) {
		t.Parallel()
		code, out := runCLI(t, "validate", "--config", filepath.Join(moduleRoot, "examples", "demo"))
		if code != 0 {
			t.Fatalf("exit %d, want 0:\n%s", code, out)
		}
		if !strings.Contains(out, "configuration valid") || strings.Contains(out, "REJECTED") {
			t.Fatalf("unexpected output:\n%s", out)
		}
	})

	t.Run("validate bad objects", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		cfg := gatewayYAML("127.0.0.1", listener{name: "http", port: 8080}) + backendYAML("be", 9999) + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: bad-regex
  namespace: default
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: RegularExpression, value: "/x/(unclosed"}}]
    backendRefs: [` + ref("be") + `]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: bad-field
  namespace: default
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [` + ref("be") + `]
    bogusField: 1
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: fine
  namespace: default
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [` + ref("be") + `]
`
		path := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out := runCLI(t, "validate", "--config", path)
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, out)
		}
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^REJECTED +HTTPRoute default/bad-regex\b.*spec\.rules\[0\]\.matches\[0\]\.path\.value`),
			regexp.MustCompile(`(?m)^REJECTED +HTTPRoute default/bad-field\b.*bogusField`),
			regexp.MustCompile(`(?m)^ACCEPTED +HTTPRoute default/fine$`),
		} {
			if !want.MatchString(out) {
				t.Errorf("output does not match %s:\n%s", want, out)
			}
		}
	})

	t.Run("validate YAML syntax error", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		// The error is on line 9 of the file, in its second document.
		cfg := `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: meshgate
spec:
  controllerName: gateway.meshgate.dev/controller
---
apiVersion: v1
kind: Secret: bad
metadata:
  name: x
`
		path := filepath.Join(dir, "syntax.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out := runCLI(t, "validate", "--config", path)
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, out)
		}
		if !regexp.MustCompile(`(?m)^REJECTED +` + regexp.QuoteMeta(path) + `:9: `).MatchString(out) {
			t.Fatalf("output does not name %s:9:\n%s", path, out)
		}
		t.Logf("output: %s", strings.TrimSpace(out))
	})

	t.Run("version", func(t *testing.T) {
		t.Parallel()
		code, out := runCLI(t, "version")
		if code != 0 || !strings.HasPrefix(out, "gateway ") {
			t.Fatalf("exit %d output %q, want 0 and \"gateway ...\"", code, out)
		}
	})

	t.Run("unknown command", func(t *testing.T) {
		t.Parallel()
		if code, out := runCLI(t, "frobnicate"); code != 2 {
			t.Fatalf("exit %d, want 2:\n%s", code, out)
		}
	})
}
