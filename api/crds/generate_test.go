package crds

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// controllerGen is the controller-gen binary scripts/test-deps.sh builds
// into the tools cache, at the version it pins.
func controllerGen(t *testing.T, root string) string {
	t.Helper()
	deps, err := os.ReadFile(filepath.Join(root, "scripts", "test-deps.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^build_tool controller-gen (\S+) (\S+)$`).FindSubmatch(deps)
	if m == nil {
		t.Fatal("scripts/test-deps.sh has no `build_tool controller-gen MODULE VERSION` line")
	}
	tools := os.Getenv("MESHGATE_TOOLS")
	if tools == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		tools = filepath.Join(home, ".cache", "meshgate")
	}
	bin := filepath.Join(tools, "controller-gen-"+string(m[2]), "controller-gen")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("controller-gen %s is not in the tools cache (%v); `make test` installs it (scripts/test-deps.sh)", m[2], err)
	}
	return bin
}

// TestGeneratedFilesUpToDate regenerates the CRDs and deepcopy functions from
// the Go types and compares them with the committed ones.
func TestGeneratedFilesUpToDate(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bin := controllerGen(t, root)
	out := t.TempDir()
	cmd := exec.Command(bin, "object", "crd", "paths=./api/v1alpha1/...", "output:crd:dir="+out, "output:object:dir="+out)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen: %v\n%s", err, b)
	}

	want := map[string]string{ // generated file -> committed file
		"zz_generated.deepcopy.go": filepath.Join(root, "api", "v1alpha1", "zz_generated.deepcopy.go"),
	}
	generated, _ := filepath.Glob(filepath.Join(out, "*.yaml"))
	committed, _ := filepath.Glob(filepath.Join(root, "api", "crds", "*.yaml"))
	names := func(paths []string) []string {
		var n []string
		for _, p := range paths {
			n = append(n, filepath.Base(p))
		}
		slices.Sort(n)
		return n
	}
	if g, c := names(generated), names(committed); !slices.Equal(g, c) {
		t.Errorf("api/crds holds %v, the Go types generate %v; run make generate", c, g)
	}
	for _, g := range generated {
		want[filepath.Base(g)] = filepath.Join(root, "api", "crds", filepath.Base(g))
	}
	for gen, com := range want {
		g, err := os.ReadFile(filepath.Join(out, gen))
		if err != nil {
			t.Fatal(err)
		}
		c, err := os.ReadFile(com)
		if err != nil {
			t.Errorf("%v; run make generate", err)
			continue
		}
		if !bytes.Equal(g, c) {
			rel, _ := filepath.Rel(root, com)
			t.Errorf("%s differs from what the Go types in api/v1alpha1 generate; run make generate", rel)
		}
	}
}
