package conformance

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// envInNamespace marks the re-executed test binary.
const envInNamespace = "MESHGATE_CONFORMANCE_NETNS"

// TestMain re-executes the test binary in private network and mount
// namespaces (unshare --net --mount), so the run has its own loopback (the
// gateway binds 127.100.x.y on ports 80/443/8080 without clashing with
// anything else on the machine), its own pod bridge and network
// namespaces, and nothing it starts can reach the outside network. The pid
// stays the same (exec), so `go test` and -timeout behave as usual, and
// every namespace disappears with the process.
func TestMain(m *testing.M) {
	if os.Getenv(envInNamespace) == "" {
		unshare, err := exec.LookPath("unshare")
		if err != nil {
			fmt.Fprintln(os.Stderr, "conformance: unshare (util-linux) not found:", err)
			os.Exit(1)
		}
		args := append([]string{"unshare", "--net", "--mount", "--propagation", "private", "--"}, os.Args...)
		env := append(os.Environ(), envInNamespace+"=1")
		err = syscall.Exec(unshare, args, env)
		fmt.Fprintln(os.Stderr, "conformance: exec unshare (needs root):", err)
		os.Exit(1)
	}
	for _, c := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"mkdir", "-p", "/run/netns"},
		{"mount", "-t", "tmpfs", "conformance-netns", "/run/netns"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "conformance: %v: %v: %s\n", c, err, out)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}
