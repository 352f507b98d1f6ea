package ir

// Unbound is a listener of an applied config that the data plane could not
// bind (its address is not on this host, its port is taken, ...). The rest
// of the config is in force; the listener serves nothing until a later
// apply binds it.
type Unbound struct {
	// Listener is the config's listener; its Hosts name the Gateway
	// listeners sharing the socket.
	Listener *Listener
	// Err is the bind error; errors.Is finds the syscall error
	// (syscall.EADDRNOTAVAIL, syscall.EADDRINUSE, ...).
	Err error
}
