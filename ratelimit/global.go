package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meshgate/meshgate/ir"
)

// KeyPrefix starts every Redis key: KeyPrefix + rule.Name + ":" + key.
const KeyPrefix = "meshgate:rl:"

// tokenBucket is the local bucket arithmetic in Lua, in microseconds of
// the Redis server's clock. The hash holds t (whole tokens), c (a partial
// token in units of µs × requests, < period) and l (time of t and c). Lua
// numbers are doubles, so the integers stay exact while
// (burst + requests) × period (µs) is below 2^53: for example a million
// requests per two hours. Numbers are written with %.0f so Redis never sees
// an exponent. ARGV[4], a clock override in µs, is for tests only.
var tokenBucket = redis.NewScript(`
local requests = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local now
if ARGV[4] then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local s = redis.call('HMGET', KEYS[1], 't', 'c', 'l')
local tokens = tonumber(s[1])
local credit = tonumber(s[2]) or 0
local last = tonumber(s[3]) or now
if tokens == nil or tokens >= burst then
  tokens = burst
  credit = 0
  last = now
elseif now > last then
  if credit >= period then credit = period - 1 end
  local have = (now - last) * requests + credit
  local need = (burst - tokens) * period
  if have >= need then
    tokens = burst
    credit = 0
  else
    local q = math.floor(have / period)
    credit = have - q * period
    if credit < 0 then
      q = q - 1
      credit = credit + period
    elseif credit >= period then
      q = q + 1
      credit = credit - period
    end
    tokens = tokens + q
  end
  last = now
end
if credit >= period then credit = period - 1 end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
local reset = math.ceil(((burst - tokens) * period - credit) / requests)
local retry = 0
if allowed == 0 then retry = math.ceil((period - credit) / requests) end
redis.call('HSET', KEYS[1], 't', string.format('%.0f', tokens),
  'c', string.format('%.0f', credit), 'l', string.format('%.0f', last))
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil((reset + period) / 1000)))
return {allowed, tokens, reset, retry}
`)

// redisKey names the Redis hash of rule's bucket for key.
func redisKey(rule *ir.RateLimit, key string) string {
	return KeyPrefix + rule.Name + ":" + key
}

// allowGlobal runs the script; nowUS >= 0 overrides the server clock (tests).
func (l *Limiter) allowGlobal(ctx context.Context, rule *ir.RateLimit, p params, key string, nowUS int64) Decision {
	d := Decision{Limit: rule.Requests, Window: rule.Period}
	if l.Redis == nil {
		d.Allowed, d.Err = rule.FailOpen, ErrNoRedis
		return d
	}
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	periodUS := max(p.period/uint64(time.Microsecond), 1)
	args := []any{p.requests, periodUS, p.burst}
	if nowUS >= 0 {
		args = append(args, strconv.FormatInt(nowUS, 10))
	}
	res, err := tokenBucket.Run(ctx, l.Redis, []string{redisKey(rule, key)}, args...).Int64Slice()
	if err == nil && len(res) != 4 {
		err = fmt.Errorf("script returned %d values, want 4", len(res))
	}
	if err != nil {
		d.Allowed, d.Err = rule.FailOpen, fmt.Errorf("ratelimit: redis: %w", err)
		return d
	}
	d.Allowed = res[0] == 1
	d.Remaining = uint32(min(max(res[1], 0), 1<<32-1))
	d.Reset = time.Duration(max(res[2], 0)) * time.Microsecond
	if !d.Allowed {
		d.RetryAfter = time.Duration(max(res[3], 0)) * time.Microsecond
	}
	return d
}
