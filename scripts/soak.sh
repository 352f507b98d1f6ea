#!/usr/bin/env bash
# scripts/soak.sh: a long run of mixed traffic through one gateway, with a
# config reload every 30 s and an upstream fault every minute, watching the
# gateway's memory, goroutines, open files and connections. Called by
# `make soak`.
#
# What runs, all on loopback:
#   backends  three demo backends (bin/demo-backend v1, v2, v3) and the
#             WebSocket and TCP line echo servers of bench/tools/soak
#   gateway   bin/gateway with an HTTP listener (h1 + h2c), an HTTPS listener
#             (h2/h1 over TLS, the demo's self-signed certificate) and a TCP
#             listener; HTTP routes: a 90/10 split v1/v2, x-canary: true -> v3,
#             /ws -> WebSocket echo; a TCPRoute -> TCP echo
#   traffic   h1: wrk (or Go loops when wrk is missing) on the split;
#             h2 over TLS: h2load (or Go h2c loops when h2load is missing);
#             WebSockets echoing every second (reconnecting after a failure),
#             long TCP sessions echoing every second, a new short TCP session
#             every half second
#   reloads   every SOAK_RELOAD_EVERY s the routes file is replaced: the split
#             moves between 90/10 and 70/30 and an extra route comes and goes;
#             a reload counts when the gateway logs "config applied"
#   faults    every SOAK_FAULT_EVERY s one demo backend (v1, v2, v3 in turn)
#             is killed with SIGKILL and restarted SOAK_FAULT_DOWN s later;
#             HTTP requests its share of the split gets meanwhile fail (503),
#             which the report counts as errors and does not judge
#   samples   every SOAK_SAMPLE_EVERY s from the admin /metrics:
#             process_resident_memory_bytes, go_goroutines, process_open_fds,
#             meshgate_connections_active (summed over listeners)
#
# The report (markdown) goes to bench/results/YYYY-MM-DD-soak.md. The run
# fails (exit 1) when, at the end compared with the baseline sample taken
# after the warm-up (SOAK_WARMUP s), RSS grew more than SOAK_RSS_PCT %,
# goroutines more than SOAK_GOROUTINES_MARGIN or open fds more than
# SOAK_FDS_MARGIN; also when the gateway exits or a reload is not applied.
#
# Usage (from anywhere in the clone):
#   make soak                      # 30 minutes
#   SOAK_DURATION=2m make soak     # smoke run
#   bash scripts/soak.sh
# Environment (defaults in brackets):
#   SOAK_DURATION [30m]  Ns, Nm, Nh or plain seconds
#   SOAK_WARMUP [60]  SOAK_SAMPLE_EVERY [10]  SOAK_RELOAD_EVERY [30]
#   SOAK_FAULT_EVERY [60]  SOAK_FAULT_DOWN [2]            (seconds)
#   SOAK_RSS_PCT [50]  SOAK_GOROUTINES_MARGIN [100]  SOAK_FDS_MARGIN [100]
#   SOAK_H1_CONNS [16] (wrk)  SOAK_H2_CLIENTS [4]  SOAK_H2_STREAMS [8] (h2load)
#   SOAK_WS_CONNS [50]  SOAK_TCP_SESSIONS [20]
#   SOAK_NO_WRK=1  SOAK_NO_H2LOAD=1   use the Go loops even when the tools exist
#   SOAK_IP [127.0.0.1]  SOAK_PORT_BASE [18100]: ports BASE+0 HTTP, +1 HTTPS,
#     +2 TCP, +3 admin, +11..+13 demo backends, +21 WebSocket echo, +22 TCP echo
#   SOAK_REPORT [bench/results/YYYY-MM-DD-soak.md]
#   SOAK_KEEP_TMP=1      keep the temp folder (configs, logs, tool output)
set -euo pipefail
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.26.10}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

secs() { # 30m -> 1800
	local v=$1
	case $v in
	*h) v=$((${v%h} * 3600)) ;;
	*m) v=$((${v%m} * 60)) ;;
	*s) v=${v%s} ;;
	esac
	[[ $v =~ ^[0-9]+$ ]] || {
		echo "soak: bad duration $1" >&2
		exit 2
	}
	echo "$v"
}

