package upstream

import (
	"slices"
	"strings"
)

// BackendStats is a snapshot of one backend's state, for metrics and the
// admin API.
type BackendStats struct {
	// Name is the backend's ir.Backend.Name.
	Name string
	// Endpoints in the config; Healthy of them neither ejected nor
	// failing health checks (draining ones included); Ejected of them by
	// outlier detection now.
	Endpoints, Healthy, Ejected int
	// InFlight requests (Picks not yet Done), RetriesInFlight holding a
	// retry slot, Connections holding a connection slot (counted only
	// with CircuitBreaker.MaxConnections) and PendingConnections waiting
	// for one.
	InFlight, RetriesInFlight, Connections int64
	PendingConnections                     int
	// BreakerRejections counts, since the backend appeared, requests,
	// retries and connection waits refused by a circuit breaker cap;
	// RetryBudgetRejections retries refused by the retry budget;
	// Ejections outlier ejections.
	BreakerRejections, RetryBudgetRejections, Ejections uint64
	// Panic is true when too few endpoints are healthy
	// (Backend.PanicThreshold) and all of them take traffic.
	Panic bool
}

// Stats returns a snapshot of every backend, sorted by name.
func (bl *Balancer) Stats() []BackendStats {
	m := bl.states.Load()
	if m == nil {
		return nil
	}
	out := make([]BackendStats, 0, len(*m))
	for _, st := range *m {
		s := BackendStats{
			Name:                  st.name,
			InFlight:              st.inFlight.Load(),
			RetriesInFlight:       st.retries.Load(),
			BreakerRejections:     st.breakerRejections.Load(),
			RetryBudgetRejections: st.budgetRejections.Load(),
			Ejections:             st.ejections.Load(),
		}
		st.conns.mu.Lock()
		s.Connections, s.PendingConnections = st.conns.open, len(st.conns.waiters)
		st.conns.mu.Unlock()
		if v := st.view.Load(); v != nil {
			now := st.clock()
			s.Endpoints = len(v.eps)
			for i := range v.eps {
				es := v.eps[i].st
				switch {
				case es.ejectedUntil.Load() > now:
					s.Ejected++
				case !es.unhealthy.Load():
					s.Healthy++
				}
			}
			s.Panic = v.panicAt > 0 && float64(s.Healthy)*100 < v.panicAt*float64(s.Endpoints)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b BackendStats) int { return strings.Compare(a.Name, b.Name) })
	return out
}
