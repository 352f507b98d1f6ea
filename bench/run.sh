#!/usr/bin/env bash
# bench/run.sh: side-by-side benchmark of Meshgate against nginx, haproxy and
# (when installed) Caddy, all measured in one run on this machine.
#
# Method: docs/performance.md of the project (shared docs). In short: every
# proxy under test runs one worker pinned to CPU 0; the backend (nginx) and the
# load generators (wrk, h2load) share CPU 1; everything is on loopback.
#
# Usage (from the repo root, after building bin/gateway):
#   bash bench/run.sh
# Environment:
#   BENCH_DURATION=8        seconds per measurement (wrk -d, h2load -D)
#   BENCH_WARMUP=2          seconds of warm-up before each measurement (0 = none)
#   BENCH_GATEWAY_BIN=./bin/gateway
#   BENCH_SKIP_MESHGATE=1   leave Meshgate out on purpose (exit 0 without it)
#   BENCH_CADDY=0           leave Caddy out even if installed
#   BENCH_NO_INSTALL=1      never call apt-get
#   BENCH_READY_TIMEOUT=30  seconds to wait for each server to come up
#   BENCH_RESULT_FILE=...   where to write the report (default below)
#   BENCH_KEEP_TMP=1        keep the temp dir (configs, logs, raw tool output)
#   BENCH_NOISE_PCT=10      flag a row when other processes used this % of a CPU
#   BENCH_WAIT_QUIET=0      wait up to N s for other processes to go quiet first
#   BENCH_RETRY_NOISY=2     measure a noisy row again, up to N more times
#
# The report goes to bench/results/YYYY-MM-DD.md (overwritten on the same day).
# A run with non-default durations is a smoke run and goes to
# bench/results/YYYY-MM-DD-smoke.md instead, so it never clobbers a full run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DURATION=${BENCH_DURATION:-8}
WARMUP=${BENCH_WARMUP:-2}
GATEWAY_BIN=${BENCH_GATEWAY_BIN:-./bin/gateway}
SKIP_MESHGATE=${BENCH_SKIP_MESHGATE:-0}
WANT_CADDY=${BENCH_CADDY:-1}
NO_INSTALL=${BENCH_NO_INSTALL:-0}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-30}
KEEP_TMP=${BENCH_KEEP_TMP:-0}
WAIT_QUIET=${BENCH_WAIT_QUIET:-0}
RETRY_NOISY=${BENCH_RETRY_NOISY:-2}

H1_CONNS=64
H2_CLIENTS=16
H2_STREAMS=10

PROXY_CPU=0
LOAD_CPU=1

# Ports. Backend 9001 (h1) / 9443 (h2+TLS, ceiling only).
BACKEND_PORT=9001
BACKEND_TLS_PORT=9443
declare -A H1_PORT=([ceiling]=$BACKEND_PORT [nginx]=8081 [haproxy]=8082 [meshgate]=8083 [caddy]=8084)
declare -A H2_PORT=([ceiling]=$BACKEND_TLS_PORT [nginx]=8444 [haproxy]=8445 [meshgate]=8446 [caddy]=8447)
MESHGATE_ADMIN=127.0.0.1:9902

declare -A LABEL=(
  [ceiling]="no proxy (ceiling: backend direct)"
  [nginx]="nginx"
  [haproxy]="haproxy"
  [caddy]="Caddy"
  [meshgate]="Meshgate"
)

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
is_uint "$DURATION" && ((DURATION > 0)) || die "BENCH_DURATION must be a positive integer (seconds), got '$DURATION'"
is_uint "$WARMUP" || die "BENCH_WARMUP must be a non-negative integer (seconds), got '$WARMUP'"
is_uint "${BENCH_NOISE_PCT:-10}" || die "BENCH_NOISE_PCT must be a non-negative integer, got '${BENCH_NOISE_PCT:-}'"
is_uint "$RETRY_NOISY" || die "BENCH_RETRY_NOISY must be a non-negative integer, got '$RETRY_NOISY'"
is_uint "$WAIT_QUIET" || die "BENCH_WAIT_QUIET must be a non-negative integer (seconds), got '$WAIT_QUIET'"
is_uint "$READY_TIMEOUT" && ((READY_TIMEOUT > 0)) || die "BENCH_READY_TIMEOUT must be a positive integer, got '$READY_TIMEOUT'"

DATE=$(date +%F)
if [[ -n ${BENCH_RESULT_FILE:-} ]]; then
  RESULT_FILE=$BENCH_RESULT_FILE
elif [[ $DURATION == 8 && $WARMUP == 2 ]]; then
  RESULT_FILE=$ROOT/bench/results/$DATE.md
else
  RESULT_FILE=$ROOT/bench/results/$DATE-smoke.md
fi

# ---------------------------------------------------------------------------
# 1. Tools: install from Debian if missing (nothing else is downloaded).
# ---------------------------------------------------------------------------

apt_busy() {
  if command -v fuser >/dev/null 2>&1 &&
    fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock \
      /var/cache/apt/archives/lock >/dev/null 2>&1; then
    return 0
  fi
  pgrep -x 'apt|apt-get|dpkg|unattended-upgr' >/dev/null 2>&1
}

