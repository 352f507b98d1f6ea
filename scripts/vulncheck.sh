#!/usr/bin/env bash
# Runs govulncheck against the project with an OFFLINE Go vulnerability
# database, and fails if a vulnerability that the code reaches is found.
#
# The public vulnerability database server is not reachable from our machines,
# so the database is built locally from the golang.org/x/vulndb module
# (fetched through the Go module proxy like any other module): its data/osv/
# folder holds every OSV entry, and its cmd/indexdb tool writes them in the v1
# database layout that `govulncheck -db file:///...` reads
# (index/db.json, index/modules.json, index/vulns.json, ID/GO-YYYY-NNNN.json).
#
# Both the govulncheck binary and the database are cached outside the clone,
# in ${MESHGATE_TOOLS:-$HOME/.cache/meshgate}/, keyed by version, so a fresh
# clone reuses them and a new machine builds them once.
#
# Usage: scripts/vulncheck.sh [package patterns...]   (default ./...)
# To refresh the database, bump VULNDB_VERSION below to a newer pseudo-version
# (`go mod download -json golang.org/x/vulndb@latest` prints it).
#
# Exit codes: 0 no reachable vulnerability; 3 vulnerabilities found (as
# govulncheck); anything else: the check could not run (never a silent pass).
set -euo pipefail

GOVULNCHECK_VERSION=${GOVULNCHECK_VERSION:-v1.9.0}
VULNDB_VERSION=${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}
TOOLS=${MESHGATE_TOOLS:-$HOME/.cache/meshgate}
GO=${GO:-go}
# Upper bounds for each step, in seconds.
BUILD_TIMEOUT=${VULNCHECK_BUILD_TIMEOUT:-900}
SCAN_TIMEOUT=${VULNCHECK_SCAN_TIMEOUT:-900}

die() {
	echo "vulncheck: ERROR: $*" >&2
	exit 1
}
log() { echo "vulncheck: $*" >&2; }

