package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// Backends in network namespaces. The Kubernetes API refuses loopback
// addresses in EndpointSlices, so tests that go through the API give each
// such backend a namespace of its own, joined to this one by a veth pair
// with a private /30: the gateway reaches the backend at a real, non-
// loopback address that exists only inside this test. Needs root (CI runs
// as root).

var netnsSeq atomic.Int64

// newNetnsBackend is newBackend listening at a private address in a new
// network namespace; its ip is what an EndpointSlice names.
func newNetnsBackend(t *testing.T, name string) (b *backend, ip string) {
	t.Helper()
	hostIP, nsIP, nsName := newNetns(t)
	_ = hostIP
	ln := listenInNetns(t, nsName, "tcp", net.JoinHostPort(nsIP, "0"))
	b = &backend{name: name}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(b.serve))
	b.srv.Listener.Close()
	b.srv.Listener = ln
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	b.port = ln.Addr().(*net.TCPAddr).Port
	return b, nsIP
}

// newNetns creates a network namespace linked to this one by a veth pair:
// hostIP on this side, nsIP inside. Both go when the test ends.
func newNetns(t *testing.T) (hostIP, nsIP, nsName string) {
	t.Helper()
	n := (int64(os.Getpid())*64 + netnsSeq.Add(1)) % 16384
	nsName = fmt.Sprintf("mgt%d-%d", os.Getpid(), netnsSeq.Load())
	hostIf, nsIf := fmt.Sprintf("mgh%d", n), fmt.Sprintf("mgn%d", n)
	hostIP = fmt.Sprintf("10.251.%d.%d", n>>6, (n&63)<<2|1)
	nsIP = fmt.Sprintf("10.251.%d.%d", n>>6, (n&63)<<2|2)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s (network namespaces need root and iproute2)", args, err, out)
		}
	}
	run("netns", "add", nsName)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsName).Run() })
	run("link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	t.Cleanup(func() { exec.Command("ip", "link", "del", hostIf).Run() })
	run("link", "set", nsIf, "netns", nsName)
	run("addr", "add", hostIP+"/30", "dev", hostIf)
	run("link", "set", hostIf, "up")
	run("-n", nsName, "addr", "add", nsIP+"/30", "dev", nsIf)
	run("-n", nsName, "link", "set", nsIf, "up")
	run("-n", nsName, "link", "set", "lo", "up")
	return hostIP, nsIP, nsName
}

// listenInNetns opens a listening socket inside network namespace ns. A
// socket stays in the namespace it was created in, so only its creation
// needs the thread switched over.
func listenInNetns(t *testing.T, ns, network, addr string) net.Listener {
	t.Helper()
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// This goroutine's thread is switched and never switched back:
		// it exits locked, so the runtime discards the thread.
		runtime.LockOSThread()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		ln, err := net.Listen(network, addr)
		ch <- result{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listen in %s: %v", ns, r.err)
	}
	return r.ln
}
