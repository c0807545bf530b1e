#!/usr/bin/env bash
# Sustained load on queued processing (issue 9, "no bloat under sustained
# load"), on a throwaway cluster of its own with the background worker
# preloaded (run as root; builds without assertions, as run.sh does):
#
#   - SUSTAINED_SESSIONS client sessions insert uploads (10 messages of one
#     client, consecutive serials, a few topic types, 1 upload in 50 ending in
#     a resync-complete 700/2, so it joins high) into state_msg.inbox under
#     state_msg.processing = queued, at SUSTAINED_RATE messages per second
#     in all, paced; one of them adds SUSTAINED_FSP_RATE relayed (source =
#     'fsp', no serial) messages per second;
#   - the worker drains (state_msg.databases = 'bench');
#   - every SUSTAINED_SAMPLE_SECONDS a sample of the total size (heap +
#     indexes + toast) and dead tuples (n_dead_tup of heap and toast) of
#     queue_0, queue_1, queue_2, queue_counts, queue_flow, backlog_history,
#     queue_rotation and queue_throttle, reported per minute as the largest
#     of the minute's samples (a partition fills for a rotation interval and
#     is then truncated: one sample a minute would alias with that cycle);
#     every minute the messages waiting per queue (backlog) and the
#     messages enqueued and processed in that minute (stats);
#   - then the table and, after a warm-up of SUSTAINED_WARMUP minutes, the
#     largest and smallest value of each column and a verdict line (reported,
#     not asserted).
#
#   sustained.sh, or run.sh --sustained
#
# Environment: SUSTAINED_MINUTES (35), SUSTAINED_WARMUP (5), SUSTAINED_RATE
# (6000), SUSTAINED_SESSIONS (3), SUSTAINED_CLIENTS (30000),
# SUSTAINED_STATEMENT_CLIENTS (100 uploads per statement),
# SUSTAINED_FSP_RATE (2), SUSTAINED_FSP_THROTTLE (state_msg.fsp_throttle_messages
# per hour, the engine's default 10000: below the fsp rate, relayed messages
# wait for hours, as behind a real throttle), SUSTAINED_SAMPLE_SECONDS (10),
# BENCH_PORT (5497).
set -euo pipefail

MINUTES=${SUSTAINED_MINUTES:-35}
WARMUP=${SUSTAINED_WARMUP:-5}
RATE=${SUSTAINED_RATE:-6000}
SESSIONS=${SUSTAINED_SESSIONS:-3}
CLIENTS=${SUSTAINED_CLIENTS:-30000}
STMT_CLIENTS=${SUSTAINED_STATEMENT_CLIENTS:-100}
FSP_RATE=${SUSTAINED_FSP_RATE:-2}
FSP_THROTTLE=${SUSTAINED_FSP_THROTTLE:-10000}
SAMPLE_SECONDS=${SUSTAINED_SAMPLE_SECONDS:-10}

STATE_MSG_ASSERTS=0 source "$(dirname "${BASH_SOURCE[0]}")/../setup.sh"
BUILT=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
PORT=${BENCH_PORT:-5497}
source "$(dirname "${BASH_SOURCE[0]}")/cluster.sh"

# The worker: preloaded, serving the database "bench"
cat >>"$PGDATA/postgresql.conf" <<EOF
shared_preload_libraries = 'state_msg'
state_msg.fsp_throttle_messages = $FSP_THROTTLE
state_msg.databases = 'bench'
EOF
runuser -u postgres -- pg_ctl -D "$PGDATA" -l "$BENCH/server.log" -m fast -w restart >/dev/null
psql -c "CREATE EXTENSION state_msg" -c "CREATE SCHEMA bench" \
	-c "ALTER DATABASE bench SET state_msg.processing = queued"

