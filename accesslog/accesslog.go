// Package accesslog writes one line per request, as JSON or in Apache's
// common log format, as an obs.Sink.
//
// The request goroutine only formats the line into a pooled buffer and
// offers it to a bounded queue; a single writer goroutine writes the queue
// out. When the queue is full the line is dropped and counted, so a slow
// disk or a blocked stdout never slows traffic.
package accesslog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"

	"github.com/meshgate/meshgate/obs"
)

// Formats accepted in Options.Format.
const (
	FormatJSON   = "json"
	FormatCommon = "common"
	FormatOff    = "off"
)

// DefaultQueueSize is the number of lines that may wait for the writer.
const DefaultQueueSize = 8192

// Options configure a Logger.
type Options struct {
	// Output receives the lines; nil means os.Stdout. The caller owns it:
	// Close does not close it.
	Output io.Writer
	// Format is "json" (the default), "common" (Apache common log format
	// followed by the duration in milliseconds) or "off".
	Format string
	// Fields, if not empty, is the allow-list of JSON field names to
	// write (see FieldNames); it does not apply to the common format.
	Fields []string
	// SampleRate is the fraction of requests logged, 0 < r <= 1; 0 means 1.
	// Errors (status >= 500, no status sent, or a gateway reason) are
	// always logged.
	SampleRate float64
	// QueueSize bounds the lines waiting for the writer; 0 means
	// DefaultQueueSize.
	QueueSize int
}

// FieldNames are the JSON fields, in the order they are written.
var FieldNames = []string{
	"time", "duration_ms", "upstream_connect_ms", "upstream_first_byte_ms",
	"listener", "gateway_listener", "route", "rule", "backend", "endpoint",
	"method", "host", "path", "proto", "client", "status", "grpc_status",
	"upgrade", "bytes_received", "bytes_sent", "reason",
	"denied_policy", "denied_section", "trace_id",
}

const (
	fTime = iota
	fDuration
	fUpstreamConnect
	fUpstreamFirstByte
	fListener
	fGatewayListener
	fRoute
	fRule
	fBackend
	fEndpoint
	fMethod
	fHost
	fPath
	fProto
	fClient
	fStatus
	fGRPCStatus
	fUpgrade
	fBytesReceived
	fBytesSent
	fReason
	fDeniedPolicy
	fDeniedSection
	fTraceID
	numFields
)

const allFields = uint32(1)<<numFields - 1

// Logger is an obs.Sink writing access log lines. Its methods are safe
// for concurrent use.
type Logger struct {
	format    int // formatJSON or formatCommon; formatOff logs nothing
	fields    uint32
	threshold uint64 // sample when rand.Uint64() < threshold; 0 = all
	w         io.Writer
	out       *bufio.Writer

	queue   chan *line
	stop    chan struct{}
	done    chan struct{}
	closed  atomic.Bool
	once    sync.Once
	dropped atomic.Uint64
	errs    atomic.Uint64
}

const (
	formatOff = iota
	formatJSON
	formatCommon
)

// line is one formatted log line travelling through the queue.
type line struct{ b []byte }

// maxPooled keeps unusually long lines from pinning big buffers.
const maxPooled = 16 << 10

var linePool = sync.Pool{New: func() any { return &line{b: make([]byte, 0, 512)} }}

