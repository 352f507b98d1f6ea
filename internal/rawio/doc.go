// Package rawio gives TCP connections a Read and Write that issue the
// recvfrom and sendto system calls directly (syscall.RawSyscall) instead
// of through the runtime's blocking-syscall bookkeeping.
//
// A socket here is non-blocking, so read and write never wait: they copy
// what is ready and return, or say EAGAIN, and the runtime's network
// poller does the waiting as before (through syscall.RawConn, so
// deadlines and Close behave as for any net.Conn). What goes away is
// entersyscall/exitsyscall on every call: with one P (GOMAXPROCS=1, the
// gateway pinned to a core) each of those can wake the runtime's sysmon
// thread after the P was idle, and sysmon then polls every 20 µs and may
// hand the P to a second thread while a loopback write is still running
// the receiver's TCP stack. Under a steady, not saturating, load that cost
// several percent of the core and lengthened the tail.
package rawio
