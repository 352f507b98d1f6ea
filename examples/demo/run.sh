#!/usr/bin/env bash
# Starts the three demo backends and the gateway on examples/demo/, prints what
# to try, and stops everything on Ctrl-C. Called by `make run`.
set -euo pipefail
cd "$(dirname "$0")/../.."

pids=()
cleanup() {
	trap - INT TERM EXIT
	echo
	echo "stopping..."
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo "stopped."
}
trap cleanup INT TERM EXIT

for v in 1 2 3; do
	./bin/demo-backend --name "v$v" --listen "127.0.0.1:910$v" 2>/dev/null &
	pids+=($!)
done
./bin/gateway run --config examples/demo --admin-addr 127.0.0.1:9901 --log-level warn &
pids+=($!)

for _ in $(seq 1 50); do
	curl -fsS -o /dev/null http://127.0.0.1:9901/ready 2>/dev/null && break
	sleep 0.1
done
if ! curl -fsS -o /dev/null http://127.0.0.1:9901/ready; then
	echo "gateway did not become ready; see the log above" >&2
	exit 1
fi

cat <<'MSG'

Meshgate is running on examples/demo/ (edit the YAML there: it reloads live).

  HTTP   http://127.0.0.1:8080        HTTPS  https://127.0.0.1:8443 (self-signed; HTTP/3 on UDP 8443)
  TCP    127.0.0.1:9000 (raw relay to v1)
  admin  http://127.0.0.1:9901/dashboard/ (live dashboard)   /metrics   /routes   /config
         http://127.0.0.1:9901/explain?listener=8080&host=127.0.0.1&path=/old/page

Try:
  # 90/10 canary split between v1 and v2 (run it a few times)
  curl -s http://127.0.0.1:8080/ | grep backend
  for i in $(seq 100); do curl -s http://127.0.0.1:8080/ | grep -o '"v[12]"'; done | sort | uniq -c

  # header-based routing: testers get v3
  curl -s -H 'x-canary: true' http://127.0.0.1:8080/ | grep backend

  # redirect: /old/... moves permanently to /new/...
  curl -si http://127.0.0.1:8080/old/page | head -3

  # header rewrite: x-demo added, x-remove-me dropped, x-served-by set, /headers stripped
  curl -si -H 'x-remove-me: 1' http://127.0.0.1:8080/headers/hello

  # HTTP/2 over TLS, and cleartext HTTP/2 (prior knowledge)
  curl -sk --http2 https://127.0.0.1:8443/ -o /dev/null -w '%{http_version}\n'
  curl -s --http2-prior-knowledge http://127.0.0.1:8080/ -o /dev/null -w '%{http_version}\n'

  # HTTP/3 is advertised on HTTPS responses
  curl -skI https://127.0.0.1:8443/ | grep -i alt-svc

  # a TCPRoute: port 9000 relays raw bytes to v1 (here an HTTP request)
  curl -s http://127.0.0.1:9000/ | grep backend

  # validate the config without running it
  ./bin/gateway validate --config examples/demo

Press Ctrl-C to stop.
MSG
wait
