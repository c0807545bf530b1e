#!/usr/bin/env bash
# Benchmark of queued processing (issue 9), on a throwaway cluster of its own
# (run as root; builds without assertions, as run.sh does):
#
#   - enqueue: the inbox under state_msg.processing = queued, against a plain
#     INSERT of the same rows into an unindexed heap table with the inbox's
#     columns (target: at least 50 %);
#   - drain: CALL state_msg.process_queue() of those messages, against the
#     immediate path (the same rows into the inbox under immediate, new
#     clients of their own) (target: at least 80 %);
#   - SELECT * FROM state_msg.backlog with QB_BACKLOG messages waiting
#     (target: under 10 ms), and the queue's size then.
#
#   queue.sh, or run.sh --queue
#
# Environment: QB_CLIENTS (20000) x QB_SERIALS (50) messages per run, in
# statements of QB_STATEMENT_SERIALS (5) serials of every client (100,000
# rows); QB_REPEAT (3) runs, the median reported; QB_BACKLOG (5000000);
# BENCH_PORT (5497).  Targets are reported, not asserted.
set -euo pipefail

QB_CLIENTS=${QB_CLIENTS:-20000}
QB_SERIALS=${QB_SERIALS:-50}
QB_STATEMENT_SERIALS=${QB_STATEMENT_SERIALS:-5}
QB_REPEAT=${QB_REPEAT:-3}
QB_BACKLOG=${QB_BACKLOG:-5000000}
QB_ROWS=$((QB_CLIENTS * QB_SERIALS))
QB_STATEMENTS=$((QB_SERIALS / QB_STATEMENT_SERIALS))

STATE_MSG_ASSERTS=0 source "$(dirname "${BASH_SOURCE[0]}")/../setup.sh"
PORT=${BENCH_PORT:-5497}
source "$(dirname "${BASH_SOURCE[0]}")/cluster.sh"
psql -c "CREATE EXTENSION state_msg" -c "CREATE SCHEMA bench"

# The stream: every client's serials, statement k holding serials
# (k-1) x QB_STATEMENT_SERIALS + 1 .. k x QB_STATEMENT_SERIALS of every
# client, in client order (all in the low queue: no reordering by priority,
# so both paths must give the same clients)
echo "== queue: $QB_ROWS messages per run ($QB_CLIENTS clients x $QB_SERIALS), $QB_STATEMENTS statements"
psql -c "CREATE TABLE bench.q_stream AS
SELECT (s - 1) / $QB_STATEMENT_SERIALS + 1 AS stmt, 'c' || lpad(c::text, 7, '0') AS client_id,
	   s AS serial_number, CASE WHEN s % 25 = 0 THEN 501 ELSE 500 END AS topic_type,
	   'u' || (s % 40) AS topic_id, (c + s) % 4 AS state_id,
	   timestamptz '2026-11-10 00:00+00' + s * interval '1 minute' AS message_time
FROM generate_series(1, $QB_CLIENTS) c, generate_series(1, $QB_SERIALS) s
ORDER BY 1, 2, 3" \
	-c "CREATE INDEX ON bench.q_stream (stmt)" -c "VACUUM ANALYZE bench.q_stream" \
	-c "CREATE TABLE bench.q_plain (LIKE state_msg.inbox INCLUDING DEFAULTS) USING heap"
QB_COLS="client_id, serial_number, topic_type, topic_id, state_id, message_time"

# The statements of one run, into TARGET, client ids prefixed
qb_script() {
	local target=$1 prefix=$2 k
	for ((k = 1; k <= QB_STATEMENTS; k++)); do
		echo "INSERT INTO $target ($QB_COLS) SELECT '$prefix' || client_id, serial_number,
			topic_type, topic_id, state_id, message_time FROM bench.q_stream WHERE stmt = $k
			ORDER BY client_id, serial_number;"
	done
}