DURATION_ARG=${SOAK_DURATION:-30m}
DURATION=$(secs "$DURATION_ARG")
WARMUP=$(secs "${SOAK_WARMUP:-60}")
SAMPLE_EVERY=$(secs "${SOAK_SAMPLE_EVERY:-10}")
RELOAD_EVERY=$(secs "${SOAK_RELOAD_EVERY:-30}")
FAULT_EVERY=$(secs "${SOAK_FAULT_EVERY:-60}")
FAULT_DOWN=$(secs "${SOAK_FAULT_DOWN:-2}")
RSS_PCT=${SOAK_RSS_PCT:-50}
GOR_MARGIN=${SOAK_GOROUTINES_MARGIN:-100}
FDS_MARGIN=${SOAK_FDS_MARGIN:-100}
H1_CONNS=${SOAK_H1_CONNS:-16}
H2_CLIENTS=${SOAK_H2_CLIENTS:-4}
H2_STREAMS=${SOAK_H2_STREAMS:-8}
WS_CONNS=${SOAK_WS_CONNS:-50}
TCP_SESSIONS=${SOAK_TCP_SESSIONS:-20}
IP=${SOAK_IP:-127.0.0.1}
BASE=${SOAK_PORT_BASE:-18100}
P_HTTP=$BASE P_HTTPS=$((BASE + 1)) P_TCP=$((BASE + 2)) P_ADMIN=$((BASE + 3))
P_V=("" $((BASE + 11)) $((BASE + 12)) $((BASE + 13)))
P_WS=$((BASE + 21)) P_TCPECHO=$((BASE + 22))
DATE=$(date +%F)
REPORT=${SOAK_REPORT:-bench/results/$DATE-soak.md}
((DURATION >= SAMPLE_EVERY && SAMPLE_EVERY > 0)) || {
	echo "soak: SOAK_DURATION must be at least SOAK_SAMPLE_EVERY ($SAMPLE_EVERY s)" >&2
	exit 2
}
# Every load tool runs a little longer than the sampling, so the last
# sample is taken under load; then they stop by themselves.
LOAD_SECS=$((DURATION + 5))

TMP=$(mktemp -d /tmp/meshgate-soak.XXXXXX)
declare -A PID=()
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for name in "${!PID[@]}"; do
		kill -TERM "${PID[$name]}" 2>/dev/null || true
	done
	for name in "${!PID[@]}"; do
		{ wait "${PID[$name]}"; } 2>/dev/null || true
	done
	if [[ ${SOAK_KEEP_TMP:-0} == 1 || $rc -ne 0 ]]; then
		echo "soak: logs and configs kept in $TMP" >&2
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "soak: $*" >&2; }

# --- build -----------------------------------------------------------------
mkdir -p bin
if [[ ! -x bin/gateway ]]; then
	log "building bin/gateway"
	CGO_ENABLED=0 go build -trimpath -o bin/gateway ./cmd/gateway
fi
if [[ ! -x bin/demo-backend ]]; then
	log "building bin/demo-backend"
	CGO_ENABLED=0 go build -trimpath -o bin/demo-backend ./cmd/demo-backend
fi
go build -o "$TMP/soak" ./bench/tools/soak
SOAK=$TMP/soak

# --- ports -----------------------------------------------------------------
busy() { (exec 3<>"/dev/tcp/$IP/$1") 2>/dev/null; }
for p in $P_HTTP $P_HTTPS $P_TCP $P_ADMIN "${P_V[@]:1}" $P_WS $P_TCPECHO; do
	if busy "$p"; then
		log "port $IP:$p is in use (set SOAK_PORT_BASE or SOAK_IP)"
		exit 2
	fi
done
wait_port() { # port what
	for _ in $(seq 1 100); do
		busy "$1" && return 0
		sleep 0.1
	done
	log "$2 did not listen on $IP:$1 within 10 s"
	return 1
}

