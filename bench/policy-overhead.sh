#!/usr/bin/env bash
# bench/policy-overhead.sh: what a route with a five-filter chain costs
# relative to a bare route, in the same run, on the same gateway.
#
# One gateway (GOMAXPROCS=1, pinned to CPU 0) with two host-routed
# HTTPRoutes to the same backend (nginx returning 200, as in bench/run.sh):
#   bare.test   no filters, no policy
#   chain.test  RequestHeaderModifier (set x-policy-chain), a FaultInjection
#               ExtensionRef with delay and abort at percentage "0", a
#               RequestMirror at percent 0 to a second backend, and a
#               TrafficPolicy on the route with a local rate limit that never
#               triggers (ClientIP, 10,000,000 per second) and a retry policy
#               (attempts 2, retryOn gateway-error).
# Both are checked with curl first (200 each; chain.test's header reaches the
# backend; /config shows the rate limit, retry and fault on the chain route).
# Then wrk -t1 -c32 --latency keep-alive on CPU 1 (with the backend),
# alternating bare and chain for BENCH_ROUNDS rounds (which goes first
# alternates too, so a drift over the run favours neither). Reported: rps and
# p99 per measurement, the gateway's CPU per request (utime+stime delta from
# /proc/PID/stat over wrk's request count), the CPU other processes used
# (noise), and the median of the per-round ratios chain/bare against the
# target (overhead under 10%).
#
# Usage: bash bench/policy-overhead.sh [out.md]   (after `make build`)
# Default out: bench/results/DATE-policy-overhead.md (DATE-policy-overhead-smoke.md
# when the durations are not the defaults).
# Environment:
#   DURATION / BENCH_DURATION=10   seconds per measurement
#   BENCH_WARMUP=2                 seconds of warm-up per route before round 1
#   BENCH_ROUNDS=5                 rounds (each measures bare and chain once)
#   BENCH_CONNS=32                 wrk connections
#   BENCH_GATEWAY_BIN=./bin/gateway
#   BENCH_KEEP_TMP=1               keep the temp dir (config, logs, raw wrk output)
#   BENCH_NOISE_PCT=10             flag a measurement when other processes used this % of a CPU
#   BENCH_WAIT_QUIET=0             wait up to N s for other processes to go quiet before measuring
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

D=${BENCH_DURATION:-${DURATION:-10}}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-5}
CONNS=${BENCH_CONNS:-32}
GW=${BENCH_GATEWAY_BIN:-./bin/gateway}
KEEP_TMP=${BENCH_KEEP_TMP:-0}
NOISE_PCT=${BENCH_NOISE_PCT:-10}
WAIT_QUIET=${BENCH_WAIT_QUIET:-0}
TARGET_PCT=10
DATE=$(date +%F)
if [[ -n ${1:-} ]]; then
  OUT=$1
elif [[ $D == 10 && $WARMUP == 2 && $ROUNDS == 5 && $CONNS == 32 ]]; then
  OUT=$ROOT/bench/results/$DATE-policy-overhead.md
else
  OUT=$ROOT/bench/results/$DATE-policy-overhead-smoke.md
fi
BPORT=18890 GPORT=18891 ADMIN=127.0.0.1:18892 MPORT=18893
PROXY_CPU=0 LOAD_CPU=1

