#!/usr/bin/env bash
# Regenerates or checks internal/xhttp2, Meshgate's fork of the HTTP/2 server
# of golang.org/x/net/http2 (see internal/xhttp2/FORK.md for why).
#
#   scripts/xhttp2.sh sync    rewrite internal/xhttp2 from the x/net version in go.mod
#                             plus internal/xhttp2/fork.patch
#   scripts/xhttp2.sh check   fail unless internal/xhttp2 is exactly that (make test runs it)
#   scripts/xhttp2.sh base DIR  write the unpatched copy to DIR (to make a new fork.patch:
#                             copy it, edit, then `diff -ruN` into fork.patch)
#
# The copy is mechanical: the server's files of x/net/http2 and the two
# x/net internal packages it needs, with their import paths moved under
# internal/xhttp2, the go1.27 build constraints dropped (this fork is the
# pre-go1.27 server, whatever the toolchain), then gofmt.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
GO=${GO:-go}
DEST=internal/xhttp2
MOD=github.com/meshgate/meshgate/internal/xhttp2

die() { echo "xhttp2: ERROR: $*" >&2; exit 1; }

# Files of x/net/http2 that the server needs, and nothing of the client.
FILES=(ascii.go ciphers.go client_priority_go126.go config.go config_go126.go databuffer.go
  errors.go flow.go frame.go gotrack.go http2.go pipe.go server.go server_common.go
  unencrypted.go write.go writesched.go writesched_common.go writesched_priority_rfc7540.go
  writesched_priority_rfc9218.go writesched_random.go writesched_roundrobin.go)
INTERNAL=(httpcommon/ascii.go httpcommon/gzip.go httpcommon/headermap.go httpcommon/request.go
  httpsfv/httpsfv.go)
# Files of the fork that are Meshgate's own, kept as they are.
OWN=(FORK.md fork.patch glue.go fork_test.go)

base() { # base DIR: the unpatched copy
  local out=$1 src ver
  src=$("$GO" list -m -f '{{.Dir}}' golang.org/x/net) || die "go list -m golang.org/x/net failed"
  ver=$("$GO" list -m -f '{{.Version}}' golang.org/x/net)
  [[ -n $src && -d $src/http2 ]] || die "golang.org/x/net $ver is not in the module cache (run: $GO mod download golang.org/x/net)"
  mkdir -p "$out/internal/httpcommon" "$out/internal/httpsfv"
  local f
  for f in "${FILES[@]}"; do cp "$src/http2/$f" "$out/$f"; done
  for f in "${INTERNAL[@]}"; do cp "$src/internal/$f" "$out/internal/$f"; done
  cp "$src/LICENSE" "$out/LICENSE"
  chmod -R u+w "$out"
  # shellcheck disable=SC2046
  sed -i -e '/^\/\/go:build .*go1\.2[67]/{N;d}' \
    -e "s#\"golang.org/x/net/internal/\\(httpcommon\\|httpsfv\\)\"#\"$MOD/internal/\\1\"#" \
    -e 's#^package http2 // import "golang.org/x/net/http2"#package http2#' \
    $(find "$out" -name '*.go')
  # The moved import paths sort differently.
  gofmt -w "$out" || die "gofmt failed"
  echo "$ver" >"$out/X_NET_VERSION"
}

patched() { # patched DIR: base plus fork.patch
  base "$1"
  (cd "$1" && patch -s -p1 --no-backup-if-mismatch) <"$DEST/fork.patch" ||
    die "fork.patch does not apply to golang.org/x/net $(cat "$1/X_NET_VERSION"): redo it (scripts/xhttp2.sh base DIR)"
}

cmd=${1:-check}
case $cmd in
sync)
  command -v patch >/dev/null || die "'patch' is not installed (apt-get install -y patch)"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  patched "$tmp/new"
  for f in "${OWN[@]}"; do [[ -e $DEST/$f ]] && cp "$DEST/$f" "$tmp/new/$f"; done
  rm -rf "$DEST"; mv "$tmp/new" "$DEST"
  echo "xhttp2: synced to golang.org/x/net $(cat "$DEST/X_NET_VERSION")"
  ;;
check)
  command -v patch >/dev/null || die "'patch' is not installed (apt-get install -y patch)"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  patched "$tmp/new"
  for f in "${OWN[@]}"; do [[ -e $DEST/$f ]] && cp "$DEST/$f" "$tmp/new/$f"; done
  if ! diff -r "$tmp/new" "$DEST" >"$tmp/diff"; then
    head -n 40 "$tmp/diff" >&2
    die "internal/xhttp2 differs from golang.org/x/net $(cat "$tmp/new/X_NET_VERSION") + fork.patch: run scripts/xhttp2.sh sync (after a go.mod bump of x/net) or fold the edit into fork.patch"
  fi
  echo "xhttp2: internal/xhttp2 is golang.org/x/net $(cat "$tmp/new/X_NET_VERSION") + fork.patch"
  ;;
base)
  [[ $# -eq 2 ]] || die "usage: scripts/xhttp2.sh base DIR"
  base "$2"
  ;;
*) die "usage: scripts/xhttp2.sh sync|check|base DIR" ;;
esac