# --- config ----------------------------------------------------------------
CFG=$TMP/config
mkdir -p "$CFG"
cp examples/demo/tls.yaml "$CFG/tls.yaml"
cat >"$CFG/gateway.yaml" <<EOF
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: meshgate}
spec: {controllerName: gateway.meshgate.dev/controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: soak, namespace: default}
spec:
  gatewayClassName: meshgate
  addresses: [{type: IPAddress, value: $IP}]
  listeners:
  - {name: http, protocol: HTTP, port: $P_HTTP}
  - {name: https, protocol: HTTPS, port: $P_HTTPS, tls: {mode: Terminate, certificateRefs: [{name: demo-tls}]}}
  - {name: tcp, protocol: TCP, port: $P_TCP}
EOF
{
	for v in 1 2 3; do
		cat <<EOF
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: Backend
metadata: {name: app-v$v, namespace: default}
spec: {endpoints: [{address: $IP, port: ${P_V[$v]}}]}
EOF
	done
	cat <<EOF
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: Backend
metadata: {name: ws-echo, namespace: default}
spec: {endpoints: [{address: $IP, port: $P_WS}]}
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: Backend
metadata: {name: tcp-echo, namespace: default}
spec: {endpoints: [{address: $IP, port: $P_TCPECHO}]}
EOF
} >"$CFG/backends.yaml"

# routes N: even N a 90/10 split, odd N 70/30 plus the /extra route.
routes() {
	local n=$1 w1=90
	((n % 2 == 1)) && w1=70
	cat <<EOF
# generation $n of the soak routes
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: soak, sectionName: http}, {name: soak, sectionName: https}]
  rules:
  - matches: [{headers: [{name: x-canary, value: "true"}]}]
    backendRefs: [{group: gateway.meshgate.dev, kind: Backend, name: app-v3}]
  - matches: [{path: {type: PathPrefix, value: /ws}}]
    backendRefs: [{group: gateway.meshgate.dev, kind: Backend, name: ws-echo}]
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs:
    - {group: gateway.meshgate.dev, kind: Backend, name: app-v1, weight: $w1}
    - {group: gateway.meshgate.dev, kind: Backend, name: app-v2, weight: $((100 - w1))}
---
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: tcp, namespace: default}
spec:
  parentRefs: [{name: soak, sectionName: tcp}]
  rules:
  - backendRefs: [{group: gateway.meshgate.dev, kind: Backend, name: tcp-echo}]
EOF
	if ((n % 2 == 1)); then
		cat <<EOF
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: extra, namespace: default}
spec:
  parentRefs: [{name: soak, sectionName: http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /extra}}]
    backendRefs: [{group: gateway.meshgate.dev, kind: Backend, name: app-v3}]
EOF
	fi
}
routes 0 >"$CFG/routes.yaml"

# --- processes ---------------------------------------------------------------
start_backend() { # 1|2|3
	./bin/demo-backend --name "v$1" --listen "$IP:${P_V[$1]}" >>"$TMP/backend-v$1.log" 2>&1 &
	PID[v$1]=$!
}
for v in 1 2 3; do start_backend $v; done
"$SOAK" serve -ws "$IP:$P_WS" -tcp "$IP:$P_TCPECHO" >"$TMP/echo.log" 2>&1 &
PID[echo]=$!
for v in 1 2 3; do wait_port "${P_V[$v]}" "demo backend v$v"; done
wait_port $P_WS "WebSocket echo"
wait_port $P_TCPECHO "TCP echo"

GW_LOG=$TMP/gateway.log
./bin/gateway run --config "$CFG" --admin-addr "$IP:$P_ADMIN" --log-level info --access-log "" >"$GW_LOG" 2>&1 &
PID[gateway]=$!
ready=0
for _ in $(seq 1 150); do
	if curl -fsS -o /dev/null "http://$IP:$P_ADMIN/ready" 2>/dev/null; then
		ready=1
		break
	fi
	kill -0 "${PID[gateway]}" 2>/dev/null || break
	sleep 0.1
done
if ((!ready)); then
	log "the gateway did not become ready; its log:"
	cat "$GW_LOG" >&2
	exit 1
fi
applied_count() { grep -c '"msg":"config applied"' "$GW_LOG" || true; }
curl -fsS -o /dev/null "http://$IP:$P_HTTP/" || {
	log "the split route does not answer"
	exit 1
}

