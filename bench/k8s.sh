#!/usr/bin/env bash
# bench/k8s.sh: `gateway run --kubernetes` against a real kube-apiserver and
# etcd (internal/k8stest): route change to traffic latency, and reconcile
# time, memory, change latency and per-request cost with 1,000 and 5,000
# HTTPRoutes. It runs the Go benchmarks of test/e2e/kube_perf_test.go once
# each and writes bench/results/DATE-k8s.md with their tables, the machine,
# the exact commands and the top of two CPU profiles of the gateway.
#
# Usage: bash bench/k8s.sh [out.md]      (or: make bench-k8s)
# Needs root (backends live in network namespaces: EndpointSlices refuse
# loopback addresses), iproute2, wrk, and the control plane binaries that
# `make test-deps` builds (scripts/k8s-tools.sh). About 7 minutes on 2 cores.
# Environment:
#   BENCH_K8S_FILTER=Kubernetes   -bench regexp (KubernetesRouteChange or KubernetesScale for one)
#   BENCH_KEEP_TMP=1              keep the temp dir (fragments, profiles, gateway logs, raw output)
#   BENCH_WAIT_QUIET=120          first wait up to N s for the machine to go quiet (under 30% of one CPU busy over 5 s)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.26.10}
GO=${GO:-go}
FILTER=${BENCH_K8S_FILTER:-Kubernetes}
DATE=$(date +%F)
OUT=${1:-$ROOT/bench/results/$DATE-k8s.md}

log() { printf '[bench-k8s] %s\n' "$*" >&2; }

[[ $(id -u) == 0 ]] || { log "run as root (network namespaces)"; exit 1; }
for t in wrk ip; do
  command -v "$t" >/dev/null || { log "$t not found (apt-get install wrk iproute2)"; exit 1; }
done

TMP=$(mktemp -d /tmp/bench-k8s.XXXXXX)
if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then
  log "keeping $TMP"
else
  trap 'rm -rf "$TMP"' EXIT
fi
export MESHGATE_K8S_BENCH_DIR=$TMP

WAIT_QUIET=${BENCH_WAIT_QUIET:-120}
busy_ticks() { awk '/^cpu / {print $2+$3+$4+$9}' /proc/stat; }
if (( WAIT_QUIET > 0 )); then
  deadline=$((SECONDS + WAIT_QUIET))
  while :; do
    b0=$(busy_ticks); sleep 5; b1=$(busy_ticks)
    busy=$(( (b1 - b0) / 5 )) # ticks per second = % of one CPU (USER_HZ 100)
    if (( busy < 30 )); then log "machine quiet ($busy% of one CPU busy)"; break; fi
    if (( SECONDS >= deadline )); then log "machine still busy ($busy% of one CPU) after ${WAIT_QUIET} s; measuring anyway"; break; fi
  done
fi
quiet_note="busy before the start: ${busy:-not measured}% of one CPU"

CMD=("$GO" test -run xxx -bench "$FILTER" -benchtime 1x -timeout 30m ./test/e2e/)
log "${CMD[*]}"
start=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
set +e
"${CMD[@]}" 2>&1 | tee "$TMP/bench.txt"
rc=${PIPESTATUS[0]}
set -e
took=$(( $(date +%s) - start ))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
if [[ $rc != 0 ]]; then
  log "go test failed (exit $rc); no report written"
  exit "$rc"
fi

cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ {printf "%.1f GB", $2/1024/1024}' /proc/meminfo)
k8sver=$(sed -n 's/^\s*KubernetesVersion = "\(.*\)"/\1/p' internal/k8stest/k8stest.go)
etcdver=$(sed -n 's/^\s*EtcdVersion\s*= "\(.*\)"/\1/p' internal/k8stest/k8stest.go)

