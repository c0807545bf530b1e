#!/usr/bin/env bash
# Benchmark of the live summaries (issue 7, section 3): the latency of
# state_msg.topic_state_summary and state_msg.update_compliance with
# 150,000 clients x 200 topics of current state (30 M client_state rows),
# and what the summaries cost the ingest path, live_summaries on against off
# on the same kind of batches in the same run.
#
#   summaries.sh     on a throwaway cluster of its own (run as root; builds
#                    without assertions, as run.sh does)
#   run.sh           sources it after its other tests (its cluster, its psql)
#
# Environment: SUM_CLIENTS (150000), SUM_REPEAT (runs per view timing, 9),
# SUM_PAIRS (on/off pairs of ingest runs, 5), BENCH_PORT (5497).  Targets are reported, not asserted.
set -euo pipefail

SUM_CLIENTS=${SUM_CLIENTS:-150000}
SUM_REPEAT=${SUM_REPEAT:-9}
SUM_PAIRS=${SUM_PAIRS:-5}
SUM_BULK_CLIENTS=10000		# a bulk statement: 10,000 uploads of 10 messages
SUM_SMALL_UPLOADS=1000		# small statements: one upload of 10 each

if [ -z "${BENCH:-}" ]; then
	# standalone: run.sh's set-up, in short
	STATE_MSG_ASSERTS=0 source "$(dirname "${BASH_SOURCE[0]}")/../setup.sh"
	PORT=${BENCH_PORT:-5497}
	source "$(dirname "${BASH_SOURCE[0]}")/cluster.sh"
	psql -c "CREATE EXTENSION state_msg" -c "CREATE SCHEMA bench"
fi

# ---------------------------------------------------------------------------
# 150,000 clients x 200 topics: 100 updates, each a 500 (detection) and a
# 402 (enforcement) topic, written straight into the tables in key order,
# then counted by rebuild_state_counts()
# ---------------------------------------------------------------------------
echo "== summaries: loading $SUM_CLIENTS clients x 200 topics of current state"
source "$(dirname "${BASH_SOURCE[0]}")/month_state.sh"
load_month_state "$SUM_CLIENTS"
psql -At -F ' ' -c "SELECT 'client_state:', count(*), 'rows,',
	pg_size_pretty(pg_total_relation_size('state_msg.client_state')) FROM state_msg.client_state"
echo "   loaded in $MONTH_LOAD s; rebuild_state_counts() $MONTH_REBUILD s ($MONTH_KEYS keys); vacuum analyze $MONTH_VACUUM s"

# The views must agree with a count of client_state (fatal if not)
sum_check() {
	local what=$1 out
	out=$(psql -At <<'SQL'
SELECT 'topic_state_summary differs from client_state: ' || count(*) || ' rows'
FROM (SELECT topic_type, topic_id, state_id, clients FROM state_msg.topic_state_summary
	  EXCEPT ALL
	  SELECT topic_type, topic_id, state_id, count(*) FROM state_msg.client_state GROUP BY 1, 2, 3) d
HAVING count(*) > 0;
SELECT 'stale mark left: ' || count(*) FROM state_msg.state_counts_stale HAVING count(*) > 0;
SQL
)
	if [ -n "$out" ]; then
		echo "FAILED: summaries $what: $out" >&2
		exit 1
	fi
}
sum_check "after the load"

