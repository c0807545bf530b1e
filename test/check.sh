#!/usr/bin/env bash
# Runs every test: pg_regress, the isolation tester and the TAP tests, each on
# throwaway clusters of their own.  Run as root on Debian 12; installs what it
# needs.  Exits non-zero if anything fails.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

status=0
runuser -u postgres -- make -C "$WORK" PG_CONFIG="$PG_BIN/pg_config" with_llvm=no \
	installcheck 2>&1 | tee "$WORK/check.log" || status=1
echo "== report parser unit test (test/fuzz)"; bash "$ROOT/test/fuzz/run.sh" --unit || status=1

if [ $status -ne 0 ]; then
	for diffs in "$WORK/regression.diffs" "$WORK/output_iso/regression.diffs"; do
		[ -f "$diffs" ] && { echo "== $diffs"; cat "$diffs"; }
	done
	for log in "$WORK"/tmp_check/log/regress_log_*; do
		[ -f "$log" ] && { echo "== $log"; tail -n 40 "$log"; }
	done
fi

# One closing line for all three suites: pg_regress and isolation print
# "test NAME ... ok" or "... FAILED"; prove prints "test/t/NAME.pl .. ok",
# or for a failing file a "Dubious, test returned N" line, on the name's
# line or (after the file's diagnostics) on a line of its own
log="$WORK/check.log"
passed=$(grep -cE '\.\.\. ok|\.pl \.+ ok$' "$log" || true)
failed=$(grep -cE '\.\.\. FAILED|Dubious, test returned' "$log" || true)
echo "$passed passed, $failed failed"
exit $status
