#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian machine. Idempotent and
# quick when everything is already there.
set -euo pipefail
need=()
for cmd in curl openssl; do
	command -v "$cmd" >/dev/null || need+=("$cmd")
done
if ((${#need[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "test-deps: missing ${need[*]}; run as root or install them" >&2
		exit 1
	fi
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi
