#!/usr/bin/env bash
# bench/protocols.sh: gRPC unary and WebSocket echo through Meshgate and
# through nginx, with the backend measured directly as the ceiling, all in one
# run on this machine. Writes a markdown section (tables, ratios vs nginx,
# commands, configs) to stdout, or to the file given as the only argument.
# bench/run.sh calls it at its end and appends the section to its report.
#
# Same method as bench/run.sh: the proxy under test runs one worker pinned to
# CPU 0 (nginx worker_processes 1; Meshgate GOMAXPROCS=1), the backend and the
# load generator share CPU 1, everything on loopback, every run bounded in time.
#
#   gRPC:      ghz (built once from its Go module into
#              ${MESHGATE_TOOLS:-$HOME/.cache/meshgate}/ghz-<version>/ghz) calls
#              grpc.testing.TestService/UnaryCall (response_size 100) on
#              bench/tools/grpcbackend (grpc-go's interop TestService, h2c),
#              -c 50 over 10 connections; nginx: grpc_pass on an h2c listener;
#              Meshgate: a GRPCRoute to a Backend with appProtocol kubernetes.io/h2c.
#   WebSocket: bench/tools/wsbench, 50 connections, each echoing 128-byte
#              messages one at a time; nginx: proxy_pass with Upgrade/Connection;
#              Meshgate: an HTTPRoute (Upgrade is tunnelled over HTTP/1.1).
#
# Usage (from the repo root, after make build):
#   bash bench/protocols.sh [REPORT.md]
# Environment (shared with bench/run.sh):
#   BENCH_DURATION=8          seconds per measurement
#   BENCH_WARMUP=2            seconds of warm-up before each measurement (0 = none)
#   BENCH_GATEWAY_BIN=./bin/gateway
#   BENCH_SKIP_MESHGATE=1     leave Meshgate out on purpose
#   BENCH_NO_INSTALL=1        never call apt-get
#   BENCH_READY_TIMEOUT=30    seconds to wait for each server to answer
#   BENCH_KEEP_TMP=1          keep the temp dir (configs, logs, raw tool output)
#   BENCH_NOISE_PCT=10        mark a row noisy when other processes used this % of a CPU
#   BENCH_WAIT_QUIET=0        wait up to N s for other processes to go quiet first
#   BENCH_RETRY_NOISY=2       measure a noisy row again (after up to 30 s waiting for quiet), up to N times
#   BENCH_GHZ_VERSION=v0.120.0  ghz release to build
#   MESHGATE_TOOLS=~/.cache/meshgate  where built tools are cached
#   BENCH_SKIP_GRPC=1 / BENCH_SKIP_WS=1  leave one of the two out
# Exit status: 1 when Meshgate was wanted but a row of it could not be measured
# (the other rows are still measured and reported).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

OUT=${1:-}
DURATION=${BENCH_DURATION:-8}
WARMUP=${BENCH_WARMUP:-2}
GATEWAY_BIN=${BENCH_GATEWAY_BIN:-./bin/gateway}
SKIP_MESHGATE=${BENCH_SKIP_MESHGATE:-0}
NO_INSTALL=${BENCH_NO_INSTALL:-0}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-30}
KEEP_TMP=${BENCH_KEEP_TMP:-0}
NOISE_PCT=${BENCH_NOISE_PCT:-10}
WAIT_QUIET=${BENCH_WAIT_QUIET:-0}
RETRY_NOISY=${BENCH_RETRY_NOISY:-2}
GHZ_VERSION=${BENCH_GHZ_VERSION:-v0.120.0}
TOOLS_DIR=${MESHGATE_TOOLS:-$HOME/.cache/meshgate}
SKIP_GRPC=${BENCH_SKIP_GRPC:-0}
SKIP_WS=${BENCH_SKIP_WS:-0}

GRPC_CONC=50        # ghz -c: concurrent calls
GRPC_CONNS=10       # ghz --connections
GRPC_RESP_SIZE=100  # UnaryCall response_size (bytes of payload)
WS_CONNS=50
WS_SIZE=128

PROXY_CPU=0
LOAD_CPU=1

GRPC_BACKEND_PORT=9051
WS_BACKEND_PORT=9061
declare -A GRPC_PORT=([direct]=$GRPC_BACKEND_PORT [nginx]=8151 [meshgate]=8153)
declare -A WS_PORT=([direct]=$WS_BACKEND_PORT [nginx]=8161 [meshgate]=8163)
MESHGATE_ADMIN=127.0.0.1:9904
ROWS=(direct nginx meshgate)

