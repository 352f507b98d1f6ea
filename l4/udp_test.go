package l4

import (
	"context"
	"net"
	"testing"
	"time"
)

func TestUDPSessions(t *testing.T) {
	be := startUDPEcho(t)
	gw := startUDPGateway(t, udpListenerTo(be.addr()), quietOptions())
	c1, c2 := udpClient(t, gw.Addr()), udpClient(t, gw.Addr())
	for i, step := range []struct {
		c   *net.UDPConn
		msg string
	}{{c1, "one"}, {c2, "two"}, {c1, "one again"}, {c2, "two again"}} {
		if err := udpExchange(step.c, step.msg); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if st := gw.Stats(); st.UDPSessionsActive != 2 || st.Accepted != 2 {
		t.Fatalf("stats %+v, want 2 sessions", st)
	}
	if n := be.sourceCount(); n != 2 {
		t.Fatalf("backend saw %d source addresses, want one per session", n)
	}
	big := string(make([]byte, 60<<10))
	if err := udpExchange(c1, big); err != nil {
		t.Fatalf("60 KiB datagram: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if err := gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if st := gw.Stats(); st.UDPSessionsActive != 0 {
		t.Fatalf("stats %+v after Shutdown, want no sessions", st)
	}
}

func TestUDPSessionExpiry(t *testing.T) {
	be := startUDPEcho(t)
	opts := quietOptions()
	opts.IdleTimeout = 50 * time.Millisecond
	gw := startUDPGateway(t, udpListenerTo(be.addr()), opts)
	c := udpClient(t, gw.Addr())
	if err := udpExchange(c, "hello"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the session to expire", func() bool {
		st := gw.Stats()
		return st.UDPSessionsExpired == 1 && st.UDPSessionsActive == 0
	})
	// The same client gets a new session.
	if err := udpExchange(c, "hello again"); err != nil {
		t.Fatal(err)
	}
	if st := gw.Stats(); st.Accepted != 2 {
		t.Fatalf("stats %+v, want a second session", st)
	}
}

func TestUDPMaxSessions(t *testing.T) {
	be := startUDPEcho(t)
	opts := quietOptions()
	opts.MaxUDPSessions = 1
	gw := startUDPGateway(t, udpListenerTo(be.addr()), opts)
	c1, c2 := udpClient(t, gw.Addr()), udpClient(t, gw.Addr())
	if err := udpExchange(c1, "first"); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Write([]byte("over the limit")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the datagram to be dropped", func() bool { return gw.Stats().UDPSessionsDropped == 1 })
	if err := udpExchange(c1, "still served"); err != nil {
		t.Fatal(err)
	}
	if st := gw.Stats(); st.UDPSessionsActive != 1 || st.Accepted != 1 {
		t.Fatalf("stats %+v, want one session", st)
	}
	if n := be.sourceCount(); n != 1 {
		t.Fatalf("backend saw %d clients, want 1", n)
	}
}

func TestUDPFailures(t *testing.T) {
	t.Run("no route", func(t *testing.T) {
		gw, err := ListenUDP(context.Background(), "127.0.0.1:0", quietOptions())
		if err != nil {
			t.Fatal(err)
		}
		gw.Serve()
		defer gw.Shutdown(context.Background())
		c := udpClient(t, gw.Addr())
		c.Write([]byte("x"))
		waitFor(t, "no_route", func() bool { return gw.Stats().NoRoute == 1 })
	})
	t.Run("backend port closed", func(t *testing.T) {
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		dead := pc.LocalAddr().String()
		pc.Close()
		gw := startUDPGateway(t, udpListenerTo(dead), quietOptions())
		c := udpClient(t, gw.Addr())
		// The port-unreachable answer ends the session; the next
		// datagram starts another.
		for i := 0; i < 50 && gw.Stats().ConnectFailed == 0; i++ {
			c.Write([]byte("anyone?"))
			time.Sleep(5 * time.Millisecond)
		}
		waitFor(t, "the backend error to end the session", func() bool {
			st := gw.Stats()
			return st.ConnectFailed >= 1 && st.UDPSessionsActive == 0
		})
	})
}