log() { printf '[policy-overhead] %s\n' "$*" >&2; }
die() { printf '[policy-overhead] ERROR: %s\n' "$*" >&2; exit 1; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
is_uint "$D" && ((D > 0 && D <= 60)) || die "DURATION must be 1-60 seconds, got '$D'"
is_uint "$WARMUP" && ((WARMUP <= 30)) || die "BENCH_WARMUP must be 0-30 seconds, got '$WARMUP'"
is_uint "$ROUNDS" && ((ROUNDS >= 1 && ROUNDS <= 20)) || die "BENCH_ROUNDS must be 1-20, got '$ROUNDS'"
is_uint "$CONNS" && ((CONNS >= 1)) || die "BENCH_CONNS must be a positive integer, got '$CONNS'"
is_uint "$NOISE_PCT" || die "BENCH_NOISE_PCT must be a non-negative integer, got '$NOISE_PCT'"
is_uint "$WAIT_QUIET" || die "BENCH_WAIT_QUIET must be a non-negative integer (seconds), got '$WAIT_QUIET'"
for tool in nginx wrk taskset curl awk; do
  command -v "$tool" >/dev/null || die "$tool is missing (bench/run.sh installs nginx and wrk from Debian)"
done
[[ -x $GW ]] || die "$GW not found: run make build first"
if (($(nproc) < 2)); then
  log "WARNING: only $(nproc) CPU; gateway, backend and wrk share CPU 0"
  LOAD_CPU=0
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/meshgate-policy.XXXXXX")
pids=()
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ $KEEP_TMP == 1 ]]; then log "temp dir kept: $T"; else rm -rf "$T"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for p in $BPORT $GPORT ${ADMIN##*:} $MPORT; do
  if command -v ss >/dev/null && ss -Hltn | awk -v p=":$p" '$4 ~ p"$" {f=1} END {exit !f}'; then
    die "TCP port 127.0.0.1:$p is already in use (a previous run still alive?)"
  fi
done

# CPU used by processes outside this run (as in bench/run.sh): utime+stime
# (+ children) of every process except this script and its descendants.
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
foreign_jiffies() {
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v self="$$" '
    {
      pid = $1; s = $0; sub(/^.*\) /, "", s); split(s, f, " ")
      ppid[pid] = f[2]; t[pid] = f[12] + f[13] + f[14] + f[15]
    }
    END {
      ex[self] = 1; ex[2] = 1
      changed = 1
      while (changed) {
        changed = 0
        for (p in ppid) if (!(p in ex) && (ppid[p] in ex)) { ex[p] = 1; changed = 1 }
      }
      for (p in t) if (!(p in ex)) sum += t[p]
      printf "%d\n", sum
    }'
}
proc_jiffies() { # utime+stime of one process
  local s
  s=$(cat /proc/"$1"/stat) || return 1
  s=${s##*) }
  awk '{ print $12 + $13 }' <<<"$s"
}

# --- backend: nginx on CPU 1 (primary on BPORT, mirror target on MPORT) -----
mkdir -p "$T/nginx/tmp"
{
  ((EUID == 0)) && echo "user root;"
  cat <<CONF
worker_processes 1; daemon off; pid $T/nginx/nginx.pid; error_log $T/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $T/nginx/tmp; proxy_temp_path $T/nginx/tmp;
  fastcgi_temp_path $T/nginx/tmp; uwsgi_temp_path $T/nginx/tmp; scgi_temp_path $T/nginx/tmp;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$BPORT;
    location / { return 200 "hello from backend\n"; }
    # Used by the check only: echoes the header the chain route sets.
    location = /echo-header { return 200 "x-policy-chain=\$http_x_policy_chain\n"; }
  }
  # The mirror's target. At percent 0 it must see no request: it logs them.
  server {
    listen 127.0.0.1:$MPORT;
    access_log $T/nginx/mirror-access.log;
    location / { return 200 "mirror\n"; }
  }
}
CONF
} >"$T/nginx/nginx.conf"
NGINX_CMD=(taskset -c "$LOAD_CPU" nginx -p "$T/nginx" -e "$T/nginx/error.log" -c "$T/nginx/nginx.conf")
"${NGINX_CMD[@]}" >"$T/nginx.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$BPORT/" && break; sleep 0.1; done
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$BPORT/") == 200 ]] || die "backend nginx did not start: $(tail -n 3 "$T/nginx/error.log" "$T/nginx.log" 2>/dev/null)"

# --- gateway config -----------------------------------------------------------
cat >"$T/gw.yaml" <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: meshgate}
spec: {controllerName: gateway.meshgate.dev/controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: bench, namespace: default}
spec:
  gatewayClassName: meshgate
  addresses: [{type: IPAddress, value: 127.0.0.1}]
  listeners: [{name: http, protocol: HTTP, port: $GPORT}]
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: Backend
metadata: {name: origin, namespace: default}
spec: {endpoints: [{address: 127.0.0.1, port: $BPORT}]}
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: Backend
metadata: {name: shadow, namespace: default}
spec: {endpoints: [{address: 127.0.0.1, port: $MPORT}]}
---
# No filters, no policy.
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bare, namespace: default}
spec:
  parentRefs: [{name: bench}]
  hostnames: [bare.test]
  rules:
  - backendRefs: [{group: gateway.meshgate.dev, kind: Backend, name: origin}]
