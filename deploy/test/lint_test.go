package deploytest

import (
	"path/filepath"
	"testing"

	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// TestHelmLint runs `helm lint`'s rules (Chart.yaml, values, templates
// rendered and parsed) and fails on warnings and errors; INFO messages (such
// as "icon is recommended") are only logged.
func TestHelmLint(t *testing.T) {
	for name, vals := range map[string]map[string]any{
		"defaults": nil,
		"NodePort": {"service": map[string]any{"type": "NodePort"}},
	} {
		l := lint.All(filepath.Join(root(t), "deploy", "helm", "meshgate"), vals, namespace, false)
		for _, m := range l.Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("helm lint (%s): %v", name, m)
			} else {
				t.Logf("helm lint (%s): %v", name, m)
			}
		}
	}
}