# One session's load: statement k holds the next STMT_CLIENTS uploads of the
# session's slice of the fleet (client index k x STMT_CLIENTS + i, round-robin;
# a client's round r carries serials 10r+1 .. 10r+10), one statement every
# period seconds (paced on a schedule; a session that falls more than a
# second behind drops the lost time rather than bursting), committed each;
# every fsp_every-th statement also carries one fsp upload of 10 messages
psql <<'SQL'
CREATE PROCEDURE bench.load(sess integer, nsess integer, clients integer,
							stmt_clients integer, period float8, fsp_every integer,
							until timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
	k bigint := 0;
	slice integer := clients / nsess;
	next_at timestamptz := clock_timestamp();
	fsp_no bigint := 0;
BEGIN
	WHILE clock_timestamp() < until LOOP
		INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
									 state_id, message_time)
		SELECT 'GUID:' || lpad((sess + nsess * (idx % slice))::text, 8, '0'),
			   (idx / slice) * 10 + s,
			   CASE WHEN s = 10 AND idx % 50 = 7 THEN 700
					ELSE (ARRAY[401, 401, 500, 500, 500, 501, 501, 402, 1001, 800])
						 [1 + (idx * 7 + s) % 10] END,
			   CASE WHEN s = 10 AND idx % 50 = 7 THEN 'RESYNC'
					ELSE 'u' || ((idx * 13 + s * 7) % 40) END,
			   CASE WHEN s = 10 AND idx % 50 = 7 THEN 2 ELSE (idx + s) % 4 END,
			   clock_timestamp() - (10 - s) * interval '1 second'
		FROM generate_series(k * stmt_clients, (k + 1) * stmt_clients - 1) idx,
			 generate_series(1, 10) s
		ORDER BY idx, s;
		IF fsp_every > 0 AND k % fsp_every = 0 THEN
			INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
										 state_id, message_time, source)
			SELECT 'FSP:' || lpad((fsp_no % 5000)::text, 8, '0'), NULL, 500,
				   'u' || s, s % 4, clock_timestamp(), 'fsp'
			FROM generate_series(1, 10) s;
			fsp_no := fsp_no + 1;
		END IF;
		COMMIT;
		k := k + 1;
		next_at := greatest(next_at + period * interval '1 second',
							clock_timestamp() - interval '1 second');
		IF next_at > clock_timestamp() THEN
			PERFORM pg_sleep(extract(epoch FROM next_at - clock_timestamp()));
		END IF;
	END LOOP;
END
$$;
CREATE TABLE bench.samples_raw (
	second integer, relname text, size bigint, dead bigint);
-- per minute: the largest of the samples taken in it (minute m: seconds
-- 60 (m - 1) + 1 .. 60 m; minute 0: the start)
CREATE VIEW bench.samples AS
SELECT ceil(second / 60.0)::integer AS minute, relname, max(size) AS size,
	   max(dead) AS dead
FROM bench.samples_raw GROUP BY 1, 2;
CREATE TABLE bench.sample_flow (
	minute integer, high bigint, low bigint, fsp bigint, enqueued bigint,
	processed bigint);
SQL

# Statements per second in all, and each session's period between them
PERIOD=$(awk -v r="$RATE" -v n="$SESSIONS" -v c="$STMT_CLIENTS" \
	'BEGIN { printf "%.6f", n * c * 10 / r }')
FSP_EVERY=$(awk -v f="$FSP_RATE" -v p="$PERIOD" \
	'BEGIN { if (f <= 0) print 0; else { e = int(10 / (f * p) + 0.5); print (e < 1 ? 1 : e) } }')
echo "== sustained: $MINUTES min, $RATE messages/s from $SESSIONS sessions" \
	"($STMT_CLIENTS uploads of 10 per statement, one every $PERIOD s each;" \
	"$CLIENTS clients), fsp ${FSP_RATE}/s (10 every $FSP_EVERY statements of session 0), throttled to $FSP_THROTTLE an hour"

sample_sizes() {
	psql -v t="$1" <<'SQL'
INSERT INTO bench.samples_raw
SELECT :t, c.relname, pg_catalog.pg_total_relation_size(c.oid),
	   coalesce(s.n_dead_tup, 0) + coalesce(t.n_dead_tup, 0)
FROM pg_class c
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
LEFT JOIN pg_stat_all_tables t ON t.relid = c.reltoastrelid
WHERE c.relnamespace = 'state_msg'::regnamespace
  AND c.relname IN ('queue_0', 'queue_1', 'queue_2', 'queue_counts', 'queue_flow',
					'backlog_history', 'queue_rotation', 'queue_throttle');
SQL
}
sample_flow() {
	psql -v m="$1" <<'SQL'
INSERT INTO bench.sample_flow
SELECT :m, max(waiting) FILTER (WHERE queue = 'high'), max(waiting) FILTER (WHERE queue = 'low'),
	   max(waiting) FILTER (WHERE queue = 'fsp'),
	   (SELECT enqueued FROM state_msg.stats), (SELECT processed FROM state_msg.stats)
FROM state_msg.backlog;
SQL
}