wait_for_apt() {
  local i
  for ((i = 0; i < 300; i++)); do # at most 600 s
    apt_busy || return 0
    if ((i % 15 == 0)); then log "apt/dpkg is busy (another install running?); waiting for its lock ..."; fi
    sleep 2
  done
  die "apt/dpkg lock still held after 600 s; install nginx haproxy wrk nghttp2-client by hand and rerun"
}

APT_UPDATED=0
apt_install() {
  ((EUID == 0)) || { log "not root: cannot apt-get install $*"; return 1; }
  wait_for_apt
  if ((APT_UPDATED == 0)); then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || return 1
    APT_UPDATED=1
  fi
  log "apt-get install -y $*"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@" >&2
}

# A background install of these very packages may be under way: let it finish
# first, so we neither race it nor see a half-unpacked binary.
if apt_busy; then wait_for_apt; fi

declare -A PKG_FOR=([nginx]=nginx [haproxy]=haproxy [wrk]=wrk [h2load]=nghttp2-client
  [openssl]=openssl [curl]=curl [taskset]=util-linux [timeout]=coreutils)
missing=()
for tool in nginx haproxy wrk h2load openssl curl taskset timeout; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PKG_FOR[$tool]}")
done
if ((${#missing[@]})); then
  ((NO_INSTALL == 0)) || die "missing packages: ${missing[*]} (BENCH_NO_INSTALL=1 set)"
  apt_install "${missing[@]}" || die "could not install: ${missing[*]}"
  for tool in nginx haproxy wrk h2load openssl curl taskset timeout; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' still missing after apt-get install"
  done
fi

NOTES=()
HAVE_CADDY=0
if [[ $WANT_CADDY == 1 ]]; then
  if ! command -v caddy >/dev/null 2>&1 && ((NO_INSTALL == 0)); then
    apt_install caddy || log "Debian package 'caddy' could not be installed; skipping the Caddy column"
  fi
  if command -v caddy >/dev/null 2>&1; then
    HAVE_CADDY=1
  else
    NOTES+=("Caddy column skipped: the Debian package \`caddy\` is not available/installed on this machine.")
  fi
else
  NOTES+=("Caddy column skipped on request (BENCH_CADDY=0).")
fi

# Raise the soft fd limit to the hard one (10k idle conns later; haproxy sizes by maxconn).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

NPROC=$(nproc)
if ((NPROC < 2)); then
  log "WARNING: only $NPROC CPU; proxy, backend and load generator all share CPU 0"
  LOAD_CPU=0
  NOTES+=("Only $NPROC CPU: proxy, backend and load generator shared CPU 0; figures are not comparable with 2-core runs.")
fi

# ---------------------------------------------------------------------------
# 2. Temp dir, cleanup, certificate.
# ---------------------------------------------------------------------------

T=$(mktemp -d "${TMPDIR:-/tmp}/meshgate-bench.XXXXXX")
PIDS=()

descendants() { # pid and all its descendants, one per line
  local p=$1 kids c
  echo "$p"
  kids=$(cat /proc/"$p"/task/*/children 2>/dev/null || true)
  if [[ -z $kids ]] && command -v pgrep >/dev/null 2>&1; then kids=$(pgrep -P "$p" 2>/dev/null || true); fi
  for c in $kids; do descendants "$c"; done
}

cleanup() {
  local rc=$? pid all=() i alive
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do
    mapfile -t -O "${#all[@]}" all < <(descendants "$pid")
  done
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for ((i = 0; i < 50; i++)); do # at most 5 s for a graceful stop
    alive=0
    for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${all[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ $KEEP_TMP == 1 ]]; then log "temp dir kept: $T"; else rm -rf "$T"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# CPU used by processes that are not part of this run (other builds, tests,
# fuzzers on a shared machine). Sum of utime+stime+cutime+cstime over every
# process except this script, its descendants and kernel threads; the change
# over a measurement, in percent of one CPU, is the "other CPU %" column.
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
NOISE_PCT=${BENCH_NOISE_PCT:-10}
foreign_jiffies() {
  # (processes come and go between the glob and the read: ignore cat's errors)
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
foreign_pct() { # jiffies_before jiffies_after seconds -> percent of one CPU
  awk -v a="$1" -v b="$2" -v s="$3" -v hz="$CLK_TCK" 'BEGIN { d = b - a; if (d < 0) d = 0; printf "%.0f", 100 * d / (hz * s) }'
}

port_in_use() {
  command -v ss >/dev/null 2>&1 || return 1
  ss -Hltn 2>/dev/null | awk -v p=":$1" '{ if (substr($4, length($4) - length(p) + 1) == p) f = 1 } END { exit !f }'
}
all_ports=("$BACKEND_PORT" "$BACKEND_TLS_PORT" "${H1_PORT[nginx]}" "${H2_PORT[nginx]}" "${H1_PORT[haproxy]}"
  "${H2_PORT[haproxy]}" "${H1_PORT[meshgate]}" "${H2_PORT[meshgate]}" "${MESHGATE_ADMIN##*:}")
((HAVE_CADDY)) && all_ports+=("${H1_PORT[caddy]}" "${H2_PORT[caddy]}")
for p in "${all_ports[@]}"; do
  port_in_use "$p" && die "TCP port 127.0.0.1:$p is already in use (a previous run still alive?)"
done

log "work dir: $T"
# Other work on the machine (builds, tests, fuzzers) wrecks the figures. Look
# for 1 s; with BENCH_WAIT_QUIET=N wait up to N s for a quiet second.
for ((i = 0; ; i++)); do
  f0=$(foreign_jiffies); sleep 1; f1=$(foreign_jiffies)
  BASE_OTHER=$(foreign_pct "$f0" "$f1" 1)
  ((BASE_OTHER < NOISE_PCT || i >= WAIT_QUIET)) && break
  if ((i % 10 == 0)); then log "other processes use ${BASE_OTHER}% of a CPU; waiting up to ${WAIT_QUIET}s for quiet"; fi
done
if ((BASE_OTHER >= NOISE_PCT)); then
  log "WARNING: other processes are using ${BASE_OTHER}% of a CPU right now; results will be noisy"
fi
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 30 \
  -keyout "$T/key.pem" -out "$T/cert.pem" \
  -subj "/CN=bench.local" -addext "subjectAltName=DNS:bench.local" >/dev/null 2>&1 ||
  die "openssl could not create the self-signed certificate"
cat "$T/cert.pem" "$T/key.pem" >"$T/combined.pem"

# Commands as run, for the report.
CMDS=()
record() { CMDS+=("$*"); }
qcmd() { local s; printf -v s '%q ' "$@"; echo "${s% }"; }

# ---------------------------------------------------------------------------
# 3. Configs.
# ---------------------------------------------------------------------------

nginx_common() { # $1 = prefix dir
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
EOF
}
nginx_temp_paths() { # $1 = prefix dir
  cat <<EOF
    client_body_temp_path $1/tmp/client_body;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
EOF
}

# Backend: nginx on CPU 1.
B=$T/backend
mkdir -p "$B"
{
  nginx_common "$B"
  cat <<EOF
http {
    access_log off;
$(nginx_temp_paths "$B")
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$BACKEND_PORT;
        listen 127.0.0.1:$BACKEND_TLS_PORT ssl http2;
        ssl_certificate $T/cert.pem;
        ssl_certificate_key $T/key.pem;
        location / { return 200 "hello from backend\n"; }
    }
}
EOF
} >"$B/nginx.conf"

# nginx under test. keepalive_requests is raised on the client side and on the
# upstream pool so nginx does not recycle connections every 1000 requests
# (haproxy and the Go proxies have no such cap).
N=$T/nginx
mkdir -p "$N"
{
  nginx_common "$N"
  cat <<EOF
http {
    access_log off;
$(nginx_temp_paths "$N")
    keepalive_requests 1000000;
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 128;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:${H1_PORT[nginx]};
        listen 127.0.0.1:${H2_PORT[nginx]} ssl http2;
        ssl_certificate $T/cert.pem;
        ssl_certificate_key $T/key.pem;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
} >"$N/nginx.conf"

# haproxy under test.
cat >"$T/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
    pidfile $T/haproxy.pid

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always

frontend fe
    bind 127.0.0.1:${H1_PORT[haproxy]}
    bind 127.0.0.1:${H2_PORT[haproxy]} ssl crt $T/combined.pem alpn h2,http/1.1
    default_backend be

backend be
    http-reuse always
    server origin 127.0.0.1:$BACKEND_PORT
EOF

# Caddy under test (optional). No SNI is sent to an IP address, so default_sni
# picks the certificate.
if ((HAVE_CADDY)); then
  mkdir -p "$T/caddy/data" "$T/caddy/config"
  cat >"$T/Caddyfile" <<EOF
{
    admin off
    auto_https off
    default_sni bench.local
    servers {
        protocols h1 h2
    }
}

http://:${H1_PORT[caddy]} {
    bind 127.0.0.1
    reverse_proxy 127.0.0.1:$BACKEND_PORT
}

https://:${H2_PORT[caddy]} {
    bind 127.0.0.1
    tls $T/cert.pem $T/key.pem
    reverse_proxy 127.0.0.1:$BACKEND_PORT
}
EOF
fi

# Meshgate: standard Gateway API YAML.
CRT_B64=$(base64 -w0 "$T/cert.pem")
KEY_B64=$(base64 -w0 "$T/key.pem")
meshgate_yaml() { # $1 = tls.crt value, $2 = tls.key value
  cat <<EOF
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
  listeners:
  - {name: http, protocol: HTTP, port: ${H1_PORT[meshgate]}}
  - name: https
    protocol: HTTPS
    port: ${H2_PORT[meshgate]}
    tls: {mode: Terminate, certificateRefs: [{name: bench-tls}]}
---
apiVersion: v1
kind: Secret
metadata: {name: bench-tls, namespace: default}
type: kubernetes.io/tls
data: {tls.crt: $1, tls.key: $2}
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: Backend
metadata: {name: origin, namespace: default}
spec:
  endpoints: [{address: 127.0.0.1, port: $BACKEND_PORT}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: all, namespace: default}
spec:
  parentRefs: [{name: bench}]
  rules:
  - backendRefs: [{group: gateway.meshgate.dev, kind: Backend, name: origin}]
EOF
}
meshgate_yaml "$CRT_B64" "$KEY_B64" >"$T/meshgate.yaml"

# ---------------------------------------------------------------------------
# 4. Start servers and wait until they answer.
# ---------------------------------------------------------------------------

declare -A PID=()
declare -A FAIL=() # key -> reason the whole column could not run

tail_log() { [[ -f $1 ]] && tail -n 20 "$1" | sed 's/^/    | /' >&2 || true; }

# wait_http NAME PID URL [EXPECT_BODY_SUBSTRING] -> 0 when a GET succeeds
wait_http() {
  local name=$1 pid=$2 url=$3 want=${4:-} i body
  for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited during start-up"
      return 1
    fi
    if body=$(curl -ksS --max-time 1 "$url" 2>/dev/null) && [[ -z $want || $body == *"$want"* ]]; then
      return 0
    fi
    sleep 0.1
  done
  log "$name: no successful GET $url within ${READY_TIMEOUT}s"
  return 1
}

h2_check() { # URL -> prints the HTTP version curl negotiated
  local v
  v=$(curl -ksS --http2 --max-time 5 -o /dev/null -w '%{http_version}' "$1" 2>/dev/null) || v="error"
  echo "$v"
}

start_bg() { # KEY LOGFILE CMD... ; records the command, remembers the pid
  local key=$1 logf=$2
  shift 2
  "$@" >"$logf" 2>&1 &
  PID[$key]=$!
  PIDS+=($!)
}

log "starting backend nginx on 127.0.0.1:$BACKEND_PORT (CPU $LOAD_CPU)"
cmd=(taskset -c "$LOAD_CPU" nginx -p "$B" -e "$B/error.log" -c "$B/nginx.conf")
record "$(qcmd "${cmd[@]}")   # backend"
start_bg backend "$B/stdout.log" "${cmd[@]}"
if ! wait_http backend "${PID[backend]}" "http://127.0.0.1:$BACKEND_PORT/" "hello from backend"; then
  tail_log "$B/error.log"; tail_log "$B/stdout.log"
  die "backend nginx did not come up"
fi
PID[ceiling]=${PID[backend]}

start_proxy() { # KEY LOG CMD...
  local key=$1 logf=$2 h2
  shift 2
  log "starting $key (CPU $PROXY_CPU)"
  start_bg "$key" "$logf" "$@"
  if ! wait_http "$key" "${PID[$key]}" "http://127.0.0.1:${H1_PORT[$key]}/" "hello from backend"; then
    tail_log "$logf"
    return 1
  fi
  h2=$(h2_check "https://127.0.0.1:${H2_PORT[$key]}/")
  [[ $h2 == 2 ]] || log "WARNING: $key TLS port ${H2_PORT[$key]}: curl --http2 negotiated '$h2', not h2"
  return 0
}

cmd=(taskset -c "$PROXY_CPU" nginx -p "$N" -e "$N/error.log" -c "$N/nginx.conf")
record "$(qcmd "${cmd[@]}")   # nginx under test"
start_proxy nginx "$N/stdout.log" "${cmd[@]}" || { tail_log "$N/error.log"; die "nginx under test did not come up"; }

cmd=(taskset -c "$PROXY_CPU" haproxy -db -f "$T/haproxy.cfg")
record "$(qcmd "${cmd[@]}")   # haproxy under test"
start_proxy haproxy "$T/haproxy.log" "${cmd[@]}" || die "haproxy under test did not come up"

if ((HAVE_CADDY)); then
  cmd=(env GOMAXPROCS=1 HOME="$T/caddy" XDG_DATA_HOME="$T/caddy/data" XDG_CONFIG_HOME="$T/caddy/config"
    taskset -c "$PROXY_CPU" caddy run --adapter caddyfile --config "$T/Caddyfile")
  record "$(qcmd "${cmd[@]}")   # Caddy under test"
  if ! start_proxy caddy "$T/caddy.log" "${cmd[@]}"; then
    FAIL[caddy]="Caddy did not come up: $(grep -v '^$' "$T/caddy.log" | tail -n 1 | cut -c1-200 || true)"
    log "ERROR: ${FAIL[caddy]}"
  fi
fi

# Meshgate. Readiness is its admin /ready endpoint answering 200.
MESHGATE_WANTED=1
[[ $SKIP_MESHGATE == 1 ]] && MESHGATE_WANTED=0
if ((MESHGATE_WANTED)); then
  cmd=(env GOMAXPROCS=1 taskset -c "$PROXY_CPU" "$GATEWAY_BIN" run --config "$T/meshgate.yaml" --admin-addr "$MESHGATE_ADMIN")
  record "$(qcmd "${cmd[@]}")   # Meshgate under test"
  if [[ ! -x $GATEWAY_BIN ]]; then
    FAIL[meshgate]="$GATEWAY_BIN not found or not executable: build it first (go build -o bin/gateway ./cmd/gateway)"
  else
    log "starting meshgate (CPU $PROXY_CPU)"
    start_bg meshgate "$T/meshgate.log" "${cmd[@]}"
    ready=0
    for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
      kill -0 "${PID[meshgate]}" 2>/dev/null || break
      code=$(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "http://$MESHGATE_ADMIN/ready" 2>/dev/null || true)
      if [[ $code == 200 ]]; then ready=1; break; fi
      sleep 0.1
    done
    if ((ready == 0)); then
      if kill -0 "${PID[meshgate]}" 2>/dev/null; then
        FAIL[meshgate]="bin/gateway did not report ready (GET http://$MESHGATE_ADMIN/ready != 200) within ${READY_TIMEOUT}s"
      else
        FAIL[meshgate]="bin/gateway exited during start-up: $(grep -v '^$' "$T/meshgate.log" | tail -n 1 | cut -c1-200 || true)"
      fi
      tail_log "$T/meshgate.log"
    else
      # The data path must work too; otherwise every request would be an error.
      if ! wait_http meshgate "${PID[meshgate]}" "http://127.0.0.1:${H1_PORT[meshgate]}/" "hello from backend"; then
        FAIL[meshgate]="bin/gateway is ready but GET http://127.0.0.1:${H1_PORT[meshgate]}/ does not reach the backend"
        tail_log "$T/meshgate.log"
      else
        h2=$(h2_check "https://127.0.0.1:${H2_PORT[meshgate]}/")
        [[ $h2 == 2 ]] || log "WARNING: meshgate TLS port ${H2_PORT[meshgate]}: curl --http2 negotiated '$h2', not h2"
      fi
    fi
  fi
  if [[ -n ${FAIL[meshgate]:-} ]]; then
    log "ERROR: Meshgate: ${FAIL[meshgate]}"
    log "ERROR: continuing with the other proxies; this run will exit non-zero"
  fi
else
  NOTES+=("Meshgate left out on request (BENCH_SKIP_MESHGATE=1).")
fi

# ---------------------------------------------------------------------------
# 5. Measure.
# ---------------------------------------------------------------------------

rss_kb() {
  # VmRSS (kB) summed over a process and its descendants. For a multi-process
  # server (nginx: master + worker) prints "TOTAL:WORKER", WORKER being the
  # largest child, since shared library pages are counted in both processes.
  local total=0 worker=0 p v
  for p in $(descendants "$1"); do
    v=$(awk '/^VmRSS:/ { print $2 }' /proc/"$p"/status 2>/dev/null || true)
    v=${v:-0}
    total=$((total + v))
    if [[ $p != "$1" ]] && ((v > worker)); then worker=$v; fi
  done
  if ((worker > 0)); then echo "$total:$worker"; else echo "$total"; fi
}
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# wrk output -> "rps p50_ms p99_ms errors requests" ("-" where absent)
parse_wrk() {
  awk '
    function ms(v,   n, u) {
      n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
      if (u == "us") return n / 1000
      if (u == "ms") return n
      if (u == "s")  return n * 1000
      if (u == "m")  return n * 60000
      if (u == "h")  return n * 3600000
      return n
    }
    $1 == "50%" { p50 = sprintf("%.3f", ms($2)) }
    $1 == "99%" { p99 = sprintf("%.3f", ms($2)) }
    /^Requests\/sec:/ { rps = $2 }
    / requests in / { reqs = $1 }
    /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { err += $5 }
    END {
      printf "%s %s %s %d %s\n", (rps == "" ? "-" : rps), (p50 == "" ? "-" : p50),
        (p99 == "" ? "-" : p99), err, (reqs == "" ? "-" : reqs)
    }' "$1"
}

# h2load output -> "rps mean_ms proto failed errored timeout non2xx succeeded"
parse_h2load() {
  awk '
    function ms(v,   n, u) {
      n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
      if (u == "us") return n / 1000
      if (u == "ms") return n
      if (u == "s")  return n * 1000
      return n
    }
    /^Application protocol:/ { proto = $3 }
    /^No protocol negotiated/ { proto = "none" }
    /^finished in/ { rps = $4 }
    /^requests:/ {
      for (i = 2; i < NF; i++) {
        if ($(i+1) ~ /^failed/) failed = $i + 0
        if ($(i+1) ~ /^errored/) errored = $i + 0
        if ($(i+1) ~ /^timeout/) tmo = $i + 0
        if ($(i+1) ~ /^succeeded/) ok = $i + 0
      }
    }
    /^status codes:/ { non2xx = $5 + $7 + $9 }
    /^time for request:/ { mean = sprintf("%.3f", ms($6)) }
    END {
      printf "%s %s %s %d %d %d %d %d\n", (rps == "" ? "-" : rps), (mean == "" ? "-" : mean),
        (proto == "" ? "-" : proto), failed, errored, tmo, non2xx, ok
    }' "$1"
}

declare -A H1_RPS H1_P50 H1_P99 H1_ERR H1_REQS H1_RSS_IDLE H1_RSS H1_FAIL H1_OTHER
declare -A H2_RPS H2_MEAN H2_PROTO H2_FAILED H2_ERRORED H2_NON2XX H2_RSS H2_FAIL H2_OTHER

measure_h1() {
  local key=$1 url="http://127.0.0.1:${H1_PORT[$1]}/" out=$T/wrk-$1.txt pid=${PID[$1]} f0 f1 t0 t1
  local -a warm=(taskset -c "$LOAD_CPU" wrk -t1 -c"$H1_CONNS" -d"${WARMUP}s" "$url")
  local -a run=(taskset -c "$LOAD_CPU" wrk -t1 -c"$H1_CONNS" -d"${DURATION}s" --latency "$url")
  unset 'H1_FAIL[$key]'
  if [[ $key != ceiling && -z ${H1_RSS_IDLE[$key]:-} ]]; then H1_RSS_IDLE[$key]=$(rss_kb "$pid"); fi
  log "HTTP/1.1  $key: warm-up ${WARMUP}s, measure ${DURATION}s"
  if ((WARMUP > 0)); then
    record "$(qcmd "${warm[@]}")   # warm-up, $key"
    timeout $((WARMUP + 30)) "${warm[@]}" >"$T/wrk-$key-warmup.txt" 2>&1 || true
  fi
  record "$(qcmd "${run[@]}")   # measure, $key"
  f0=$(foreign_jiffies); t0=$(date +%s.%N)
  if ! timeout $((DURATION + 30)) "${run[@]}" >"$out" 2>&1; then
    H1_FAIL[$key]="wrk failed: $(tail -n 1 "$out")"
    log "ERROR: $key: ${H1_FAIL[$key]}"
  fi
  f1=$(foreign_jiffies); t1=$(date +%s.%N)
  H1_OTHER[$key]=$(foreign_pct "$f0" "$f1" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
  read -r H1_RPS[$key] H1_P50[$key] H1_P99[$key] H1_ERR[$key] H1_REQS[$key] < <(parse_wrk "$out")
  [[ $key == ceiling ]] || H1_RSS[$key]=$(rss_kb "$pid")
  if [[ ${H1_RPS[$key]} == - && -z ${H1_FAIL[$key]:-} ]]; then H1_FAIL[$key]="no result in wrk output"; fi
}

measure_h2() {
  local key=$1 url="https://127.0.0.1:${H2_PORT[$1]}/" out=$T/h2load-$1.txt pid=${PID[$1]} tmo f0 f1 t0 t1
  local -a warm=(taskset -c "$LOAD_CPU" h2load -c"$H2_CLIENTS" -m"$H2_STREAMS" -D"$WARMUP" "$url")
  local -a run=(taskset -c "$LOAD_CPU" h2load -c"$H2_CLIENTS" -m"$H2_STREAMS" -D"$DURATION" "$url")
  unset 'H2_FAIL[$key]'
  log "HTTP/2+TLS $key: warm-up ${WARMUP}s, measure ${DURATION}s"
  if ((WARMUP > 0)); then
    record "$(qcmd "${warm[@]}")   # warm-up, $key"
    timeout $((WARMUP + 30)) "${warm[@]}" >"$T/h2load-$key-warmup.txt" 2>&1 || true
  fi
  record "$(qcmd "${run[@]}")   # measure, $key"
  f0=$(foreign_jiffies); t0=$(date +%s.%N)
  if ! timeout $((DURATION + 30)) "${run[@]}" >"$out" 2>&1; then
    H2_FAIL[$key]="h2load failed: $(grep -v '^$' "$out" | tail -n 1 || true)"
    log "ERROR: $key: ${H2_FAIL[$key]}"
  fi
  f1=$(foreign_jiffies); t1=$(date +%s.%N)
  H2_OTHER[$key]=$(foreign_pct "$f0" "$f1" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
  read -r H2_RPS[$key] H2_MEAN[$key] H2_PROTO[$key] H2_FAILED[$key] H2_ERRORED[$key] tmo H2_NON2XX[$key] _ < <(parse_h2load "$out")
  H2_ERRORED[$key]=$((${H2_ERRORED[$key]} + tmo))
  [[ $key == ceiling ]] || H2_RSS[$key]=$(rss_kb "$pid")
  if [[ ${H2_PROTO[$key]} != h2 && -z ${H2_FAIL[$key]:-} ]]; then
    H2_FAIL[$key]="ALPN did not negotiate h2 (got '${H2_PROTO[$key]}')"
  fi
  if [[ ${H2_RPS[$key]} == - && -z ${H2_FAIL[$key]:-} ]]; then H2_FAIL[$key]="no result in h2load output"; fi
}

ORDER=(ceiling nginx haproxy)
((HAVE_CADDY)) && ORDER+=(caddy)
((MESHGATE_WANTED)) && ORDER+=(meshgate)

wait_quiet() { # wait up to $1 s for a second in which other processes stay under NOISE_PCT
  local i f0 f1
  for ((i = 0; i < $1; i++)); do
    f0=$(foreign_jiffies); sleep 1; f1=$(foreign_jiffies)
    (($(foreign_pct "$f0" "$f1" 1) < NOISE_PCT)) && return 0
  done
  return 0
}

# measure_with_retry h1|h2 KEY: a measurement disturbed by other processes is
# taken again (after waiting up to 30 s for quiet), at most RETRY_NOISY times.
declare -A TRIES=()
measure_with_retry() {
  local kind=$1 key=$2 try other failed
  for ((try = 0; ; try++)); do
    if [[ $kind == h1 ]]; then
      measure_h1 "$key"; other=${H1_OTHER[$key]}; failed=${H1_FAIL[$key]:-}
    else
      measure_h2 "$key"; other=${H2_OTHER[$key]}; failed=${H2_FAIL[$key]:-}
    fi
    if [[ -z $failed ]] && ((other >= NOISE_PCT && try < RETRY_NOISY)); then
      log "$key: other processes used ${other}% of a CPU during the measurement; measuring again"
      wait_quiet 30
      continue
    fi
    break
  done
  TRIES[$kind:$key]=$((try + 1))
}

for key in "${ORDER[@]}"; do
  [[ -n ${FAIL[$key]:-} ]] && continue
  measure_with_retry h1 "$key"
done
for key in "${ORDER[@]}"; do
  [[ -n ${FAIL[$key]:-} ]] && continue
  measure_with_retry h2 "$key"
done

# ---------------------------------------------------------------------------
# 6. Report.
# ---------------------------------------------------------------------------

ratio() { # value base -> "0.87x" or "-"
  if [[ $1 == - || -z $1 || $2 == - || -z $2 ]]; then echo "-"; return; fi
  awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2fx", a / b }'
}
fmt_rps() { [[ $1 == - || -z $1 ]] && echo "-" || awk -v v="$1" 'BEGIN { printf "%.0f", v }'; }
fmt_ms() { [[ $1 == - || -z $1 ]] && echo "-" || awk -v v="$1" 'BEGIN { printf "%.2f", v }'; }
fmt_other() { # percent -> "3" or "**45 (noisy)**"
  local v=${1:-}
  if [[ -z $v ]]; then echo "-"
  elif ((v >= NOISE_PCT)); then echo "**$v (noisy)**"
  else echo "$v"; fi
}
noisy_rows() { # prints "h1:key h2:key ..." for rows over the noise threshold
  local key
  for key in "${ORDER[@]}"; do
    if [[ -n ${H1_OTHER[$key]:-} ]] && ((${H1_OTHER[$key]} >= NOISE_PCT)); then printf 'HTTP/1.1 %s, ' "${LABEL[$key]}"; fi
  done
  for key in "${ORDER[@]}"; do
    if [[ -n ${H2_OTHER[$key]:-} ]] && ((${H2_OTHER[$key]} >= NOISE_PCT)); then printf 'HTTP/2 %s, ' "${LABEL[$key]}"; fi
  done
}

fmt_mb() { # "TOTAL" or "TOTAL:WORKER" in kB
  local v=${1:-}
  if [[ -z $v ]]; then echo "-"
  elif [[ $v == *:* ]]; then echo "$(mb "${v%%:*}") (worker $(mb "${v#*:}"))"
  else mb "$v"; fi
}

h1_table() {
  echo "| proxy | rps | p50 ms | p99 ms | errors | RSS idle MB | RSS after MB | ratio vs nginx | ratio vs haproxy | other CPU % |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  local key
  for key in "${ORDER[@]}"; do
    if [[ -n ${FAIL[$key]:-} ]]; then
      echo "| ${LABEL[$key]} | not run: ${FAIL[$key]} | | | | | | | | |"
      continue
    fi
    local errs=${H1_ERR[$key]}
    [[ $errs != 0 && ${H1_REQS[$key]} != - ]] && errs="$errs of ${H1_REQS[$key]}"
    [[ -n ${H1_FAIL[$key]:-} ]] && errs="$errs (${H1_FAIL[$key]})"
    echo "| ${LABEL[$key]} | $(fmt_rps "${H1_RPS[$key]}") | $(fmt_ms "${H1_P50[$key]}") | $(fmt_ms "${H1_P99[$key]}") | $errs" \
      "| $(fmt_mb "${H1_RSS_IDLE[$key]:-}") | $(fmt_mb "${H1_RSS[$key]:-}")" \
      "| $(ratio "${H1_RPS[$key]}" "${H1_RPS[nginx]:-}") | $(ratio "${H1_RPS[$key]}" "${H1_RPS[haproxy]:-}")" \
      "| $(fmt_other "${H1_OTHER[$key]:-}") |"
  done
}

h2_table() {
  echo "| proxy | rps | mean ms | ALPN | failed | errored | non-2xx | RSS after MB | ratio vs nginx | ratio vs haproxy | other CPU % |"
  echo "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
  local key
  for key in "${ORDER[@]}"; do
    local label=${LABEL[$key]}
    [[ $key == ceiling ]] && label="no proxy (ceiling: backend nginx serves h2 itself)"
    if [[ -n ${FAIL[$key]:-} ]]; then
      echo "| $label | not run: ${FAIL[$key]} | | | | | | | | | |"
      continue
    fi
    local errd=${H2_ERRORED[$key]}
    [[ -n ${H2_FAIL[$key]:-} ]] && errd="$errd (${H2_FAIL[$key]})"
    echo "| $label | $(fmt_rps "${H2_RPS[$key]}") | $(fmt_ms "${H2_MEAN[$key]}") | ${H2_PROTO[$key]} | ${H2_FAILED[$key]} | $errd | ${H2_NON2XX[$key]}" \
      "| $(fmt_mb "${H2_RSS[$key]:-}") | $(ratio "${H2_RPS[$key]}" "${H2_RPS[nginx]:-}") | $(ratio "${H2_RPS[$key]}" "${H2_RPS[haproxy]:-}")" \
      "| $(fmt_other "${H2_OTHER[$key]:-}") |"
  done
}

first_line() { "$@" 2>&1 | head -n 1 || true; }
CPU_MODEL=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
GO_VERSION=$(command -v go >/dev/null 2>&1 && go version 2>/dev/null || echo "go not installed")
NGINX_VERSION=$(first_line nginx -v)
HAPROXY_VERSION=$(first_line haproxy -v)
WRK_VERSION=$(first_line wrk -v)
H2LOAD_VERSION=$(first_line h2load --version)
CADDY_VERSION="-"
((HAVE_CADDY)) && CADDY_VERSION=$(first_line caddy version)
GATEWAY_ID="-"
if [[ -x $GATEWAY_BIN ]]; then
  GATEWAY_ID="$GATEWAY_BIN, sha256 $(sha256sum "$GATEWAY_BIN" | cut -c1-12), built $(date -r "$GATEWAY_BIN" '+%F %T')"
fi

RETRIED=""
for kind in h1 h2; do
  for key in "${ORDER[@]}"; do
    n=${TRIES[$kind:$key]:-1}
    if ((n > 1)); then
      RETRIED+="$([[ $kind == h1 ]] && echo HTTP/1.1 || echo HTTP/2) ${LABEL[$key]} ($n times), "
    fi
  done
done
if [[ -n $RETRIED ]]; then
  NOTES+=("Measured again because other processes disturbed the first try: ${RETRIED%, }. The tables show the last try.")
fi
NOISY=$(noisy_rows)
if [[ -n $NOISY ]]; then
  NOTES+=("Other processes on this machine used ${NOISE_PCT}% or more of a CPU during: ${NOISY%, }. Those rows, and ratios against them, are unreliable: rerun when the machine is quiet.")
fi

H1_TABLE=$(h1_table)
H2_TABLE=$(h2_table)

mkdir -p "$(dirname "$RESULT_FILE")"
{
  echo "# Side-by-side proxy benchmark, $DATE"
  echo
  echo "Generated by \`bench/run.sh\` at $(date -u '+%F %T') UTC. Measurement ${DURATION}s, warm-up ${WARMUP}s."
  echo "Machines are shared and noisy: compare the ratios within this run, never absolute numbers across runs."
  echo
  echo "## Machine"
  echo
  echo "- nproc: $NPROC"
  echo "- CPU: ${CPU_MODEL:-unknown}"
  echo "- kernel: $(uname -r)"
  echo "- Go: $GO_VERSION"
  echo "- nginx: $NGINX_VERSION"
  echo "- haproxy: $HAPROXY_VERSION"
  echo "- Caddy: $CADDY_VERSION"
  echo "- wrk: $WRK_VERSION"
  echo "- h2load: $H2LOAD_VERSION"
  echo "- Meshgate: $GATEWAY_ID"
  echo "- other processes' CPU use just before the run: ${BASE_OTHER}% of one CPU"
  echo "- pinning: proxy under test on CPU $PROXY_CPU (one worker / GOMAXPROCS=1); backend nginx and load generator on CPU $LOAD_CPU"
  echo
  echo "## HTTP/1.1 keep-alive: wrk -t1 -c$H1_CONNS -d${DURATION}s --latency (after ${WARMUP}s warm-up)"
  echo
  echo "$H1_TABLE"
  echo
  echo "other CPU % = CPU time used during the measurement by processes outside this benchmark (other builds, tests), in % of one CPU; ${NOISE_PCT}% or more is flagged noisy."
  echo "errors = wrk socket errors (connect+read+write+timeout) + non-2xx/3xx responses."
  echo "RSS = VmRSS from /proc/PID/status, idle before warm-up and right after the run; for nginx the sum of master + worker (shared library pages counted twice), with the worker alone in brackets."
  echo
  echo "## HTTP/2 over TLS (ALPN h2): h2load -c$H2_CLIENTS -m$H2_STREAMS -D$DURATION (after ${WARMUP}s warm-up)"
  echo
  echo "$H2_TABLE"
  echo
  echo "errored includes h2load timeouts. RSS is measured right after the h2 run."
  echo
  if ((${#NOTES[@]})) || ((${#FAIL[@]})); then
    echo "## Notes"
    echo
    for n in "${NOTES[@]}"; do echo "- $n"; done
    for k in "${!FAIL[@]}"; do echo "- ${LABEL[$k]} not measured: ${FAIL[$k]}"; done
    echo
  fi
  echo "## Commands"
  echo
  echo "Run from the repo root; \$T is the temp dir of the run."
  echo
  echo '```sh'
  for c in "${CMDS[@]}"; do echo "${c//$T/\$T}"; done
  echo '```'
  echo
  echo "## Configs"
  echo
  echo "<details><summary>backend nginx</summary>"
  echo
  echo '```nginx'
  sed "s#$T#\$T#g" "$B/nginx.conf"
  echo '```'
  echo "</details>"
  echo
  echo "<details><summary>nginx under test</summary>"
  echo
  echo '```nginx'
  sed "s#$T#\$T#g" "$N/nginx.conf"
  echo '```'
  echo "</details>"
  echo
  echo "<details><summary>haproxy under test</summary>"
  echo
  echo '```'
  sed "s#$T#\$T#g" "$T/haproxy.cfg"
  echo '```'
  echo "</details>"
  echo
  if ((HAVE_CADDY)); then
    echo "<details><summary>Caddy under test</summary>"
    echo
    echo '```'
    sed "s#$T#\$T#g" "$T/Caddyfile"
    echo '```'
    echo "</details>"
    echo
  fi
  echo "<details><summary>Meshgate under test (\$T/meshgate.yaml)</summary>"
  echo
  echo '```yaml'
  meshgate_yaml "<base64 of \$T/cert.pem>" "<base64 of \$T/key.pem>"
  echo '```'
  echo "</details>"
} >"$RESULT_FILE"

echo
echo "HTTP/1.1 keep-alive (wrk -t1 -c$H1_CONNS -d${DURATION}s --latency):"
echo "$H1_TABLE"
echo
echo "HTTP/2 over TLS (h2load -c$H2_CLIENTS -m$H2_STREAMS -D$DURATION):"
echo "$H2_TABLE"
echo
for n in "${NOTES[@]}"; do echo "note: $n"; done
echo "report: ${RESULT_FILE#"$ROOT"/}"

if ((MESHGATE_WANTED)) && [[ -n ${FAIL[meshgate]:-} ]]; then
  die "Meshgate was not measured: ${FAIL[meshgate]}"
fi
