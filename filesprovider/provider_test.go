package filesprovider

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshgate/meshgate/config"
)

func ns(name string) string {
	return "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + name + "}\n"
}

// next waits (bounded) for the next settled update, skipping Tentative
// ones.
func next(t *testing.T, ch <-chan Update) Update {
	t.Helper()
	for {
		u := nextAny(t, ch)
		if !u.Tentative {
			return u
		}
	}
}

// nextAny waits (bounded) for the next update, Tentative or not.
func nextAny(t *testing.T, ch <-chan Update) Update {
	t.Helper()
	select {
	case u := <-ch:
		return u
	case <-time.After(5 * time.Second):
		t.Fatal("no update within 5s")
		return Update{}
	}
}

func names(s *config.Snapshot) []string {
	var out []string
	for _, n := range s.Namespaces {
		out = append(out, n.Name)
	}
	return out
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestProviderFolder(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), ns("a"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := make(chan Update)
	p := &Provider{Path: dir, Settle: 50 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, ch) }()

	u := next(t, ch)
	if u.Err != nil || len(names(u.Snapshot)) != 1 {
		t.Fatalf("initial: %v %v", u.Err, u.Snapshot)
	}

	// A new file in a new sub-folder is seen.
	write(t, filepath.Join(dir, "sub", "b.yaml"), ns("b"))
	if u = next(t, ch); u.Err != nil || len(names(u.Snapshot)) != 2 {
		t.Fatalf("after adding sub/b.yaml: %v %v", u.Err, names(u.Snapshot))
	}
	// A change inside the new sub-folder is seen too (it is watched).
	write(t, filepath.Join(dir, "sub", "b.yaml"), ns("b")+"---\n"+ns("c"))
	if u = next(t, ch); u.Err != nil || len(names(u.Snapshot)) != 3 {
		t.Fatalf("after editing sub/b.yaml: %v %v", u.Err, names(u.Snapshot))
	}
	// A broken file yields an error update naming file and line.
	write(t, filepath.Join(dir, "a.yaml"), "kind: [\n")
	u = next(t, ch)
	var pe *config.ParseError
	if !errors.As(u.Err, &pe) || pe.File != filepath.Join(dir, "a.yaml") {
		t.Fatalf("broken file: err = %v", u.Err)
	}
	// Replacing a file by rename (as editors do) is seen.
	tmp := filepath.Join(dir, ".a.yaml.tmp")
	write(t, tmp, ns("renamed"))
	if err := os.Rename(tmp, filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	if u = next(t, ch); u.Err != nil || names(u.Snapshot)[0] != "renamed" {
		t.Fatalf("after rename: %v %v", u.Err, u.Snapshot)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
}

func TestProviderCoalescesBursts(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "only.yaml")
	write(t, file, ns("v0"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := make(chan Update)
	p := &Provider{Path: file, Settle: 200 * time.Millisecond}
	go p.Run(ctx, ch)
	next(t, ch)
	// Other files in the same folder are not part of the config.
	write(t, filepath.Join(dir, "unrelated.log"), "noise")
	select {
	case u := <-ch:
		t.Fatalf("update for an unrelated file: %v", names(u.Snapshot))
	case <-time.After(500 * time.Millisecond):
	}
	// Many quick writes while nobody reads: the consumer then gets the
	// newest content, not a backlog.
	for i := 1; i <= 20; i++ {
		write(t, file, ns("v"+string(rune('a'+i))))
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(600 * time.Millisecond)
	u := next(t, ch)
	if got := names(u.Snapshot); len(got) != 1 || got[0] != "v"+string(rune('a'+20)) {
		t.Fatalf("got %v, want the last write", got)
	}
	select {
	case u := <-ch:
		t.Fatalf("unexpected extra update %v", names(u.Snapshot))
	case <-time.After(400 * time.Millisecond):
	}
}

func TestProviderMissingPath(t *testing.T) {
	p := &Provider{Path: filepath.Join(t.TempDir(), "missing")}
	if err := p.Run(context.Background(), make(chan Update)); err == nil {
		t.Fatal("missing path: no error")
	}
}

// TestProviderReusesUnchangedDocuments checks that reloads go through one
// config.Loader: an unchanged document's object is reused, and a rejected
// document stays rejected, reported at its new line.
func TestProviderReusesUnchangedDocuments(t *testing.T) {
	file := filepath.Join(t.TempDir(), "m.yaml")
	bad := "apiVersion: gateway.meshgate.dev/v1alpha1\nkind: Backend\nmetadata: {name: be}\nspec: {endpoints: []}\n"
	write(t, file, ns("a")+"---\n"+bad)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := make(chan Update)
	p := &Provider{Path: file, Settle: 20 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go func() { _ = p.Run(ctx, ch) }()

	first := next(t, ch)
	if first.Err != nil || len(first.Snapshot.Namespaces) != 1 || len(first.Snapshot.Rejected) != 1 {
		t.Fatalf("initial: %v %+v", first.Err, first.Snapshot)
	}
	write(t, file, ns("b")+"---\n"+ns("a")+"---\n"+bad)
	u := next(t, ch)
	if u.Err != nil || len(u.Snapshot.Namespaces) != 2 {
		t.Fatalf("after adding b: %v %v", u.Err, names(u.Snapshot))
	}
	if u.Snapshot.Namespaces[1] != first.Snapshot.Namespaces[0] {
		t.Error("the unchanged Namespace a was decoded again")
	}
	rej := u.Snapshot.Rejected
	if len(rej) != 1 || rej[0].Position != file+":9" || rej[0].Name != "be" {
		t.Errorf("rejected = %+v, want Backend be at %s:9", rej, file)
	}
}

// TestProviderSendsTentativeFirst checks that a change is sent twice: as
// soon as it pauses, marked Tentative, then once settled, with the same
// content; and that a file that does not parse is never sent as Tentative.
func TestProviderSendsTentativeFirst(t *testing.T) {
	file := filepath.Join(t.TempDir(), "m.yaml")
	write(t, file, ns("a"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := make(chan Update)
	// A long settle window, so the tentative update comes first even on
	// a loaded machine.
	p := &Provider{Path: file, Settle: time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go func() { _ = p.Run(ctx, ch) }()
	if u := nextAny(t, ch); u.Err != nil || u.Tentative {
		t.Fatalf("initial: err %v, tentative %v", u.Err, u.Tentative)
	}

	// Replaced by rename, so no load ever sees a half-written file.
	replace := func(content string) {
		tmp := filepath.Join(t.TempDir(), "new.yaml")
		write(t, tmp, content)
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	replace(ns("a") + "---\n" + ns("b"))
	tent := nextAny(t, ch)
	if !tent.Tentative || tent.Err != nil || len(names(tent.Snapshot)) != 2 {
		t.Fatalf("first after the change: tentative %v, err %v, %v", tent.Tentative, tent.Err, names(tent.Snapshot))
	}
	settled := nextAny(t, ch)
	if settled.Tentative || settled.Err != nil || settled.Snapshot.Hash() != tent.Snapshot.Hash() {
		t.Fatalf("then: tentative %v, err %v, same content %v", settled.Tentative, settled.Err, settled.Snapshot.Hash() == tent.Snapshot.Hash())
	}

	replace("kind: [\n")
	if u := nextAny(t, ch); u.Tentative || u.Err == nil {
		t.Fatalf("broken file: tentative %v, err %v", u.Tentative, u.Err)
	}
}
