// Package conformance runs the Gateway API conformance suite (v1.6.3)
// against the real Meshgate binary, with a local control plane and a
// kubelet-less node agent (see conformance_test.go and nodeagent/).
package conformance
