package server

import (
	"net"
	"testing"
	"time"
)

// deadlineConn records the read deadlines set on it.
type deadlineConn struct {
	net.Conn
	set []time.Time
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.set = append(c.set, t)
	return nil
}

func TestSetWaitDeadline(t *testing.T) {
	now := time.Now()
	const d = 2 * time.Second
	tests := []struct {
		name  string
		rdl   time.Time // in force before
		reset bool      // whether a new deadline is set
	}{
		{"none in force", time.Time{}, true},
		{"in force ends just before the wanted one", now.Add(d - time.Millisecond), false},
		{"in force ends at the wanted one", now.Add(d), false},
		{"in force ends an eighth or more sooner", now.Add(d - d/8), true},
		{"in force already passed", now.Add(-time.Second), true},
		{"in force ends later (header timeout)", now.Add(10 * time.Second), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &deadlineConn{}
			hc := &h1Conn{c: c, rdl: tt.rdl}
			hc.setWaitDeadline(now, d)
			if got := len(c.set) == 1; got != tt.reset {
				t.Fatalf("deadline set = %v, want %v", got, tt.reset)
			}
			want := tt.rdl
			if tt.reset {
				want = now.Add(d)
				if !c.set[0].Equal(want) {
					t.Fatalf("set %v, want %v", c.set[0], want)
				}
			}
			if !hc.rdl.Equal(want) {
				t.Fatalf("rdl = %v, want %v", hc.rdl, want)
			}
		})
	}
}
