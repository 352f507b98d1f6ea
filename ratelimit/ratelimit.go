// Package ratelimit enforces ir.RateLimit rules: token buckets counted in
// this process (local rules) or in Redis and shared by every replica (Global
// rules).
//
// A rule is a token bucket of capacity Burst (Requests when zero) that
// refills continuously at Requests per Period; each request takes one token
// and is denied when none is left. The caller computes the key (client
// address, header value, identity, or "" for a whole route); buckets are kept
// per (rule.Name, key), so a reload that keeps a rule's name keeps its counts.
//
// Local buckets live in 64 mutex-guarded shards per rule. Allow on an existing
// key allocates nothing. Memory is bounded without a background goroutine: a
// bucket that has refilled to full carries no information, so when a shard
// has doubled in size since its last sweep, the inserting Allow drops every
// full bucket in it (amortized O(1) per new key); and a shard never holds
// more than MaxKeys/64 keys (rounded up): at that cap a new key first
// evicts, among a few random entries, the full ones, or else the one with
// the most tokens left. A flood of distinct keys thus costs a bounded map,
// at worst giving some evicted client a fresh bucket.
//
// Global buckets run the same arithmetic in one atomic Lua script against the
// key "meshgate:rl:" + rule.Name + ":" + key, using the Redis server's clock
// (TIME) so replicas with skewed clocks agree, and expiring the key one
// Period after it would be full again (two Periods with the default Burst).
// Every call has its own timeout (Limiter.Timeout); when Redis fails or is
// slow the rule's FailOpen decides, and Decision.Err says why.
//
// Redis is reached through github.com/redis/go-redis: a well-kept client with
// pooling and reconnects; a hand-written RESP client would repeat it.
package ratelimit

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/meshgate/meshgate/ir"
)

// Defaults for the Limiter fields left zero.
const (
	// DefaultTimeout bounds one Redis call.
	DefaultTimeout = 100 * time.Millisecond
	// DefaultMaxKeys caps the keys of one local rule.
	DefaultMaxKeys = 100_000
)

// Errors in Decision.Err.
var (
	// ErrNoRedis: a Global rule was checked by a Limiter without Redis.
	ErrNoRedis = errors.New("ratelimit: global rule but no Redis configured")
	// ErrInvalidRule: the rule has Requests == 0 or Period <= 0.
	ErrInvalidRule = errors.New("ratelimit: rule needs Requests > 0 and Period > 0")
)

// Decision is the outcome of one Allow.
type Decision struct {
	// Allowed says whether the request may go on.
	Allowed bool
	// Limit is the rule's Requests, Window its Period.
	Limit  uint32
	Window time.Duration
	// Remaining is the number of tokens left after this request.
	Remaining uint32
	// Reset is the time until the bucket is full again.
	Reset time.Duration
	// RetryAfter, when denied, is the time until one token is available.
	RetryAfter time.Duration
	// Err is set when the decision could not be made as configured: Redis
	// failed, timed out or is not configured (Global rules), or the rule is
	// invalid. Allowed is then the rule's FailOpen; a caller denying because
	// of Err should answer 503, not 429.
	Err error
}

// SetHeaders writes the rate-limit headers of draft-ietf-httpapi-ratelimit-headers
// (the RateLimit-Limit/-Remaining/-Reset form): RateLimit-Limit,
// RateLimit-Remaining, RateLimit-Reset (whole seconds, rounded up) and
// RateLimit-Policy ("100;w=60"), plus Retry-After (whole seconds, rounded
// up, at least 1) when denied. It writes nothing when d.Err is set or d came
// from no rule, since no count is known then.
func (d Decision) SetHeaders(h http.Header) {
	if d.Err != nil || d.Window <= 0 {
		return
	}
	h.Set("RateLimit-Limit", strconv.FormatUint(uint64(d.Limit), 10))
	h.Set("RateLimit-Remaining", strconv.FormatUint(uint64(d.Remaining), 10))
	h.Set("RateLimit-Reset", strconv.FormatInt(ceilSeconds(d.Reset), 10))
	h.Set("RateLimit-Policy", strconv.FormatUint(uint64(d.Limit), 10)+";w="+
		strconv.FormatInt(max(ceilSeconds(d.Window), 1), 10))
	if !d.Allowed {
		h.Set("Retry-After", strconv.FormatInt(max(ceilSeconds(d.RetryAfter), 1), 10))
	}
}

// ceilSeconds is d in whole seconds, rounded up; 0 for d <= 0.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}