---
# Five features, none of which changes the answer: a header set, faults and a
# mirror at 0%, a rate limit never reached, a retry policy never needed.
apiVersion: gateway.meshgate.dev/v1alpha1
kind: FaultInjection
metadata: {name: zero-faults, namespace: default}
spec:
  delay: {duration: 1s, percentage: "0"}
  abort: {httpStatus: 503, percentage: "0"}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: chain, namespace: default}
spec:
  parentRefs: [{name: bench}]
  hostnames: [chain.test]
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-policy-chain, value: "on"}]
    - type: ExtensionRef
      extensionRef: {group: gateway.meshgate.dev, kind: FaultInjection, name: zero-faults}
    - type: RequestMirror
      requestMirror:
        backendRef: {group: gateway.meshgate.dev, kind: Backend, name: shadow}
        percent: 0
    backendRefs: [{group: gateway.meshgate.dev, kind: Backend, name: origin}]
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: chain-policy, namespace: default}
spec:
  targetRefs:
  - {group: gateway.networking.k8s.io, kind: HTTPRoute, name: chain}
  rateLimit:
    local:
    - {key: ClientIP, requests: 10000000, unit: Second}
  retry:
    attempts: 2
    retryOn: [gateway-error]
YAML
"$GW" validate --config "$T/gw.yaml" >"$T/validate.log" 2>&1 || die "gateway validate rejected the config: $(cat "$T/validate.log")"

