package ratelimit

import (
	"hash/maphash"
	"math"
	"math/bits"
	"strings"
	"sync"
	"time"

	"github.com/meshgate/meshgate/ir"
)

const (
	numShards = 64
	// minSweep is the shard size below which no sweep runs.
	minSweep = 16
	// evictSample is how many random entries a full shard examines.
	evictSample = 16
)

// params are a rule's bucket in integers: one token is worth period units
// of "ns × requests", and every nanosecond earns requests units. The
// arithmetic is exact (128-bit intermediates), so counts never drift.
type params struct {
	requests uint64 // > 0
	period   uint64 // ns, > 0
	burst    uint64 // > 0
}

func paramsOf(r *ir.RateLimit) (params, bool) {
	if r.Requests == 0 || r.Period <= 0 {
		return params{}, false
	}
	p := params{requests: uint64(r.Requests), period: uint64(r.Period), burst: uint64(r.Burst)}
	if p.burst == 0 {
		p.burst = p.requests
	}
	return p, true
}

// bucket is one key's state.
type bucket struct {
	tokens uint64 // whole tokens, <= burst
	credit uint64 // a partial token, in units; < period
	last   int64  // ns since the rule's base when tokens/credit were current
}

// refill brings b up to now.
func (p *params) refill(b *bucket, now int64) {
	if b.tokens >= p.burst {
		b.tokens, b.credit = p.burst, 0
		b.last = max(b.last, now)
		return
	}
	if now <= b.last {
		return // concurrent callers may read the clock out of order
	}
	elapsed := uint64(now - b.last)
	b.last = now
	if b.credit >= p.period {
		b.credit = p.period - 1 // Period shrank since the credit was earned
	}
	hi, lo := bits.Mul64(elapsed, p.requests)
	var c uint64
	lo, c = bits.Add64(lo, b.credit, 0)
	hi += c
	nhi, nlo := bits.Mul64(p.burst-b.tokens, p.period)
	if hi > nhi || hi == nhi && lo >= nlo {
		b.tokens, b.credit = p.burst, 0
		return
	}
	// have < (burst-tokens)*period, so hi < period and the quotient fits.
	q, r := bits.Div64(hi, lo, p.period)
	b.tokens += q
	b.credit = r
}

// fullAt reports whether b will have refilled to burst by now, without
// changing it.
func (p *params) fullAt(b *bucket, now int64) bool {
	if b.tokens >= p.burst {
		return true
	}
	if now <= b.last {
		return false
	}
	hi, lo := bits.Mul64(uint64(now-b.last), p.requests)
	var c uint64
	lo, c = bits.Add64(lo, min(b.credit, p.period-1), 0)
	hi += c
	nhi, nlo := bits.Mul64(p.burst-b.tokens, p.period)
	return hi > nhi || hi == nhi && lo >= nlo
}

// untilFull is the time b needs to refill to burst.
func (p *params) untilFull(b *bucket) time.Duration {
	if b.tokens >= p.burst {
		return 0
	}
	hi, lo := bits.Mul64(p.burst-b.tokens, p.period)
	var c uint64
	lo, c = bits.Sub64(lo, min(b.credit, p.period-1), 0) // < period <= the product
	hi -= c
	return p.ceilDiv(hi, lo)
}

// untilToken is the time b needs to earn its next token.
func (p *params) untilToken(b *bucket) time.Duration {
	return p.ceilDiv(0, p.period-min(b.credit, p.period-1))
}

// ceilDiv is ⌈(hi,lo) / requests⌉ ns, capped at the largest Duration.
func (p *params) ceilDiv(hi, lo uint64) time.Duration {
	var c uint64
	lo, c = bits.Add64(lo, p.requests-1, 0)
	hi += c
	if hi >= p.requests {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, p.requests)
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(q)
}

// ruleState is one local rule's buckets.
type ruleState struct {
	// requests and period are the values the buckets were created with;
	// Update resets the rule when they change.
	requests uint32
	period   time.Duration
	base     time.Time // bucket times count from here
	seed     maphash.Seed
	shardCap int
	shards   [numShards]shard
}

type shard struct {
	mu        sync.Mutex
	m         map[string]*bucket
	nextSweep int      // sweep full buckets when len(m) reaches this
	_         [40]byte // keep shards on separate cache lines
}

func (l *Limiter) newRuleState(r *ir.RateLimit) *ruleState {
	maxKeys := l.MaxKeys
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &ruleState{
		requests: r.Requests,
		period:   r.Period,
		base:     l.now(),
		seed:     maphash.MakeSeed(),
		shardCap: max((maxKeys+numShards-1)/numShards, 1),
	}
}

// allow takes a token from key's bucket at now (ns since s.base).
func (s *ruleState) allow(rule *ir.RateLimit, p params, key string, now int64) Decision {
	sh := &s.shards[maphash.String(s.seed, key)%numShards]
	sh.mu.Lock()
	b := sh.m[key]
	if b == nil {
		b = sh.insert(&p, key, now, s.shardCap)
	} else {
		p.refill(b, now)
	}
	d := Decision{Limit: rule.Requests, Window: rule.Period}
	if b.tokens > 0 {
		b.tokens--
		d.Allowed = true
	} else {
		d.RetryAfter = p.untilToken(b)
	}
	d.Remaining = uint32(min(b.tokens, math.MaxUint32))
	d.Reset = p.untilFull(b)
	sh.mu.Unlock()
	return d
}

// insert adds a full bucket for key, first making room if needed. sh.mu is
// held.
func (sh *shard) insert(p *params, key string, now int64, shardCap int) *bucket {
	if sh.m == nil {
		sh.m = make(map[string]*bucket)
	}
	if len(sh.m) >= sh.nextSweep {
		for k, b := range sh.m {
			if p.fullAt(b, now) {
				delete(sh.m, k)
			}
		}
		sh.nextSweep = max(2*len(sh.m), minSweep)
	}
	if len(sh.m) >= shardCap {
		sh.evict(p, now)
	}
	b := &bucket{tokens: p.burst, last: now}
	// Clone: the caller's key may point into a larger buffer (a request
	// head) that the map must not keep alive.
	sh.m[strings.Clone(key)] = b
	return b
}

// evict drops the full buckets among a few random entries or, when none is
// full, the one with the most tokens (the least information lost).
func (sh *shard) evict(p *params, now int64) {
	var victim string
	var most uint64
	found, dropped, n := false, false, 0
	for k, b := range sh.m { // map iteration starts at a random entry
		if p.fullAt(b, now) {
			delete(sh.m, k)
			dropped = true
		} else if !dropped {
			p.refill(b, now)
			if !found || b.tokens > most {
				victim, most, found = k, b.tokens, true
			}
		}
		if n++; n >= evictSample {
			break
		}
	}
	if !dropped && found {
		delete(sh.m, victim)
	}
}

// keys counts the local buckets of rule name (tests).
func (l *Limiter) keys(name string) int {
	m := l.rules.Load()
	if m == nil || (*m)[name] == nil {
		return 0
	}
	st := (*m)[name]
	n := 0
	for i := range st.shards {
		sh := &st.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
