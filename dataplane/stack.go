package dataplane

// growStack deepens the calling goroutine's stack while it is still
// shallow. HTTP/3 runs every request on a new goroutine, which
// starts with the runtime's small stack; the proxy path is deeper than
// that, so the stack used to grow midway, at depth, where the runtime
// copies every frame and adjusts each one's pointers (newstack was 8% of
// the core under h2load). Grown here, with a few frames on the stack, the
// copy is short; the stack goes back to the runtime's cache when the
// request's goroutine ends. (HTTP/2 handlers run on pooled goroutines
// that keep their grown stacks, internal/gopool: there the pad would only
// be zeroed for nothing, about 800 instructions a request.)
//
// Callgrind, h2load -c16 -m10 over TLS: 160k instructions per request
// without it, 151k with stackPad at 8 KiB (a 16 KiB stack), 155k at
// 16 KiB (the pad is zeroed on every call, which then costs more than the
// growth it saves).
//
//go:noinline
func growStack() {
	var pad [stackPad]byte
	touchPad(&pad)
}

// stackPad is the frame growStack asks for; see growStack.
const stackPad = 8 << 10

// touchPad uses pad, so the compiler keeps growStack's frame.
//
//go:noinline
func touchPad(p *[stackPad]byte) { p[len(p)-1] = 1 }