log() { printf '[protocols] %s\n' "$*" >&2; }
die() { printf '[protocols] ERROR: %s\n' "$*" >&2; exit 1; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
is_uint "$DURATION" && ((DURATION > 0)) || die "BENCH_DURATION must be a positive integer (seconds), got '$DURATION'"
is_uint "$WARMUP" || die "BENCH_WARMUP must be a non-negative integer (seconds), got '$WARMUP'"
is_uint "$READY_TIMEOUT" && ((READY_TIMEOUT > 0)) || die "BENCH_READY_TIMEOUT must be a positive integer, got '$READY_TIMEOUT'"
is_uint "$WAIT_QUIET" || die "BENCH_WAIT_QUIET must be a non-negative integer (seconds), got '$WAIT_QUIET'"
is_uint "$RETRY_NOISY" || die "BENCH_RETRY_NOISY must be a non-negative integer, got '$RETRY_NOISY'"
is_uint "$NOISE_PCT" || die "BENCH_NOISE_PCT must be a non-negative integer, got '$NOISE_PCT'"
[[ $GHZ_VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "BENCH_GHZ_VERSION must look like v1.2.3, got '$GHZ_VERSION'"

# ---------------------------------------------------------------------------
# 1. Tools: nginx and friends from Debian if missing; our Go tools; ghz.
# ---------------------------------------------------------------------------

command -v go >/dev/null 2>&1 || die "go is not installed (it builds the backends, the WebSocket client and ghz)"

declare -A PKG_FOR=([nginx]=nginx [curl]=curl [taskset]=util-linux [timeout]=coreutils)
missing=()
for tool in nginx curl taskset timeout; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PKG_FOR[$tool]}")
done
if ((${#missing[@]})); then
  ((NO_INSTALL == 0)) || die "missing packages: ${missing[*]} (BENCH_NO_INSTALL=1 set)"
  ((EUID == 0)) || die "missing packages: ${missing[*]} (not root: cannot apt-get install)"
  log "apt-get install -y ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >&2 ||
    die "could not install: ${missing[*]}"
fi

NPROC=$(nproc)
NOTES=()
if ((NPROC < 2)); then
  LOAD_CPU=0
  NOTES+=("Only $NPROC CPU: proxy, backend and load generator shared CPU 0; figures are not comparable with 2-core runs.")
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/meshgate-protocols.XXXXXX")
PIDS=()

descendants() { # pid and all its descendants, one per line
  local p=$1 kids c
  echo "$p"
  kids=$(cat /proc/"$p"/task/*/children 2>/dev/null || true)
  for c in $kids; do descendants "$c"; done
}

stop_pids() { # stop the given pids and their descendants: TERM, 5 s, KILL
  local pid all=() i alive
  for pid in "$@"; do mapfile -t -O "${#all[@]}" all < <(descendants "$pid"); done
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for ((i = 0; i < 50; i++)); do
    alive=0
    for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${all[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
  local keep=() p q gone
  for p in "${PIDS[@]}"; do
    gone=0
    for q in "$@"; do [[ $p == "$q" ]] && gone=1; done
    ((gone)) || keep+=("$p")
  done
  PIDS=("${keep[@]}")
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  ((${#PIDS[@]})) && stop_pids "${PIDS[@]}"
  if [[ $KEEP_TMP == 1 ]]; then log "temp dir kept: $T"; else rm -rf "$T"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() {
  command -v ss >/dev/null 2>&1 || return 1
  ss -Hltn 2>/dev/null | awk -v p=":$1" '{ if (substr($4, length($4) - length(p) + 1) == p) f = 1 } END { exit !f }'
}
for p in "${GRPC_PORT[@]}" "${WS_PORT[@]}" "${MESHGATE_ADMIN##*:}"; do
  port_in_use "$p" && die "TCP port 127.0.0.1:$p is already in use (a previous run still alive?)"
done

log "work dir: $T"
for tool in grpcbackend wsbench; do
  timeout 300 go build -o "$T/$tool" "./bench/tools/$tool" >"$T/$tool-build.log" 2>&1 ||
    die "go build ./bench/tools/$tool failed: $(tail -n 3 "$T/$tool-build.log")"
done

# ghz: built from its Go module in a throwaway module, cached by version.
GHZ=$TOOLS_DIR/ghz-$GHZ_VERSION/ghz
GHZ_FAIL=""
if [[ $SKIP_GRPC != 1 && ! -x $GHZ ]]; then
  log "building ghz $GHZ_VERSION into $GHZ (once)"
  gm=$(mktemp -d "${TMPDIR:-/tmp}/ghz-build.XXXXXX")
  if (
    cd "$gm" &&
      export GOWORK=off GOFLAGS=-mod=mod &&
      go mod init tmp &&
      timeout 600 go get "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION" &&
      mkdir -p "$(dirname "$GHZ")" &&
      timeout 600 go build -ldflags "-X main.version=$GHZ_VERSION" -o "$GHZ.tmp" github.com/bojand/ghz/cmd/ghz &&
      mv "$GHZ.tmp" "$GHZ"
  ) >"$T/ghz-build.log" 2>&1; then
    :
  else
    GHZ_FAIL="ghz $GHZ_VERSION could not be built from its Go module: $(grep -v '^$' "$T/ghz-build.log" | tail -n 1 | cut -c1-300)"
    log "ERROR: $GHZ_FAIL"
  fi
  rm -rf "$gm"
fi
if [[ $SKIP_GRPC != 1 && -z $GHZ_FAIL ]]; then
  "$T/grpcbackend" -protoset "$T/test.protoset" || die "grpcbackend -protoset failed"
fi

# ---------------------------------------------------------------------------
# 2. Noise: CPU used by processes outside this script (as in bench/run.sh).
# ---------------------------------------------------------------------------

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
tree_jiffies() { # PID -> utime+stime of it and its descendants (0 if gone)
  local p sum=0 v
  for p in $(descendants "$1"); do
    v=$(awk '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " "); print f[12] + f[13] }' /proc/"$p"/stat 2>/dev/null || true)
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}
foreign_pct() { # jiffies_before jiffies_after seconds -> percent of one CPU
  awk -v a="$1" -v b="$2" -v s="$3" -v hz="$CLK_TCK" 'BEGIN { d = b - a; if (d < 0) d = 0; printf "%.0f", 100 * d / (hz * s) }'
}

# Other work on the machine wrecks the figures. Look for 1 s; with
# BENCH_WAIT_QUIET=N wait up to N s for a quiet second.
for ((i = 0; ; i++)); do
  f0=$(foreign_jiffies); sleep 1; f1=$(foreign_jiffies)
  BASE_OTHER=$(foreign_pct "$f0" "$f1" 1)
  ((BASE_OTHER < NOISE_PCT || i >= WAIT_QUIET)) && break
  if ((i % 10 == 0)); then log "other processes use ${BASE_OTHER}% of a CPU; waiting up to ${WAIT_QUIET}s for quiet"; fi
done
((BASE_OTHER < NOISE_PCT)) || log "WARNING: other processes are using ${BASE_OTHER}% of a CPU right now; results will be noisy"

wait_quiet() { # up to $1 s for a second in which other processes stay under NOISE_PCT
  local i f0 f1
  for ((i = 0; i < $1; i++)); do
    f0=$(foreign_jiffies); sleep 1; f1=$(foreign_jiffies)
    (($(foreign_pct "$f0" "$f1" 1) < NOISE_PCT)) && return 0
  done
  return 1
}

RETRIED=()
# measure_row KIND ROW FN ARGS...: FN fills ${KIND}_OTHER[ROW]; a row at
# NOISE_PCT or more is measured again, up to RETRY_NOISY times.
measure_row() {
  local kind=$1 row=$2 fn=$3 try other
  shift 3
  for ((try = 0; ; try++)); do
    "$fn" "$row" "$@"
    if [[ $kind == G ]]; then other=${G_OTHER[$row]:-0}; else other=${W_OTHER[$row]:-0}; fi
    ((other < NOISE_PCT || try >= RETRY_NOISY)) && break
    [[ $kind == G && -n ${FAIL[grpc:$row]:-} ]] && break
    [[ $kind == W && -n ${FAIL[ws:$row]:-} ]] && break
    log "$row: other processes used ${other}% of a CPU; measuring again"
    wait_quiet 30 || true
  done
  ((try == 0)) || RETRIED+=("$([[ $kind == G ]] && echo gRPC || echo WebSocket) $row ($((try + 1)) times)")
}

# ---------------------------------------------------------------------------
# 3. Configs.
# ---------------------------------------------------------------------------

nginx_conf() { # $1 = prefix dir, $2 = http block body
  local d=$1
  mkdir -p "$d/tmp"
  ((EUID == 0)) && echo "user root;"
  cat <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $d/tmp/client_body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    keepalive_requests 1000000;
$2
}
EOF
}

# nginx 1.22 (Debian 12) has no "http2 on;" yet: "listen ... http2" without
# ssl is an h2c (prior knowledge) listener. The upstream pool keeps
# connections open, as for the HTTP benchmarks; without it nginx opens a new
# connection to the backend for every call.
GRPC_NGINX_HTTP=$(
  cat <<EOF
    upstream grpc_backend {
        server 127.0.0.1:$GRPC_BACKEND_PORT;
        keepalive 128;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:${GRPC_PORT[nginx]} http2;
        location / {
            grpc_pass grpc://grpc_backend;
        }
    }
EOF
)

WS_NGINX_HTTP=$(
  cat <<EOF
    map \$http_upgrade \$connection_upgrade {
        default upgrade;
        ''      close;
    }
    server {
        listen 127.0.0.1:${WS_PORT[nginx]};
        location / {
            proxy_pass http://127.0.0.1:$WS_BACKEND_PORT;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_read_timeout 60s;
        }
    }
EOF
)

meshgate_gateway() { # $1 = gateway name, $2 = listener port
  cat <<EOF
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: meshgate}
spec: {controllerName: gateway.meshgate.dev/controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: $1, namespace: default}
spec:
  gatewayClassName: meshgate
  addresses: [{type: IPAddress, value: 127.0.0.1}]
  listeners:
  - {name: http, protocol: HTTP, port: $2}
EOF
}

meshgate_grpc_yaml() {
  meshgate_gateway bench-grpc "${GRPC_PORT[meshgate]}"
  cat <<EOF
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: Backend
metadata: {name: grpc-origin, namespace: default}
spec:
  appProtocol: kubernetes.io/h2c
  endpoints: [{address: 127.0.0.1, port: $GRPC_BACKEND_PORT}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc-all, namespace: default}
spec:
  parentRefs: [{name: bench-grpc}]
  rules:
  - backendRefs: [{group: gateway.meshgate.dev, kind: Backend, name: grpc-origin}]
EOF
}

meshgate_ws_yaml() {
  meshgate_gateway bench-ws "${WS_PORT[meshgate]}"
  cat <<EOF
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: Backend
metadata: {name: ws-origin, namespace: default}
spec:
  endpoints: [{address: 127.0.0.1, port: $WS_BACKEND_PORT}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ws-all, namespace: default}
spec:
  parentRefs: [{name: bench-ws}]
  rules:
  - backendRefs: [{group: gateway.meshgate.dev, kind: Backend, name: ws-origin}]
EOF
}

# ---------------------------------------------------------------------------
# 4. Start, wait, measure.
# ---------------------------------------------------------------------------

CMDS=()
record() { CMDS+=("$*"); }
qcmd() { local s; printf -v s '%q ' "$@"; echo "${s% }"; }
tail_log() { [[ -f $1 ]] && tail -n 20 "$1" | sed 's/^/    | /' >&2 || true; }
one_line() { grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -n 1 | cut -c1-300 || true; }

declare -A PID=()
declare -A FAIL=() # "grpc:meshgate" -> why that row is missing

start_bg() { # KEY LOGFILE CMD...
  local key=$1 logf=$2
  shift 2
  "$@" >"$logf" 2>&1 &
  PID[$key]=$!
  PIDS+=($!)
}

# wait_ok NAME PID CMD... -> 0 once CMD succeeds (within READY_TIMEOUT)
wait_ok() {
  local name=$1 pid=$2 i
  shift 2
  for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited during start-up"
      return 1
    fi
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "$name: no successful probe within ${READY_TIMEOUT}s"
  return 1
}

# start_meshgate PROTO YAMLFN PROBE-CMD... -> 0 when it routes; else FAIL[PROTO:meshgate]
start_meshgate() {
  local proto=$1 yamlfn=$2 key=meshgate-$1 i code ready=0 cfg=$T/meshgate-$1.yaml
  shift 2
  "$yamlfn" >"$cfg"
  if [[ ! -x $GATEWAY_BIN ]]; then
    FAIL[$proto:meshgate]="$GATEWAY_BIN not found or not executable: run make build first"
    return 1
  fi
  if ! timeout 60 "$GATEWAY_BIN" validate --config "$cfg" >"$T/$key-validate.log" 2>&1; then
    FAIL[$proto:meshgate]="\`gateway validate\` rejects the config: $(one_line "$T/$key-validate.log")"
    return 1
  fi
  local -a cmd=(env GOMAXPROCS=1 taskset -c "$PROXY_CPU" "$GATEWAY_BIN" run --config "$cfg" --admin-addr "$MESHGATE_ADMIN" --access-log=)
  record "$(qcmd "${cmd[@]}")   # Meshgate under test"
  log "starting Meshgate for $proto (CPU $PROXY_CPU)"
  start_bg "$key" "$T/$key.log" "${cmd[@]}"
  for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
    kill -0 "${PID[$key]}" 2>/dev/null || break
    code=$(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "http://$MESHGATE_ADMIN/ready" 2>/dev/null || true)
    if [[ $code == 200 ]]; then ready=1; break; fi
    sleep 0.1
  done
  if ((ready == 0)); then
    if kill -0 "${PID[$key]}" 2>/dev/null; then
      FAIL[$proto:meshgate]="bin/gateway did not report ready (GET http://$MESHGATE_ADMIN/ready != 200) within ${READY_TIMEOUT}s"
    else
      FAIL[$proto:meshgate]="bin/gateway exited during start-up: $(one_line "$T/$key.log")"
    fi
    tail_log "$T/$key.log"
    return 1
  fi
  if ! wait_ok "Meshgate ($proto)" "${PID[$key]}" "$@"; then
    FAIL[$proto:meshgate]="bin/gateway is ready but a probe through it fails: $("$@" 2>&1 | tail -n 1 | cut -c1-300 || true)"
    tail_log "$T/$key.log"
    return 1
  fi
}

# ---- gRPC ------------------------------------------------------------------

declare -A G_RPS G_P50 G_P99 G_OK G_ERR G_CUT G_OTHER G_CPU
GHZ_ARGS=(--insecure --protoset "$T/test.protoset" --call grpc.testing.TestService.UnaryCall
  -d "{\"response_size\":$GRPC_RESP_SIZE}" -c "$GRPC_CONC" --connections "$GRPC_CONNS")

# ghz summary -> "rps p50_ms p99_ms ok errors cut". When -z runs out, ghz
# closes its connections under the calls still in flight (at most -c of them);
# those end as "Unavailable ... use of closed network connection" on the
# client side and are counted as cut, not as errors.
parse_ghz() {
  awk '
    function ms(v, u) {
      if (u == "ns") return v / 1000000
      if (u == "s") return v * 1000
      return v
    }
    /^[[:space:]]*Requests\/sec:/ { rps = sprintf("%.0f", $2) }
    /^[[:space:]]*50 % in/ { p50 = sprintf("%.3f", ms($4, $5)) }
    /^[[:space:]]*99 % in/ { p99 = sprintf("%.3f", ms($4, $5)) }
    /^Status code distribution:/ { sec = "sc"; next }
    /^Error distribution:/ { sec = "ed"; next }
    sec == "sc" && /^[[:space:]]*\[/ { if ($1 == "[OK]") ok += $2; else bad += $2 }
    sec == "ed" && /^[[:space:]]*\[[0-9]+\]/ {
      n = $1; gsub(/[^0-9]/, "", n)
      if ($0 ~ /use of closed network connection/) cut += n
    }
    END {
      if (cut > bad) cut = bad
      printf "%s %s %s %d %d %d\n", (rps == "" ? "-" : rps), (p50 == "" ? "-" : p50),
        (p99 == "" ? "-" : p99), ok, bad - cut, cut
    }' "$1"
}

measure_grpc() { # ROW PROXY-PID (empty for direct)
  local row=$1 ppid=${2:-} addr=127.0.0.1:${GRPC_PORT[$1]} out=$T/ghz-$1.txt f0 f1 t0 t1 c0=0 c1=0 secs
  local -a warm=(taskset -c "$LOAD_CPU" "$GHZ" "${GHZ_ARGS[@]}" -z "${WARMUP}s" "$addr")
  local -a run=(taskset -c "$LOAD_CPU" "$GHZ" "${GHZ_ARGS[@]}" -z "${DURATION}s" "$addr")
  log "gRPC $row: warm-up ${WARMUP}s, measure ${DURATION}s"
  if ((WARMUP > 0)); then
    record "$(qcmd "${warm[@]}")   # warm-up, $row"
    timeout $((WARMUP + 30)) "${warm[@]}" >"$T/ghz-$row-warmup.txt" 2>&1 || true
  fi
  record "$(qcmd "${run[@]}")   # measure, $row"
  [[ -n $ppid ]] && c0=$(tree_jiffies "$ppid")
  f0=$(foreign_jiffies); t0=$(date +%s.%N)
  if ! timeout $((DURATION + 30)) "${run[@]}" >"$out" 2>&1; then
    FAIL[grpc:$row]="ghz failed: $(one_line "$out")"
  fi
  f1=$(foreign_jiffies); t1=$(date +%s.%N)
  [[ -n $ppid ]] && c1=$(tree_jiffies "$ppid")
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
  G_OTHER[$row]=$(foreign_pct "$f0" "$f1" "$secs")
  if [[ -n $ppid ]]; then G_CPU[$row]=$(foreign_pct "$c0" "$c1" "$secs"); else G_CPU[$row]=-; fi
  read -r G_RPS[$row] G_P50[$row] G_P99[$row] G_OK[$row] G_ERR[$row] G_CUT[$row] < <(parse_ghz "$out")
  if [[ ${G_RPS[$row]} == - && -z ${FAIL[grpc:$row]:-} ]]; then FAIL[grpc:$row]="no result in ghz output: $(one_line "$out")"; fi
}

grpc_phase() {
  local -a cmd started=()
  GN=$T/nginx-grpc
  mkdir -p "$GN"
  nginx_conf "$GN" "$GRPC_NGINX_HTTP" >"$GN/nginx.conf"

  cmd=(env GOMAXPROCS=1 taskset -c "$LOAD_CPU" "$T/grpcbackend" -addr "127.0.0.1:$GRPC_BACKEND_PORT" -hold 30m)
  record "$(qcmd "${cmd[@]}")   # gRPC backend"
  log "starting gRPC backend on 127.0.0.1:$GRPC_BACKEND_PORT (CPU $LOAD_CPU)"
  start_bg grpc-backend "$T/grpcbackend.log" "${cmd[@]}"
  started+=("${PID[grpc-backend]}")
  if ! wait_ok "gRPC backend" "${PID[grpc-backend]}" "$T/grpcbackend" -probe "127.0.0.1:$GRPC_BACKEND_PORT" -timeout 1s; then
    tail_log "$T/grpcbackend.log"
    for r in "${ROWS[@]}"; do FAIL[grpc:$r]="the gRPC backend did not come up: $(one_line "$T/grpcbackend.log")"; done
    stop_pids "${started[@]}"
    return
  fi

  cmd=(taskset -c "$PROXY_CPU" nginx -p "$GN" -e "$GN/error.log" -c "$GN/nginx.conf")
  record "$(qcmd "${cmd[@]}")   # nginx under test (gRPC)"
  log "starting nginx for gRPC (CPU $PROXY_CPU)"
  start_bg nginx-grpc "$GN/stdout.log" "${cmd[@]}"
  started+=("${PID[nginx-grpc]}")
  if ! wait_ok "nginx (gRPC)" "${PID[nginx-grpc]}" "$T/grpcbackend" -probe "127.0.0.1:${GRPC_PORT[nginx]}" -timeout 1s; then
    tail_log "$GN/error.log"
    FAIL[grpc:nginx]="nginx did not come up or does not pass gRPC: $(one_line "$GN/error.log")"
  fi

  if [[ $SKIP_MESHGATE != 1 ]]; then
    start_meshgate grpc meshgate_grpc_yaml "$T/grpcbackend" -probe "127.0.0.1:${GRPC_PORT[meshgate]}" -timeout 1s || true
    [[ -n ${PID[meshgate-grpc]:-} ]] && started+=("${PID[meshgate-grpc]}")
  fi

  for r in "${ROWS[@]}"; do
    [[ $r == meshgate && $SKIP_MESHGATE == 1 ]] && continue
    [[ -n ${FAIL[grpc:$r]:-} ]] && continue
    case $r in
      direct) measure_row G "$r" measure_grpc ;;
      *) measure_row G "$r" measure_grpc "${PID[$r-grpc]}" ;;
    esac
  done
  stop_pids "${started[@]}"
}

# ---- WebSocket -------------------------------------------------------------

declare -A W_RATE W_P50 W_P99 W_ERR W_CONNS W_OTHER W_CPU

measure_ws() { # ROW PROXY-PID (empty for direct)
  local row=$1 ppid=${2:-} url=ws://127.0.0.1:${WS_PORT[$1]}/ out=$T/wsbench-$1.txt f0 f1 t0 t1 kv k v c0=0 c1=0 secs
  local -a base=(taskset -c "$LOAD_CPU" "$T/wsbench" client -url "$url" -c "$WS_CONNS" -size "$WS_SIZE")
  log "WebSocket $row: warm-up ${WARMUP}s, measure ${DURATION}s"
  if ((WARMUP > 0)); then
    record "$(qcmd "${base[@]}" -d "${WARMUP}s")   # warm-up, $row"
    timeout $((WARMUP + 30)) "${base[@]}" -d "${WARMUP}s" >"$T/wsbench-$row-warmup.txt" 2>&1 || true
  fi
  record "$(qcmd "${base[@]}" -d "${DURATION}s")   # measure, $row"
  [[ -n $ppid ]] && c0=$(tree_jiffies "$ppid")
  f0=$(foreign_jiffies); t0=$(date +%s.%N)
  if ! timeout $((DURATION + 30)) "${base[@]}" -d "${DURATION}s" >"$out" 2>&1; then
    FAIL[ws:$row]="wsbench failed: $(one_line "$out")"
  fi
  f1=$(foreign_jiffies); t1=$(date +%s.%N)
  [[ -n $ppid ]] && c1=$(tree_jiffies "$ppid")
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
  W_OTHER[$row]=$(foreign_pct "$f0" "$f1" "$secs")
  if [[ -n $ppid ]]; then W_CPU[$row]=$(foreign_pct "$c0" "$c1" "$secs"); else W_CPU[$row]=-; fi
  W_RATE[$row]=-; W_P50[$row]=-; W_P99[$row]=-; W_ERR[$row]=-; W_CONNS[$row]=-
  for kv in $(grep '^conns=' "$out" | tail -n 1 || true); do
    k=${kv%%=*}; v=${kv#*=}
    case $k in
      conns) W_CONNS[$row]=$v ;; rate) W_RATE[$row]=$v ;;
      p50_ms) W_P50[$row]=$v ;; p99_ms) W_P99[$row]=$v ;; errors) W_ERR[$row]=$v ;;
    esac
  done
  if [[ ${W_RATE[$row]} == - && -z ${FAIL[ws:$row]:-} ]]; then FAIL[ws:$row]="no result in wsbench output: $(one_line "$out")"; fi
}

ws_phase() {
  local -a cmd started=()
  WN=$T/nginx-ws
  mkdir -p "$WN"
  nginx_conf "$WN" "$WS_NGINX_HTTP" >"$WN/nginx.conf"

  cmd=(env GOMAXPROCS=1 taskset -c "$LOAD_CPU" "$T/wsbench" server -addr "127.0.0.1:$WS_BACKEND_PORT" -hold 30m)
  record "$(qcmd "${cmd[@]}")   # WebSocket echo backend"
  log "starting WebSocket echo backend on 127.0.0.1:$WS_BACKEND_PORT (CPU $LOAD_CPU)"
  start_bg ws-backend "$T/wsbackend.log" "${cmd[@]}"
  started+=("${PID[ws-backend]}")
  if ! wait_ok "WebSocket backend" "${PID[ws-backend]}" "$T/wsbench" probe -url "ws://127.0.0.1:$WS_BACKEND_PORT/" -timeout 1s; then
    tail_log "$T/wsbackend.log"
    for r in "${ROWS[@]}"; do FAIL[ws:$r]="the WebSocket backend did not come up: $(one_line "$T/wsbackend.log")"; done
    stop_pids "${started[@]}"
    return
  fi

  cmd=(taskset -c "$PROXY_CPU" nginx -p "$WN" -e "$WN/error.log" -c "$WN/nginx.conf")
  record "$(qcmd "${cmd[@]}")   # nginx under test (WebSocket)"
  log "starting nginx for WebSocket (CPU $PROXY_CPU)"
  start_bg nginx-ws "$WN/stdout.log" "${cmd[@]}"
  started+=("${PID[nginx-ws]}")
  if ! wait_ok "nginx (WebSocket)" "${PID[nginx-ws]}" "$T/wsbench" probe -url "ws://127.0.0.1:${WS_PORT[nginx]}/" -timeout 1s; then
    tail_log "$WN/error.log"
    FAIL[ws:nginx]="nginx did not come up or does not pass WebSocket: $(one_line "$WN/error.log")"
  fi

  if [[ $SKIP_MESHGATE != 1 ]]; then
    start_meshgate ws meshgate_ws_yaml "$T/wsbench" probe -url "ws://127.0.0.1:${WS_PORT[meshgate]}/" -timeout 1s || true
    [[ -n ${PID[meshgate-ws]:-} ]] && started+=("${PID[meshgate-ws]}")
  fi

  for r in "${ROWS[@]}"; do
    [[ $r == meshgate && $SKIP_MESHGATE == 1 ]] && continue
    [[ -n ${FAIL[ws:$r]:-} ]] && continue
    case $r in
      direct) measure_row W "$r" measure_ws ;;
      *) measure_row W "$r" measure_ws "${PID[$r-ws]}" ;;
    esac
  done
  stop_pids "${started[@]}"
}

if [[ $SKIP_GRPC != 1 ]]; then
  if [[ -n $GHZ_FAIL ]]; then
    for r in "${ROWS[@]}"; do FAIL[grpc:$r]="$GHZ_FAIL"; done
  else
    grpc_phase
  fi
fi
if [[ $SKIP_WS != 1 ]]; then ws_phase; fi

# ---------------------------------------------------------------------------
# 5. Report.
# ---------------------------------------------------------------------------

declare -A LABEL=(
  [direct]="no proxy (ceiling: backend direct)"
  [nginx]="nginx $(nginx -v 2>&1 | sed -n 's#.*nginx/##p')"
  [meshgate]="Meshgate"
)
ratio() { # value base -> "0.87x" or "-"
  awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2fx", a / b; else printf "-" }'
}
k_fmt() { awk -v v="$1" 'BEGIN { if (v ~ /^[0-9.]+$/) printf "%.1fk", v / 1000; else printf "-" }'; }
other_fmt() { # pct -> "3" or "**27 (noisy)**"
  if [[ -z $1 ]]; then echo "-"; elif (($1 >= NOISE_PCT)); then echo "**$1 (noisy)**"; else echo "$1"; fi
}

grpc_table() {
  local r
  echo "| path | rps | p50 ms | p99 ms | OK | errors | cut at end | proxy CPU % | other CPU % | rps vs nginx | p99 vs nginx |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for r in "${ROWS[@]}"; do
    [[ $r == meshgate && $SKIP_MESHGATE == 1 ]] && continue
    if [[ -n ${FAIL[grpc:$r]:-} && -z ${G_RPS[$r]:-} ]]; then
      echo "| ${LABEL[$r]} | not measured | | | | | | | | | |"
      continue
    fi
    echo "| ${LABEL[$r]} | $(k_fmt "${G_RPS[$r]}") | ${G_P50[$r]} | ${G_P99[$r]} | ${G_OK[$r]} | ${G_ERR[$r]} | ${G_CUT[$r]} | ${G_CPU[$r]} | $(other_fmt "${G_OTHER[$r]}") | $(ratio "${G_RPS[$r]}" "${G_RPS[nginx]:-}") | $(ratio "${G_P99[$r]}" "${G_P99[nginx]:-}") |"
  done
}

# The issue's gRPC target: unary rps through Meshgate at least nginx grpc_pass's.
grpc_target() {
  local m=${G_RPS[meshgate]:-} n=${G_RPS[nginx]:-} num='^[0-9.]+$' verdict
  if [[ $SKIP_MESHGATE == 1 ]]; then echo "Target (gRPC unary through Meshgate at least 1.00x nginx \`grpc_pass\`): Meshgate not run."; return; fi
  if [[ ! $m =~ $num || ! $n =~ $num ]]; then echo "Target (gRPC unary through Meshgate at least 1.00x nginx \`grpc_pass\`): no figure."; return; fi
  if awk -v m="$m" -v n="$n" 'BEGIN { exit !(m >= n) }'; then verdict=met; else verdict="**NOT met**"; fi
  echo "Target: gRPC unary through Meshgate at least 1.00x nginx \`grpc_pass\`: $verdict ($(ratio "$m" "$n"): $(k_fmt "$m") vs $(k_fmt "$n") rps; p99 $(ratio "${G_P99[meshgate]:-}" "${G_P99[nginx]:-}"); proxy CPU ${G_CPU[meshgate]:--}% vs ${G_CPU[nginx]:--}%)."
}

ws_table() {
  local r
  echo "| path | msgs/s | p50 ms | p99 ms | connections | errors | proxy CPU % | other CPU % | msgs/s vs nginx | p99 vs nginx |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for r in "${ROWS[@]}"; do
    [[ $r == meshgate && $SKIP_MESHGATE == 1 ]] && continue
    if [[ -n ${FAIL[ws:$r]:-} && -z ${W_RATE[$r]:-} ]]; then
      echo "| ${LABEL[$r]} | not measured | | | | | | | | |"
      continue
    fi
    echo "| ${LABEL[$r]} | $(k_fmt "${W_RATE[$r]}") | ${W_P50[$r]} | ${W_P99[$r]} | ${W_CONNS[$r]} | ${W_ERR[$r]} | ${W_CPU[$r]} | $(other_fmt "${W_OTHER[$r]}") | $(ratio "${W_RATE[$r]}" "${W_RATE[nginx]:-}") | $(ratio "${W_P99[$r]}" "${W_P99[nginx]:-}") |"
  done
}

details() { # SUMMARY LANG CMD...
  local summary=$1 lang=$2
  shift 2
  echo "<details><summary>$summary</summary>"
  echo
  echo "\`\`\`$lang"
  "$@" | sed "s#$T#\$T#g"
  echo '```'
  echo "</details>"
  echo
}

report() {
  local k
  echo "## gRPC and WebSocket (bench/protocols.sh)"
  echo
  echo "$(date '+%F %H:%M %Z'), $(nproc) CPUs. One run: ${DURATION} s per row after a ${WARMUP} s warm-up. The proxy"
  echo "under test runs one worker on CPU $PROXY_CPU (nginx \`worker_processes 1\`, Meshgate \`GOMAXPROCS=1\`); the"
  echo "backend (\`GOMAXPROCS=1\`) and the load generator share CPU $LOAD_CPU, so the direct row is the ceiling."
  echo "Ratios are within this run only; \"p99 vs nginx\" below 1 is better than nginx. \"other CPU %\" is CPU"
  echo "used by processes outside the benchmark during the row (rows at ${NOISE_PCT}% or more are marked noisy);"
  echo "\"proxy CPU %\" is the proxy's own CPU time (all its processes) in % of one CPU. When a proxy row is"
  echo "close to the direct row, CPU $LOAD_CPU (load generator + backend) is the limit and the rates say little:"
  echo "compare proxy CPU % then (less CPU for the same rate = cheaper per message)."
  echo
  if [[ $SKIP_GRPC != 1 ]]; then
    echo "### gRPC unary"
    echo
    echo "ghz $GHZ_VERSION, \`grpc.testing.TestService/UnaryCall\` (grpc-go interop service, response_size"
    echo "$GRPC_RESP_SIZE), \`-c $GRPC_CONC --connections $GRPC_CONNS -z ${DURATION}s\`, h2c on both hops. nginx: \`grpc_pass\`"
    echo "with an upstream keepalive pool; Meshgate: GRPCRoute to a Backend with appProtocol kubernetes.io/h2c."
    echo "\"cut at end\": calls still in flight when ghz's -z ran out, which ghz ends by closing its own"
    echo "connections (at most $GRPC_CONC; not errors of the path)."
    echo
    grpc_table
    echo
    grpc_target
    echo
  fi
  if [[ $SKIP_WS != 1 ]]; then
    echo "### WebSocket echo"
    echo
    echo "bench/tools/wsbench: $WS_CONNS connections, each sending a $WS_SIZE-byte binary message and waiting for"
    echo "its echo before the next (one message in flight per connection), for ${DURATION} s; msgs/s counts echoes."
    echo "nginx: \`proxy_pass\` with Upgrade/Connection headers; Meshgate: HTTPRoute (Upgrade tunnel over HTTP/1.1)."
    echo
    ws_table
    echo
  fi
  if ((${#RETRIED[@]})); then
    NOTES+=("Measured again because other processes disturbed the first try: $(IFS=,; echo "${RETRIED[*]}" | sed 's/,/, /g'). The tables show the last try.")
  fi
  if ((${#NOTES[@]})) || ((${#FAIL[@]})); then
    echo "Notes:"
    echo
    for k in "${NOTES[@]}"; do echo "- $k"; done
    for k in $(printf '%s\n' "${!FAIL[@]}" | sort); do
      echo "- ${k%%:*} / ${LABEL[${k#*:}]}: ${FAIL[$k]}"
    done
    echo
  fi
  echo "<details><summary>commands (\$T is the temp dir of the run)</summary>"
  echo
  echo '```sh'
  for k in "${CMDS[@]}"; do echo "${k//$T/\$T}"; done
  echo '```'
  echo "</details>"
  echo
  if [[ $SKIP_GRPC != 1 && -f $T/nginx-grpc/nginx.conf ]]; then
    details "nginx, gRPC" nginx cat "$T/nginx-grpc/nginx.conf"
    details "Meshgate, gRPC" yaml meshgate_grpc_yaml
  fi
  if [[ $SKIP_WS != 1 && -f $T/nginx-ws/nginx.conf ]]; then
    details "nginx, WebSocket" nginx cat "$T/nginx-ws/nginx.conf"
    details "Meshgate, WebSocket" yaml meshgate_ws_yaml
  fi
}

if [[ -n $OUT ]]; then
  report >"$OUT"
  log "section written to $OUT"
else
  report
fi

rc=0
for k in "${!FAIL[@]}"; do
  [[ $k == *:meshgate ]] || continue
  log "ERROR: Meshgate ${k%%:*} not measured: ${FAIL[$k]}"
  rc=1
done
exit "$rc"
