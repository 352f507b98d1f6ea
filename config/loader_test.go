package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	loaderRouteA   = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: a}\nspec: {}\n"
	loaderRouteB   = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: b}\nspec: {}\n"
	loaderBadRoute = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: bad}\nspec: {rulez: []}\n"
	loaderBackend  = "apiVersion: gateway.meshgate.dev/v1alpha1\nkind: Backend\nmetadata: {name: be}\nspec: {endpoints: [{address: a, port: 1}]}\n"
	loaderBadBE    = "apiVersion: gateway.meshgate.dev/v1alpha1\nkind: Backend\nmetadata: {name: be}\nspec: {endpoints: []}\n"
	loaderIgnored  = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"
)

func joinDocs(docs ...string) string { return strings.Join(docs, "---\n") }

// TestLoaderReload loads a first file, then a second one, with one Loader
// and with a fresh one: the results must be the same (positions included),
// and objects of documents that did not change must be reused.
func TestLoaderReload(t *testing.T) {
	tests := []struct {
		name          string
		first, second string
		// reused are the HTTPRoute names whose object must be the one
		// of the first load.
		reused []string
	}{
		{
			name:   "one document added",
			first:  joinDocs(loaderRouteA),
			second: joinDocs(loaderRouteA, loaderRouteB),
			reused: []string{"a"},
		},
		{
			name:   "documents moved report their new lines",
			first:  joinDocs(loaderBadRoute, loaderRouteA, loaderIgnored),
			second: joinDocs(loaderRouteB, loaderRouteA, loaderIgnored, loaderBadRoute),
			reused: []string{"a"},
		},
		{
			name:   "a valid Backend made invalid is validated again",
			first:  joinDocs(loaderBackend, loaderRouteA),
			second: joinDocs(loaderBadBE, loaderRouteA),
			reused: []string{"a"},
		},
		{
			name:   "an invalid Backend made valid is accepted",
			first:  joinDocs(loaderBadBE),
			second: joinDocs(loaderBackend),
		},
		{
			name:   "a cached document repeated is a duplicate",
			first:  joinDocs(loaderRouteA),
			second: joinDocs(loaderRouteA, loaderRouteA),
			reused: []string{"a"},
		},
		{
			name:   "a changed document is decoded again",
			first:  joinDocs(loaderRouteA),
			second: joinDocs(strings.Replace(loaderRouteA, "spec: {}", "spec: {hostnames: [x.example]}", 1)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.yaml")
			write := func(s string) {
				if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var l Loader
			write(tt.first)
			s1, err := l.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			write(tt.second)
			s2, err := l.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			fresh, err := LoadPath(path)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := mustJSON(t, s2), mustJSON(t, fresh); got != want {
				t.Errorf("cached load differs from a fresh one:\n got %s\nwant %s", got, want)
			}
			if !slices.Equal(s2.Rejected, fresh.Rejected) || !slices.Equal(s2.Ignored, fresh.Ignored) {
				t.Errorf("problems differ:\n got %v %v\nwant %v %v", s2.Rejected, s2.Ignored, fresh.Rejected, fresh.Ignored)
			}
			for _, r2 := range s2.HTTPRoutes {
				reused := false
				for _, r1 := range s1.HTTPRoutes {
					reused = reused || r1 == r2
				}
				if want := slices.Contains(tt.reused, r2.Name); reused != want {
					t.Errorf("HTTPRoute %s reused = %v, want %v", r2.Name, reused, want)
				}
			}
			if len(l.docs) != len(splitDocuments([]byte(tt.second)))-countRepeats(tt.second) {
				t.Errorf("cache holds %d documents, want those of the last load", len(l.docs))
			}
		})
	}
}

// countRepeats is how many documents of s repeat an earlier one.
func countRepeats(s string) int {
	seen, n := map[string]bool{}, 0
	for _, d := range splitDocuments([]byte(s)) {
		if seen[string(d.data)] {
			n++
		}
		seen[string(d.data)] = true
	}
	return n
}

// TestLoaderParseErrorKeepsCache checks that a file that does not parse
// fails the load, reports its own line, and leaves the documents of the last
// good load remembered.
func TestLoaderParseErrorKeepsCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.yaml")
	var l Loader
	if err := os.WriteFile(path, []byte(joinDocs(loaderRouteA)), 0o600); err != nil {
		t.Fatal(err)
	}
	s1, err := l.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(joinDocs(loaderRouteA, "a: [\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Load(path); err == nil || !strings.Contains(err.Error(), "m.yaml:6") {
		t.Fatalf("err = %v, want a parse error at m.yaml:6", err)
	}
	if err := os.WriteFile(path, []byte(joinDocs(loaderRouteA, loaderRouteB)), 0o600); err != nil {
		t.Fatal(err)
	}
	s3, err := l.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(s3.HTTPRoutes) != 2 || s3.HTTPRoutes[0] != s1.HTTPRoutes[0] {
		t.Errorf("after a parse error the last good documents were not reused: %v", s3.HTTPRoutes)
	}
}

func mustJSON(t *testing.T, s *Snapshot) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