// Limiter checks requests against rules. Set its fields before the first
// Allow; the zero value works (no Redis). It is safe for concurrent use.
type Limiter struct {
	// Redis holds Global buckets. Nil: Global rules decide by FailOpen, with
	// Err ErrNoRedis. Close closes it.
	Redis *redis.Client
	// Now is the clock of local buckets; nil means time.Now. Global buckets
	// use the Redis server's clock.
	Now func() time.Time
	// Timeout bounds each Redis call (DefaultTimeout when zero).
	Timeout time.Duration
	// MaxKeys caps the keys of one local rule (DefaultMaxKeys when zero),
	// rounded up to a multiple of 64; read when a rule's buckets are created.
	MaxKeys int

	mu    sync.Mutex                            // serializes writers of rules
	rules atomic.Pointer[map[string]*ruleState] // local rules by name, copy on write
}

// New returns a Limiter whose Global rules count in the Redis at redisAddr:
// "host:port", or a URL ("redis://user:pass@host:port/db", "rediss://" for
// TLS). An empty redisAddr means no Redis: Global rules then decide by their
// FailOpen. New does not connect; Redis may come up later, and go-redis
// reconnects whenever it comes back. The client retries a failed call once,
// at once (so a pooled connection that died with a Redis restart costs no
// request; at worst a retried call counts one request twice), and every call
// is bounded by the Limiter's Timeout through its context.
func New(redisAddr string) (*Limiter, error) {
	l := &Limiter{}
	if redisAddr == "" {
		return l, nil
	}
	var opt *redis.Options
	if strings.Contains(redisAddr, "://") {
		var err error
		if opt, err = redis.ParseURL(redisAddr); err != nil {
			return nil, errors.New("ratelimit: redis address: " + err.Error())
		}
	} else {
		if _, _, err := net.SplitHostPort(redisAddr); err != nil {
			return nil, errors.New("ratelimit: redis address: " + err.Error())
		}
		opt = &redis.Options{Addr: redisAddr}
	}
	opt.ContextTimeoutEnabled = true // the per-call context bounds dials and I/O
	opt.MaxRetries = 1
	opt.MinRetryBackoff = -1
	opt.MaxRetryBackoff = -1
	opt.DialerRetries = 1
	opt.DisableIdentity = true
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	l.Redis = redis.NewClient(opt)
	return l, nil
}

// Close closes the Redis client, if any.
func (l *Limiter) Close() error {
	if l.Redis == nil {
		return nil
	}
	return l.Redis.Close()
}

// Allow takes one token for key from rule's bucket. A nil rule allows
// without counting. An invalid rule (Requests == 0 or Period <= 0) decides by
// its FailOpen, with Err ErrInvalidRule.
//
// A rule seen for the first time gets its buckets here; Update is only
// needed to drop old rules and reset changed ones. A rule whose Requests,
// Period or Burst differ from those its buckets were created with (a request
// still running on the previous config) uses its own values on the same
// buckets.
func (l *Limiter) Allow(ctx context.Context, rule *ir.RateLimit, key string) Decision {
	if rule == nil {
		return Decision{Allowed: true}
	}
	p, ok := paramsOf(rule)
	if !ok {
		return Decision{Allowed: rule.FailOpen, Limit: rule.Requests, Window: rule.Period, Err: ErrInvalidRule}
	}
	if rule.Global {
		return l.allowGlobal(ctx, rule, p, key, -1)
	}
	st := l.state(rule)
	return st.allow(rule, p, key, int64(l.now().Sub(st.base)))
}

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// state returns rule's local buckets, creating them on first use.
func (l *Limiter) state(rule *ir.RateLimit) *ruleState {
	if m := l.rules.Load(); m != nil {
		if st := (*m)[rule.Name]; st != nil {
			return st
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var old map[string]*ruleState
	if m := l.rules.Load(); m != nil {
		old = *m
	}
	if st := old[rule.Name]; st != nil {
		return st
	}
	next := make(map[string]*ruleState, len(old)+1)
	for name, st := range old {
		next[name] = st
	}
	st := l.newRuleState(rule)
	next[rule.Name] = st
	l.rules.Store(&next)
	return st
}

// Update is called when a config is applied, with every rule of it. Local
// buckets of rules no longer present (by Name) are dropped; rules kept keep
// their counts, even if the *ir.RateLimit is a new value, unless their
// Requests or Period changed, which resets them. A changed Burst keeps the
// counts (capped to the new Burst). Global buckets live in Redis and are not
// touched: they expire on their own and carry over to changed parameters.
func (l *Limiter) Update(rules []*ir.RateLimit) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var old map[string]*ruleState
	if m := l.rules.Load(); m != nil {
		old = *m
	}
	next := make(map[string]*ruleState, len(rules))
	for _, r := range rules {
		if r == nil || r.Global {
			continue
		}
		if _, dup := next[r.Name]; dup {
			continue
		}
		if st := old[r.Name]; st != nil && st.requests == r.Requests && st.period == r.Period {
			next[r.Name] = st
		} else {
			next[r.Name] = l.newRuleState(r)
		}
	}
	l.rules.Store(&next)
}
