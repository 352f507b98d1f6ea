package controller

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/internal/benchcfg"
	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/router"
)

// compilingApplier is the data plane's share of a reload that is not I/O:
// it compiles every listener's route table.
type compilingApplier struct{}

func (a *compilingApplier) Apply(cfg *ir.Config) ([]ir.Unbound, error) {
	for _, l := range cfg.Listeners {
		if _, err := router.Compile(l); err != nil {
			return nil, fmt.Errorf("listener %s: %w", l.Name, err)
		}
	}
	return nil, nil
}

// BenchmarkReload10k is one reload of the reload benchmark without its
// waits: read and validate a file of 10,000 HTTPRoutes, translate it, diff
// it against the config in force and compile its route table. Iterations
// alternate between 10,000 and 10,001 routes, so each is a real change, as
// when bench/run.sh renames a file with one more route over the old one.
// "loader" reuses one config.Loader, as the files provider does; "cold"
// decodes every document every time, as `gateway validate` does.
func BenchmarkReload10k(b *testing.B) {
	dir := b.TempDir()
	files := [2]string{filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")}
	for i, f := range files {
		if err := os.WriteFile(f, benchcfg.HostRoutes(10000+i), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	loads := []struct {
		name string
		load func() func(string) (*config.Snapshot, error)
	}{
		{"loader", func() func(string) (*config.Snapshot, error) { return (&config.Loader{}).Load }},
		{"cold", func() func(string) (*config.Snapshot, error) { return config.LoadPath }},
	}
	for _, l := range loads {
		b.Run(l.name, func(b *testing.B) {
			load := l.load()
			c := &Controller{Data: &compilingApplier{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			reload := func(i int) {
				s, err := load(files[i%2])
				if err != nil {
					b.Fatal(err)
				}
				if len(s.Rejected) > 0 {
					b.Fatalf("rejected: %v", s.Rejected)
				}
				if !c.Handle(config.Update{Snapshot: s}) {
					b.Fatal("reload not applied")
				}
			}
			reload(1) // the config in force before the first timed reload
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				reload(i)
			}
			b.StopTimer()
			if got := c.Generation(); got != int64(b.N+1) {
				b.Fatalf("generation %d after %d reloads", got, b.N+1)
			}
		})
	}
}