# --- load ------------------------------------------------------------------
H1_TOOL="Go loop (8 keep-alive clients)" H2_TOOL="Go loop (4 h2c clients)"
go_h1=8 go_h2c=4
if [[ ${SOAK_NO_WRK:-0} != 1 ]] && command -v wrk >/dev/null; then
	wrk -t1 -c"$H1_CONNS" -d"${LOAD_SECS}s" --timeout 10s "http://$IP:$P_HTTP/" >"$TMP/wrk.txt" 2>&1 &
	PID[wrk]=$!
	H1_TOOL="wrk -t1 -c$H1_CONNS" go_h1=0
fi
if [[ ${SOAK_NO_H2LOAD:-0} != 1 ]] && command -v h2load >/dev/null; then
	h2load -c"$H2_CLIENTS" -m"$H2_STREAMS" -D "$LOAD_SECS" "https://$IP:$P_HTTPS/" >"$TMP/h2load.txt" 2>&1 &
	PID[h2load]=$!
	H2_TOOL="h2load -c$H2_CLIENTS -m$H2_STREAMS (h2 over TLS)" go_h2c=0
fi
"$SOAK" load -http "$IP:$P_HTTP" -ws "ws://$IP:$P_HTTP/ws" -tcp "$IP:$P_TCP" -d "${LOAD_SECS}s" \
	-h1 $go_h1 -h2c $go_h2c -ws-conns "$WS_CONNS" -tcp-sessions "$TCP_SESSIONS" >"$TMP/load.txt" 2>"$TMP/load.err" &
PID[load]=$!
log "running for ${DURATION}s (gateway pid ${PID[gateway]}, temp folder $TMP)"

# --- the run ---------------------------------------------------------------
SAMPLES=$TMP/samples.tsv
: >"$SAMPLES"
reloads_tried=0 reloads_done=0 reloads_failed=0 faults=0 fault_list="" gateway_died=0
do_reload() {
	local before n
	reloads_tried=$((reloads_tried + 1))
	before=$(applied_count)
	routes "$reloads_tried" >"$TMP/routes.yaml.next"
	mv "$TMP/routes.yaml.next" "$CFG/routes.yaml"
	for _ in $(seq 1 100); do
		n=$(applied_count)
		if ((n > before)); then
			reloads_done=$((reloads_done + 1))
			return
		fi
		sleep 0.1
	done
	reloads_failed=$((reloads_failed + 1))
	log "reload $reloads_tried was not applied within 10 s"
}
do_fault() {
	local v=$((faults % 3 + 1))
	faults=$((faults + 1))
	fault_list+="${fault_list:+, }v$v"
	kill -KILL "${PID[v$v]}" 2>/dev/null || true
	{ wait "${PID[v$v]}"; } 2>/dev/null || true
	sleep "$FAULT_DOWN"
	start_backend $v
	wait_port "${P_V[$v]}" "demo backend v$v" || true
}
take_sample() { # label
	local s
	if s=$("$SOAK" sample -admin "$IP:$P_ADMIN" 2>>"$TMP/sample.err"); then
		echo "$1 $s" >>"$SAMPLES"
	else
		log "sample at $1 failed"
	fi
}

start=$SECONDS
t=$SAMPLE_EVERY
while ((t <= DURATION)); do
	wait_for=$((start + t - SECONDS))
	((wait_for > 0)) && sleep "$wait_for"
	if ! kill -0 "${PID[gateway]}" 2>/dev/null; then
		gateway_died=1
		log "the gateway exited at ${t}s"
		break
	fi
	take_sample "$t"
	if ((t < DURATION)); then
		if ((t % RELOAD_EVERY == 0)); then do_reload; fi
		if ((t % FAULT_EVERY == 0)); then do_fault; fi
	fi
	t=$((t + SAMPLE_EVERY))
done
# Let the load tools finish (they run 5 s past the last sample), then one
# more sample with no load.
for name in wrk h2load load; do
	if [[ -n ${PID[$name]:-} ]]; then
		{ wait "${PID[$name]}"; } 2>/dev/null || log "$name exited with an error (see $TMP)"
		unset "PID[$name]"
	fi
done
sleep 5
if ((!gateway_died)) && kill -0 "${PID[gateway]}" 2>/dev/null; then
	take_sample after
else
	gateway_died=1
fi