// New starts a Logger; it writes nothing until requests are observed.
func New(opts Options) (*Logger, error) {
	l := &Logger{fields: allFields}
	switch opts.Format {
	case "", FormatJSON:
		l.format = formatJSON
	case FormatCommon:
		l.format = formatCommon
	case FormatOff:
		l.format = formatOff
	default:
		return nil, fmt.Errorf("access log format %q: want json, common or off", opts.Format)
	}
	if len(opts.Fields) > 0 {
		l.fields = 0
		for _, name := range opts.Fields {
			i := fieldIndex(name)
			if i < 0 {
				return nil, fmt.Errorf("access log field %q: unknown (known: %v)", name, FieldNames)
			}
			l.fields |= 1 << i
		}
	}
	r := opts.SampleRate
	switch {
	case r == 0 || r == 1:
	case math.IsNaN(r) || r < 0 || r > 1:
		return nil, fmt.Errorf("access log sample rate %v: want 0 < rate <= 1", r)
	default:
		l.threshold = uint64(r * (1 << 64))
		if l.threshold == 0 {
			l.threshold = 1
		}
	}
	if opts.QueueSize < 0 {
		return nil, errors.New("access log queue size must not be negative")
	}
	if l.format == formatOff {
		return l, nil
	}
	q := opts.QueueSize
	if q == 0 {
		q = DefaultQueueSize
	}
	w := opts.Output
	if w == nil {
		w = os.Stdout
	}
	l.w = w
	l.out = bufio.NewWriterSize(w, 32<<10)
	l.queue = make(chan *line, q)
	l.stop = make(chan struct{})
	l.done = make(chan struct{})
	go l.run()
	return l, nil
}

// Open opens path for appending (creating it with mode 0640), for
// Options.Output.
func Open(path string) (io.WriteCloser, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
}

func fieldIndex(name string) int {
	for i, n := range FieldNames {
		if n == name {
			return i
		}
	}
	return -1
}

// isError reports whether r is always logged, whatever the sampling.
func isError(r *obs.Request) bool {
	return r.Status >= 500 || r.Status == 0 || r.Reason != ""
}

// ObserveRequest formats r and queues the line; it never blocks and does
// not keep r.
func (l *Logger) ObserveRequest(r *obs.Request) {
	if l.format == formatOff || l.closed.Load() {
		return
	}
	if l.threshold != 0 && !isError(r) && rand.Uint64() >= l.threshold {
		return
	}
	ln := linePool.Get().(*line)
	if l.format == formatJSON {
		ln.b = l.appendJSON(ln.b[:0], r)
	} else {
		ln.b = appendCommon(ln.b[:0], r)
	}
	select {
	case l.queue <- ln:
	default:
		l.dropped.Add(1)
		putLine(ln)
	}
}

// Dropped is the number of lines dropped because the queue was full.
func (l *Logger) Dropped() uint64 { return l.dropped.Load() }

// WriteErrors is the number of failed writes to the output.
func (l *Logger) WriteErrors() uint64 { return l.errs.Load() }

// Close writes out the queued lines and stops the writer. Lines observed
// after Close are discarded. It does not close Options.Output.
func (l *Logger) Close() error {
	if l.format == formatOff {
		return nil
	}
	l.once.Do(func() {
		l.closed.Store(true)
		close(l.stop)
	})
	<-l.done
	return nil
}

func putLine(ln *line) {
	if cap(ln.b) > maxPooled {
		return
	}
	linePool.Put(ln)
}

// run is the writer goroutine. It writes through a buffer and flushes
// whenever the queue runs empty, so a burst costs few system calls and a
// quiet log is never left unwritten.
func (l *Logger) run() {
	defer close(l.done)
	for {
		select {
		case ln := <-l.queue:
			l.write(ln)
			if len(l.queue) == 0 {
				l.flush()
			}
		case <-l.stop:
			for {
				select {
				case ln := <-l.queue:
					l.write(ln)
				default:
					l.flush()
					return
				}
			}
		}
	}
}

func (l *Logger) write(ln *line) {
	if _, err := l.out.Write(ln.b); err != nil {
		l.errs.Add(1)
		// bufio.Writer keeps its error forever; start over on the same
		// output so one failed write does not silence the log.
		l.out.Reset(l.w)
	}
	putLine(ln)
}

func (l *Logger) flush() {
	if err := l.out.Flush(); err != nil {
		l.errs.Add(1)
		l.out.Reset(l.w)
	}
}

var _ obs.Sink = (*Logger)(nil)