START=$EPOCHREALTIME
UNTIL=$(psql -At -c "SELECT clock_timestamp() + $MINUTES * interval '1 minute' + interval '2 seconds'")
pids=()
for ((s = 0; s < SESSIONS; s++)); do
	fe=0
	[ "$s" -eq 0 ] && fe=$FSP_EVERY
	psql -c "CALL bench.load($s, $SESSIONS, $CLIENTS, $STMT_CLIENTS, $PERIOD, $fe, '$UNTIL')" &
	pids+=($!)
done
sample_sizes 0
sample_flow 0
for ((t = SAMPLE_SECONDS; t <= MINUTES * 60; t += SAMPLE_SECONDS)); do
	# sample on time since the start, whatever the sampling took
	sleep "$(awk -v s="$START" -v t="$t" -v now="$EPOCHREALTIME" \
		'BEGIN { d = s + t - now; printf "%.3f", (d > 0 ? d : 0) }')"
	sample_sizes "$t"
	[ $((t % 60)) -eq 0 ] || continue
	m=$((t / 60))
	sample_flow "$m"
	psql -At -F ' ' -c "SELECT 'minute', $m, 'waiting high/low/fsp', high, low, fsp,
		'partitions MB', (SELECT round(sum(size) / 1048576.0, 1) FROM bench.samples
					 WHERE minute = $m AND relname IN ('queue_0', 'queue_1', 'queue_2'))
		FROM bench.sample_flow WHERE minute = $m"
done
for p in "${pids[@]}"; do
	wait "$p"
done

# The table: a row per minute; sizes in kB (the partitions' in MB), dead
# tuples; messages enqueued and processed in the minute before the sample
echo
echo "Sustained load on state_msg $BUILT: $(nproc) cores, PostgreSQL $(psql -At -c 'SHOW server_version');"
echo "$MINUTES min at $RATE messages/s ($SESSIONS sessions) plus fsp ${FSP_RATE}/s; the worker draining."
echo "Sizes: heap + indexes + toast (q0..q2 in MB, the rest in kB); dead: n_dead_tup (heap + toast);"
echo "each the largest of the minute's samples (one every $SAMPLE_SECONDS s)."
psql -P footer=off <<'SQL'
SELECT f.minute AS min,
	   f.enqueued - lag(f.enqueued) OVER w AS enqueued,
	   f.processed - lag(f.processed) OVER w AS processed,
	   f.high, f.low, f.fsp,
	   max(round(s.size / 1048576.0, 1)) FILTER (WHERE relname = 'queue_0') AS q0_mb,
	   max(round(s.size / 1048576.0, 1)) FILTER (WHERE relname = 'queue_1') AS q1_mb,
	   max(round(s.size / 1048576.0, 1)) FILTER (WHERE relname = 'queue_2') AS q2_mb,
	   max(s.dead) FILTER (WHERE relname = 'queue_0') AS q0_dead,
	   max(s.dead) FILTER (WHERE relname = 'queue_1') AS q1_dead,
	   max(s.dead) FILTER (WHERE relname = 'queue_2') AS q2_dead,
	   max(s.size / 1024) FILTER (WHERE relname = 'queue_counts') AS counts_kb,
	   max(s.dead) FILTER (WHERE relname = 'queue_counts') AS counts_dead,
	   max(s.size / 1024) FILTER (WHERE relname = 'queue_flow') AS flow_kb,
	   max(s.dead) FILTER (WHERE relname = 'queue_flow') AS flow_dead,
	   max(s.size / 1024) FILTER (WHERE relname = 'backlog_history') AS hist_kb,
	   max(s.dead) FILTER (WHERE relname = 'backlog_history') AS hist_dead,
	   max(s.size / 1024) FILTER (WHERE relname = 'queue_rotation') AS rot_kb,
	   max(s.dead) FILTER (WHERE relname = 'queue_rotation') AS rot_dead,
	   max(s.size / 1024) FILTER (WHERE relname = 'queue_throttle') AS thr_kb,
	   max(s.dead) FILTER (WHERE relname = 'queue_throttle') AS thr_dead