{
  echo "# Kubernetes provider: route change latency and scale ($DATE)"
  echo
  echo "Written by \`bench/k8s.sh\` (\`make bench-k8s\`) from the Go benchmarks in"
  echo "\`test/e2e/kube_perf_test.go\`: the real gateway binary with \`--kubernetes\` against a"
  echo "real kube-apiserver $k8sver and etcd $etcdver on loopback, backends in network namespaces."
  echo "Changes go through the API (\`client.Update\`, what \`kubectl apply\` does); the gateway"
  echo "debounces informer events (100 ms, at most 1 s) into a snapshot, translates and applies it."
  echo
  echo "## Machine"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| CPUs (nproc) | $(nproc) |"
  echo "| CPU model | $cpu_model |"
  echo "| memory | $mem |"
  echo "| kernel | $(uname -r) |"
  echo "| Go | $("$GO" version | awk '{print $3}') |"
  echo "| load average (1/5/15 min) before / after | $load_before / $load_after ($quiet_note) |"
  echo
  echo "Everything (etcd, kube-apiserver, the gateway, the benchmark process with its backends, wrk)"
  echo "shares these CPUs, without pinning. Absolute figures move between runs on a shared machine;"
  echo "the 10 vs 5,000 routes ratio is from one run on one gateway process. Each series reports the CPU"
  echo "that other processes used meanwhile (\"other\", % of one CPU): at 100% or more, one of the two CPUs"
  echo "went to other jobs and latencies and rps carry that noise."
  echo
  echo "## Commands"
  echo
  echo '```sh'
  echo "MESHGATE_K8S_BENCH_DIR=\$(mktemp -d) ${CMD[*]}"
  echo '# the gateway runs as: gateway run --admin-addr IP:PORT --log-level debug --kubernetes \'
  echo '#   --kubeconfig K --access-log /dev/null [--pprof] [--leader-elect --leader-elect-namespace apps]'
  echo '# profiles: GET /debug/pprof/profile?seconds=10 (5 for wrk) on the admin address, then'
  echo 'go tool pprof -top -cum -nodecount=30 cpu-status-5000.pb.gz   # likewise cpu-reconcile-5000, cpu-wrk-10, cpu-wrk-5000'
  echo '```'
  echo
  echo "Total run: ${took} s."
  echo
  echo "## Results"
  echo
  for f in route-change.md scale.md; do
    if [[ -f $TMP/$f ]]; then cat "$TMP/$f"; echo; fi
  done
  echo "Target (issue): route change p99 under 1 s; no full-table rebuild cost visible per request."
  echo
  match_share() { # cum % of the route lookup in a wrk profile
    "$GO" tool pprof -top -cum -nodecount=100000 "$1" 2>/dev/null | awk '/router\.\(\*Table\)\.Match$/ {print $5; exit}'
  }
  if [[ -f $TMP/cpu-wrk-10.pb.gz && -f $TMP/cpu-wrk-5000.pb.gz ]]; then
    echo "Route lookup (\`router.(*Table).Match\`, cumulative) in the gateway's CPU profile under wrk:"
    total() { "$GO" tool pprof -top -nodecount=1 "$1" 2>/dev/null | sed -n 's/.*Total samples = \([^ ]*\).*/\1/p'; }
    m10=$(match_share "$TMP/cpu-wrk-10.pb.gz"); m5k=$(match_share "$TMP/cpu-wrk-5000.pb.gz")
    echo "${m10:-no sample} of $(total "$TMP/cpu-wrk-10.pb.gz") at 10 routes, ${m5k:-no sample} of $(total "$TMP/cpu-wrk-5000.pb.gz") at 5,000"
    echo "(10 ms sampling: \"no sample\" means under 10 ms in total)."
    echo
  fi
  for p in reconcile status wrk; do
    f=$TMP/cpu-$p-5000.pb.gz
    [[ -f $f ]] || continue
    case $p in
      reconcile) echo "## CPU profile: non-leader replica while 4,000 routes are created (10 s, from 5 s into the burst)" ;;
      status) echo "## CPU profile: status-writing replica on 5,000 routes, working through the status backlog (10 s)" ;;
      wrk) echo "## CPU profile: non-leader replica at 5,000 routes under wrk on r0.test (5 s, an extra run outside the ratio)" ;;
    esac
    echo
    echo '```'
    "$GO" tool pprof -top -cum -nodecount=30 "$f" 2>/dev/null | sed -n '1,40p'
    echo '```'
    echo
    echo "Flat:"
    echo
    echo '```'
    "$GO" tool pprof -top -nodecount=15 "$f" 2>/dev/null | sed -n '/flat%/,$p'
    echo '```'
    echo
  done
  echo "## Raw benchmark lines"
  echo
  echo '```'
  grep -E '^(Benchmark|goos|goarch|pkg|cpu|PASS|ok)' "$TMP/bench.txt" || true
  echo '```'
} >"$OUT"
log "wrote $OUT"
