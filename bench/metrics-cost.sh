#!/usr/bin/env bash
# bench/metrics-cost.sh: what recording metrics costs on the hot path.
# Meshgate with --metrics=true and --metrics=false, alternated over several
# rounds in one run (proxy on CPU 0, backend nginx and wrk on CPU 1, all on
# loopback), HTTP/1.1 keep-alive; prints a markdown section with the median
# rps of each and their ratio (target: metrics cost under 5%).
#
# Usage: bash bench/metrics-cost.sh [out.md]   (after `make build`)
# Environment: BENCH_DURATION (8 s per measurement), BENCH_ROUNDS (3).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
D=${BENCH_DURATION:-8}
ROUNDS=${BENCH_ROUNDS:-3}
OUT=${1:-/dev/stdout}
GW=${BENCH_GATEWAY_BIN:-./bin/gateway}
T=$(mktemp -d)
BPORT=18790 GPORT=18791 ADMIN=127.0.0.1:18792
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
for tool in nginx wrk taskset; do command -v $tool >/dev/null || { echo "metrics-cost: $tool is missing (make bench installs it)" >&2; exit 1; }; done

mkdir -p "$T/nginx/tmp"
cat >"$T/nginx/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $T/nginx/nginx.pid; error_log $T/nginx/error.log warn;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $T/nginx/tmp; proxy_temp_path $T/nginx/tmp;
  fastcgi_temp_path $T/nginx/tmp; uwsgi_temp_path $T/nginx/tmp; scgi_temp_path $T/nginx/tmp;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$BPORT; location / { return 200 "hello from backend\n"; } } }
CONF
taskset -c 1 nginx -p "$T/nginx" -e "$T/nginx/error.log" -c "$T/nginx/nginx.conf" >"$T/nginx.log" 2>&1 &
pids+=($!)
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
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: all, namespace: default}
spec:
  parentRefs: [{name: bench}]
  rules: [{backendRefs: [{group: gateway.meshgate.dev, kind: Backend, name: origin}]}]
YAML
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$BPORT/" && break; sleep 0.1; done

measure() { # metrics-on|off -> rps
  env GOMAXPROCS=1 taskset -c 0 "$GW" run --config "$T/gw.yaml" --admin-addr "$ADMIN" --access-log= --metrics="$1" >"$T/gw-$1.log" 2>&1 &
  local gw=$!
  for _ in $(seq 100); do [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$ADMIN/ready") == 200 ]] && break; sleep 0.1; done
  taskset -c 1 wrk -t1 -c64 -d2s "http://127.0.0.1:$GPORT/" >/dev/null
  taskset -c 1 wrk -t1 -c64 -d"${D}s" "http://127.0.0.1:$GPORT/" | awk '/^Requests\/sec/ {print $2}'
  kill "$gw"; wait "$gw" 2>/dev/null || true
}
on=() off=()
for r in $(seq "$ROUNDS"); do
  # Alternate which goes first, so a drift over the run (CPU clocks, the
  # backend warming up) does not favour one side.
  if ((r % 2)); then
    on+=("$(measure true)")
    off+=("$(measure false)")
  else
    off+=("$(measure false)")
    on+=("$(measure true)")
  fi
  echo "[metrics-cost] round $r: on ${on[-1]} rps, off ${off[-1]} rps" >&2
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mon=$(median "${on[@]}") moff=$(median "${off[@]}")
{
  echo "## Cost of metrics (bench/metrics-cost.sh)"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'): Meshgate (GOMAXPROCS=1, CPU 0) with and without --metrics, alternated over $ROUNDS rounds of ${D}s, wrk -c64 HTTP/1.1 keep-alive on CPU 1 against nginx returning 200. Medians:"
  echo
  echo "| metrics | rps (median) | rounds |"
  echo "|---|---:|---|"
  echo "| on (default) | $mon | ${on[*]} |"
  echo "| off | $moff | ${off[*]} |"
  echo
  awk -v a="$mon" -v b="$moff" 'BEGIN { printf "Metrics on / off: **%.3fx** (cost %.1f%% of rps; target under 5%%).\n", a/b, 100*(1-a/b) }'
} >"$OUT"