GW_CMD=(env GOMAXPROCS=1 taskset -c "$PROXY_CPU" "$GW" run --config "$T/gw.yaml" --admin-addr "$ADMIN" --access-log=)
"${GW_CMD[@]}" >"$T/gw.log" 2>&1 &
GWPID=$!
pids+=("$GWPID")
for _ in $(seq 100); do [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$ADMIN/ready") == 200 ]] && break; sleep 0.1; done
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://$ADMIN/ready") == 200 ]] || die "gateway not ready: $(tail -n 5 "$T/gw.log")"

# --- checks ---------------------------------------------------------------------
CHECKS=()
for host in bare chain; do
  code=$(curl -s -o "$T/check-$host.body" -w '%{http_code}' -H "Host: $host.test" "http://127.0.0.1:$GPORT/")
  [[ $code == 200 ]] || die "$host.test answered $code, want 200: $(head -c 300 "$T/check-$host.body")"
  CHECKS+=("\`curl -H 'Host: $host.test' http://127.0.0.1:$GPORT/\` → 200 \`$(tr -d '\n' <"$T/check-$host.body")\`")
done
seen=$(curl -s -H 'Host: chain.test' "http://127.0.0.1:$GPORT/echo-header")
[[ $seen == "x-policy-chain=on" ]] || die "chain.test did not carry x-policy-chain to the backend (backend saw '$seen')"
CHECKS+=("chain.test: backend saw \`$seen\`")
seen=$(curl -s -H 'Host: bare.test' "http://127.0.0.1:$GPORT/echo-header")
[[ $seen == "x-policy-chain=" ]] || die "bare.test carried x-policy-chain to the backend (backend saw '$seen')"
CHECKS+=("bare.test: backend saw \`$seen\` (no header)")
# The compiled config: the chain route has its fault, rate limit and retry,
# the bare route none of them.
curl -s "http://$ADMIN/config" >"$T/config.json" || die "GET /config failed"
if command -v python3 >/dev/null; then
  summary=$(python3 - "$T/config.json" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
out = {}
def walk(o):
    if isinstance(o, dict):
        if "name" in o and o.get("name") in ("default/bare", "default/chain") and "match" in o:
            f = [x.get("type") for x in o.get("filters") or []]
            out[o["name"]] = "filters=%s fault=%s rateLimits=%d retry=%s" % (
                ",".join(f) or "-", "yes" if o.get("fault") else "no",
                len(o.get("rateLimits") or []),
                ("attempts %d codes %s" % (o["retry"]["attempts"], o["retry"].get("codes"))) if o.get("retry") else "no")
        for v in o.values():
            walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
walk(cfg)
for k in sorted(out):
    print("%s: %s" % (k, out[k]))
PY
  ) || die "could not read /config"
  grep -q 'default/chain: .*fault=yes rateLimits=1 retry=attempts 2' <<<"$summary" ||
    die "the chain route lacks its fault, rate limit or retry in /config: $summary"
  grep -q 'default/bare: filters=- fault=no rateLimits=0 retry=no' <<<"$summary" ||
    die "the bare route is not bare in /config: $summary"
  while read -r line; do CHECKS+=("/config $line"); done <<<"$summary"
fi
log "checks passed"
printf '  %s\n' "${CHECKS[@]}" >&2

# --- measurements -----------------------------------------------------------------
wrk_cmd() { # host seconds -> the command, in WRK
  WRK=(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$2"s --latency -H "Host: $1.test" "http://127.0.0.1:$GPORT/")
}
to_ms() { # wrk latency (e.g. 812.00us, 1.20ms, 2.01s) -> ms
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'
}
for ((i = 0; ; i++)); do
  f0=$(foreign_jiffies); sleep 1; f1=$(foreign_jiffies)
  BASE_OTHER=$(awk -v d="$((f1 - f0))" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", 100 * d / hz }')
  ((BASE_OTHER < NOISE_PCT || i >= WAIT_QUIET)) && break
  if ((i % 10 == 0)); then log "other processes use ${BASE_OTHER}% of a CPU; waiting up to ${WAIT_QUIET}s for quiet"; fi
done
((BASE_OTHER < NOISE_PCT)) || log "WARNING: other processes are using ${BASE_OTHER}% of a CPU; results will be noisy"
if ((WARMUP > 0)); then
  for host in bare chain; do wrk_cmd "$host" "$WARMUP"; "${WRK[@]}" >/dev/null; done
fi
declare -A RPS P99 CPUUS OTHER ERRS
measure() { # host round
  local host=$1 r=$2 f0 f1 g0 g1 reqs raw
  f0=$(foreign_jiffies); g0=$(proc_jiffies "$GWPID")
  raw=$T/wrk-$host-$r.txt
  wrk_cmd "$host" "$D"
  "${WRK[@]}" >"$raw"
  g1=$(proc_jiffies "$GWPID"); f1=$(foreign_jiffies)
  RPS[$host,$r]=$(awk '/^Requests\/sec/ {print $2}' "$raw")
  P99[$host,$r]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$raw")")
  reqs=$(awk '/requests in/ {print $1}' "$raw")
  CPUUS[$host,$r]=$(awk -v g="$((g1 - g0))" -v n="$reqs" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (n > 0 ? 1e6 * g / hz / n : 0) }')
  OTHER[$host,$r]=$(awk -v d="$((f1 - f0))" -v s="$D" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", 100 * d / (hz * s) }')
  ERRS[$host,$r]=$(awk '/Socket errors/ { gsub(/,/, ""); e = $4 + $6 + $8 + $10 } /Non-2xx/ { e += $NF } END { print e + 0 }' "$raw")
  log "round $r $host: ${RPS[$host,$r]} rps, p99 ${P99[$host,$r]} ms, gateway ${CPUUS[$host,$r]} µs CPU/request, other CPU ${OTHER[$host,$r]}%, errors ${ERRS[$host,$r]}"
}
for r in $(seq "$ROUNDS"); do
  if ((r % 2)); then measure bare "$r"; measure chain "$r"; else measure chain "$r"; measure bare "$r"; fi
done
kill -0 "$GWPID" 2>/dev/null || die "the gateway exited during the run: $(tail -n 5 "$T/gw.log")"
MIRRORED=$(wc -l <"$T/nginx/mirror-access.log" 2>/dev/null || echo 0)

# --- report -----------------------------------------------------------------------
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END { if (NR % 2) print a[(NR+1)/2]; else printf "%.4f\n", (a[NR/2] + a[NR/2+1]) / 2 }'; }
ratios=() cpu_ratios=() noisy=0 errors=0
for r in $(seq "$ROUNDS"); do
  ratios+=("$(awk -v a="${RPS[chain,$r]}" -v b="${RPS[bare,$r]}" 'BEGIN { printf "%.4f", a / b }')")
  cpu_ratios+=("$(awk -v a="${CPUUS[chain,$r]}" -v b="${CPUUS[bare,$r]}" 'BEGIN { printf "%.4f", (b > 0 ? a / b : 0) }')")
  for host in bare chain; do
    ((OTHER[$host,$r] < NOISE_PCT)) || noisy=$((noisy + 1))
    errors=$((errors + ERRS[$host,$r]))
  done
done
RATIO=$(median "${ratios[@]}")
# Rounds in which neither measurement was noisy, and their median ratio.
quiet=()
for r in $(seq "$ROUNDS"); do
  ((OTHER[bare,$r] < NOISE_PCT && OTHER[chain,$r] < NOISE_PCT)) && quiet+=("${ratios[r - 1]}")
done
QUIET_RATIO=-
((${#quiet[@]} == 0)) || QUIET_RATIO=$(median "${quiet[@]}")
CPU_RATIO=$(median "${cpu_ratios[@]}")
OVERHEAD=$(awk -v r="$RATIO" 'BEGIN { printf "%.1f", 100 * (1 - r) }')
CPU_OVERHEAD=$(awk -v r="$CPU_RATIO" 'BEGIN { printf "%.1f", 100 * (r - 1) }')
# The verdict is on the rps ratio when most rounds were quiet. Otherwise the
# rps of each 10 s slice mostly says how much CPU 0 other processes took, and
# the gateway's CPU per request (what its rps on a core of its own would be
# the inverse of) is the figure judged.
if ((2 * ${#quiet[@]} >= ROUNDS)); then
  BASIS="rps ratio (${#quiet[@]} of ${ROUNDS} rounds quiet)"
  JUDGED=$OVERHEAD
else
  BASIS="CPU per request: only ${#quiet[@]} of ${ROUNDS} rounds were quiet, too few for the rps ratio"
  JUDGED=$CPU_OVERHEAD
fi
VERDICT=$(awk -v o="$JUDGED" -v t="$TARGET_PCT" 'BEGIN { print ((o < t) ? "PASS" : "FAIL") }')
first_line() { "$@" 2>&1 | head -n 1 || true; }
qcmd() { local s; printf -v s '%q ' "$@"; echo "${s% }"; }
mkdir -p "$(dirname "$OUT")"
{
  echo "# Policy chain overhead, $DATE"
  echo
  echo "Generated by \`bench/policy-overhead.sh\` at $(date -u '+%F %T') UTC: ${ROUNDS} rounds of ${D}s per route, ${WARMUP}s warm-up per route before round 1."
  echo "Requirement: a route with a 5-filter chain (header modifier, rate limit, fault at 0%, mirror at 0%, retry policy) costs under ${TARGET_PCT}% of a bare route's rps, in the same run."
  echo "Machines are shared and noisy: compare ratios within this run only."
  echo
  echo "## Result"
  echo
  echo "- Median of the per-round ratios chain / bare: **${RATIO}x rps** (overhead ${OVERHEAD}%)."
  echo "- Gateway CPU per request, median of the per-round ratios chain / bare: **${CPU_RATIO}x** (${CPU_OVERHEAD}% more CPU per request)."
  echo "- Rounds where neither measurement was noisy: ${#quiet[@]} of ${ROUNDS}; their median rps ratio: ${QUIET_RATIO}."
  echo
  echo "Target: overhead under ${TARGET_PCT}%. Judged on ${BASIS}: **${JUDGED}% → ${VERDICT}**."
  echo
  echo "| round | route | rps | p99 (ms) | gateway CPU µs/request | errors | other CPU % |"
  echo "|---:|---|---:|---:|---:|---:|---:|"
  for r in $(seq "$ROUNDS"); do
    if ((r % 2)); then order=(bare chain); else order=(chain bare); fi
    for host in "${order[@]}"; do
      flag=""
      ((OTHER[$host,$r] < NOISE_PCT)) || flag=" (noisy)"
      echo "| $r | $host | ${RPS[$host,$r]} | ${P99[$host,$r]} | ${CPUUS[$host,$r]} | ${ERRS[$host,$r]} | ${OTHER[$host,$r]}$flag |"
    done
  done
  echo
  echo "| round | rps chain / bare | CPU/request chain / bare |"
  echo "|---:|---:|---:|"
  for r in $(seq "$ROUNDS"); do echo "| $r | ${ratios[r - 1]} | ${cpu_ratios[r - 1]} |"; done
  echo
  echo "Medians: bare $(median $(for r in $(seq "$ROUNDS"); do echo "${RPS[bare,$r]}"; done)) rps, p99 $(median $(for r in $(seq "$ROUNDS"); do echo "${P99[bare,$r]}"; done)) ms, $(median $(for r in $(seq "$ROUNDS"); do echo "${CPUUS[bare,$r]}"; done)) µs CPU/request;" \
    "chain $(median $(for r in $(seq "$ROUNDS"); do echo "${RPS[chain,$r]}"; done)) rps, p99 $(median $(for r in $(seq "$ROUNDS"); do echo "${P99[chain,$r]}"; done)) ms, $(median $(for r in $(seq "$ROUNDS"); do echo "${CPUUS[chain,$r]}"; done)) µs CPU/request."
  echo
  echo "Requests seen by the mirror backend during the run: ${MIRRORED} (percent 0: none expected). Errors (socket errors + non-2xx) over all measurements: ${errors}."
  if ((noisy > 0)); then
    echo
    echo "**Noise:** ${noisy} measurement(s) ran while other processes used ${NOISE_PCT}% or more of a CPU (\"other CPU %\"); the gateway and wrk share the machine's two CPUs with them. The per-round ratio still compares two back-to-back measurements on one gateway process, but rerun on a quiet machine before reading small differences."
  fi
  echo
  echo "## Checks before measuring"
  echo
  printf -- '- %s\n' "${CHECKS[@]}"
  echo "- \`gateway validate\` accepted the config."
  echo
  echo "## Setup"
  echo
  echo "- One gateway process, \`GOMAXPROCS=1\`, pinned to CPU $PROXY_CPU; nginx (backend, one worker) and wrk pinned to CPU $LOAD_CPU; loopback only, HTTP/1.1 keep-alive on both sides."
  echo "- Both routes on the same listener and the same backend; only the Host header differs, so each round's two measurements hit the same process, pools and warm caches."
  echo "- Alternation: odd rounds measure bare then chain, even rounds chain then bare."
  echo "- Gateway CPU per request: utime+stime delta of the gateway in /proc/PID/stat over the measurement (${CLK_TCK} Hz ticks) divided by wrk's request count."
  echo "- The mirror at percent 0 is compiled away (filters.NewMirror returns nil for percent <= 0, so the route keeps no mirror), and the fault at 0% is one threshold comparison per request; the measurable work of the chain is the header set, the rate-limit bucket and the retry wrapper."
  echo
  echo "## Machine"
  echo
  echo "- nproc: $(nproc)"
  echo "- CPU: $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)"
  echo "- kernel: $(uname -r)"
  echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- Go: $(command -v go >/dev/null 2>&1 && go version 2>/dev/null || echo 'go not installed')"
  echo "- gateway: $GW, sha256 $(sha256sum "$GW" | cut -c1-12), built $(date -r "$GW" '+%F %T')"
  echo "- nginx: $(first_line nginx -v)"
  echo "- wrk: $(first_line wrk -v)"
  echo
  echo "## Commands"
  echo
  echo '```sh'
  echo "$(qcmd "${NGINX_CMD[@]}")"
  echo "$(qcmd "${GW_CMD[@]}")"
  wrk_cmd bare "$D"; echo "$(qcmd "${WRK[@]}")   # ${ROUNDS} times"
  wrk_cmd chain "$D"; echo "$(qcmd "${WRK[@]}")  # ${ROUNDS} times, alternated with the above"
  echo '```'
  echo
  echo "Gateway config (\`$T/gw.yaml\`, ports as above):"
  echo
  echo '```yaml'
  cat "$T/gw.yaml"
  echo '```'
} >"$OUT"
log "report: $OUT"
echo "chain/bare: rps ${RATIO}x, CPU/request ${CPU_RATIO}x, quiet rounds ${#quiet[@]}/${ROUNDS} (rps ratio ${QUIET_RATIO}); overhead ${JUDGED}% on ${BASIS}: ${VERDICT} (target <${TARGET_PCT}%)"
