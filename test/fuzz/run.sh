#!/usr/bin/env bash
# The report parser's fuzz run and unit test, outside the server, in one command:
#   test/fuzz/run.sh [SECONDS]   libFuzzer with AddressSanitizer and UBSan for
#                                SECONDS (default 600) from the seed corpus
#   test/fuzz/run.sh --unit      the unit test (clang, else gcc; libxml2-dev)
# Builds into a temporary directory (printed; new corpus entries and crash
# inputs stay there), never into the checkout.  Prints executions, coverage
# (cov: edges, ft: features), corpus size and crashes; exits non-zero on a
# crash or a failed unit test.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$HERE/../../src
BUILD=$(mktemp -d /tmp/sm_fuzz.XXXXXX)
XML_CFLAGS=$(xml2-config --cflags)
XML_LIBS=$(xml2-config --libs)

if [ "${1:-}" = "--unit" ]; then
	if command -v clang >/dev/null; then
		cc="clang -fsanitize=address,undefined -fno-sanitize-recover=undefined"
	else
		cc="gcc"
	fi
	$cc -g -O1 -Wall -Wextra -Wno-unused-parameter $XML_CFLAGS -o "$BUILD/unit" \
		"$HERE/unit.c" "$SRC/report_parse.c" $XML_LIBS
	"$BUILD/unit" "$HERE/corpus"
	rm -rf "$BUILD"
	exit 0
fi

seconds=${1:-600}
echo "== building the fuzzer in $BUILD"
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-Wall -Wextra -Wno-unused-parameter $XML_CFLAGS -o "$BUILD/fuzz_report" \
	"$HERE/fuzz_report.c" "$SRC/report_parse.c" $XML_LIBS
mkdir -p "$BUILD/corpus"

# New inputs go to $BUILD/corpus; the seeds in the checkout are only read
echo "== fuzzing for $seconds s (log: $BUILD/fuzz.log)"
status=0
"$BUILD/fuzz_report" -max_total_time="$seconds" -dict="$HERE/report.dict" \
	-max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$BUILD/" "$BUILD/corpus" "$HERE/corpus" \
	>"$BUILD/fuzz.log" 2>&1 || status=$?

last=$(grep -E '^#[0-9]+' "$BUILD/fuzz.log" | tail -n 1 || true)
echo "last status line: $last"
grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$BUILD/fuzz.log" || true
echo "corpus: $(ls "$BUILD/corpus" | wc -l) new inputs + $(ls "$HERE/corpus" | wc -l) seeds"

# Source coverage of the parser by the final corpus (cov: above counts edges
# of the parser and the harness; libxml2 itself is not instrumented)
if command -v llvm-profdata >/dev/null && command -v llvm-cov >/dev/null; then
	clang -g -O0 -fprofile-instr-generate -fcoverage-mapping -fsanitize=fuzzer \
		$XML_CFLAGS -o "$BUILD/fuzz_cov" "$HERE/fuzz_report.c" "$SRC/report_parse.c" $XML_LIBS
	LLVM_PROFILE_FILE="$BUILD/cov.profraw" "$BUILD/fuzz_cov" -runs=0 \
		"$BUILD/corpus" "$HERE/corpus" >/dev/null 2>&1 || true
	llvm-profdata merge -o "$BUILD/cov.profdata" "$BUILD/cov.profraw"
	echo "source coverage of src/report_parse.c (regions, functions, lines, branches):"
	llvm-cov report "$BUILD/fuzz_cov" -instr-profile="$BUILD/cov.profdata" \
		"$SRC/report_parse.c" | grep -E '^TOTAL' |
		awk '{ print "  regions " $4 ", functions " $7 ", lines " $10 ", branches " $13 }'
fi
crashes=$(ls "$BUILD" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' || true)
if [ -n "$crashes" ] || [ $status -ne 0 ]; then
	echo "FINDINGS (exit $status):"
	for c in $crashes; do echo "  $BUILD/$c"; done
	grep -E 'ERROR: |REQUIRE failed|SUMMARY' "$BUILD/fuzz.log" | head -n 20 || true
	exit 1
fi
echo "no crashes"