# --- report ----------------------------------------------------------------
mkdir -p "$(dirname "$REPORT")"
# resources: one line "first base end max after" per column of the samples.
stats() { # column (2 rss, 3 goroutines, 4 fds, 5 conns)
	awk -v c="$1" -v w="$WARMUP" '
		$1 == "after" { after = $c; next }
		{ if (first == "") first = $c
		  if (base == "" && $1 + 0 >= w) { base = $c; bt = $1 }
		  end = $c; et = $1
		  if (max == "" || $c + 0 > max + 0) max = $c }
		END { if (base == "") { base = first; bt = "first" }
		      if (after == "") after = "-"
		      print first, base, end, max, after, bt, et }' "$SAMPLES"
}
if ! grep -q '^[0-9]' "$SAMPLES"; then
	log "no sample of /metrics succeeded (see $TMP)"
	exit 1
fi
read -r rss_first rss_base rss_end rss_max rss_after base_t end_t_s < <(stats 2)
read -r gor_first gor_base gor_end gor_max gor_after _ _ < <(stats 3)
read -r fds_first fds_base fds_end fds_max fds_after _ _ < <(stats 4)
read -r con_first con_base con_end con_max con_after _ _ < <(stats 5)
mib() {
	if [[ $1 == - ]]; then echo -; else awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; fi
}

fail_reasons=()
rss_ok=$(awk -v e="$rss_end" -v b="$rss_base" -v p="$RSS_PCT" 'BEGIN { print (e <= b * (1 + p / 100)) ? "ok" : "FAIL" }')
gor_ok=ok fds_ok=ok
((gor_end <= gor_base + GOR_MARGIN)) || gor_ok=FAIL
((fds_end <= fds_base + FDS_MARGIN)) || fds_ok=FAIL
[[ $rss_ok == ok ]] || fail_reasons+=("RSS grew more than ${RSS_PCT}%")
[[ $gor_ok == ok ]] || fail_reasons+=("goroutines grew by more than $GOR_MARGIN")
[[ $fds_ok == ok ]] || fail_reasons+=("open fds grew by more than $FDS_MARGIN")
((gateway_died == 0)) || fail_reasons+=("the gateway exited")
((reloads_failed == 0)) || fail_reasons+=("$reloads_failed reloads not applied")

# traffic rows: kind | tool | requests | ok | errors | non-2xx | reconnects
rows=()
if [[ -f $TMP/wrk.txt ]]; then
	read -r w_req w_sock w_non < <(awk '
		/requests in/ { r = $1 }
		/Socket errors/ { gsub(",", ""); s = $4 + $6 + $8 + $10 }
		/Non-2xx/ { n = $NF }
		END { print r + 0, s + 0, n + 0 }' "$TMP/wrk.txt")
	rows+=("| h1 | $H1_TOOL | $w_req | $((w_req - w_non)) | $w_sock | $w_non | - |")
fi
if [[ -f $TMP/h2load.txt ]]; then
	# errors: errored and timed out requests (no response).
	read -r h_done h_err h_2xx h_other < <(awk '
		/^requests:/ { gsub(",", ""); d = $6; e = $12 + $14 }
		/^status codes:/ { gsub(",", ""); x = $3; o = $5 + $7 + $9 }
		END { print d + 0, e + 0, x + 0, o + 0 }' "$TMP/h2load.txt")
	rows+=("| h2 | $H2_TOOL | $h_done | $h_2xx | $h_err | $h_other | - |")
fi
while read -r line; do
	[[ $line == kind=* ]] || continue
	declare -A kv=()
	read -ra fields <<<"$line"
	for f in "${fields[@]}"; do
		if [[ $f == *=* ]]; then kv[${f%%=*}]=${f#*=}; fi
	done
	case ${kv[kind]} in
	h1) tool=$H1_TOOL ;;
	h2c) tool=$H2_TOOL ;;
	websocket) tool="soak load: $WS_CONNS connections, an echo each per second" ;;
	tcp) tool="soak load: $TCP_SESSIONS sessions, an echo each per second" ;;
	tcp-new) tool="soak load: a new session, one echo, every 0.5 s" ;;
	*) tool="soak load" ;;
	esac
	rows+=("| ${kv[kind]} | $tool | ${kv[requests]} | ${kv[ok]} | ${kv[errors]} | ${kv[non2xx]} | ${kv[reconnects]} |")
	unset kv