# Median server-side time (ms) of a query, SUM_REPEAT runs in one session
sum_time_query() {
	local sql=$1 repeat=${2:-$SUM_REPEAT} script i
	script="$sql \\g /dev/null"$'\n'"\\timing on"
	for ((i = 0; i < repeat; i++)); do
		script+=$'\n'"$sql \\g /dev/null"
	done
	printf '%s\n' "$script" | psql -At -f - | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' |
		tail -n "$repeat" | sort -n |
		awk '{ t[NR] = $1 } END { printf "%.1f", NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2 }'
}
SUMMARY_Q="SELECT * FROM state_msg.topic_state_summary"
COMPLIANCE_Q="SELECT * FROM state_msg.update_compliance"
# sum_views LABEL [RUNS]: time both views, and known_clients() (a part of
# update_compliance)
sum_views() {
	local label=$1 repeat=${2:-$SUM_REPEAT} deltas
	deltas=$(psql -At -c "SELECT count(*) FROM state_msg.state_counts")
	V_SUMMARY=$(sum_time_query "$SUMMARY_Q" "$repeat")
	V_COMPLIANCE=$(sum_time_query "$COMPLIANCE_Q" "$repeat")
	V_CLIENTS=$(sum_time_query "SELECT state_msg.known_clients()" "$repeat")
	printf '   %-44s topic_state_summary %7s ms, update_compliance %7s ms (of which known_clients() %s ms); %s delta rows\n' \
		"$label" "$V_SUMMARY" "$V_COMPLIANCE" "$V_CLIENTS" "$deltas"
	VIEW_LINES+=("$label|$V_SUMMARY|$V_COMPLIANCE|$V_CLIENTS|$deltas")
}
VIEW_LINES=()
echo "== summaries: view latency (median of $SUM_REPEAT runs, server side)"
sum_views "compacted, after the load"

# ---------------------------------------------------------------------------
# Ingest, live_summaries on against off: upload cycles of existing clients
# (10 messages each, 10 of their 200 topics, new states), a bulk statement
# of 10,000 uploads and 1,000 statements of one upload, in alternating
# on/off runs, each on clients of its own
# ---------------------------------------------------------------------------
echo "== summaries: ingest cost, live_summaries on against off ($SUM_PAIRS pairs of runs)"
# the messages of run r: clients (r x 10,000) mod SUM_CLIENTS + 1 .. + n,
# their serials following on from their last (runs of a wrap use disjoint
# clients), into bench.sum_run, untimed
sum_messages() {
	local r=$1 n=$2
	psql -c "DROP TABLE IF EXISTS bench.sum_run" -c "CREATE TABLE bench.sum_run AS
SELECT c.client_no, c.client_id,
	   200 + 10 * ($r * $SUM_BULK_CLIENTS / $SUM_CLIENTS) + k AS serial_number,
	   t.topic_type, t.topic_id,
	   CASE WHEN t.topic_type = 500 THEN abs(hashtext(c.client_id || t.topic_id || $r)) % 4
			ELSE (ARRAY[10, 10, 6, 11, 9])[1 + abs(hashtext(c.client_id || t.topic_id || $r)) % 5] END AS state_id,
	   timestamptz '2026-11-02 00:00+00' + ($r * 10 + k) * interval '1 minute' AS message_time
FROM bench.sum_clients c
CROSS JOIN generate_series(1, 10) k
JOIN bench.sum_topics t ON t.update_no = 1 + (c.client_no * 7 + k * 13 + $r) % 100
	AND t.topic_type = CASE WHEN k % 2 = 0 THEN 500 ELSE 402 END
WHERE c.client_no > ($r * $SUM_BULK_CLIENTS) % $SUM_CLIENTS
  AND c.client_no <= ($r * $SUM_BULK_CLIENTS) % $SUM_CLIENTS + $n"
}
SUM_COLS="client_id, serial_number, topic_type, topic_id, state_id, message_time"
sum_run=0
BULK_ON=() BULK_OFF=() SMALL_ON=() SMALL_OFF=()
for ((sum_p = 1; sum_p <= SUM_PAIRS; sum_p++)); do
	for sum_setting in on off; do
		# bulk: one statement
		sum_run=$((sum_run + 1))
		sum_messages $sum_run $SUM_BULK_CLIENTS
		psql -c "CHECKPOINT"
		t0=$EPOCHREALTIME
		psql -c "SET state_msg.live_summaries = $sum_setting" \
			-c "INSERT INTO state_msg.inbox ($SUM_COLS) SELECT $SUM_COLS FROM bench.sum_run
				ORDER BY client_no, serial_number"
		t1=$EPOCHREALTIME
		sum_bulk=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
		# small: one statement per upload, in one session
		sum_run=$((sum_run + 1))
		sum_messages $sum_run $SUM_SMALL_UPLOADS
		psql -At -c "SELECT format('INSERT INTO state_msg.inbox ($SUM_COLS) VALUES %s;',
				string_agg(format('(%L, %s, %s, %L, %s, %L)', client_id, serial_number,
					topic_type, topic_id, state_id, message_time), ', ' ORDER BY serial_number))
			FROM bench.sum_run GROUP BY client_no ORDER BY client_no" >"$BENCH/sum_small.sql"
		chmod a+r "$BENCH/sum_small.sql"
		psql -c "CHECKPOINT"
		t0=$EPOCHREALTIME
		psql -c "SET state_msg.live_summaries = $sum_setting" -f "$BENCH/sum_small.sql"
		t1=$EPOCHREALTIME
		sum_small=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
		if [ $sum_setting = on ]; then
			BULK_ON+=("$sum_bulk")
			SMALL_ON+=("$sum_small")
		else
			BULK_OFF+=("$sum_bulk")
			SMALL_OFF+=("$sum_small")
		fi
		printf '   pair %d, live_summaries %-3s: bulk %s s, small statements %s s\n' \
			"$sum_p" "$sum_setting" "$sum_bulk" "$sum_small"
	done
