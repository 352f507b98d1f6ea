package upstream

import (
	"context"
	"fmt"
	"sync"

	"github.com/meshgate/meshgate/ir"
)

// Retry budget defaults, used when a Retry sets neither field (a budget
// that allows no retry at all is never what a config means).
const (
	defaultBudgetPercent       = 20
	defaultMinRetryConcurrency = 3
)

// AcquireRetry asks for a retry slot on b before a retry is sent. It
// refuses (ok false, counted in Stats) when CircuitBreaker.MaxRetries
// retries are in flight on b, or when the retries in flight reach the
// budget: max(r.MinRetryConcurrency, r.BudgetPercent% of the requests in
// flight on b). A nil r applies only the breaker. release, never nil, must
// be called once when the retry attempt ends; it does not allocate.
func (bl *Balancer) AcquireRetry(b *ir.Backend, r *ir.Retry) (release func(), ok bool) {
	if b == nil {
		return noop, false
	}
	st := bl.state(b.Name)
	v := st.viewFor(b)
	n := st.retries.Add(1)
	if v.maxRetries > 0 && n > v.maxRetries {
		st.retries.Add(-1)
		st.breakerRejections.Add(1)
		return noop, false
	}
	if r != nil {
		pct, minimum := r.BudgetPercent, int64(r.MinRetryConcurrency)
		if pct <= 0 && minimum <= 0 {
			pct, minimum = defaultBudgetPercent, defaultMinRetryConcurrency
		}
		limit := max(minimum, int64(pct*float64(st.inFlight.Load())/100))
		if n > limit {
			st.retries.Add(-1)
			st.budgetRejections.Add(1)
			return noop, false
		}
	}
	return st.releaseRetry, true
}

func (st *backendState) endRetry() { st.retries.Add(-1) }

// AcquireConn asks for a connection slot on b before the proxy dials a new
// upstream connection; release, never nil, must be called once when that
// connection closes. Without CircuitBreaker.MaxConnections it returns at
// once a release that does nothing. At the cap the caller waits, as a
// pending request, until a connection closes or ctx ends (the error then
// wraps ctx.Err()); when MaxPendingRequests callers already wait it fails
// at once with ErrCircuitOpen. Waiters are served in arrival order.
func (bl *Balancer) AcquireConn(ctx context.Context, b *ir.Backend) (release func(), err error) {
	if b == nil {
		return noop, nil
	}
	st := bl.state(b.Name)
	v := st.viewFor(b)
	if v.maxConns <= 0 {
		return noop, nil
	}
	c := &st.conns
	c.mu.Lock()
	c.max = v.maxConns
	if c.open < c.max && len(c.waiters) == 0 {
		c.open++
		c.mu.Unlock()
		return st.releaseConn, nil
	}
	if v.maxPending > 0 && int64(len(c.waiters)) >= v.maxPending {
		c.mu.Unlock()
		st.breakerRejections.Add(1)
		return noop, ErrCircuitOpen
	}
	w := make(chan struct{})
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	select {
	case <-w:
		return st.releaseConn, nil
	case <-ctx.Done():
	}
	c.mu.Lock()
	i := -1
	for k, x := range c.waiters {
		if x == w {
			i = k
			break
		}
	}
	if i >= 0 {
		c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
	}
	c.mu.Unlock()
	if i < 0 {
		// A slot was handed over as ctx ended: pass it on.
		c.release()
	}
	return noop, fmt.Errorf("upstream %s: waiting for a connection slot: %w", st.name, ctx.Err())
}

// connLimiter counts a backend's open connections and queues the callers
// waiting for one to close.
type connLimiter struct {
	mu   sync.Mutex
	open int64
	// max is the cap of the latest AcquireConn, so a release under a
	// lowered cap does not wake a waiter.
	max     int64
	waiters []chan struct{}
}

// release frees a slot, or hands it to the first waiter.
func (c *connLimiter) release() {
	c.mu.Lock()
	c.open--
	for c.open < c.max && len(c.waiters) > 0 {
		w := c.waiters[0]
		c.waiters[0] = nil
		c.waiters = c.waiters[1:]
		c.open++
		close(w)
	}
	c.mu.Unlock()
}