command -v "$GO" >/dev/null || die "'$GO' not found in PATH"
command -v timeout >/dev/null || die "'timeout' (coreutils) not found"
command -v gzip >/dev/null || die "'gzip' not found"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
patterns=("$@")
((${#patterns[@]})) || patterns=(./...)

goversion=$("$GO" env GOVERSION) || die "cannot run '$GO env GOVERSION'"
[[ -n $goversion ]] || die "'$GO env GOVERSION' printed nothing"

mkdir -p "$TOOLS" || die "cannot create $TOOLS"
# One builder at a time per cache (parallel clones or CI share it).
exec 9>"$TOOLS/.vulncheck.lock"
if command -v flock >/dev/null; then
	timeout "$BUILD_TIMEOUT" flock 9 || die "timed out waiting for $TOOLS/.vulncheck.lock"
fi

# run_step SECONDS WHAT CMD...: run CMD bounded in time, dying with a message on failure.
run_step() {
	local secs=$1 what=$2 rc=0
	shift 2
	timeout "$secs" "$@" || rc=$?
	if ((rc == 124)); then die "$what timed out after ${secs}s"; fi
	if ((rc != 0)); then die "$what failed (exit $rc)"; fi
}

# --- govulncheck binary -----------------------------------------------------
# Keyed by the Go toolchain too: govulncheck type-checks the code with the
# go/types it was compiled with, so it must be at least as new as the code.
gvc_dir="$TOOLS/govulncheck-$GOVULNCHECK_VERSION-$goversion"
gvc="$gvc_dir/govulncheck"
if [[ ! -x $gvc ]]; then
	log "building govulncheck $GOVULNCHECK_VERSION with $goversion into $gvc_dir"
	tmp=$(mktemp -d "$TOOLS/.govulncheck.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && GOBIN="$tmp" GOFLAGS=-buildvcs=false run_step "$BUILD_TIMEOUT" "building govulncheck" \
		"$GO" install "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION")
	[[ -x $tmp/govulncheck ]] || die "go install produced no govulncheck binary"
	rm -rf "$gvc_dir"
	mkdir -p "$gvc_dir"
	mv "$tmp/govulncheck" "$gvc"
	rm -rf "$tmp"
	trap - EXIT
fi

# --- offline vulnerability database ------------------------------------------
db_dir="$TOOLS/vulndb-$VULNDB_VERSION"
if [[ ! -f $db_dir/.complete ]]; then
	log "building the offline vulnerability database from golang.org/x/vulndb@$VULNDB_VERSION into $db_dir"
	tmp=$(mktemp -d "$TOOLS/.vulndb.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	# Source of the entries: the module's data/osv/*.json.
	rc=0
	dl=$(cd "$tmp" && timeout "$BUILD_TIMEOUT" "$GO" mod download -json "golang.org/x/vulndb@$VULNDB_VERSION") || rc=$?
	if ((rc != 0)); then
		# -json reports the reason on stdout, in an "Error" field.
		echo "$dl" >&2
		((rc == 124)) && die "downloading golang.org/x/vulndb@$VULNDB_VERSION timed out after ${BUILD_TIMEOUT}s"
		die "downloading golang.org/x/vulndb@$VULNDB_VERSION failed (exit $rc)"
	fi
	mod_dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$dl")
	[[ -n $mod_dir && -d $mod_dir/data/osv ]] ||
		die "golang.org/x/vulndb@$VULNDB_VERSION has no data/osv folder (module dir: '${mod_dir:-?}')"
	# The generator: x/vulndb's own cmd/indexdb (OSV folder -> v1 database), same pinned version.
	(cd "$tmp" && GOBIN="$tmp/bin" GOFLAGS=-buildvcs=false run_step "$BUILD_TIMEOUT" "building x/vulndb cmd/indexdb" \
		"$GO" install "golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION")
	run_step "$BUILD_TIMEOUT" "indexdb" "$tmp/bin/indexdb" -vulns "$mod_dir/data/osv" -out "$tmp/db"
	# The OSV files in the repository carry no modification times (the public
	# server fills them in when it deploys); record the snapshot's commit time,
	# taken from the pseudo-version, so govulncheck reports how old the data is.
	if [[ $VULNDB_VERSION =~ -([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})-[0-9a-f]{12}$ ]]; then
		m=("${BASH_REMATCH[@]:1}")
		printf '{"modified":"%s-%s-%sT%s:%s:%sZ"}' "${m[@]}" >"$tmp/db/index/db.json"
		gzip -9nc "$tmp/db/index/db.json" >"$tmp/db/index/db.json.gz"
	fi
	# Sanity checks, so that a broken or empty database can never pass silently.
	n_osv=$(find "$mod_dir/data/osv" -maxdepth 1 -name 'GO-*.json' | wc -l)
	n_ids=$(find "$tmp/db/ID" -maxdepth 1 -name 'GO-*.json' | wc -l)
	((n_osv > 1000)) || die "only $n_osv OSV entries in golang.org/x/vulndb@$VULNDB_VERSION"
	((n_ids == n_osv)) || die "database has $n_ids entries, expected $n_osv"
	for f in index/db.json index/modules.json index/vulns.json; do
		[[ -s $tmp/db/$f ]] || die "generated database lacks $f"
	done
	grep -q '"path":"stdlib"' "$tmp/db/index/modules.json" || die "generated database has no stdlib entries"
	grep -q '"path":"golang.org/x/net"' "$tmp/db/index/modules.json" || die "generated database has no golang.org/x/net entries"
	touch "$tmp/db/.complete"
	rm -rf "$db_dir"
	mv "$tmp/db" "$db_dir"
	rm -rf "$tmp"
	trap - EXIT
	log "database ready: $n_ids entries"
fi

exec 9>&-

# --- scan --------------------------------------------------------------------
log "govulncheck $GOVULNCHECK_VERSION, $goversion, db golang.org/x/vulndb@$VULNDB_VERSION: ${patterns[*]}"
rc=0
timeout "$SCAN_TIMEOUT" "$gvc" -db "file://$db_dir" "${patterns[@]}" || rc=$?
case $rc in
0) log "OK: no vulnerability reachable from the code" ;;
3) log "FAIL: govulncheck found vulnerabilities that the code reaches (see above)" ;;
124) die "govulncheck timed out after ${SCAN_TIMEOUT}s" ;;
*) die "govulncheck could not run (exit $rc)" ;;
esac
((rc == 0)) || exit "$rc"

# internal/xhttp2 is a copy of x/net/http2's server, which govulncheck cannot
# trace: any advisory against the packages it copies or imports counts,
# reached or not (it imports golang.org/x/net/http2 for this).
log "package scan of internal/xhttp2 (the forked HTTP/2 server)"
timeout "$SCAN_TIMEOUT" "$gvc" -db "file://$db_dir" -scan package ./internal/xhttp2 || rc=$?
case $rc in
0) log "OK: no advisory against the packages internal/xhttp2 copies or imports" ;;
3) log "FAIL: an advisory names a package internal/xhttp2 copies or imports (see above): bump golang.org/x/net in go.mod, then make xhttp2-sync" ;;
124) die "govulncheck timed out after ${SCAN_TIMEOUT}s" ;;
*) die "govulncheck could not run (exit $rc)" ;;
esac
exit "$rc"