done
B_ON=$(bench_median %.2f "${BULK_ON[@]}")
B_OFF=$(bench_median %.2f "${BULK_OFF[@]}")
S_ON=$(bench_median %.2f "${SMALL_ON[@]}")
S_OFF=$(bench_median %.2f "${SMALL_OFF[@]}")

# The runs with it off marked the counts stale: the views count client_state
# (seconds a run: three runs, and no target)
sum_views "stale: counted from client_state (no target)" 3
t0=$EPOCHREALTIME
psql -c "SELECT state_msg.rebuild_state_counts()" >/dev/null
t1=$EPOCHREALTIME
SUM_REBUILD2=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
sum_check "after the rebuild"
sum_views "rebuilt ($SUM_REBUILD2 s)"

# Deltas piling up uncompacted: a run with it on, then the views, then a
# compaction, then the views
sum_run=$((sum_run + 1))
sum_messages $sum_run $SUM_BULK_CLIENTS
psql -c "INSERT INTO state_msg.inbox ($SUM_COLS) SELECT $SUM_COLS FROM bench.sum_run
	ORDER BY client_no, serial_number"
sum_check "after a run with deltas"
sum_views "after $SUM_BULK_CLIENTS uploads with deltas"
t0=$EPOCHREALTIME
folded=$(psql -At -c "SELECT state_msg.compact_state_counts()")
t1=$EPOCHREALTIME
sum_views "compacted ($folded rows in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') s)"
sum_check "after compaction"

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
sum_pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", 100 * (a - b) / b }'; }
sum_met() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t ? "met" : "NOT MET") }'; }
echo
echo "Live summaries, $SUM_CLIENTS clients x 200 topics ($(nproc) cores):"
echo "   views (median of $SUM_REPEAT runs, 3 when stale; ms; target < 100 ms):"
for line in "${VIEW_LINES[@]}"; do
	IFS='|' read -r label vs vc vn deltas <<<"$line"
	case $label in
		stale*) verdict="stale: no target" ;;
		*) verdict=$(awk -v a="$vs" -v b="$vc" 'BEGIN { print (a < 100 && b < 100 ? "met" : "NOT MET") }') ;;
	esac
	printf '     %-46s topic_state_summary %7s  update_compliance %7s  (%s)\n' \
		"$label" "$vs" "$vc" "$verdict"
done
b=$(sum_pct "$B_ON" "$B_OFF")
s=$(sum_pct "$S_ON" "$S_OFF")
printf '   ingest, %d uploads x 10 messages in one statement: on %s s, off %s s: %+.1f%%  (target <= 15%%: %s)\n' \
	"$SUM_BULK_CLIENTS" "$B_ON" "$B_OFF" "$b" "$(sum_met "$b" 15)"
printf '   ingest, %d statements of one upload (10 messages): on %s s, off %s s: %+.1f%%  (target <= 15%%: %s)\n' \
	"$SUM_SMALL_UPLOADS" "$S_ON" "$S_OFF" "$s" "$(sum_met "$s" 15)"
echo "   (medians of $SUM_PAIRS alternating runs each; runs: bulk on ${BULK_ON[*]} / off ${BULK_OFF[*]};"
echo "    small on ${SMALL_ON[*]} / off ${SMALL_OFF[*]})"
