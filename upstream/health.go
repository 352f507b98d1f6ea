package upstream

import "time"

// observe feeds one outcome to outlier detection (consecutive 5xx and
// consecutive gateway errors) and ejects the endpoint when a count reaches
// its threshold. A gateway error also counts as a 5xx, as Envoy counts
// local-origin failures when it does not split them.
func (st *backendState) observe(es *endpointState, o Outcome) {
	v := st.view.Load()
	if !v.hasOutlier {
		return
	}
	od := &v.outlier
	gw := o.GatewayError || o.Status == 502 || o.Status == 503 || o.Status == 504
	fail := gw || o.Status >= 500
	trip := false
	if n := od.Consecutive5xx; n > 0 {
		if fail {
			trip = es.c5xx.Add(1) >= int64(n)
		} else if es.c5xx.Load() != 0 {
			es.c5xx.Store(0)
		}
	}
	if n := od.ConsecutiveGatewayErrors; n > 0 {
		if gw {
			trip = es.cgw.Add(1) >= int64(n) || trip
		} else if es.cgw.Load() != 0 {
			es.cgw.Store(0)
		}
	}
	if trip {
		st.eject(es)
	}
}

// eject takes es out of rotation for BaseEjectionTime times the number of
// times it was ejected, at most MaxEjectionTime, unless that would eject
// more than floor(MaxEjectionPercent × endpoints / 100) endpoints at once
// (Envoy's rule without always_eject_one_host: 10% of 5 endpoints ejects
// none). Either way the failure counts start again, so another run of
// failures tries again.
func (st *backendState) eject(es *endpointState) {
	st.mu.Lock()
	defer st.mu.Unlock()
	es.resetFailures()
	v := st.view.Load()
	if i, ok := v.index[es.addr]; !ok || v.eps[i].st != es || !v.hasOutlier {
		return // removed by a reload meanwhile
	}
	now := st.clock()
	if es.ejectedUntil.Load() > now {
		return
	}
	ejected := 0
	for i := range v.eps {
		if v.eps[i].st.ejectedUntil.Load() > now {
			ejected++
		}
	}
	od := &v.outlier
	if ejected >= int(od.MaxEjectionPercent*float64(len(v.eps))/100) {
		return
	}
	es.ejectionCount++
	d := od.MaxEjectionTime
	if k := time.Duration(es.ejectionCount); k <= od.MaxEjectionTime/od.BaseEjectionTime {
		d = min(od.BaseEjectionTime*k, od.MaxEjectionTime)
	}
	es.ejectedUntil.Store(now + int64(d))
	st.ejections.Add(1)
	st.rebuild(v.layout, now)
}

// SetHealth records an active health check's verdict on an endpoint of a
// backend: unhealthy endpoints leave rotation (unless the backend panics),
// healthy ones return. Endpoints are healthy until a check says otherwise.
// The mark lasts as long as the endpoint stays in the config; a backend or
// address the Balancer does not know is ignored, so checks must start after
// Update.
func (bl *Balancer) SetHealth(backend, address string, healthy bool) {
	st := bl.lookup(backend)
	if st == nil {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	es := st.eps[address]
	if es == nil || es.unhealthy.Swap(!healthy) == !healthy {
		return
	}
	st.rebuild(st.view.Load().layout, st.clock())
}