FROM bench.sample_flow f JOIN bench.samples s USING (minute)
GROUP BY f.minute, f.enqueued, f.processed, f.high, f.low, f.fsp
WINDOW w AS (ORDER BY f.minute)
ORDER BY f.minute;
SQL

# After the warm-up: each relation's largest and smallest size and dead
# tuples, the three partitions also as their sum (one fills while the
# others are truncated; per minute the largest sum of one sample), and the
# mean of the first and last third
echo
echo "After the warm-up (minutes $((WARMUP + 1)) to $MINUTES):"
psql -v w="$WARMUP" <<'SQL'
CREATE VIEW bench.after_warmup AS
SELECT minute, relname, size, dead FROM bench.samples WHERE minute > :w
UNION ALL
SELECT ceil(second / 60.0)::integer, 'queue (sum of 3)', max(size), max(dead)
FROM (SELECT second, sum(size) AS size, sum(dead) AS dead FROM bench.samples_raw
	  WHERE relname IN ('queue_0', 'queue_1', 'queue_2') GROUP BY second) r
WHERE second > 60 * :w GROUP BY 1;
SQL
psql -P footer=off <<'SQL'
WITH s AS (SELECT * FROM bench.after_warmup),
b AS (SELECT max(minute) AS hi, min(minute) AS lo FROM s)
SELECT relname,
	   pg_size_pretty(min(size)) AS min_size, pg_size_pretty(max(size)) AS max_size,
	   round(avg(size) FILTER (WHERE minute < lo + (hi - lo + 1) / 3) / 1024) AS first_third_kb,
	   round(avg(size) FILTER (WHERE minute > hi - (hi - lo + 1) / 3) / 1024) AS last_third_kb,
	   min(dead) AS min_dead, max(dead) AS max_dead,
	   round(avg(dead) FILTER (WHERE minute < lo + (hi - lo + 1) / 3)) AS first_third_dead,
	   round(avg(dead) FILTER (WHERE minute > hi - (hi - lo + 1) / 3)) AS last_third_dead
FROM s, b
GROUP BY relname ORDER BY relname;
SQL
psql -At <<'SQL'
WITH s AS (SELECT * FROM bench.after_warmup),
b AS (SELECT max(minute) AS hi, min(minute) AS lo FROM s),
t AS (
	SELECT relname,
		   avg(size) FILTER (WHERE minute < lo + (hi - lo + 1) / 3) AS s1,
		   avg(size) FILTER (WHERE minute > hi - (hi - lo + 1) / 3) AS s3,
		   avg(dead) FILTER (WHERE minute < lo + (hi - lo + 1) / 3) AS d1,
		   avg(dead) FILTER (WHERE minute > hi - (hi - lo + 1) / 3) AS d3,
		   max(size) AS smax
	FROM s, b WHERE relname NOT IN ('queue_0', 'queue_1', 'queue_2') GROUP BY relname
)
SELECT 'verdict: ' || CASE WHEN bool_and(s3 <= s1 * 1.25 + 65536 AND d3 <= d1 * 1.25 + 1000)
		THEN 'flat' ELSE 'GROWING' END
	   || ' (last third of the samples after the warm-up against the first: '
	   || string_agg(relname || ' size x' || round((s3 / nullif(s1, 0))::numeric, 2)
					 || ' dead ' || round(d1) || '->' || round(d3), ', ' ORDER BY relname) || ')'
FROM t;
SQL
psql -At -F ' ' -c "SELECT 'waiting at the end:', string_agg(queue || ' ' || waiting, ', ') FROM state_msg.backlog"
echo "server log ERROR lines: $(grep -c ERROR "$BENCH/server.log" || true)"
grep 'ERROR' "$BENCH/server.log" | sort | uniq -c | sort -rn | head -5 || true
