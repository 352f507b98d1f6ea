package translate

import (
	"testing"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/internal/benchcfg"
)

// BenchmarkTranslate10k translates the reload benchmark's snapshot: one
// Gateway, one Backend and 10,000 HTTPRoutes, one per host.
func BenchmarkTranslate10k(b *testing.B) {
	s, err := config.Parse("bench.yaml", benchcfg.HostRoutes(10000))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res := Translate(s, Options{})
		if res.Config == nil || len(res.Config.Listeners) != 1 || len(res.Config.Listeners[0].Hosts[0].Routes) != 10000 {
			b.Fatal("unexpected translation")
		}
	}
}
