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
#   BENCH_ROUNDS=3          HTTP/1.1 and HTTP/2 tables, many routes and the
#                           constant-rate latency: alternate the proxies over
#                           N rounds and report each proxy's median round (by
#                           rps; by p99 for the constant rate)
# Extra measures (after the two tables above), each skippable:
#   BENCH_SKIP_ROUTES=1     many routes: wrk on the last of N host+path routes
#   BENCH_ROUTES="10 1000 10000"  the route counts (the first is the base)
#   BENCH_SKIP_RELOAD=1     Meshgate reload with the largest route count, under wrk
#   BENCH_RELOADS=30        how many reloads (the target: no failed request across 30)
#   BENCH_RELOAD_TIMEOUT=10 seconds to wait for one reload to take effect
#   BENCH_SKIP_TLS_CONNS=1  new TLS connections per second (ab, no keep-alive)
#   BENCH_SKIP_MEMORY=1     idle RSS and RSS with many idle keep-alive connections
#   BENCH_IDLE_CONNS=5000   how many idle connections
#   BENCH_SKIP_CONSTANT=1   latency under constant load (fixed rate, open loop)
#   BENCH_CONSTANT_PCTS="50 90"  the fixed rates, in % of nginx's HTTP/1.1 rps of this run
#   BENCH_CONSTANT_TOOL=ratebench  the fixed-rate generator: ratebench
#                           (bench/tools/ratebench, wrk2-style) or vegeta
#   BENCH_VEGETA_VERSION=v12.13.0  vegeta release to build (cached in
#                           ${MESHGATE_TOOLS:-$HOME/.cache/meshgate}/vegeta-<version>/vegeta)
#   BENCH_SKIP_PROTOCOLS=1  gRPC unary and WebSocket echo (bench/protocols.sh)
#   BENCH_SKIP_METRICS_COST=1  what recording metrics costs (bench/metrics-cost.sh)
#
# The report goes to bench/results/YYYY-MM-DD.md (overwritten on the same day).
# A run with non-default durations is a smoke run and goes to
# bench/results/YYYY-MM-DD-smoke.md instead, so it never clobbers a full run.
# bench/protocols.sh's section goes to the same name with -protocols before
# -smoke/.md, and is appended to the report too.
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
ROUNDS=${BENCH_ROUNDS:-3}
SKIP_ROUTES=${BENCH_SKIP_ROUTES:-0}
SKIP_RELOAD=${BENCH_SKIP_RELOAD:-0}
SKIP_TLS_CONNS=${BENCH_SKIP_TLS_CONNS:-0}
SKIP_MEMORY=${BENCH_SKIP_MEMORY:-0}
read -r -a ROUTE_COUNTS <<<"${BENCH_ROUTES:-10 1000 10000}"
RELOADS=${BENCH_RELOADS:-30}
RELOAD_TIMEOUT=${BENCH_RELOAD_TIMEOUT:-10}
IDLE_CONNS=${BENCH_IDLE_CONNS:-5000}
SKIP_CONSTANT=${BENCH_SKIP_CONSTANT:-0}
read -r -a CONSTANT_PCTS <<<"${BENCH_CONSTANT_PCTS:-50 90}"
CONSTANT_TOOL=${BENCH_CONSTANT_TOOL:-ratebench}
VEGETA_VERSION=${BENCH_VEGETA_VERSION:-v12.13.0}
TOOLS_DIR=${MESHGATE_TOOLS:-$HOME/.cache/meshgate}
SKIP_PROTOCOLS=${BENCH_SKIP_PROTOCOLS:-0}

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
# The extra measures (many routes, reload, new TLS connections, memory) start
# their own instances, one at a time, on these ports.
declare -A X_PORT=([nginx]=8091 [haproxy]=8092 [meshgate]=8093)
declare -A X_TLS_PORT=([nginx]=8491 [haproxy]=8492 [meshgate]=8493)
X_MESHGATE_ADMIN=127.0.0.1:9903

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
is_uint "$ROUNDS" && ((ROUNDS >= 1)) || die "BENCH_ROUNDS must be a positive integer, got '$ROUNDS'"
is_uint "$WAIT_QUIET" || die "BENCH_WAIT_QUIET must be a non-negative integer (seconds), got '$WAIT_QUIET'"
is_uint "$READY_TIMEOUT" && ((READY_TIMEOUT > 0)) || die "BENCH_READY_TIMEOUT must be a positive integer, got '$READY_TIMEOUT'"
((${#ROUTE_COUNTS[@]} > 0)) || die "BENCH_ROUTES must list at least one route count"
for n in "${ROUTE_COUNTS[@]}"; do
  is_uint "$n" && ((n > 0 && n <= 100000)) || die "BENCH_ROUTES must be route counts between 1 and 100000, got '$n'"
done
is_uint "$RELOADS" && ((RELOADS > 0 && RELOADS <= 100)) || die "BENCH_RELOADS must be between 1 and 100, got '$RELOADS'"
is_uint "$RELOAD_TIMEOUT" && ((RELOAD_TIMEOUT > 0 && RELOAD_TIMEOUT <= 120)) || die "BENCH_RELOAD_TIMEOUT must be between 1 and 120, got '$RELOAD_TIMEOUT'"
is_uint "$IDLE_CONNS" && ((IDLE_CONNS > 0)) || die "BENCH_IDLE_CONNS must be a positive integer, got '$IDLE_CONNS'"
((${#CONSTANT_PCTS[@]} > 0)) || die "BENCH_CONSTANT_PCTS must list at least one percentage"
for n in "${CONSTANT_PCTS[@]}"; do
  is_uint "$n" && ((n > 0 && n <= 200)) || die "BENCH_CONSTANT_PCTS must be percentages between 1 and 200, got '$n'"
done
[[ $CONSTANT_TOOL == ratebench || $CONSTANT_TOOL == vegeta ]] || die "BENCH_CONSTANT_TOOL must be ratebench or vegeta, got '$CONSTANT_TOOL'"
[[ $VEGETA_VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "BENCH_VEGETA_VERSION must look like v12.13.0, got '$VEGETA_VERSION'"

DATE=$(date +%F)
if [[ -n ${BENCH_RESULT_FILE:-} ]]; then
  RESULT_FILE=$BENCH_RESULT_FILE
elif [[ $DURATION == 8 && $WARMUP == 2 ]]; then
  RESULT_FILE=$ROOT/bench/results/$DATE.md
else
  RESULT_FILE=$ROOT/bench/results/$DATE-smoke.md
fi
# bench/protocols.sh writes next to it: DATE.md -> DATE-protocols.md, DATE-smoke.md -> DATE-protocols-smoke.md.
if [[ ${RESULT_FILE%.md} == *-smoke ]]; then
  PROTOCOLS_FILE=${RESULT_FILE%-smoke.md}-protocols-smoke.md
else
  PROTOCOLS_FILE=${RESULT_FILE%.md}-protocols.md
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

# ab (Debian apache2-utils) for new TLS connections per second.
HAVE_AB=0
if [[ $SKIP_TLS_CONNS != 1 ]]; then
  if ! command -v ab >/dev/null 2>&1 && ((NO_INSTALL == 0)); then
    apt_install apache2-utils || log "Debian package 'apache2-utils' (ab) could not be installed; skipping new TLS connections per second"
  fi
  if command -v ab >/dev/null 2>&1; then
    HAVE_AB=1
  else
    NOTES+=("New TLS connections per second skipped: \`ab\` (Debian package \`apache2-utils\`) is not installed.")
  fi
fi

# Raise the soft fd limit to the hard one (idle connections later; haproxy sizes by maxconn).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [[ $SKIP_MEMORY != 1 ]]; then
  NOFILE=$(ulimit -n)
  if [[ $NOFILE != unlimited ]] && ((IDLE_CONNS + 1024 > NOFILE)); then
    ulimit -n $((IDLE_CONNS + 1024)) 2>/dev/null || true
    NOFILE=$(ulimit -n)
    if [[ $NOFILE != unlimited ]] && ((IDLE_CONNS + 1024 > NOFILE)); then
      NOTES+=("Idle connections lowered from $IDLE_CONNS to $((NOFILE - 1024)): the open-file limit is $NOFILE.")
      IDLE_CONNS=$((NOFILE - 1024))
      ((IDLE_CONNS > 0)) || die "open-file limit $NOFILE is too low for the idle-connection measure (set BENCH_SKIP_MEMORY=1)"
    fi
  fi
fi

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
all_ports+=("${X_PORT[@]}" "${X_TLS_PORT[@]}" "${X_MESHGATE_ADMIN##*:}")
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

# New TLS connections per second: an ECDSA P-256 certificate, the same for every proxy.
if [[ $SKIP_TLS_CONNS != 1 ]] && ((HAVE_AB)); then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 30 \
    -keyout "$T/ecdsa-key.pem" -out "$T/ecdsa-cert.pem" \
    -subj "/CN=bench.local" -addext "subjectAltName=DNS:bench.local" >/dev/null 2>&1 ||
    die "openssl could not create the ECDSA P-256 certificate"
  cat "$T/ecdsa-cert.pem" "$T/ecdsa-key.pem" >"$T/ecdsa-combined.pem"
fi

# Memory: bench/tools/idleconns holds many idle keep-alive connections open.
HAVE_IDLECONNS=0
if [[ $SKIP_MEMORY != 1 ]]; then
  if ! command -v go >/dev/null 2>&1; then
    NOTES+=("Memory measure skipped: \`go\` is not installed (it builds bench/tools/idleconns).")
  elif timeout 300 go build -o "$T/idleconns" ./bench/tools/idleconns >"$T/idleconns-build.log" 2>&1; then
    HAVE_IDLECONNS=1
  else
    NOTES+=("Memory measure skipped: go build ./bench/tools/idleconns failed: $(grep -v '^$' "$T/idleconns-build.log" | tail -n 1 | cut -c1-200 || true)")
  fi
fi

# Constant-rate latency: bench/tools/ratebench, or vegeta built from its Go
# module in a throwaway module (as bench/protocols.sh builds ghz) and cached
# by version. A failed build stops the run here, before minutes of
# measuring without it.
RATEBENCH=$T/ratebench
if [[ $SKIP_CONSTANT != 1 && $CONSTANT_TOOL == ratebench ]]; then
  command -v go >/dev/null 2>&1 || die "go is not installed: it builds bench/tools/ratebench for the constant-rate latency measure (BENCH_SKIP_CONSTANT=1 leaves that out)"
  timeout 300 go build -o "$RATEBENCH" ./bench/tools/ratebench >"$T/ratebench-build.log" 2>&1 ||
    die "go build ./bench/tools/ratebench failed: $(grep -v '^$' "$T/ratebench-build.log" | tail -n 1 | cut -c1-300 || true)"
fi
VEGETA=$TOOLS_DIR/vegeta-$VEGETA_VERSION/vegeta
VEGETA_MOD=github.com/tsenart/vegeta
VEGETA_MAJOR=${VEGETA_VERSION#v}
VEGETA_MAJOR=${VEGETA_MAJOR%%.*}
((VEGETA_MAJOR >= 2)) && VEGETA_MOD+=/v$VEGETA_MAJOR
if [[ $SKIP_CONSTANT != 1 && $CONSTANT_TOOL == vegeta && ! -x $VEGETA ]]; then
  command -v go >/dev/null 2>&1 || die "go is not installed: it builds vegeta for the constant-rate latency measure (BENCH_SKIP_CONSTANT=1 leaves that out)"
  log "building vegeta $VEGETA_VERSION into $VEGETA (once)"
  gm=$(mktemp -d "${TMPDIR:-/tmp}/vegeta-build.XXXXXX")
  if ! (
    cd "$gm" &&
      export GOWORK=off GOFLAGS=-mod=mod &&
      go mod init tmp &&
      timeout 600 go get "$VEGETA_MOD@$VEGETA_VERSION" &&
      mkdir -p "$(dirname "$VEGETA")" &&
      timeout 600 go build -ldflags "-X main.Version=$VEGETA_VERSION" -o "$VEGETA.tmp" "$VEGETA_MOD" &&
      mv "$VEGETA.tmp" "$VEGETA"
  ) >"$T/vegeta-build.log" 2>&1; then
    rm -rf "$gm"
    die "vegeta $VEGETA_VERSION could not be built from its Go module ($VEGETA_MOD): $(grep -v '^$' "$T/vegeta-build.log" | tail -n 1 | cut -c1-300 || true) (BENCH_SKIP_CONSTANT=1 runs without the constant-rate measure)"
  fi
  rm -rf "$gm"
fi

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
  cmd=(env GOMAXPROCS=1 taskset -c "$PROXY_CPU" "$GATEWAY_BIN" run --config "$T/meshgate.yaml" --admin-addr "$MESHGATE_ADMIN" --access-log=)
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
# anon_kb PID: RssAnon (kB) summed over a process and its descendants: the
# private memory, without the file-backed pages of the binary and libraries
# (shared, and given back by the kernel under pressure).
anon_kb() {
  local total=0 p v
  for p in $(descendants "$1"); do
    v=$(awk '/^RssAnon:/ { print $2 }' /proc/"$p"/status 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
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

# The HTTP/1.1 and HTTP/2 tables alternate the proxies over ROUNDS rounds
# (a slow spell of the shared machine then hits every proxy, not one row)
# and report each proxy's median round by rps, whole (its latency and RSS
# come from that same round). ROUND_RPS keeps every round's rps for the
# report.
declare -A ROUND_SNAP ROUND_RPS
snap_round() { # KIND KEY ROUND
  local k=$2
  if [[ $1 == h1 ]]; then
    ROUND_SNAP[$1:$k:$3]="${H1_RPS[$k]:-}|${H1_P50[$k]:-}|${H1_P99[$k]:-}|${H1_ERR[$k]:-}|${H1_REQS[$k]:-}|${H1_RSS[$k]:-}|${H1_FAIL[$k]:-}|${H1_OTHER[$k]:-}"
    ROUND_RPS[$1:$k]+="${H1_RPS[$k]:--} "
  else
    ROUND_SNAP[$1:$k:$3]="${H2_RPS[$k]:-}|${H2_MEAN[$k]:-}|${H2_PROTO[$k]:-}|${H2_FAILED[$k]:-}|${H2_ERRORED[$k]:-}|${H2_NON2XX[$k]:-}|${H2_RSS[$k]:-}|${H2_FAIL[$k]:-}|${H2_OTHER[$k]:-}"
    ROUND_RPS[$1:$k]+="${H2_RPS[$k]:--} "
  fi
}
# median_round SNAP KEY FIELD MISSING: the round (1..ROUNDS) whose FIELD
# (0-based, of the '|'-separated snapshot SNAP[KEY:round]) is the median;
# a round without a number there counts as MISSING.
median_round() {
  local -n _snap=$1
  local k=$2 i=$3 missing=$4 r v
  local -a f
  for ((r = 1; r <= ROUNDS; r++)); do
    IFS='|' read -r -a f <<<"${_snap[$k:$r]:-}|"
    v=${f[$i]:-}
    [[ $v =~ ^[0-9.]+$ ]] || v=$missing
    echo "$v $r"
  done | sort -g | awk -v n="$ROUNDS" 'NR == int((n + 1) / 2) { print $2 }'
}
use_median_round() { # KIND KEY: restore the round with the median rps
  local kind=$1 k=$2 best
  best=$(median_round ROUND_SNAP "$kind:$k" 0 0)
  local -a f
  IFS='|' read -r -a f <<<"${ROUND_SNAP[$kind:$k:$best]}|"
  if [[ $kind == h1 ]]; then
    H1_RPS[$k]=${f[0]} H1_P50[$k]=${f[1]} H1_P99[$k]=${f[2]} H1_ERR[$k]=${f[3]} H1_REQS[$k]=${f[4]} H1_RSS[$k]=${f[5]} H1_OTHER[$k]=${f[7]}
    if [[ -n ${f[6]} ]]; then H1_FAIL[$k]=${f[6]}; else unset 'H1_FAIL[$k]'; fi
  else
    H2_RPS[$k]=${f[0]} H2_MEAN[$k]=${f[1]} H2_PROTO[$k]=${f[2]} H2_FAILED[$k]=${f[3]} H2_ERRORED[$k]=${f[4]} H2_NON2XX[$k]=${f[5]} H2_RSS[$k]=${f[6]} H2_OTHER[$k]=${f[8]}
    if [[ -n ${f[7]} ]]; then H2_FAIL[$k]=${f[7]}; else unset 'H2_FAIL[$k]'; fi
  fi
}
rounds_line() { # KIND -> "proxy: rps rps rps; ..." for the report
  local key out=""
  for key in "${ORDER[@]}"; do
    [[ -n ${ROUND_RPS[$1:$key]:-} ]] && out+="${key}: ${ROUND_RPS[$1:$key]% }; "
  done
  echo "${out%; }"
}

for kind in h1 h2; do
  for ((round = 1; round <= ROUNDS; round++)); do
    for key in "${ORDER[@]}"; do
      [[ -n ${FAIL[$key]:-} ]] && continue
      ((ROUNDS > 1)) && log "round $round of $ROUNDS"
      measure_with_retry "$kind" "$key"
      snap_round "$kind" "$key" "$round"
    done
  done
  for key in "${ORDER[@]}"; do
    [[ -n ${FAIL[$key]:-} ]] && continue
    use_median_round "$kind" "$key"
  done
done

# ---------------------------------------------------------------------------
# 5b. Extra measures: many routes, reload under load, new TLS connections per
# second, memory. Each starts its own instances, one at a time, on X_PORT /
# X_TLS_PORT, pinned like the others; the backend stays up.
# ---------------------------------------------------------------------------

now_us() { local t=${EPOCHREALTIME//[!0-9]/}; echo "${t:-$(($(date +%s%N) / 1000))}"; }
secs_since() { awk -v a="$1" -v b="$(now_us)" 'BEGIN { printf "%.3f", (b - a) / 1e6 }'; }

is_alive() { # PID -> 0 while it runs (a zombie does not count)
  local st
  st=$(sed 's/^.*) //' /proc/"$1"/stat 2>/dev/null) || return 1
  [[ -n $st && ${st%% *} != Z ]]
}

tree_jiffies() { # utime+stime (jiffies) of a process and its descendants
  local total=0 p v
  for p in $(descendants "$1"); do
    v=$(sed 's/^.*) //' /proc/"$p"/stat 2>/dev/null | awk '{ print $12 + $13 }' || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

forget_pid() { # PID: no longer ours to stop in cleanup
  local p keep=()
  for p in "${PIDS[@]}"; do
    if [[ $p != "$1" ]]; then keep+=("$p"); fi
  done
  PIDS=("${keep[@]}")
}

stop_server() { # KEY: stop a server started with start_bg (TERM; KILL after 5 s)
  local key=$1 pid=${PID[$1]:-} all=() i alive p
  [[ -n $pid ]] || return 0
  mapfile -t all < <(descendants "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive=0
    for p in "${all[@]}"; do
      if is_alive "$p"; then alive=1; fi
    done
    ((alive)) || break
    sleep 0.1
  done
  for p in "${all[@]}"; do
    if is_alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
  unset 'PID[$key]'
  return 0
}

# start_x KEY LOG URL HOST CMD...: start an instance and wait until GET URL
# (with "Host: HOST" when HOST is set) returns the backend's answer. Sets
# READY_MS (start to first routed answer) or START_ERR.
start_x() {
  local key=$1 logf=$2 url=$3 host=$4 t0 deadline body
  shift 4
  local -a hdr=()
  [[ -n $host ]] && hdr=(-H "Host: $host")
  START_ERR="" READY_MS=""
  log "starting $key (CPU $PROXY_CPU)"
  t0=$(now_us)
  deadline=$((t0 + READY_TIMEOUT * 1000000))
  start_bg "$key" "$logf" "$@"
  while (($(now_us) < deadline)); do
    if ! is_alive "${PID[$key]}"; then
      START_ERR="exited during start-up: $(grep -v '^$' "$logf" 2>/dev/null | tail -n 1 | cut -c1-200 || true)"
      break
    fi
    if body=$(curl -ksS --max-time 1 "${hdr[@]}" "$url" 2>/dev/null) && [[ $body == *"hello from backend"* ]]; then
      READY_MS=$((($(now_us) - t0) / 1000))
      return 0
    fi
    sleep 0.02
  done
  [[ -n $START_ERR ]] || START_ERR="no routed answer from $url within ${READY_TIMEOUT}s"
  log "ERROR: $key: $START_ERR"
  tail_log "$logf"
  stop_server "$key"
  return 1
}

# retry_noisy OTHER_ARRAY FAIL_ARRAY KEY FN ARGS...: like measure_with_retry,
# for the extra measures. Sets LAST_TRIES.
retry_noisy() {
  local -n _other=$1 _fail=$2
  local key=$3 try
  shift 3
  for ((try = 0; ; try++)); do
    "$@"
    if [[ -z ${_fail[$key]:-} ]] && ((${_other[$key]:-0} >= NOISE_PCT && try < RETRY_NOISY)); then
      log "$key: other processes used ${_other[$key]}% of a CPU during the measurement; measuring again"
      wait_quiet 30
      continue
    fi
    break
  done
  LAST_TRIES=$((try + 1))
}

pct_cpu() { # jiffies_before jiffies_after start_us -> % of one CPU
  awk -v a="$1" -v b="$2" -v s="$(secs_since "$3")" -v hz="$CLK_TCK" 'BEGIN { if (s <= 0) s = 1; printf "%.0f", 100 * (b - a) / (hz * s) }'
}

# --- configs -----------------------------------------------------------------

# Meshgate: Gateway with one listener (http on X_PORT, or https on X_TLS_PORT
# with the ECDSA certificate), and the Backend.
meshgate_x_head() { # http | https CRT_B64 KEY_B64
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
EOF
  if [[ $1 == https ]]; then
    cat <<EOF
  - name: https
    protocol: HTTPS
    port: ${X_TLS_PORT[meshgate]}
    tls: {mode: Terminate, certificateRefs: [{name: bench-ecdsa}]}
---
apiVersion: v1
kind: Secret
metadata: {name: bench-ecdsa, namespace: default}
type: kubernetes.io/tls
data: {tls.crt: $2, tls.key: $3}
EOF
  else
    echo "  - {name: http, protocol: HTTP, port: ${X_PORT[meshgate]}}"
  fi
  cat <<EOF
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: Backend
metadata: {name: origin, namespace: default}
spec:
  endpoints: [{address: 127.0.0.1, port: $BACKEND_PORT}]
EOF
}
meshgate_catchall_route() { # the one route of the main config
  cat <<EOF
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
# N HTTPRoutes, as one would write one per site: hostname h<i>.bench.local,
# PathPrefix /p<i>, all to the same Backend.
meshgate_host_routes() { # N
  awk -v n="$1" 'BEGIN {
    for (i = 0; i < n; i++)
      printf "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r%d, namespace: default}\nspec:\n  parentRefs: [{name: bench}]\n  hostnames: [h%d.bench.local]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /p%d}}]\n    backendRefs: [{group: gateway.meshgate.dev, kind: Backend, name: origin}]\n", i, i, i
  }'
}

nginx_upstream() {
  cat <<EOF
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 128;
        keepalive_requests 1000000;
    }
EOF
}
# nginx: one server block per host (server_name h<i>.bench.local) with
# location /p<i>; unknown hosts hit a default server that returns 404.
nginx_routes_conf() { # DIR N
  local d=$1 n=$2
  nginx_common "$d"
  cat <<EOF
http {
    access_log off;
$(nginx_temp_paths "$d")
    keepalive_requests 1000000;
    server_names_hash_max_size $((n * 4 + 1024));
    server_names_hash_bucket_size 128;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
$(nginx_upstream)
    server {
        listen 127.0.0.1:${X_PORT[nginx]} default_server;
        return 404;
    }
EOF
  awk -v n="$n" -v port="${X_PORT[nginx]}" 'BEGIN {
    for (i = 0; i < n; i++)
      printf "    server {\n        listen 127.0.0.1:%d;\n        server_name h%d.bench.local;\n        location /p%d { proxy_pass http://backend; }\n    }\n", port, i, i
  }'
  echo "}"
}
# haproxy: host+path in a map file (base = Host header + path), looked up
# with map_beg, the way haproxy's docs route many sites; unknown -> 404.
haproxy_routes_map() { # N
  awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) printf "h%d.bench.local/p%d be\n", i, i }'
}
haproxy_routes_cfg() { # DIR MAPFILE
  cat <<EOF
global
    nbthread 1
    maxconn 4096
    pidfile $1/haproxy.pid

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always

frontend fe
    bind 127.0.0.1:${X_PORT[haproxy]}
    use_backend %[base,map_beg($2)]
    default_backend notfound

backend be
    http-reuse always
    server origin 127.0.0.1:$BACKEND_PORT

backend notfound
    http-request return status 404
EOF
}

# New TLS connections: a TLS listener with the ECDSA certificate, proxying
# to the backend as in the main configs.
nginx_tls_conf() { # DIR
  local d=$1
  nginx_common "$d"
  cat <<EOF
http {
    access_log off;
$(nginx_temp_paths "$d")
    keepalive_requests 1000000;
$(nginx_upstream)
    server {
        listen 127.0.0.1:${X_TLS_PORT[nginx]} ssl http2;
        ssl_certificate $T/ecdsa-cert.pem;
        ssl_certificate_key $T/ecdsa-key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
}
haproxy_tls_cfg() { # DIR
  cat <<EOF
global
    nbthread 1
    maxconn 4096
    pidfile $1/haproxy.pid

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always

frontend fe
    bind 127.0.0.1:${X_TLS_PORT[haproxy]} ssl crt $T/ecdsa-combined.pem alpn h2,http/1.1
    default_backend be

backend be
    http-reuse always
    server origin 127.0.0.1:$BACKEND_PORT
EOF
}

# Memory: the main HTTP/1.1 configs, sized for the idle connections, with
# keep-alive timeouts longer than the measurement.
MEM_MAXCONN=$((IDLE_CONNS + 1024))
nginx_mem_conf() { # DIR
  local d=$1
  nginx_common "$d" | sed "s/worker_connections 8192;/worker_connections $((MEM_MAXCONN > 8192 ? MEM_MAXCONN : 8192));/"
  cat <<EOF
http {
    access_log off;
$(nginx_temp_paths "$d")
    keepalive_requests 1000000;
    keepalive_timeout 120s;
$(nginx_upstream)
    server {
        listen 127.0.0.1:${X_PORT[nginx]};
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
}
haproxy_mem_cfg() { # DIR
  cat <<EOF
global
    nbthread 1
    maxconn $MEM_MAXCONN
    pidfile $1/haproxy.pid

defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 30s
    timeout http-keep-alive 120s
    http-reuse always

frontend fe
    bind 127.0.0.1:${X_PORT[haproxy]}
    default_backend be

backend be
    http-reuse always
    server origin 127.0.0.1:$BACKEND_PORT
EOF
}

# x_cmd KIND PROXY DIR: the command that starts PROXY with the config in DIR.
x_cmd() {
  local d=$3
  case $2 in
    nginx) X_CMD=(taskset -c "$PROXY_CPU" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf") ;;
    haproxy) X_CMD=(taskset -c "$PROXY_CPU" haproxy -db -f "$d/haproxy.cfg") ;;
    meshgate) X_CMD=(env GOMAXPROCS=1 taskset -c "$PROXY_CPU" "$GATEWAY_BIN" run --config "$d/meshgate.yaml" --admin-addr "$X_MESHGATE_ADMIN" --access-log=) ;;
  esac
}

X_PROXIES=(nginx haproxy)
((MESHGATE_WANTED)) && X_PROXIES+=(meshgate)
declare -A X_LABEL=([nginx]="nginx" [haproxy]="haproxy" [meshgate]="Meshgate")
X_MESHGATE_FAILS=()
ROUTE_CMDS=() RELOAD_CMDS=() TLS_CMDS=() MEM_CMDS=()
tcmd() { # a command for the report: args quoted for sh only where needed, $T for the temp dir
  local a out="" plain='^[-A-Za-z0-9_./:=@%+,$]+$'
  for a in "$@"; do
    a=${a//$T/\$T}
    if [[ $a =~ $plain ]]; then out+="$a "; else out+="'${a//\'/\'\\\'\'}' "; fi
  done
  echo "${out% }"
}

RELOAD_N=${ROUTE_COUNTS[0]}
for n in "${ROUTE_COUNTS[@]}"; do ((n > RELOAD_N)) && RELOAD_N=$n; done

# --- latency under constant load (fixed rate, on the main instances) --------
# The generator sends at a fixed rate whatever the answers, so a slow answer
# does not hide the requests that were due meanwhile (no coordinated
# omission, unlike wrk's closed loop). The rates are % of nginx's HTTP/1.1
# keep-alive rps above. ratebench (default) keeps H1_CONNS connections, sends
# each request when it is due and times it from then (wrk2's method); vegeta
# is a general open-loop generator that costs several times more CPU per
# request, too much to reach these rates on the one load CPU.

CR_ROWS=(ceiling nginx haproxy)
((MESHGATE_WANTED)) && CR_ROWS+=(meshgate)
declare -A CR_RATE CR_REQS CR_ACH CR_OK CR_P50 CR_P99 CR_P999 CR_MAX CR_ERRMSG CR_CPU CR_OTHER CR_FAIL CR_TRIES
CONSTANT_CMDS=() CONSTANT_SKIP=""

# vegeta_stats CSV -> "requests achieved_rps success_% p50 p99 p99.9 max" (ms;
# nearest rank over every request). CSV: vegeta encode -to csv, whose first
# fields are send time (unix ns), status code (0 on a transport error) and
# latency (ns). achieved rps = requests / (last send - first send), as
# vegeta's own "rate"; success = status 200-399, as vegeta's.
vegeta_stats() {
  local csv=$1 head
  head=$(awk -F, 'NR == 1 { lo = $1; hi = $1 }
    { n++; if ($1 < lo) lo = $1; if ($1 > hi) hi = $1; if ($2 >= 200 && $2 < 400) ok++ }
    END {
      if (n == 0) { print "0 - -"; exit }
      s = (hi - lo) / 1e9
      printf "%d %s %.2f\n", n, (s > 0 ? sprintf("%.0f", n / s) : "-"), 100 * ok / n
    }' "$csv")
  cut -d, -f3 "$csv" | sort -n | awk -v head="$head" '
    function at(q,   i) { i = int(q * NR); if (i < q * NR) i++; if (i < 1) i = 1; return v[i] / 1e6 }
    { v[NR] = $1 }
    END {
      if (NR == 0) { print head, "- - - -"; exit }
      printf "%s %.3f %.3f %.3f %.3f\n", head, at(0.5), at(0.99), at(0.999), v[NR] / 1e6
    }'
}

# ratebench_stats OUT -> the same fields from ratebench's key=value line
# (success % = 2xx/3xx answers of the requests sent).
ratebench_stats() {
  awk '/^rate=/ {
      for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      printf "%d %s %.2f %s %s %s %s\n", v["sent"], v["achieved"], (v["sent"] > 0 ? 100 * v["ok"] / v["sent"] : 0),
        v["p50_ms"], v["p99_ms"], v["p999_ms"], v["max_ms"]
    }' "$1"
}

# constant_cmds KEY PCT DURATION OUTPUT: the generator's command in CR_CMD.
constant_cmd() {
  local url="http://127.0.0.1:${H1_PORT[$1]}/" rate=${CR_RATE[$2]}
  if [[ $CONSTANT_TOOL == ratebench ]]; then
    CR_CMD=(env GOMAXPROCS=1 taskset -c "$LOAD_CPU" "$RATEBENCH" -url "$url" -rate "$rate" -c "$H1_CONNS" -d "${3}s")
  else
    # -max-connections: at most H1_CONNS connections, as wrk; otherwise a
    # proxy that falls behind gets thousands (every late request opens one).
    CR_CMD=(taskset -c "$LOAD_CPU" "$VEGETA" attack -targets "$T/vegeta-$1.targets" -rate "$rate/s"
      -connections "$H1_CONNS" -max-connections "$H1_CONNS" -keepalive -timeout 10s -duration "${3}s" -output "$4")
  fi
}

measure_constant() { # KEY PCT
  local key=$1 pct=$2 k=$1:$2 pid=${PID[$1]} f0 f1 c0 c1 t0
  local out=$T/constant-$1-$2.out err=$T/constant-$1-$2.err bin=$T/vegeta-$1-$2.bin csv=$T/vegeta-$1-$2.csv
  local -a warm run
  echo "GET http://127.0.0.1:${H1_PORT[$key]}/" >"$T/vegeta-$key.targets"
  constant_cmd "$key" "$pct" "$WARMUP" /dev/null
  warm=("${CR_CMD[@]}")
  constant_cmd "$key" "$pct" "$DURATION" "$bin"
  run=("${CR_CMD[@]}")
  unset 'CR_FAIL[$k]' 'CR_ERRMSG[$k]'
  log "constant  $key at $pct% of nginx (${CR_RATE[$pct]} rps, $CONSTANT_TOOL): warm-up ${WARMUP}s, measure ${DURATION}s"
  if ((WARMUP > 0)); then
    timeout $((WARMUP + 30)) "${warm[@]}" >/dev/null 2>"$T/constant-$key-$pct-warmup.err" || true
  fi
  if [[ -z ${CR_TRIES[$k]:-} ]]; then
    ((WARMUP > 0)) && CONSTANT_CMDS+=("$(tcmd "${warm[@]}")   # warm-up, $key, $pct%")
    CONSTANT_CMDS+=("$(tcmd "${run[@]}")   # measure, $key, $pct%")
    CR_TRIES[$k]=0
  fi
  f0=$(foreign_jiffies); c0=$(tree_jiffies "$pid"); t0=$(now_us)
  if ! timeout $((DURATION + 30)) "${run[@]}" >"$out" 2>"$err"; then
    CR_FAIL[$k]="$CONSTANT_TOOL failed: $(grep -hv '^$' "$err" "$out" | tail -n 1 | cut -c1-200 || true)"
  fi
  c1=$(tree_jiffies "$pid"); f1=$(foreign_jiffies)
  [[ $key == ceiling ]] || CR_CPU[$k]=$(pct_cpu "$c0" "$c1" "$t0")
  CR_OTHER[$k]=$(foreign_pct "$f0" "$f1" "$(secs_since "$t0")")
  if [[ -z ${CR_FAIL[$k]:-} ]]; then
    if [[ $CONSTANT_TOOL == ratebench ]]; then
      read -r "CR_REQS[$k]" "CR_ACH[$k]" "CR_OK[$k]" "CR_P50[$k]" "CR_P99[$k]" "CR_P999[$k]" "CR_MAX[$k]" < <(ratebench_stats "$out")
      CR_ERRMSG[$k]=$(sed -n 's/.* error="\(.*\)"$/\1/p' "$out" | cut -c1-160)
    elif "$VEGETA" encode -to csv -output "$csv" "$bin" 2>>"$err"; then
      read -r "CR_REQS[$k]" "CR_ACH[$k]" "CR_OK[$k]" "CR_P50[$k]" "CR_P99[$k]" "CR_P999[$k]" "CR_MAX[$k]" < <(vegeta_stats "$csv")
      CR_ERRMSG[$k]=$("$VEGETA" report -type=text "$bin" 2>/dev/null | sed -n '/^Error Set:/{n;p;q}' | cut -c1-160 || true)
    else
      CR_FAIL[$k]="vegeta encode failed: $(grep -v '^$' "$err" | tail -n 1 | cut -c1-200 || true)"
    fi
    [[ -n ${CR_FAIL[$k]:-} || ${CR_REQS[$k]:-} =~ ^[1-9] ]] || CR_FAIL[$k]="$CONSTANT_TOOL recorded no request"
  fi
  [[ $KEEP_TMP == 1 ]] || rm -f "$bin" "$csv"
  return 0
}

# snap_cr_round KEY:PCT ROUND keeps one constant-rate round (a failed
# round without a p99); CR_ROUND_P99 lists every round's p99 for the report.
declare -A CR_SNAP CR_ROUND_P99
snap_cr_round() {
  local k=$1 msg=${CR_ERRMSG[$1]:-} fail=${CR_FAIL[$1]:-} p99=${CR_P99[$1]:-}
  [[ -z $fail ]] || p99=
  CR_SNAP[$k:$2]="${CR_REQS[$k]:-}|${CR_ACH[$k]:-}|${CR_OK[$k]:-}|${CR_P50[$k]:-}|$p99|${CR_P999[$k]:-}|${CR_MAX[$k]:-}|${CR_CPU[$k]:-}|${CR_OTHER[$k]:-}|${msg//|//}|${fail//|//}"
  if [[ -n $fail ]]; then CR_ROUND_P99[$k]+="failed "; else CR_ROUND_P99[$k]+="${p99:--} "; fi
}
# use_median_cr_round KEY:PCT restores the round with the median p99; a
# failed round counts as the slowest.
use_median_cr_round() {
  local k=$1 best
  local -a f
  best=$(median_round CR_SNAP "$k" 4 1e18)
  IFS='|' read -r -a f <<<"${CR_SNAP[$k:$best]:-}|"
  CR_REQS[$k]=${f[0]:-} CR_ACH[$k]=${f[1]:-} CR_OK[$k]=${f[2]:-} CR_P50[$k]=${f[3]:-} CR_P99[$k]=${f[4]:-}
  CR_P999[$k]=${f[5]:-} CR_MAX[$k]=${f[6]:-} CR_OTHER[$k]=${f[8]:-} CR_ERRMSG[$k]=${f[9]:-}
  if [[ -n ${f[7]:-} ]]; then CR_CPU[$k]=${f[7]}; else unset 'CR_CPU[$k]'; fi
  if [[ -n ${f[10]:-} ]]; then CR_FAIL[$k]=${f[10]}; else unset 'CR_FAIL[$k]'; fi
}
cr_rounds_line() { # -> "proxy pct%: p99 p99 p99; ..." for the report
  local key pct out=""
  for pct in "${CONSTANT_PCTS[@]}"; do
    for key in "${CR_ROWS[@]}"; do
      [[ -n ${CR_ROUND_P99[$key:$pct]:-} ]] && out+="$key $pct%: ${CR_ROUND_P99[$key:$pct]% }; "
    done
  done
  echo "${out%; }"
}

if [[ $SKIP_CONSTANT != 1 ]]; then
  if [[ -n ${FAIL[nginx]:-} || -n ${H1_FAIL[nginx]:-} || ! ${H1_RPS[nginx]:-} =~ ^[0-9.]+$ ]]; then
    CONSTANT_SKIP="no HTTP/1.1 rps for nginx in this run to base the rates on"
  else
    for pct in "${CONSTANT_PCTS[@]}"; do
      CR_RATE[$pct]=$(awk -v r="${H1_RPS[nginx]}" -v p="$pct" 'BEGIN { v = r * p / 100; printf "%.0f", (v < 1 ? 1 : v) }')
    done
    if [[ $CONSTANT_TOOL == ratebench ]]; then CONSTANT_CMDS+=("$(tcmd go build -o "$RATEBENCH" ./bench/tools/ratebench)"); fi
    # Rounds as for the tables above: every rate and proxy once per round,
    # then each row is its median round by p99 (one 8 s sample of a tail
    # on this machine moves several times between reruns).
    for ((round = 1; round <= ROUNDS; round++)); do
      for pct in "${CONSTANT_PCTS[@]}"; do
        for key in "${CR_ROWS[@]}"; do
          [[ -n ${FAIL[$key]:-} ]] && continue
          ((ROUNDS > 1)) && log "constant rate: round $round of $ROUNDS"
          retry_noisy CR_OTHER CR_FAIL "$key:$pct" measure_constant "$key" "$pct"
          CR_TRIES[$key:$pct]=$LAST_TRIES
          snap_cr_round "$key:$pct" "$round"
        done
      done
    done
    for pct in "${CONSTANT_PCTS[@]}"; do
      for key in "${CR_ROWS[@]}"; do
        if [[ -n ${FAIL[$key]:-} ]]; then
          CR_FAIL[$key:$pct]="not running: ${FAIL[$key]}"
        else
          use_median_cr_round "$key:$pct"
        fi
        if [[ -n ${CR_FAIL[$key:$pct]:-} ]]; then
          log "ERROR: constant $key at $pct%: ${CR_FAIL[$key:$pct]}"
          [[ $key == meshgate ]] && X_MESHGATE_FAILS+=("constant-rate latency at $pct%: ${CR_FAIL[$key:$pct]}")
        fi
      done
    done
    if [[ $CONSTANT_TOOL == vegeta ]]; then
      CONSTANT_CMDS+=("$(tcmd "$VEGETA" encode -to csv -output "$T/vegeta-KEY-PCT.csv" "$T/vegeta-KEY-PCT.bin")   # then p50/p99/p99.9/max by nearest rank over every request's latency")
    fi
  fi
fi

if [[ $SKIP_ROUTES != 1 || $SKIP_RELOAD != 1 || $SKIP_TLS_CONNS != 1 || $SKIP_MEMORY != 1 ]]; then
  # The main instances have been measured; stop them (the backend stays).
  for key in nginx haproxy caddy meshgate; do stop_server "$key"; done
fi

# --- many routes ---------------------------------------------------------------

declare -A RT_RPS RT_P50 RT_P99 RT_ERR RT_REQS RT_RSS RT_START RT_OTHER RT_FAIL RT_TRIES RT_NEG

measure_route_row() { # PROXY N
  local p=$1 n=$2 key=$1:$2 pid=${PID[x-$1]} out=$T/wrk-routes-$1-$2.txt f0 f1 t0
  local host="h$(($2 - 1)).bench.local" url="http://127.0.0.1:${X_PORT[$1]}/p$(($2 - 1))"
  local -a warm=(taskset -c "$LOAD_CPU" wrk -t1 -c"$H1_CONNS" -d"${WARMUP}s" -H "Host: $host" "$url")
  local -a run=(taskset -c "$LOAD_CPU" wrk -t1 -c"$H1_CONNS" -d"${DURATION}s" --latency -H "Host: $host" "$url")
  unset 'RT_FAIL[$key]'
  log "routes    $p, $n routes: warm-up ${WARMUP}s, measure ${DURATION}s"
  if ((WARMUP > 0)); then
    timeout $((WARMUP + 30)) "${warm[@]}" >"$T/wrk-routes-$p-$n-warmup.txt" 2>&1 || true
  fi
  if [[ -z ${RT_TRIES[$key]:-} ]]; then
    ((WARMUP > 0)) && ROUTE_CMDS+=("$(tcmd "${warm[@]}")   # warm-up, $p, $n routes")
    ROUTE_CMDS+=("$(tcmd "${run[@]}")   # measure, $p, $n routes")
    RT_TRIES[$key]=0
  fi
  f0=$(foreign_jiffies); t0=$(now_us)
  if ! timeout $((DURATION + 30)) "${run[@]}" >"$out" 2>&1; then
    RT_FAIL[$key]="wrk failed: $(tail -n 1 "$out")"
  fi
  f1=$(foreign_jiffies)
  RT_OTHER[$key]=$(foreign_pct "$f0" "$f1" "$(secs_since "$t0")")
  read -r "RT_RPS[$key]" "RT_P50[$key]" "RT_P99[$key]" "RT_ERR[$key]" "RT_REQS[$key]" < <(parse_wrk "$out")
  RT_RSS[$key]=$(rss_kb "$pid")
  if [[ ${RT_RPS[$key]} == - && -z ${RT_FAIL[$key]:-} ]]; then RT_FAIL[$key]="no result in wrk output"; fi
}

# Like the HTTP/1.1 table, the route counts alternate over ROUNDS rounds
# (every proxy and count once per round, each a fresh instance) and each row
# is its median round by rps: one 8 s sample per row moved Meshgate's
# 10,000-route ratio between 0.74x and 1.19x from run to run.
declare -A RT_SNAP RT_ROUND_RPS
snap_rt_round() { # KEY ROUND
  local k=$1 fail=${RT_FAIL[$1]:-}
  RT_SNAP[$k:$2]="${RT_RPS[$k]:-}|${RT_P50[$k]:-}|${RT_P99[$k]:-}|${RT_ERR[$k]:-}|${RT_REQS[$k]:-}|${RT_RSS[$k]:-}|${RT_START[$k]:-}|${RT_OTHER[$k]:-}|${RT_NEG[$k]:-}|${fail//|//}"
  if [[ -n ${RT_FAIL[$k]:-} ]]; then RT_ROUND_RPS[$k]+="failed "; else RT_ROUND_RPS[$k]+="${RT_RPS[$k]:--} "; fi
}
use_median_rt_round() { # KEY: restore the round with the median rps (a failed one counts as 0)
  local k=$1 best
  local -a f
  best=$(median_round RT_SNAP "$k" 0 0)
  IFS='|' read -r -a f <<<"${RT_SNAP[$k:$best]:-}|"
  RT_RPS[$k]=${f[0]:-} RT_P50[$k]=${f[1]:-} RT_P99[$k]=${f[2]:-} RT_ERR[$k]=${f[3]:-} RT_REQS[$k]=${f[4]:-}
  RT_RSS[$k]=${f[5]:-} RT_START[$k]=${f[6]:-} RT_OTHER[$k]=${f[7]:-} RT_NEG[$k]=${f[8]:-}
  if [[ -n ${f[9]:-} ]]; then RT_FAIL[$k]=${f[9]}; else unset 'RT_FAIL[$k]'; fi
}
rt_rounds_line() { # -> "proxy N: rps rps rps; ..." for the report
  local p n out=""
  for p in "${X_PROXIES[@]}"; do
    for n in "${ROUTE_COUNTS[@]}"; do
      [[ -n ${RT_ROUND_RPS[$p:$n]:-} ]] && out+="$p $n: ${RT_ROUND_RPS[$p:$n]% }; "
    done
  done
  echo "${out%; }"
}

if [[ $SKIP_ROUTES != 1 ]]; then
  for ((round = 1; round <= ROUNDS; round++)); do
    ((ROUNDS > 1)) && log "many routes: round $round of $ROUNDS"
    for p in "${X_PROXIES[@]}"; do
      for n in "${ROUTE_COUNTS[@]}"; do
        key=$p:$n d=$T/routes-$p-$n
        unset 'RT_FAIL[$key]' 'RT_START[$key]' 'RT_NEG[$key]' 'RT_RPS[$key]' 'RT_P50[$key]' 'RT_P99[$key]' \
          'RT_ERR[$key]' 'RT_REQS[$key]' 'RT_RSS[$key]' 'RT_OTHER[$key]'
        mkdir -p "$d"
        case $p in
          nginx) nginx_routes_conf "$d" "$n" >"$d/nginx.conf" ;;
          haproxy)
            haproxy_routes_map "$n" >"$d/routes.map"
            haproxy_routes_cfg "$d" "$d/routes.map" >"$d/haproxy.cfg"
            ;;
          meshgate) { meshgate_x_head http; meshgate_host_routes "$n"; } >"$d/meshgate.yaml" ;;
        esac
        x_cmd routes "$p" "$d"
        ((round == 1)) && ROUTE_CMDS+=("$(tcmd "${X_CMD[@]}")   # $p with $n routes")
        if [[ $p == meshgate && ! -x $GATEWAY_BIN ]]; then
          RT_FAIL[$key]="$GATEWAY_BIN not found or not executable"
        elif ! start_x "x-$p" "$d/stdout.log" "http://127.0.0.1:${X_PORT[$p]}/p$((n - 1))" "h$((n - 1)).bench.local" "${X_CMD[@]}"; then
          RT_FAIL[$key]="did not come up: $START_ERR"
        else
          RT_START[$key]=$READY_MS
          # Host and path both select the route: the last host with the first
          # route's path must not reach the backend.
          if ((n > 1)); then
            RT_NEG[$key]=$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' -H "Host: h$((n - 1)).bench.local" \
              "http://127.0.0.1:${X_PORT[$p]}/p0" 2>/dev/null || true)
          fi
          retry_noisy RT_OTHER RT_FAIL "$key" measure_route_row "$p" "$n"
          RT_TRIES[$key]=$LAST_TRIES
          stop_server "x-$p"
        fi
        if [[ -n ${RT_FAIL[$key]:-} ]]; then
          log "ERROR: routes $key: ${RT_FAIL[$key]}"
          [[ $p == meshgate ]] && X_MESHGATE_FAILS+=("many routes, $n routes, round $round: ${RT_FAIL[$key]}")
        fi
        snap_rt_round "$key" "$round"
      done
    done
  done
  for p in "${X_PROXIES[@]}"; do
    for n in "${ROUTE_COUNTS[@]}"; do
      use_median_rt_round "$p:$n"
    done
  done
fi

# --- reload with many routes, under load (Meshgate) ---------------------------

declare -A RL_MS RL_POLLS RL_APPLY RL_GEN RL_RPS RL_ERR RL_REQS RL_OTHER
RELOAD_FAIL="" RELOAD_START_MS=""

reload_once() { # K: add route number RELOAD_N+K-1 by renaming a new file into place
  local k=$1 d=$T/reload out=$T/wrk-reload-$1.txt wpid t0 ta f0 f1 code polls=0 last
  local new=$((RELOAD_N + k - 1))
  local host_old="h$((RELOAD_N - 1)).bench.local" url_old="http://127.0.0.1:${X_PORT[meshgate]}/p$((RELOAD_N - 1))"
  local host_new="h$new.bench.local" url_new="http://127.0.0.1:${X_PORT[meshgate]}/p$new"
  local -a run=(taskset -c "$LOAD_CPU" wrk -t1 -c"$H1_CONNS" -d"$((RELOAD_TIMEOUT + 5))s" -H "Host: $host_old" "$url_old")
  { meshgate_x_head http; meshgate_host_routes $((RELOAD_N + k)); } >"$T/reload-next.yaml"
  if ((k == 1)); then
    RELOAD_CMDS+=("$(tcmd "${run[@]}") &   # load during each reload, stopped with SIGINT 0.5 s after the new route answers")
    RELOAD_CMDS+=("mv -f \$T/reload-next.yaml \$T/reload/meshgate.yaml   # 1 s after wrk starts; the new file has one more HTTPRoute (h$new.bench.local /p$new, then h$((new + 1)) ...)")
    RELOAD_CMDS+=("$(tcmd curl -s -o /dev/null --max-time 1 -w '%{http_code}' -H "Host: $host_new" "$url_new")   # every 10 ms until 200, at most ${RELOAD_TIMEOUT}s")
  fi
  log "reload    $k of $RELOADS: $((RELOAD_N + k)) routes"
  f0=$(foreign_jiffies); ta=$(now_us)
  "${run[@]}" >"$out" 2>&1 &
  wpid=$!
  PIDS+=("$wpid")
  sleep 1
  t0=$(now_us)
  mv -f "$T/reload-next.yaml" "$d/meshgate.yaml"
  RL_MS[$k]="not within ${RELOAD_TIMEOUT}s"
  while :; do
    polls=$((polls + 1))
    code=$(curl -s -o /dev/null --max-time 1 -w '%{http_code}' -H "Host: $host_new" "$url_new" 2>/dev/null || true)
    if [[ $code == 200 ]]; then
      RL_MS[$k]=$((($(now_us) - t0) / 1000))
      break
    fi
    if (($(now_us) - t0 > RELOAD_TIMEOUT * 1000000)); then break; fi
    sleep 0.01
  done
  RL_POLLS[$k]=$polls
  sleep 0.5
  kill -INT "$wpid" 2>/dev/null || true
  wait "$wpid" 2>/dev/null || true # bounded by wrk -d
  forget_pid "$wpid"
  f1=$(foreign_jiffies)
  RL_OTHER[$k]=$(foreign_pct "$f0" "$f1" "$(secs_since "$ta")")
  read -r "RL_RPS[$k]" _ _ "RL_ERR[$k]" "RL_REQS[$k]" < <(parse_wrk "$out")
  last=$(grep '"config applied"' "$d/meshgate.log" 2>/dev/null | tail -n 1 || true)
  RL_APPLY[$k]=$(sed -n 's/.*"duration":"\([^"]*\)".*/\1/p' <<<"$last")
  RL_GEN[$k]=$(sed -n 's/.*"generation":\([0-9]*\).*/\1/p' <<<"$last")
}

if [[ $SKIP_RELOAD != 1 ]] && ((MESHGATE_WANTED)); then
  d=$T/reload
  mkdir -p "$d"
  { meshgate_x_head http; meshgate_host_routes "$RELOAD_N"; } >"$d/meshgate.yaml"
  x_cmd reload meshgate "$d"
  RELOAD_CMDS=("$(tcmd "${X_CMD[@]}")   # Meshgate with $RELOAD_N routes")
  if [[ ! -x $GATEWAY_BIN ]]; then
    RELOAD_FAIL="$GATEWAY_BIN not found or not executable"
  elif ! start_x x-meshgate "$d/meshgate.log" "http://127.0.0.1:${X_PORT[meshgate]}/p$((RELOAD_N - 1))" \
    "h$((RELOAD_N - 1)).bench.local" "${X_CMD[@]}"; then
    RELOAD_FAIL="did not come up: $START_ERR"
  else
    RELOAD_START_MS=$READY_MS
    for ((k = 1; k <= RELOADS; k++)); do
      reload_once "$k"
      if ! is_alive "${PID[x-meshgate]}"; then
        RELOAD_FAIL="Meshgate exited during reload $k: $(grep -v '^$' "$d/meshgate.log" | tail -n 1 | cut -c1-200 || true)"
        break
      fi
    done
    stop_server x-meshgate
  fi
  if [[ -n $RELOAD_FAIL ]]; then
    log "ERROR: reload: $RELOAD_FAIL"
    X_MESHGATE_FAILS+=("reload: $RELOAD_FAIL")
  fi
fi

# --- new TLS connections per second (ab, one request per connection) ----------

declare -A TC_RPS TC_P50 TC_P99 TC_DONE TC_FAILED TC_NON2XX TC_PROTO TC_CIPHER TC_KX TC_CPU TC_OTHER TC_FAIL TC_TRIES
TLS_CLIENTS=16

# ab output -> "rps done failed non2xx proto cipher kx p50 p99"
parse_ab() {
  awk '
    /^Complete requests:/ { done = $3 }
    /^Failed requests:/ { failed = $3 }
    /^Non-2xx responses:/ { non2xx = $3 }
    /^Requests per second:/ { rps = $4 }
    /^SSL\/TLS Protocol:/ { split($3, a, ","); proto = a[1]; cipher = a[2] }
    /^Server Temp Key:/ { kx = $4 }
    $1 == "50%" { p50 = $2 }
    $1 == "99%" { p99 = $2 }
    END {
      printf "%s %s %d %d %s %s %s %s %s\n", (rps == "" ? "-" : rps), (done == "" ? "-" : done), failed, non2xx,
        (proto == "" ? "-" : proto), (cipher == "" ? "-" : cipher), (kx == "" ? "-" : kx),
        (p50 == "" ? "-" : p50), (p99 == "" ? "-" : p99)
    }' "$1"
}

# Two variants: ab's default (TLS 1.3), and TLS 1.2 (ab -f TLS1.2). ab does
# not set TCP_NODELAY; in TLS 1.3 its HTTP request follows its Finished
# message, so with a server that sends nothing after the client's Finished
# (Go's crypto/tls sends its session tickets earlier) the request waits for
# the server's delayed ACK (40 ms on Linux). OpenSSL servers send their
# session tickets then, so nginx and haproxy do not wait. In TLS 1.2 the
# server speaks last in the handshake, so no variant of server waits there.
TLS_VARIANTS=(tls13 tls12)
declare -A TLS_VLABEL=([tls13]="TLS 1.3 (ab default)" [tls12]="TLS 1.2 (ab -f TLS1.2)")
declare -A TLS_VFLAGS=([tls13]="" [tls12]="-f TLS1.2")

measure_tls_row() { # PROXY VARIANT
  local p=$1 v=$2 key=$1:$2 pid=${PID[x-$1]} url="https://127.0.0.1:${X_TLS_PORT[$1]}/" out=$T/ab-$1-$2.txt f0 f1 c0 c1 t0
  local -a vf=()
  read -r -a vf <<<"${TLS_VFLAGS[$v]}"
  local -a warm=(taskset -c "$LOAD_CPU" ab -q -r "${vf[@]}" -c "$TLS_CLIENTS" -t "$WARMUP" -n 1000000 "$url")
  local -a run=(taskset -c "$LOAD_CPU" ab -q -r "${vf[@]}" -c "$TLS_CLIENTS" -t "$DURATION" -n 1000000 "$url")
  unset 'TC_FAIL[$key]'
  log "TLS conns $p, ${TLS_VLABEL[$v]}: warm-up ${WARMUP}s, measure ${DURATION}s"
  if ((WARMUP > 0)); then
    timeout $((WARMUP + 40)) "${warm[@]}" >"$T/ab-$p-$v-warmup.txt" 2>&1 || true
  fi
  if [[ -z ${TC_TRIES[$key]:-} ]]; then
    ((WARMUP > 0)) && TLS_CMDS+=("$(tcmd "${warm[@]}")   # warm-up, $p")
    TLS_CMDS+=("$(tcmd "${run[@]}")   # measure, $p")
    TC_TRIES[$key]=0
  fi
  f0=$(foreign_jiffies); c0=$(tree_jiffies "$pid"); t0=$(now_us)
  if ! timeout $((DURATION + 40)) "${run[@]}" >"$out" 2>&1; then
    TC_FAIL[$key]="ab failed: $(grep -v '^$' "$out" | tail -n 1 | cut -c1-200 || true)"
  fi
  c1=$(tree_jiffies "$pid"); f1=$(foreign_jiffies)
  TC_CPU[$key]=$(pct_cpu "$c0" "$c1" "$t0")
  TC_OTHER[$key]=$(foreign_pct "$f0" "$f1" "$(secs_since "$t0")")
  read -r "TC_RPS[$key]" "TC_DONE[$key]" "TC_FAILED[$key]" "TC_NON2XX[$key]" "TC_PROTO[$key]" "TC_CIPHER[$key]" "TC_KX[$key]" \
    "TC_P50[$key]" "TC_P99[$key]" < <(parse_ab "$out")
  if [[ ${TC_RPS[$key]} == - && -z ${TC_FAIL[$key]:-} ]]; then TC_FAIL[$key]="no result in ab output"; fi
}

if [[ $SKIP_TLS_CONNS != 1 ]] && ((HAVE_AB)); then
  ECDSA_CRT_B64=$(base64 -w0 "$T/ecdsa-cert.pem")
  ECDSA_KEY_B64=$(base64 -w0 "$T/ecdsa-key.pem")
  for p in "${X_PROXIES[@]}"; do
    d=$T/tls-$p
    mkdir -p "$d"
    case $p in
      nginx) nginx_tls_conf "$d" >"$d/nginx.conf" ;;
      haproxy) haproxy_tls_cfg "$d" >"$d/haproxy.cfg" ;;
      meshgate) { meshgate_x_head https "$ECDSA_CRT_B64" "$ECDSA_KEY_B64"; meshgate_catchall_route; } >"$d/meshgate.yaml" ;;
    esac
    x_cmd tls "$p" "$d"
    TLS_CMDS+=("$(tcmd "${X_CMD[@]}")   # $p, TLS listener with the ECDSA P-256 certificate")
    start_err=""
    if [[ $p == meshgate && ! -x $GATEWAY_BIN ]]; then
      start_err="$GATEWAY_BIN not found or not executable"
    elif ! start_x "x-$p" "$d/stdout.log" "https://127.0.0.1:${X_TLS_PORT[$p]}/" "" "${X_CMD[@]}"; then
      start_err="did not come up: $START_ERR"
    else
      for v in "${TLS_VARIANTS[@]}"; do
        retry_noisy TC_OTHER TC_FAIL "$p:$v" measure_tls_row "$p" "$v"
        TC_TRIES[$p:$v]=$LAST_TRIES
      done
      stop_server "x-$p"
    fi
    for v in "${TLS_VARIANTS[@]}"; do
      [[ -n $start_err ]] && TC_FAIL[$p:$v]=$start_err
      if [[ -n ${TC_FAIL[$p:$v]:-} ]]; then
        log "ERROR: TLS conns $p:$v: ${TC_FAIL[$p:$v]}"
        [[ $p == meshgate ]] && X_MESHGATE_FAILS+=("new TLS connections, ${TLS_VLABEL[$v]}: ${TC_FAIL[$p:$v]}")
      fi
    done
  done
fi

# --- memory: idle RSS, and RSS with many idle keep-alive connections ----------

declare -A MEM_IDLE MEM_IDLE_ANON MEM_WITH MEM_OPEN MEM_WITH6 MEM_OPEN6 MEM_CLIENT MEM_SECS MEM_FAIL MEM_WARN
# RSS is read twice: 1 s after every connection is open, and again when they
# have been idle MEM_IDLE_LATE s (Meshgate gives back an idle connection's
# buffers after 2 s; the target is read on the later figure).
MEM_IDLE_LATE=6

measure_mem() { # PROXY
  local p=$1 pid=${PID[x-$1]} out=$T/idleconns-$1.out errf=$T/idleconns-$1.err ipid t0 deadline line=""
  local -a run=(taskset -c "$LOAD_CPU" "$T/idleconns" -addr "127.0.0.1:${X_PORT[$1]}" -n "$IDLE_CONNS" -host bench.local -path / -hold 120s)
  log "memory    $p: idle RSS, then $IDLE_CONNS idle keep-alive connections"
  # Idle = settled: 3 s after the readiness request (Meshgate returns the
  # garbage of building its config 2 s after it).
  sleep 3
  MEM_IDLE[$p]=$(rss_kb "$pid")
  MEM_IDLE_ANON[$p]=$(anon_kb "$pid")
  MEM_CMDS+=("$(tcmd "${run[@]}") &   # $p; RSS read 1 s and $MEM_IDLE_LATE s after it prints 'ready', then it gets SIGTERM")
  t0=$(now_us)
  "${run[@]}" >"$out" 2>"$errf" &
  ipid=$!
  PIDS+=("$ipid")
  deadline=$((t0 + 90 * 1000000))
  while (($(now_us) < deadline)); do
    line=$(grep -m1 '^ready ' "$out" 2>/dev/null || true)
    [[ -n $line ]] && break
    is_alive "$ipid" || break
    sleep 0.1
  done
  if [[ -z $line ]]; then
    MEM_FAIL[$p]="idleconns did not finish: $(grep -v '^$' "$errf" | tail -n 1 | cut -c1-200 || true)"
  else
    MEM_SECS[$p]=$(secs_since "$t0")
    MEM_CLIENT[$p]=${line#ready }
    sleep 1
    MEM_WITH[$p]=$(rss_kb "$pid")
    MEM_OPEN[$p]=$(ss -Htn state established "( sport = :${X_PORT[$p]} )" 2>/dev/null | wc -l || echo "-")
    sleep $((MEM_IDLE_LATE - 1))
    MEM_WITH6[$p]=$(rss_kb "$pid")
    MEM_OPEN6[$p]=$(ss -Htn state established "( sport = :${X_PORT[$p]} )" 2>/dev/null | wc -l || echo "-")
    if grep -q 'failed' "$errf"; then MEM_WARN[$p]=$(grep -m1 'failed' "$errf" | sed 's/^idleconns: //' | cut -c1-200); fi
  fi
  kill -TERM "$ipid" 2>/dev/null || true
  wait "$ipid" 2>/dev/null || true # exits on SIGTERM, or after -hold
  forget_pid "$ipid"
}

if [[ $SKIP_MEMORY != 1 ]] && ((HAVE_IDLECONNS)); then
  for p in "${X_PROXIES[@]}"; do
    d=$T/mem-$p
    mkdir -p "$d"
    case $p in
      nginx) nginx_mem_conf "$d" >"$d/nginx.conf" ;;
      haproxy) haproxy_mem_cfg "$d" >"$d/haproxy.cfg" ;;
      meshgate) { meshgate_x_head http; meshgate_catchall_route; } >"$d/meshgate.yaml" ;;
    esac
    x_cmd mem "$p" "$d"
    MEM_CMDS+=("$(tcmd "${X_CMD[@]}")   # $p, HTTP/1.1 listener, one catch-all route")
    if [[ $p == meshgate && ! -x $GATEWAY_BIN ]]; then
      MEM_FAIL[$p]="$GATEWAY_BIN not found or not executable"
    elif ! start_x "x-$p" "$d/stdout.log" "http://127.0.0.1:${X_PORT[$p]}/" "" "${X_CMD[@]}"; then
      MEM_FAIL[$p]="did not come up: $START_ERR"
    else
      measure_mem "$p"
      stop_server "x-$p"
    fi
    if [[ -n ${MEM_FAIL[$p]:-} ]]; then
      log "ERROR: memory $p: ${MEM_FAIL[$p]}"
      [[ $p == meshgate ]] && X_MESHGATE_FAILS+=("memory: ${MEM_FAIL[$p]}")
    fi
  done
fi

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
details() { # TITLE LANG CMD...: a collapsed config in the report
  local title=$1 lang=$2
  shift 2
  echo "<details><summary>$title</summary>"
  echo
  echo "\`\`\`$lang"
  "$@" 2>/dev/null | sed "s#$T#\$T#g" || true
  echo '```'
  echo "</details>"
  echo
}
meshgate_routes_example() { meshgate_x_head http; meshgate_host_routes 2; }
meshgate_tls_example() { meshgate_x_head https "<base64 of \$T/ecdsa-cert.pem>" "<base64 of \$T/ecdsa-key.pem>"; meshgate_catchall_route; }
meshgate_mem_example() { meshgate_x_head http; meshgate_catchall_route; }
H2_TABLE=$(h2_table)

# Extra measures' tables.
total_kb() { local v=${1:-}; echo "${v%%:*}"; } # "TOTAL:WORKER" -> TOTAL
fmt_ms_int() { [[ ${1:-} =~ ^[0-9]+$ ]] && awk -v v="$1" 'BEGIN { printf "%.2f", v / 1000 }' || echo "-"; }
met() { # CONDITION_AWK_EXPR -> "met" / "**NOT met**"
  if awk "BEGIN { exit !($1) }"; then echo "met"; else echo "**NOT met**"; fi
}
X_NOISY=""
note_noisy() { # LABEL OTHER_PCT
  if [[ -n ${2:-} ]] && (($2 >= NOISE_PCT)); then X_NOISY+="$1, "; fi
  return 0
}

ROUTE_BASE=${ROUTE_COUNTS[0]}
routes_table() {
  echo "| proxy | routes | start-up s | rps | p50 ms | p99 ms | errors | last host + /p0 | RSS after MB | vs $ROUTE_BASE routes | other CPU % |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  local p n key errs
  for p in "${X_PROXIES[@]}"; do
    for n in "${ROUTE_COUNTS[@]}"; do
      key=$p:$n
      if [[ -z ${RT_RPS[$key]:-} ]]; then
        echo "| ${X_LABEL[$p]} | $n | not run: ${RT_FAIL[$key]:-?} | | | | | | | | |"
        continue
      fi
      errs=${RT_ERR[$key]}
      [[ $errs != 0 && ${RT_REQS[$key]} != - ]] && errs="$errs of ${RT_REQS[$key]}"
      [[ -n ${RT_FAIL[$key]:-} ]] && errs="$errs (${RT_FAIL[$key]})"
      echo "| ${X_LABEL[$p]} | $n | $(fmt_ms_int "${RT_START[$key]:-}") | $(fmt_rps "${RT_RPS[$key]}") | $(fmt_ms "${RT_P50[$key]}")" \
        "| $(fmt_ms "${RT_P99[$key]}") | $errs | ${RT_NEG[$key]:--} | $(fmt_mb "${RT_RSS[$key]:-}")" \
        "| $(ratio "${RT_RPS[$key]}" "${RT_RPS[$p:$ROUTE_BASE]:-}") | $(fmt_other "${RT_OTHER[$key]:-}") |"
    done
  done
}
routes_target() {
  local b=${RT_RPS[meshgate:$ROUTE_BASE]:-} m=${RT_RPS[meshgate:$RELOAD_N]:-} r
  if ! ((MESHGATE_WANTED)); then echo "Target (Meshgate at $RELOAD_N routes at most 10% below $ROUTE_BASE routes): Meshgate not run."; return; fi
  if ((RELOAD_N == ROUTE_BASE)); then echo "Target (10,000 routes at most 10% below 10 routes): not checked, only one route count ($ROUTE_BASE) was run."; return; fi
  if [[ -z $b || -z $m || $b == - || $m == - ]]; then echo "Target (Meshgate at $RELOAD_N routes at most 10% below $ROUTE_BASE routes): no figure."; return; fi
  r=$(ratio "$m" "$b")
  echo "Target: Meshgate at $RELOAD_N routes at most 10% below $ROUTE_BASE routes (ratio >= 0.90x): $(met "$m / $b >= 0.90") ($r: $(fmt_rps "$m") vs $(fmt_rps "$b") rps)."
}

reload_table() {
  echo "| reload | routes after | rename -> new route answers, ms | curl polls | Meshgate \"config applied\" (generation, apply duration) | wrk requests | wrk rps | wrk errors | other CPU % |"
  echo "|---:|---:|---:|---:|---|---:|---:|---:|---:|"
  local k
  for ((k = 1; k <= RELOADS; k++)); do
    [[ -n ${RL_POLLS[$k]:-} ]] || continue
    echo "| $k | $((RELOAD_N + k)) | ${RL_MS[$k]} | ${RL_POLLS[$k]} | ${RL_GEN[$k]:--}, ${RL_APPLY[$k]:--} | ${RL_REQS[$k]:--}" \
      "| $(fmt_rps "${RL_RPS[$k]:-}") | ${RL_ERR[$k]:--} | $(fmt_other "${RL_OTHER[$k]:-}") |"
  done
}
RELOAD_MAX="" RELOAD_ERRS=0 RELOAD_REQS=0 RELOAD_DONE=0 RELOAD_TIMEOUTS=0
reload_summary() {
  local k
  for ((k = 1; k <= RELOADS; k++)); do
    [[ -n ${RL_POLLS[$k]:-} ]] || continue
    RELOAD_DONE=$((RELOAD_DONE + 1))
    if [[ ${RL_MS[$k]} =~ ^[0-9]+$ ]]; then
      if [[ -z $RELOAD_MAX ]] || ((RL_MS[$k] > RELOAD_MAX)); then RELOAD_MAX=${RL_MS[$k]}; fi
    else
      RELOAD_TIMEOUTS=$((RELOAD_TIMEOUTS + 1))
    fi
    RELOAD_ERRS=$((RELOAD_ERRS + ${RL_ERR[$k]:-0}))
    [[ ${RL_REQS[$k]:-} =~ ^[0-9]+$ ]] && RELOAD_REQS=$((RELOAD_REQS + RL_REQS[$k]))
  done
  return 0
}
reload_target() {
  if [[ -n $RELOAD_FAIL ]] && ((RELOAD_DONE == 0)); then echo "Target (reload of $RELOAD_N routes in under 1 s, no failed request): not measured: $RELOAD_FAIL"; return; fi
  local slowest=${RELOAD_MAX:--}
  ((RELOAD_TIMEOUTS > 0)) && slowest="$RELOAD_TIMEOUTS reload(s) not within ${RELOAD_TIMEOUT}s"
  echo "Slowest: $slowest ms; wrk errors over all $RELOAD_DONE reloads: $RELOAD_ERRS of $RELOAD_REQS requests."
  echo
  local ok_time=0
  [[ -n $RELOAD_MAX ]] && ((RELOAD_TIMEOUTS == 0 && RELOAD_MAX < 1000)) && ok_time=1
  echo "Target: a reload of $RELOAD_N routes in under 1 s: $( ((ok_time)) && echo met || echo '**NOT met**') (slowest $slowest ms);" \
    "no failed request during reloads: $( ((RELOAD_ERRS == 0)) && echo met || echo '**NOT met**') ($RELOAD_ERRS errors)."
}

per_cpu() { # rps cpu% -> rps per CPU-second of the proxy, or -
  if [[ $1 == - || -z $1 || -z ${2:-} || ${2:-0} == 0 ]]; then echo "-"; return; fi
  awk -v r="$1" -v c="$2" 'BEGIN { printf "%.0f\n", r * 100 / c }'
}
tls_table() {
  echo "| proxy | TLS as offered | new conns/s | p50 ms | p99 ms | completed | failed | non-2xx | negotiated | cipher | key exchange | proxy CPU % | conns per proxy CPU-s | ratio vs nginx | ratio vs haproxy | other CPU % |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---:|---:|---:|---:|---:|"
  local p v key failed
  for v in "${TLS_VARIANTS[@]}"; do
    for p in "${X_PROXIES[@]}"; do
      key=$p:$v
      if [[ -z ${TC_RPS[$key]:-} ]]; then
        echo "| ${X_LABEL[$p]} | ${TLS_VLABEL[$v]} | not run: ${TC_FAIL[$key]:-?} | | | | | | | | | | | | | |"
        continue
      fi
      failed=${TC_FAILED[$key]}
      [[ -n ${TC_FAIL[$key]:-} ]] && failed="$failed (${TC_FAIL[$key]})"
      echo "| ${X_LABEL[$p]} | ${TLS_VLABEL[$v]} | $(fmt_rps "${TC_RPS[$key]}") | ${TC_P50[$key]} | ${TC_P99[$key]} | ${TC_DONE[$key]} | $failed | ${TC_NON2XX[$key]}" \
        "| ${TC_PROTO[$key]} | ${TC_CIPHER[$key]} | ${TC_KX[$key]} | ${TC_CPU[$key]:--} | $(per_cpu "${TC_RPS[$key]}" "${TC_CPU[$key]:-}")" \
        "| $(ratio "${TC_RPS[$key]}" "${TC_RPS[nginx:$v]:-}") | $(ratio "${TC_RPS[$key]}" "${TC_RPS[haproxy:$v]:-}") | $(fmt_other "${TC_OTHER[$key]:-}") |"
    done
  done
}
tls_target() {
  local v m n out=""
  for v in "${TLS_VARIANTS[@]}"; do
    m=${TC_RPS[meshgate:$v]:-} n=${TC_RPS[nginx:$v]:-}
    if [[ -z $m || -z $n || $m == - || $n == - ]]; then out+="${TLS_VLABEL[$v]}: no figure; "
    else out+="${TLS_VLABEL[$v]}: $(ratio "$m" "$n") ($(fmt_rps "$m") vs $(fmt_rps "$n")/s, p50 ${TC_P50[meshgate:$v]:-?} vs ${TC_P50[nginx:$v]:-?} ms); "; fi
  done
  echo "Target: docs/performance.md sets none for new TLS connections (it asks for the figure). Meshgate vs nginx in this run: ${out%; }."
}

mem_kb_per_conn() { # PROXY [late] -> KB per idle connection (1 s after open, or MEM_IDLE_LATE s with "late"), or -
  local p=$1 i w c
  i=$(total_kb "${MEM_IDLE[$p]:-}") c=${MEM_CLIENT[$p]:-}
  if [[ ${2:-} == late ]]; then w=$(total_kb "${MEM_WITH6[$p]:-}"); else w=$(total_kb "${MEM_WITH[$p]:-}"); fi
  if [[ -z $i || -z $w || ! $c =~ ^[0-9]+$ ]] || ((c == 0)); then echo "-"; return; fi
  awk -v i="$i" -v w="$w" -v c="$c" 'BEGIN { printf "%.1f", (w - i) / c }'
}
mem_table() {
  echo "| proxy | idle RSS MB | of which anonymous MB | RSS, conns open 1 s, MB | RSS, conns idle ${MEM_IDLE_LATE} s, MB | conns open (client / server side at 1 s / at ${MEM_IDLE_LATE} s) | KB per conn after 1 s | KB per conn after ${MEM_IDLE_LATE} s idle | time to open s | note |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  local p
  for p in "${X_PROXIES[@]}"; do
    if [[ -z ${MEM_WITH[$p]:-} ]]; then
      echo "| ${X_LABEL[$p]} | $(fmt_mb "${MEM_IDLE[$p]:-}") | $(fmt_mb "${MEM_IDLE_ANON[$p]:-}") | not run: ${MEM_FAIL[$p]:-?} | | | | | | |"
      continue
    fi
    echo "| ${X_LABEL[$p]} | $(fmt_mb "${MEM_IDLE[$p]}") | $(fmt_mb "${MEM_IDLE_ANON[$p]:-}") | $(fmt_mb "${MEM_WITH[$p]}") | $(fmt_mb "${MEM_WITH6[$p]:-}")" \
      "| ${MEM_CLIENT[$p]} / ${MEM_OPEN[$p]} / ${MEM_OPEN6[$p]:--} | $(mem_kb_per_conn "$p") | $(mem_kb_per_conn "$p" late)" \
      "| ${MEM_SECS[$p]} | ${MEM_WARN[$p]:-} |"
  done
}
mem_target() {
  local i=${MEM_IDLE[meshgate]:-} k
  if [[ -z $i ]]; then echo "Target (idle RSS under 20 MB, under 10 KB per idle HTTP/1.1 connection): Meshgate not measured."; return; fi
  k=$(mem_kb_per_conn meshgate late)
  echo -n "Target: Meshgate idle RSS under 20 MB: $(met "$(total_kb "$i") < 20 * 1024") ($(fmt_mb "$i") MB, of which $(fmt_mb "${MEM_IDLE_ANON[meshgate]:-}") MB anonymous); "
  if [[ $k == - ]]; then
    echo "under 10 KB per idle HTTP/1.1 connection (read after ${MEM_IDLE_LATE} s idle): no figure."
  else
    echo "under 10 KB per idle HTTP/1.1 connection, read on the ${MEM_IDLE_LATE} s column: $(met "$k < 10") ($k KB; $(mem_kb_per_conn meshgate) KB after 1 s)."
  fi
}

declare -A CONSTANT_LABEL=([ceiling]="no proxy (backend direct)" [nginx]="nginx" [haproxy]="haproxy" [meshgate]="Meshgate")
constant_table() {
  echo "| proxy | rate | requested rps | achieved rps | success % | p50 ms | p99 ms | p99.9 ms | max ms | p99 vs nginx | p99.9 vs nginx | proxy CPU % | other CPU % |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  local pct key k ach note
  for pct in "${CONSTANT_PCTS[@]}"; do
    for key in "${CR_ROWS[@]}"; do
      k=$key:$pct
      if [[ -n ${CR_FAIL[$k]:-} || -z ${CR_REQS[$k]:-} ]]; then
        echo "| ${CONSTANT_LABEL[$key]} | $pct% | ${CR_RATE[$pct]} | not run: ${CR_FAIL[$k]:-?} | | | | | | | | | |"
        continue
      fi
      ach=$(fmt_rps "${CR_ACH[$k]}")
      # The generator (one CPU, shared with the backend) fell behind the schedule.
      if [[ ${CR_ACH[$k]} != - ]] && ! awk -v a="${CR_ACH[$k]}" -v r="${CR_RATE[$pct]}" 'BEGIN { exit !(a >= 0.95 * r) }'; then
        ach="**$ach (below requested)**"
      fi
      note=""
      [[ -n ${CR_ERRMSG[$k]:-} ]] && note=" (${CR_ERRMSG[$k]//|/\\|})"
      echo "| ${CONSTANT_LABEL[$key]} | $pct% | ${CR_RATE[$pct]} | $ach | ${CR_OK[$k]}$note | $(fmt_ms "${CR_P50[$k]}")" \
        "| $(fmt_ms "${CR_P99[$k]}") | $(fmt_ms "${CR_P999[$k]}") | $(fmt_ms "${CR_MAX[$k]}")" \
        "| $(ratio "${CR_P99[$k]}" "${CR_P99[nginx:$pct]:-}") | $(ratio "${CR_P999[$k]}" "${CR_P999[nginx:$pct]:-}")" \
        "| ${CR_CPU[$k]:--} | $(fmt_other "${CR_OTHER[$k]:-}") |"
    done
  done
}
constant_summary() {
  local pct m n out=""
  if ! ((MESHGATE_WANTED)); then echo "Meshgate vs nginx at a constant rate: Meshgate not run."; return; fi
  for pct in "${CONSTANT_PCTS[@]}"; do
    m=${CR_P99[meshgate:$pct]:-} n=${CR_P99[nginx:$pct]:-}
    if [[ -z $m || -z $n || -n ${CR_FAIL[meshgate:$pct]:-} || -n ${CR_FAIL[nginx:$pct]:-} ]]; then out+="at $pct%: no figure; "; continue; fi
    out+="at $pct% (${CR_RATE[$pct]} rps): $(met "$m <= $n") (p99 $(fmt_ms "$m") vs $(fmt_ms "$n") ms, $(ratio "$m" "$n"); p99.9 $(ratio "${CR_P999[meshgate:$pct]}" "${CR_P999[nginx:$pct]}"); success ${CR_OK[meshgate:$pct]}% vs ${CR_OK[nginx:$pct]}%); "
  done
  echo "Target (the HTTP/1.1 target's \"p99 no worse than nginx\", at a fixed rate): ${out%; }."
}

ROUTES_TABLE="" RELOAD_TABLE="" TLS_TABLE="" MEM_TABLE="" CONSTANT_TABLE=""
if [[ $SKIP_CONSTANT != 1 && -z $CONSTANT_SKIP ]]; then CONSTANT_TABLE=$(constant_table); fi
if [[ -n $CONSTANT_SKIP ]]; then NOTES+=("Latency under constant load not measured: $CONSTANT_SKIP."); fi
[[ $SKIP_ROUTES != 1 ]] && ROUTES_TABLE=$(routes_table)
if [[ $SKIP_RELOAD != 1 ]] && ((MESHGATE_WANTED)); then
  reload_summary
  if ((RELOAD_DONE > 0)); then RELOAD_TABLE=$(reload_table); fi
fi
[[ $SKIP_TLS_CONNS != 1 ]] && ((HAVE_AB)) && TLS_TABLE=$(tls_table)
[[ $SKIP_MEMORY != 1 ]] && ((HAVE_IDLECONNS)) && MEM_TABLE=$(mem_table)
for p in "${X_PROXIES[@]}"; do
  for n in "${ROUTE_COUNTS[@]}"; do note_noisy "many routes ${X_LABEL[$p]} $n" "${RT_OTHER[$p:$n]:-}"; done
  for v in "${TLS_VARIANTS[@]}"; do note_noisy "new TLS connections ${X_LABEL[$p]} ${TLS_VLABEL[$v]}" "${TC_OTHER[$p:$v]:-}"; done
done
for ((k = 1; k <= RELOADS; k++)); do note_noisy "reload $k" "${RL_OTHER[$k]:-}"; done
for pct in "${CONSTANT_PCTS[@]}"; do
  for key in "${CR_ROWS[@]}"; do note_noisy "constant rate ${CONSTANT_LABEL[$key]} $pct%" "${CR_OTHER[$key:$pct]:-}"; done
done
if [[ -n $X_NOISY ]]; then
  NOTES+=("Other processes used ${NOISE_PCT}% or more of a CPU during: ${X_NOISY%, }. Those rows are unreliable: rerun when the machine is quiet.")
fi
X_RETRIED=""
for p in "${X_PROXIES[@]}"; do
  for n in "${ROUTE_COUNTS[@]}"; do
    if ((${RT_TRIES[$p:$n]:-1} > 1)); then X_RETRIED+="many routes ${X_LABEL[$p]} $n (${RT_TRIES[$p:$n]} times), "; fi
  done
  for v in "${TLS_VARIANTS[@]}"; do
    if ((${TC_TRIES[$p:$v]:-1} > 1)); then X_RETRIED+="new TLS connections ${X_LABEL[$p]} ${TLS_VLABEL[$v]} (${TC_TRIES[$p:$v]} times), "; fi
  done
done
for pct in "${CONSTANT_PCTS[@]}"; do
  for key in "${CR_ROWS[@]}"; do
    if ((${CR_TRIES[$key:$pct]:-1} > 1)); then X_RETRIED+="constant rate ${CONSTANT_LABEL[$key]} $pct% (${CR_TRIES[$key:$pct]} times), "; fi
  done
done
if [[ -n $X_RETRIED ]]; then
  NOTES+=("Measured again because other processes disturbed the first try: ${X_RETRIED%, }. The tables show the last try.")
fi
if ((${#X_MESHGATE_FAILS[@]})); then
  for f in "${X_MESHGATE_FAILS[@]}"; do NOTES+=("Meshgate failed in $f"); done
fi

mkdir -p "$(dirname "$RESULT_FILE")"
{
  echo "# Side-by-side proxy benchmark, $DATE"
  echo
  echo "Generated by \`bench/run.sh\` at $(date -u '+%F %T') UTC. Measurement ${DURATION}s, warm-up ${WARMUP}s."
  if [[ $SKIP_PROTOCOLS != 1 ]]; then
    echo "gRPC unary and WebSocket echo (bench/protocols.sh) are at the end of this report and in \`${PROTOCOLS_FILE#"$ROOT"/}\`."
  fi
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
  if [[ $SKIP_CONSTANT != 1 && $CONSTANT_TOOL == vegeta ]]; then echo "- vegeta: $VEGETA_VERSION (built from its Go module, \`${VEGETA/#$HOME/\~}\`)"; fi
  if [[ $SKIP_CONSTANT != 1 && $CONSTANT_TOOL == ratebench ]]; then echo "- ratebench: bench/tools/ratebench (built from this tree)"; fi
  echo "- Meshgate: $GATEWAY_ID"
  echo "- other processes' CPU use just before the run: ${BASE_OTHER}% of one CPU"
  echo "- pinning: proxy under test on CPU $PROXY_CPU (one worker / GOMAXPROCS=1); backend nginx and load generator on CPU $LOAD_CPU"
  echo
  echo "## HTTP/1.1 keep-alive: wrk -t1 -c$H1_CONNS -d${DURATION}s --latency (after ${WARMUP}s warm-up)"
  echo
  echo "$H1_TABLE"
  echo
  if ((ROUNDS > 1)); then
    echo "Each row is the proxy's median of $ROUNDS rounds by rps, the proxies alternating round after round; rps of every round: $(rounds_line h1)."
  fi
  echo "other CPU % = CPU time used during the measurement by processes outside this benchmark (other builds, tests), in % of one CPU; ${NOISE_PCT}% or more is flagged noisy."
  echo "errors = wrk socket errors (connect+read+write+timeout) + non-2xx/3xx responses."
  echo "RSS = VmRSS from /proc/PID/status, idle before warm-up and right after the run; for nginx the sum of master + worker (shared library pages counted twice), with the worker alone in brackets."
  echo
  echo "## HTTP/2 over TLS (ALPN h2): h2load -c$H2_CLIENTS -m$H2_STREAMS -D$DURATION (after ${WARMUP}s warm-up)"
  echo
  echo "$H2_TABLE"
  echo
  if ((ROUNDS > 1)); then
    echo "Each row is the proxy's median of $ROUNDS rounds by rps, as above; rps of every round: $(rounds_line h2)."
  fi
  echo "errored includes h2load timeouts. RSS is measured right after the h2 run."
  echo
  if [[ -n $CONSTANT_TABLE ]]; then
    if [[ $CONSTANT_TOOL == ratebench ]]; then
      echo "## Latency under constant load: ratebench -rate R -c $H1_CONNS -d ${DURATION}s (wrk2-style, after ${WARMUP}s warm-up)"
    else
      echo "## Latency under constant load: vegeta attack -rate R/s -duration ${DURATION}s -connections $H1_CONNS -max-connections $H1_CONNS -keepalive (after ${WARMUP}s warm-up)"
    fi
    echo
    echo "R = ${CONSTANT_PCTS[*]/%/%} of nginx's HTTP/1.1 keep-alive rps in the table above ($(fmt_rps "${H1_RPS[nginx]}") rps): $(for pct in "${CONSTANT_PCTS[@]}"; do printf '%s%% = %s rps, ' "$pct" "${CR_RATE[$pct]}"; done | sed 's/, $//'). The same main instances as above, same pinning; the generator runs on CPU $LOAD_CPU with the backend."
    if [[ $CONSTANT_TOOL == ratebench ]]; then
      echo "The generator is open loop: bench/tools/ratebench keeps $H1_CONNS keep-alive connections (as wrk -c$H1_CONNS), sends request i when it is due (start + i/R) whatever the earlier answers, and times each request from when it was due, not from when it went out. When an answer is late, the requests due meanwhile count their wait, so the tail is not hidden (no coordinated omission: wrk2's method; wrk's closed loop slows down instead and under-reports it)."
      echo "achieved rps = requests / (first due time to last send), marked when under 95% of R: the requests went out late (the proxy, or CPU $LOAD_CPU with generator and backend, could not keep up) and the latencies include that wait. success % = 2xx/3xx answers of the requests sent."
      echo "Why not vegeta (\`BENCH_CONSTANT_TOOL=vegeta\` runs it): vegeta is open loop too, but it costs about 60-80 µs of CPU per request here against about 11 µs for ratebench and 10 µs for wrk, so on one CPU it tops out well below 50% of nginx's rate."
    else
      echo "vegeta $VEGETA_VERSION is an open-loop generator: it sends each request at its scheduled time whatever the earlier answers, so a slow answer does not hold back the requests behind it and the tail is not hidden (no coordinated omission, unlike wrk's closed loop). It times each request from when it went out: achieved rps (requests / (last send - first send)) under 95% of R is marked, and then the latencies are understated. success % = status 200-399."
    fi
    echo "p50/p99/p99.9/max = latency of every answered request (nearest rank). The backend-direct row is the floor: the generator and the backend alone at that rate."
    echo "p99 vs nginx below 1.00x is better than nginx. proxy CPU % = the proxy's CPU time during the run in % of one CPU (less for the same rate is cheaper); other CPU % as above."
    echo
    echo "$CONSTANT_TABLE"
    echo
    if ((ROUNDS > 1)); then
      echo "Each row is the proxy's median of $ROUNDS rounds by p99 (every rate and proxy once per round, alternating); p99 ms of every round: $(cr_rounds_line)."
      echo
    fi
    constant_summary
    echo
    echo '```sh'
    for c in "${CONSTANT_CMDS[@]}"; do echo "$c"; done
    echo '```'
    echo
  fi
  if [[ -n $ROUTES_TABLE ]]; then
    echo "## Many routes: wrk -t1 -c$H1_CONNS -d${DURATION}s --latency on the last of N host+path routes (after ${WARMUP}s warm-up)"
    echo
    echo "Route i (i = 0 .. N-1) is host \`h<i>.bench.local\` with path prefix \`/p<i>\`, all to the same backend; wrk sends \`Host: h<N-1>.bench.local\` and \`GET /p<N-1>\`."
    echo "Meshgate: one HTTPRoute per host (\`hostnames\` + a PathPrefix match). nginx: one \`server\` block per host (\`server_name\` + \`location /p<i>\`) and a default server answering 404."
    echo "haproxy: a map file of \`h<i>.bench.local/p<i> be\` lines, \`use_backend %[base,map_beg(FILE)]\`, a default backend answering 404. Each proxy and route count is a fresh instance, pinned as above."
    echo
    echo "$ROUTES_TABLE"
    echo
    echo "start-up s = from starting the process to the first GET of the last route that reaches the backend (config load included)."
    echo "last host + /p0 = status of \`GET /p0\` with \`Host: h<N-1>.bench.local\` (must not be 200: host and path both select the route)."
    echo "vs $ROUTE_BASE routes = rps / the same proxy's rps with $ROUTE_BASE routes in this run. errors and other CPU % as above."
    if ((ROUNDS > 1)); then
      echo "Each row is the median of $ROUNDS rounds by rps (every proxy and route count once per round, alternating, each a fresh instance); rps of every round: $(rt_rounds_line)."
    fi
    echo
    routes_target
    echo
    echo '```sh'
    for c in "${ROUTE_CMDS[@]}"; do echo "$c"; done
    echo '```'
    echo
  fi
  if [[ $SKIP_RELOAD != 1 ]] && ((MESHGATE_WANTED)); then
    echo "## Config reload with $RELOAD_N routes under load (Meshgate)"
    echo
    echo "Meshgate serves the $RELOAD_N routes above (first routed answer $(fmt_ms_int "$RELOAD_START_MS") s after start) while wrk -t1 -c$H1_CONNS loads an existing route (\`h$((RELOAD_N - 1)).bench.local/p$((RELOAD_N - 1))\`)."
    echo "Each reload writes a new file with one more HTTPRoute, renames it over the config file, and polls the new route with curl every 10 ms (at most ${RELOAD_TIMEOUT} s)."
    echo "The time is from the rename to the first 200 from the new route. wrk runs from 1 s before the rename to 0.5 s after the new route answers; errors = socket errors + non-2xx, as above."
    echo
    if [[ -n $RELOAD_TABLE ]]; then
      echo "$RELOAD_TABLE"
      echo
    fi
    reload_target
    echo
    echo '```sh'
    for c in "${RELOAD_CMDS[@]}"; do echo "$c"; done
    echo '```'
    echo
  fi
  if [[ -n $TLS_TABLE ]]; then
    echo "## New TLS connections per second: ab -c$TLS_CLIENTS -t$DURATION, one request per connection (after ${WARMUP}s warm-up)"
    echo
    echo "ab without -k: every request opens a new TLS connection (full handshake, no session resumption) to a TLS listener with the same ECDSA P-256 certificate on every proxy (nginx with \`ssl_protocols TLSv1.2 TLSv1.3\`, as the others default to)."
    echo "The proxy forwards each request to the backend over its keep-alive pool. proxy CPU % = CPU time of the proxy during the run in % of one CPU: near 100 means the proxy is the limit; well below, ab (one thread, doing the client half of every handshake on CPU $LOAD_CPU with the backend) or a wait is. conns per proxy CPU-s = new conns/s / (proxy CPU % / 100): a rough per-core capacity when the proxy is not the limit."
    echo "Two runs per proxy: ab's default, which negotiates TLS 1.3, and \`ab -f TLS1.2\`. ab does not set TCP_NODELAY, and in TLS 1.3 it sends its request right after its Finished message; a server that sends nothing after the client's Finished (Go's crypto/tls sends its session tickets before it) leaves that request waiting for the server's delayed ACK, 40 ms on Linux. nginx and haproxy (OpenSSL) send their session tickets after the client's Finished, which acknowledges it. A p50 near 40 ms in the TLS 1.3 rows is that wait, not CPU; the TLS 1.2 rows, where the server speaks last, show handshake capacity without it."
    echo
    echo "$TLS_TABLE"
    echo
    tls_target
    echo
    echo '```sh'
    for c in "${TLS_CMDS[@]}"; do echo "$c"; done
    echo '```'
    echo
  fi
  if [[ -n $MEM_TABLE ]]; then
    echo "## Memory: idle RSS, and $IDLE_CONNS idle HTTP/1.1 keep-alive connections"
    echo
    echo "Each proxy starts fresh with the simple HTTP/1.1 config (one catch-all route; nginx and haproxy sized for the connections, keep-alive timeouts 120 s; Meshgate with its defaults)."
    echo "idle RSS = VmRSS 3 s after start (after the readiness request); anonymous = RssAnon at the same time (private memory; the rest is file-backed pages of the binary and libraries, shared and reclaimable). Then bench/tools/idleconns opens $IDLE_CONNS connections, sends one GET on each, reads the response and keeps them open; RSS is read 1 s after all are open, and again when they have been idle ${MEM_IDLE_LATE} s."
    echo "Meshgate gives back an idle connection's read and write buffers once it has been idle 2 s, so the ${MEM_IDLE_LATE} s column is what a mostly idle connection costs it. The < 10 KB per idle connection target is read on the ${MEM_IDLE_LATE} s column."
    echo "KB per conn = (RSS with the connections - idle RSS) / connections the client holds open; server side = established connections on the proxy's port (\`ss\`) at each reading (they must all still be open). For nginx RSS is master + worker."
    echo
    echo "$MEM_TABLE"
    echo
    mem_target
    echo
    echo '```sh'
    for c in "${MEM_CMDS[@]}"; do echo "$c"; done
    echo '```'
    echo
  fi
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
  if [[ -n $ROUTES_TABLE || -n $RELOAD_TABLE ]]; then
    echo
    mkdir -p "$T/routes-example"
    details "many routes, nginx (N = 2 shown; N routes = the same server block for i = 0 .. N-1, server_names_hash_max_size 4N+1024)" nginx nginx_routes_conf "$T/routes-example" 2
    details "many routes, haproxy (\$DIR/routes.map for N = 2 below)" "" haproxy_routes_cfg "\$DIR" "\$DIR/routes.map"
    details "many routes, haproxy routes.map (N = 2)" "" haproxy_routes_map 2
    details "many routes and reload, Meshgate (N = 2 shown; one HTTPRoute per i = 0 .. N-1)" yaml meshgate_routes_example
  fi
  if [[ -n $TLS_TABLE ]]; then
    details "new TLS connections, nginx" nginx cat "$T/tls-nginx/nginx.conf"
    details "new TLS connections, haproxy" "" cat "$T/tls-haproxy/haproxy.cfg"
    details "new TLS connections, Meshgate" yaml meshgate_tls_example
  fi
  if [[ -n $MEM_TABLE ]]; then
    details "memory, nginx" nginx cat "$T/mem-nginx/nginx.conf"
    details "memory, haproxy" "" cat "$T/mem-haproxy/haproxy.cfg"
    details "memory, Meshgate" yaml meshgate_mem_example
  fi
} >"$RESULT_FILE"

echo
echo "HTTP/1.1 keep-alive (wrk -t1 -c$H1_CONNS -d${DURATION}s --latency):"
echo "$H1_TABLE"
echo
echo "HTTP/2 over TLS (h2load -c$H2_CLIENTS -m$H2_STREAMS -D$DURATION):"
echo "$H2_TABLE"
echo
if [[ -n $CONSTANT_TABLE ]]; then
  echo "Latency under constant load ($CONSTANT_TOOL, ${CONSTANT_PCTS[*]/%/%} of nginx's HTTP/1.1 rps, ${DURATION}s):"
  echo "$CONSTANT_TABLE"
  constant_summary
  echo
fi
if [[ -n $ROUTES_TABLE ]]; then
  echo "Many routes (wrk -t1 -c$H1_CONNS -d${DURATION}s on the last of N host+path routes):"
  echo "$ROUTES_TABLE"
  routes_target
  echo
fi
if [[ $SKIP_RELOAD != 1 ]] && ((MESHGATE_WANTED)); then
  echo "Reload with $RELOAD_N routes under wrk (Meshgate):"
  [[ -n $RELOAD_TABLE ]] && echo "$RELOAD_TABLE"
  reload_target
  echo
fi
if [[ -n $TLS_TABLE ]]; then
  echo "New TLS connections per second (ab -c$TLS_CLIENTS -t$DURATION, ECDSA P-256):"
  echo "$TLS_TABLE"
  tls_target
  echo
fi
if [[ -n $MEM_TABLE ]]; then
  echo "Memory ($IDLE_CONNS idle HTTP/1.1 keep-alive connections):"
  echo "$MEM_TABLE"
  mem_target
  echo
fi
for n in "${NOTES[@]}"; do echo "note: $n"; done
echo "report: ${RESULT_FILE#"$ROOT"/}"

# gRPC unary and WebSocket echo (bench/protocols.sh): its own report file
# (PROTOCOLS_FILE), also appended to this report under a pointer to that file.
PROTOCOLS_RC=0
if [[ $SKIP_PROTOCOLS != 1 ]]; then
  for key in backend nginx haproxy caddy meshgate; do stop_server "$key"; done
  log "gRPC and WebSocket: bash bench/protocols.sh ${PROTOCOLS_FILE#"$ROOT"/}"
  rm -f "$PROTOCOLS_FILE"
  bash "$ROOT/bench/protocols.sh" "$PROTOCOLS_FILE" || PROTOCOLS_RC=$?
  if [[ -s $PROTOCOLS_FILE ]]; then
    {
      echo
      awk -v f="${PROTOCOLS_FILE#"$ROOT"/}" 'NR == 1 { print; print ""; print "Also written to `" f "`."; next } { print }' "$PROTOCOLS_FILE"
    } >>"$RESULT_FILE"
    echo; sed -n '/^<details>/q;p' "$PROTOCOLS_FILE"
    echo "protocols report: ${PROTOCOLS_FILE#"$ROOT"/}"
  else
    { echo; echo "## gRPC and WebSocket (bench/protocols.sh)"; echo; echo "bench/protocols.sh wrote no report (exit $PROTOCOLS_RC); see the run's log."; } >>"$RESULT_FILE"
  fi
else
  { echo; echo "## gRPC and WebSocket (bench/protocols.sh)"; echo; echo "Not run (BENCH_SKIP_PROTOCOLS=1)."; } >>"$RESULT_FILE"
fi

# What recording metrics costs (bench/metrics-cost.sh), appended to the report.
if [[ ${BENCH_SKIP_METRICS_COST:-0} != 1 ]]; then
  log "metrics cost: bash bench/metrics-cost.sh"
  if bash "$ROOT/bench/metrics-cost.sh" "$T/metrics-cost.md"; then
    { echo; cat "$T/metrics-cost.md"; } >>"$RESULT_FILE"
    echo; cat "$T/metrics-cost.md"
  else
    PROTOCOLS_RC=1
  fi
fi

if ((MESHGATE_WANTED)) && [[ -n ${FAIL[meshgate]:-} ]]; then
  die "Meshgate was not measured: ${FAIL[meshgate]}"
fi
if ((${#X_MESHGATE_FAILS[@]})); then
  die "Meshgate failed in the extra measures: ${X_MESHGATE_FAILS[*]}"
fi
((PROTOCOLS_RC == 0)) || die "bench/protocols.sh failed (exit $PROTOCOLS_RC); see its section in the report"