# Time a script (seconds), after a checkpoint
qb_time() {
	local setting=$1 script=$2 t0 t1
	psql -c "CHECKPOINT"
	t0=$EPOCHREALTIME
	{ echo "SET state_msg.processing = $setting;"; printf '%s\n' "$script"; } | psql -f -
	t1=$EPOCHREALTIME
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

PLAIN=() ENQ=() DRAIN=() IMM=()
for ((r = 1; r <= QB_REPEAT; r++)); do
	psql -c "TRUNCATE bench.q_plain"
	PLAIN+=("$(qb_time immediate "$(qb_script bench.q_plain "p$r-")")")
	ENQ+=("$(qb_time queued "$(qb_script state_msg.inbox "q$r-")")")
	waiting=$(psql -At -c "SELECT sum(waiting) FROM state_msg.backlog")
	[ "$waiting" = "$QB_ROWS" ] || { echo "FAILED: $waiting waiting, not $QB_ROWS" >&2; exit 1; }
	DRAIN+=("$(qb_time immediate "CALL state_msg.process_queue();")")
	IMM+=("$(qb_time immediate "$(qb_script state_msg.inbox "i$r-")")")
	# the same result either way
	diff=$(psql -At -c "SELECT count(*) FROM (
		SELECT substr(client_id, 4), next_serial_number, messages_processed, missing_serials, late_fills
		FROM state_msg.clients WHERE client_id LIKE 'i$r-%'
		EXCEPT SELECT substr(client_id, 4), next_serial_number, messages_processed, missing_serials, late_fills
		FROM state_msg.clients WHERE client_id LIKE 'q$r-%') d")
	printf '   run %d: plain INSERT %s s, enqueue %s s, drain %s s, immediate %s s; %s clients differ\n' \
		"$r" "${PLAIN[-1]}" "${ENQ[-1]}" "${DRAIN[-1]}" "${IMM[-1]}" "$diff"
done
P=$(bench_median %.3f "${PLAIN[@]}") E=$(bench_median %.3f "${ENQ[@]}") D=$(bench_median %.3f "${DRAIN[@]}") I=$(bench_median %.3f "${IMM[@]}")
rate() { awk -v n="$QB_ROWS" -v s="$1" 'BEGIN { printf "%.0f", n / s }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", 100 * b / a }'; }
echo "== queue: medians of $QB_REPEAT runs ($QB_ROWS messages)"
printf '   %-46s %8s s %9s msg/s\n' "plain unindexed INSERT" "$P" "$(rate "$P")" \
	"enqueue (processing = queued)" "$E" "$(rate "$E")" \
	"drain (CALL process_queue())" "$D" "$(rate "$D")" \
	"immediate (processing = immediate)" "$I" "$(rate "$I")"
echo "   enqueue rate / plain INSERT rate: $(pct "$E" "$P") % (target >= 50 %)"
echo "   drain rate / immediate rate:      $(pct "$D" "$I") % (target >= 80 %)"

# QB_BACKLOG waiting: statements of 100,000 rows, new clients
echo "== queue: enqueuing $QB_BACKLOG messages"
t0=$EPOCHREALTIME
qb_n=$((QB_BACKLOG / QB_ROWS)) qb_rest=$((QB_BACKLOG % QB_ROWS))
for ((r = 1; r <= qb_n; r++)); do
	{ echo "SET state_msg.processing = queued;"; qb_script state_msg.inbox "b$r-"; } | psql -f -
done
[ "$qb_rest" -eq 0 ] || psql -c "SET state_msg.processing = queued" -c "INSERT INTO state_msg.inbox ($QB_COLS)
	SELECT 'b0-' || client_id, serial_number, topic_type, topic_id, state_id, message_time
	FROM bench.q_stream ORDER BY stmt, client_id LIMIT $qb_rest"
t1=$EPOCHREALTIME
echo "   enqueued in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
psql -At -F ' ' -c "SELECT 'waiting:', sum(waiting), '(' || string_agg(queue || ' ' || waiting, ', ') || ');',
	'queue', pg_size_pretty(pg_total_relation_size('state_msg.queue_0') + pg_total_relation_size('state_msg.queue_1')
		+ pg_total_relation_size('state_msg.queue_2')), '; queue_counts rows', (SELECT count(*) FROM state_msg.queue_counts),
	'; queue_flow rows', (SELECT count(*) FROM state_msg.queue_flow) FROM state_msg.backlog"
script="SELECT * FROM state_msg.backlog \\g /dev/null"$'\n'"\\timing on"
for ((i = 0; i < 9; i++)); do script+=$'\n'"SELECT * FROM state_msg.backlog \\g /dev/null"; done
B=$(printf '%s\n' "$script" | psql -At -f - | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | sort -n | sed -n 5p)
echo "   SELECT * FROM state_msg.backlog: median $B ms of 9 (target < 10 ms)"
script="SELECT * FROM state_msg.backlog_sources \\g /dev/null"$'\n'"\\timing on"
for ((i = 0; i < 9; i++)); do script+=$'\n'"SELECT * FROM state_msg.backlog_sources \\g /dev/null"; done
S=$(printf '%s\n' "$script" | psql -At -f - | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | sort -n | sed -n 5p)
echo "   SELECT * FROM state_msg.backlog_sources: median $S ms of 9"