done <"$TMP/load.txt"

gw_version=$(./bin/gateway version 2>/dev/null | head -1 || echo unknown)
# "N× LEVEL msg" for every WARN and ERROR message of the gateway log.
log_summary=$(grep -E '"level":"(WARN|ERROR)"' "$GW_LOG" |
	sed -E 's/.*"level":"([A-Z]+)","msg":"([^"]*)".*/\1 \2/' | sort | uniq -c | sort -rn |
	awk '{ n = $1; $1 = ""; printf "%s%s×%s", (NR > 1 ? ", " : ""), n, $0 }' || true)
kind="full run"
((DURATION < 1800)) && kind="shorter than the 30m default"
verdict=PASS
((${#fail_reasons[@]} == 0)) || verdict="FAIL: $(
	IFS=';'
	echo "${fail_reasons[*]}"
)"

{
	echo "# Soak run $DATE ($DURATION_ARG, $kind)"
	echo
	echo "Produced by \`scripts/soak.sh\` (\`make soak\`). Gateway \`$gw_version\`, $(nproc) CPUs, $(uname -sr)."
	echo "One gateway (HTTP h1+h2c, HTTPS h2, TCP listeners) in front of three demo backends (90/10 split v1/v2,"
	echo "header route to v3), a WebSocket echo and a TCP echo; a config reload every ${RELOAD_EVERY}s (split 90/10 <-> 70/30,"
	echo "an extra route added/removed), an upstream fault every ${FAULT_EVERY}s (SIGKILL one demo backend, restart after"
	echo "${FAULT_DOWN}s), a sample of the admin /metrics every ${SAMPLE_EVERY}s. Baseline: the first sample at or after ${WARMUP}s."
	echo
	echo "**$verdict**"
	echo
	echo "## Gateway resources"
	echo
	echo "| metric | first (${SAMPLE_EVERY}s) | baseline (${base_t}s) | end (${end_t_s}s) | max | 5 s after the load | limit at the end | result |"
	echo "|---|---|---|---|---|---|---|---|"
	echo "| RSS (MiB) | $(mib "$rss_first") | $(mib "$rss_base") | $(mib "$rss_end") | $(mib "$rss_max") | $(mib "$rss_after") | baseline +${RSS_PCT}% | $rss_ok |"
	echo "| goroutines | $gor_first | $gor_base | $gor_end | $gor_max | $gor_after | baseline +$GOR_MARGIN | $gor_ok |"
	echo "| open fds | $fds_first | $fds_base | $fds_end | $fds_max | $fds_after | baseline +$FDS_MARGIN | $fds_ok |"
	echo "| connections active | $con_first | $con_base | $con_end | $con_max | $con_after | - | - |"
	echo
	echo "Reloads: $reloads_done applied of $reloads_tried ($reloads_failed not applied within 10 s)."
	echo "Upstream faults: $faults (${fault_list:-none}). Gateway log, WARN and ERROR lines: ${log_summary:-none}."
	echo
	echo "## Traffic"
	echo
	echo "HTTP errors and non-2xx answers include the requests the split sent to a killed backend while it was"
	echo "down (503): they are reported, not judged. WebSocket and TCP errors count failed dials, echoes and"
	echo "reconnects."
	echo
	echo "| kind | tool | requests | ok | errors | non-2xx | reconnects |"
	echo "|---|---|---|---|---|---|---|"
	printf '%s\n' "${rows[@]}"
	echo
	echo "## Samples"
	echo
	echo "| t (s) | RSS (MiB) | goroutines | open fds | connections |"
	echo "|---|---|---|---|---|"
	while read -r st rss gor fds con; do
		echo "| $st | $(mib "$rss") | $gor | $fds | $con |"
	done <"$SAMPLES"
	if grep -q first_error= "$TMP/load.txt"; then
		echo
		echo "First error of each kind (soak load):"
		echo
		grep first_error= "$TMP/load.txt" | sed 's/^kind=\([^ ]*\).*first_error=/- \1: /'
	fi
} >"$REPORT"

log "report: $REPORT ($verdict)"
[[ $verdict == PASS ]] || exit 1
