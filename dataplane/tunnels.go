package dataplane

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// TunnelLimits bound WebSocket (and other Upgrade) tunnels.
type TunnelLimits struct {
	// IdleTimeout closes a tunnel with no traffic either way for this long;
	// 0 means never.
	IdleTimeout time.Duration
	// MaxLifetime closes a tunnel this long after it opened; 0 means never.
	MaxLifetime time.Duration
	// RemovedRouteGrace is how long a tunnel may go on after a reload
	// removed its route (or listener); 30 s when zero. Tunnels on routes a
	// reload keeps are never closed by it.
	RemovedRouteGrace time.Duration
}

// tunnelSet tracks open tunnels by listener address and route name, so that
// Apply can close exactly the tunnels whose route went away.
type tunnelSet struct {
	mu   sync.Mutex
	open map[*openTunnel]struct{}
}

type openTunnel struct {
	addr, route string
	goAway      func(reason string)
	// doom, when set, is the timer that will stop the tunnel because its
	// route was removed; a reload that brings the route back cancels it.
	doom *time.Timer
}

// add registers a tunnel and returns the function that forgets it.
func (s *tunnelSet) add(addr, route string, goAway func(string)) func() {
	t := &openTunnel{addr: addr, route: route, goAway: goAway}
	s.mu.Lock()
	if s.open == nil {
		s.open = map[*openTunnel]struct{}{}
	}
	s.open[t] = struct{}{}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.open, t)
		if t.doom != nil {
			t.doom.Stop()
		}
		s.mu.Unlock()
	}
}

// reconcile schedules every tunnel whose route is not in routes (by address,
// then route name) to close after grace, and reprieves doomed tunnels whose
// route is back.
func (s *tunnelSet) reconcile(routes map[string]map[string]bool, grace time.Duration, log *slog.Logger) {
	s.mu.Lock()
	defer s.mu.Unlock()
	doomed := 0
	for t := range s.open {
		kept := routes[t.addr][t.route]
		switch {
		case kept && t.doom != nil:
			t.doom.Stop()
			t.doom = nil
		case !kept && t.doom == nil:
			t.doom = time.AfterFunc(grace, func() { t.goAway("route_removed") })
			doomed++
		}
	}
	if doomed > 0 {
		log.Info("tunnels of removed routes will close", "count", doomed, "grace", grace.String())
	}
}

// len is the number of open tunnels, for tests.
func (s *tunnelSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// drain lets open tunnels run until ctx ends, then sends each a WebSocket
// close 1001 ("going away") and waits a little for them to end.
func (s *tunnelSet) drain(ctx context.Context) {
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	for s.len() > 0 {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			for t := range s.open {
				t.goAway("shutdown")
			}
			s.mu.Unlock()
			for i := 0; i < 4 && s.len() > 0; i++ {
				time.Sleep(100 * time.Millisecond)
			}
			return
		case <-poll.C:
		}
	}
}
