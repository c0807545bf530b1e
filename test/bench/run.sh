#!/usr/bin/env bash
# Benchmark of state_msg against its peers, on a throwaway cluster.
#
#   run.sh            every throughput variant, the many-ranges client, then
#                     the peak-memory test
#   run.sh --quick    the throughput variants and the many-ranges client only
#   run.sh --memory   the peak-memory test only
#   run.sh --steady   the steady-state upload cycles only
#   run.sh --ranges   the many-ranges client only
#   run.sh --site     a site-scale Patch Tuesday only (site.sh; SITE_CLIENTS=15000: a tenth)
#   run.sh --queue    queued processing against the immediate path (queue.sh)
#   run.sh --storm    backlog-aware resync off and on with the simulator (storm.sh)
#   run.sh --sustained 35 minutes of sustained queued load (sustained.sh)
#
# Run as root on Debian 12 (setup.sh installs and builds).  Prints one table
# of messages/second and the ratios; exits non-zero if a correctness check or
# the memory bound fails.  Environment: BASELINE_SQL (the PL/pgSQL peer's
# script, test/bench/plpgsql_peer.sql by default), BENCH_PORT (5497), BENCH_REPEAT (runs per variant, 5),
# BENCH_RANGE_STATEMENTS (one-message statements per many-ranges run, 300).
set -euo pipefail

mode=all
for arg in "$@"; do
	case $arg in
		--quick) mode=quick ;;
		--memory) mode=memory ;;
		--steady) mode=steady ;;
		--ranges) mode=ranges ;;
		--site) mode=site ;;
		--queue) exec bash "$(dirname "$0")/queue.sh" ;;	# queued processing (issue 9)
		--storm) exec bash "$(dirname "$0")/storm.sh" ;;	# backlog-aware resync shown with the simulator (issue 9)
		--sustained) exec bash "$(dirname "$0")/sustained.sh" ;;	# sustained queued load (issue 9)
		*) echo "usage: $0 [--quick | --memory | --steady | --ranges | --site | --queue | --storm | --sustained]" >&2; exit 2 ;;
	esac
done

STATE_MSG_ASSERTS=0 source "$(dirname "$0")/../setup.sh"
# What was built: the checkout may move on while the benchmark runs
BUILT=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)

BASELINE_SQL=${BASELINE_SQL:-$ROOT/test/bench/plpgsql_peer.sql}
PORT=${BENCH_PORT:-5497}
NCLIENTS=10000				# the stream: 10,000 clients x 100 messages
NSERIALS=100
PREFIX_CLIENTS=1000			# the PL/pgSQL peer's 100,000-row prefix
MEM_CLIENTS=100000			# memory test: 100,000 clients x 100 messages
MEM_LIMIT_MB=256
REPEAT=${BENCH_REPEAT:-5}	# runs per variant; the median is reported
NRANGES=20000				# the many-ranges client: every other serial lost
RANGE_STATEMENTS=${BENCH_RANGE_STATEMENTS:-300}

source "$(dirname "$0")/cluster.sh"

# Results: "label|rows|seconds|rate|all runs" lines for the table, and
# rates by key for the ratios
RESULTS=()
declare -A RATE

# Record a variant's runs (seconds each): the median is its figure
record() {
	local key=$1 label=$2 rows=$3 secs
	shift 3
	secs=$(printf '%s\n' "$@" | sort -n | awk '{ t[NR] = $1 }
		END { printf "%.3f", NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2 }')
	RATE[$key]=$(awk -v r="$rows" -v s="$secs" 'BEGIN { printf "%.0f", r / s }')
	RESULTS+=("$label|$rows|$secs|${RATE[$key]}|$*")
	printf '   %-58s %9d rows %9.3f s %10d msg/s  (runs: %s)\n' \
		"$label" "$rows" "$secs" "${RATE[$key]}" "$*"
}

# variant KEY LABEL ROWS PREPARE RUN CHECK: REPEAT runs of the shell code
# RUN, each after PREPARE (untimed) and followed by CHECK (untimed)
variant() {
	local key=$1 label=$2 rows=$3 prepare=$4 run=$5 check=$6 runs=() t0 t1 i
	echo "== $label"
	for ((i = 1; i <= REPEAT; i++)); do
		eval "$prepare"
		t0=$EPOCHREALTIME
		eval "$run"
		t1=$EPOCHREALTIME
		runs+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
		eval "$check"
	done
	record "$key" "$label" "$rows" "${runs[@]}"
}

# Fresh extension state, and a checkpoint so no run pays for the one before
reset_state() {
	psql -c "TRUNCATE state_msg.clients, state_msg.client_state,
		state_msg.missing_ranges, state_msg.resync_requests,
		state_msg.rejected_messages" -c "CHECKPOINT"
}

# Fail with the output of a check query if it printed anything
assert_empty() {
	local what=$1 out=$2
	if [ -n "$out" ]; then
		echo "FAILED: $what" >&2
		echo "$out" >&2
		exit 1
	fi
}

# What state_msg made of the last run, in one line
summary() {
	psql -At -F ' ' -c "SELECT 'clients=' || count(*),
		'processed=' || sum(messages_processed),
		'missing=' || sum(missing_serials), 'late_fills=' || sum(late_fills),
		'duplicates=' || sum(duplicates), 'resets=' || sum(serial_resets),
		'ranges=' || (SELECT count(*) FROM state_msg.missing_ranges),
		'states=' || (SELECT count(*) FROM state_msg.client_state),
		'rejected=' || (SELECT count(*) FROM state_msg.rejected_messages)
		FROM state_msg.clients"
}

# Check state after an in-order run over the rows of src (a table) where cond
check_in_order() {
	local what=$1 src=$2 cond=$3 out
	out=$(psql -At -v src="$src" -v cond="$cond" <<'SQL'
CREATE TEMP VIEW src AS SELECT * FROM :src WHERE :cond;
SELECT 'clients: ' || (SELECT count(*) FROM state_msg.clients)
	   || ', expected ' || (SELECT count(DISTINCT client_id) FROM src)
WHERE (SELECT count(*) FROM state_msg.clients)
	  <> (SELECT count(DISTINCT client_id) FROM src);
SELECT 'sum(messages_processed): ' || sum(messages_processed)
	   || ', rows inserted ' || (SELECT count(*) FROM src)
FROM state_msg.clients
HAVING sum(messages_processed) IS DISTINCT FROM (SELECT count(*) FROM src);
SELECT 'missing_ranges not empty: ' || count(*) FROM state_msg.missing_ranges
HAVING count(*) > 0;
SELECT 'next_serial_number <> 101 for ' || count(*) || ' clients'
FROM state_msg.clients WHERE next_serial_number IS DISTINCT FROM 101
HAVING count(*) > 0;
SELECT 'counters: missing ' || sum(missing_serials) || ', late fills '
	   || sum(late_fills) || ', duplicates ' || sum(duplicates)
	   || ', resets ' || sum(serial_resets)
FROM state_msg.clients
HAVING sum(missing_serials + late_fills + duplicates + serial_resets) <> 0;
SELECT 'rejected or resync rows: ' || r || ' / ' || q
FROM (SELECT (SELECT count(*) FROM state_msg.rejected_messages) AS r,
			 (SELECT count(*) FROM state_msg.resync_requests) AS q) x
WHERE r + q > 0;
-- the current state is each topic's highest serial
SELECT 'client_state differs from the newest message per topic: ' || count(*) || ' rows'
FROM (SELECT DISTINCT ON (client_id, topic_type, topic_id)
			 client_id, topic_type, topic_id, state_id, serial_number
	  FROM src ORDER BY client_id, topic_type, topic_id, serial_number DESC) e
FULL JOIN state_msg.client_state s USING (client_id, topic_type, topic_id)
WHERE s.state_id IS DISTINCT FROM e.state_id
   OR s.serial_number IS DISTINCT FROM e.serial_number
HAVING count(*) > 0;
SQL
)
	assert_empty "$what" "$out"
	echo "   ok: $(summary)"
}

# Check state after the lossy run: the brief's checks are fatal; the exact
# expectations (derived from what was delivered, and when) only warn
check_lossy() {
	local what=$1 out
	out=$(psql -At -v nclients="$NCLIENTS" <<'SQL'
SELECT 'clients: ' || count(*) FROM state_msg.clients HAVING count(*) <> :nclients;
SELECT 'sum(messages_processed): ' || sum(messages_processed)
	   || ', rows inserted ' || (SELECT count(*) FROM bench.stream_lossy)
FROM state_msg.clients
HAVING sum(messages_processed) IS DISTINCT FROM (SELECT count(*) FROM bench.stream_lossy);
SELECT 'missing_ranges is empty' FROM state_msg.missing_ranges HAVING count(*) = 0;
SQL
)
	assert_empty "$what" "$out"
	out=$(psql -At <<'SQL'
-- per client: delivered serials lo..hi, n rows; a late row fills a gap iff
-- a higher serial arrived on time
CREATE TEMP TABLE expect AS
SELECT client_id, min(serial_number) AS lo, max(serial_number) AS hi,
	   count(*) AS n,
	   count(*) FILTER (WHERE late AND serial_number < on_time_hi) AS fills
FROM (SELECT *, max(serial_number) FILTER (WHERE NOT late)
				OVER (PARTITION BY client_id) AS on_time_hi
	  FROM bench.stream_lossy) s
GROUP BY client_id;
SELECT 'next_serial_number wrong for ' || count(*) || ' clients, e.g. '
	   || min(c.client_id)
FROM expect e JOIN state_msg.clients c USING (client_id)
WHERE c.next_serial_number <> e.hi + 1 HAVING count(*) > 0;
SELECT 'late fills: ' || (SELECT sum(late_fills) FROM state_msg.clients)
	   || ', expected ' || sum(fills)
FROM expect HAVING sum(fills) <> (SELECT sum(late_fills) FROM state_msg.clients);
SELECT 'missing serials: ' || (SELECT sum(missing_serials) FROM state_msg.clients)
	   || ', expected ' || sum(hi - lo + 1 - n + fills)
FROM expect
HAVING sum(hi - lo + 1 - n + fills) <> (SELECT sum(missing_serials) FROM state_msg.clients);
SELECT 'serials in missing_ranges: ' || (SELECT sum(last_serial - first_serial + 1)
										 FROM state_msg.missing_ranges)
	   || ', never delivered ' || sum(hi - lo + 1 - n)
FROM expect
HAVING sum(hi - lo + 1 - n)
	   <> (SELECT sum(last_serial - first_serial + 1) FROM state_msg.missing_ranges);
SELECT 'duplicates ' || sum(duplicates) || ', resets ' || sum(serial_resets)
	   || ' for ' || count(*) FILTER (WHERE duplicates + serial_resets > 0) || ' clients, e.g. '
	   || min(client_id) FILTER (WHERE duplicates + serial_resets > 0)
FROM state_msg.clients HAVING sum(duplicates + serial_resets) > 0;
SELECT 'client_state differs from the highest delivered serial per topic: ' || count(*)
FROM (SELECT DISTINCT ON (client_id, topic_type, topic_id)
			 client_id, topic_type, topic_id, state_id, serial_number
	  FROM bench.stream_lossy
	  ORDER BY client_id, topic_type, topic_id, serial_number DESC) e
FULL JOIN state_msg.client_state s USING (client_id, topic_type, topic_id)
WHERE s.state_id IS DISTINCT FROM e.state_id
   OR s.serial_number IS DISTINCT FROM e.serial_number
HAVING count(*) > 0;
SQL
)
	if [ -n "$out" ]; then
		local w="$what: ${out//$'\n'/; }"
		# the same warning from every repeat is shown once
		if [[ " ${WARNINGS[*]-} " != *"$w"* ]]; then
			WARNINGS+=("$w")
			echo "   WARNING ($what): state differs from the exact expectation:" >&2
			sed 's/^/     /' <<<"$out" >&2
		fi
	fi
	echo "   ok: $(summary)"
}
WARNINGS=()

# Ids shaped like the real ones: client "GUID:" + upper-case GUID, update
# GUIDs in lower case; derived from md5 so every run has the same ones
psql <<'SQL'
CREATE EXTENSION state_msg;
CREATE SCHEMA bench;
CREATE FUNCTION bench.guid(h text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4) || '-'
	   || substr(h, 17, 4) || '-' || substr(h, 21, 12);
-- 50 topics: software updates (500) and a few update-compliance topics (402)
CREATE TABLE bench.topics AS
SELECT k AS topic_no, CASE WHEN k % 5 = 0 THEN 402 ELSE 500 END AS topic_type,
	   bench.guid(md5('update' || k)) AS topic_id
FROM generate_series(0, 49) k;
SQL

# ---------------------------------------------------------------------------
# Peak memory: 10,000,000 rows in one statement, generated on the fly, while
# a sampler reads the backend's /proc status
# ---------------------------------------------------------------------------
memory_test() {
	local rows=$((MEM_CLIENTS * NSERIALS)) pidfile=$BENCH/mem.pid
	local samples=$BENCH/mem.samples pid t0 t1 sampler insert_pid
	echo "== memory: one INSERT ... SELECT of $rows generated rows into state_msg.inbox"
	reset_state
	: >"$pidfile"
	chown postgres: "$pidfile"
	# Client ids first (a small CTE), then 100 rounds over all clients
	psql -At -v clients="$MEM_CLIENTS" -v serials="$NSERIALS" -v pidfile="$pidfile" <<'SQL' &
\o :pidfile
SELECT pg_backend_pid();
\o
WITH c AS MATERIALIZED (
	SELECT c AS client_no, 'GUID:' || upper(bench.guid(md5('mclient' || c))) AS client_id
	FROM generate_series(1, :clients) c),
t AS (SELECT array_agg(topic_type ORDER BY topic_no) AS types,
			 array_agg(topic_id ORDER BY topic_no) AS ids FROM bench.topics)
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
							 state_id, message_time)
SELECT c.client_id, s, t.types[(c.client_no * 7 + s * 13) % 50 + 1],
	   t.ids[(c.client_no * 7 + s * 13) % 50 + 1], (c.client_no + s) % 4,
	   timestamptz '2024-03-01 00:00+00' + (c.client_no % 2700) * interval '1 second'
	   + s * interval '90 seconds'
FROM generate_series(1, :serials) s, c, t;
SQL
	insert_pid=$!
	t0=$EPOCHREALTIME
	# The pid is written before the INSERT starts
	for _ in $(seq 100); do
		[ -s "$pidfile" ] && break
		sleep 0.05
	done
	pid=$(tr -d '[:space:]' <"$pidfile")
	[ -n "$pid" ] || { echo "FAILED: no backend pid" >&2; exit 1; }
	# Reset the high-water mark, so VmHWM covers this statement only
	echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
	# Sample with builtins only, to steal as little CPU as possible
	(
		hwm=0 rss=0 anon=0 shm=0
		while [ -r "/proc/$pid/status" ]; do
			while read -r k v _; do
				case $k in
					VmHWM:) if ((v > hwm)); then hwm=$v; fi ;;
					VmRSS:) if ((v > rss)); then rss=$v; fi ;;
					RssAnon:) if ((v > anon)); then anon=$v; fi ;;
					RssShmem:) if ((v > shm)); then shm=$v; fi ;;
				esac
			done <"/proc/$pid/status" 2>/dev/null || break
			echo "$hwm $rss $anon $shm" >"$samples"
			sleep 0.1
		done
	) &
	sampler=$!
	wait "$insert_pid"
	t1=$EPOCHREALTIME
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	record memory "memory test: INSERT ... SELECT, $MEM_CLIENTS clients x $NSERIALS" \
		"$rows" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
	read -r MEM_HWM MEM_RSS MEM_ANON MEM_SHM <"$samples"
	local out
	out=$(psql -At -v rows="$rows" -v clients="$MEM_CLIENTS" <<'SQL'
SELECT 'clients: ' || count(*) || ', processed: ' || sum(messages_processed)
	   || ', missing ranges: ' || (SELECT count(*) FROM state_msg.missing_ranges)
FROM state_msg.clients
HAVING count(*) <> :clients OR sum(messages_processed) <> :rows
	OR (SELECT count(*) FROM state_msg.missing_ranges) > 0
	OR bool_or(next_serial_number <> 101);
SQL
)
	assert_empty "memory test state" "$out"
	echo "   ok: $(summary)"
}

mem_report() {
	local mb
	mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
	echo
	echo "Peak memory of the backend during the 10,000,000-row INSERT (sampled every 0.1 s):"
	printf '   VmHWM %s MB, VmRSS %s MB = private (RssAnon) %s MB + shared buffers touched (RssShmem) %s MB\n' \
		"$(mb "$MEM_HWM")" "$(mb "$MEM_RSS")" "$(mb "$MEM_ANON")" "$(mb "$MEM_SHM")"
	echo "   RssShmem is the 1 GB shared_buffers pool mapped into every backend, not the"
	echo "   statement's own memory; the bound is asserted on the private part."
	if [ "$MEM_ANON" -ge $((MEM_LIMIT_MB * 1024)) ]; then
		echo "FAILED: private memory peak $(mb "$MEM_ANON") MB >= $MEM_LIMIT_MB MB" >&2
		exit 1
	fi
	echo "   private peak $(mb "$MEM_ANON") MB < $MEM_LIMIT_MB MB: ok"
}

if [ "$mode" = site ]; then
	source "$(dirname "$0")/site.sh"	# 150,000 clients on a month of state
	exit 0
fi
if [ "$mode" = memory ]; then
	memory_test
	mem_report
	exit 0
fi

# ---------------------------------------------------------------------------
# A client with many missing ranges: what one-message statements cost it,
# against a clean client with as long a history.  Each statement is its own
# transaction (psql -f, autocommit), the way a relay sends small uploads;
# the last variant sends the late fills in one transaction.
# ---------------------------------------------------------------------------
RANGE_CLIENT="GUID:0000AAAA-0000-4000-8000-000000000001"
CLEAN_CLIENT="GUID:0000AAAA-0000-4000-8000-000000000002"
RANGE_NEXT=$((2 * NRANGES + 2))		# both clients expect this serial next

# The statement files, written once: in-order messages for each client, and
# late fills spread over the many-ranges client's ranges (each its only
# serial, so every fill removes one)
write_range_statements() {
	psql -At -v n="$RANGE_STATEMENTS" -v next="$RANGE_NEXT" -v nranges="$NRANGES" \
		-v many="$RANGE_CLIENT" -v clean="$CLEAN_CLIENT" -v dir="$BENCH" <<'SQL'
CREATE TEMP VIEW one AS
SELECT 'INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,'
	   || ' state_id, message_time) VALUES (' AS head;
\o :dir/ranges_clean.sql
SELECT head || format('%L, %s, 500, %L, 1, %L);', :'clean', :next + i,
	'upd-' || (:next + i) % 50, timestamptz '2024-03-01 00:00+00' + (:next + i) * interval '1 s')
FROM one, generate_series(0, :n - 1) i;
\o :dir/ranges_in_order.sql
SELECT head || format('%L, %s, 500, %L, 1, %L);', :'many', :next + i,
	'upd-' || (:next + i) % 50, timestamptz '2024-03-01 00:00+00' + (:next + i) * interval '1 s')
FROM one, generate_series(0, :n - 1) i;
\o :dir/ranges_fills.sql
SELECT head || format('%L, %s, 500, %L, 1, %L);', :'many', s,
	'upd-' || s % 50, timestamptz '2024-03-01 00:00+00' + s * interval '1 s')
FROM one, generate_series(0, :n - 1) i,
	LATERAL (SELECT 2 * (1 + i * (:nranges / :n)) AS s) x;
\o
SQL
	chmod 644 "$BENCH"/ranges_*.sql
}

# Fresh state with both clients: serials 1 .. 2 * NRANGES + 1, every other
# one lost for the many-ranges client (its NRANGES ranges), none for the
# other; vacuumed, as autovacuum would have done by the time a client has a
# history, and so that it does not run during the timed statements
prepare_ranges() {
	reset_state
	psql -v nranges="$NRANGES" -v many="$RANGE_CLIENT" -v clean="$CLEAN_CLIENT" <<'SQL'
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id,
							 message_time)
SELECT c, s, 500, 'upd-' || s % 50, 1, timestamptz '2024-03-01 00:00+00' + s * interval '1 s'
FROM (VALUES (:'many', 2), (:'clean', 1)) AS v(c, step),
	 generate_series(1, 2 * :nranges + 1) s
WHERE (s - 1) % step = 0;
VACUUM ANALYZE state_msg.clients, state_msg.client_state, state_msg.missing_ranges;
CHECKPOINT;
SQL
}

# After a run: the clients' counters and ranges are what the statements made
check_ranges() {
	local what=$1 out
	out=$(psql -At -v n="$RANGE_STATEMENTS" -v next="$RANGE_NEXT" -v nranges="$NRANGES" \
		-v many="$RANGE_CLIENT" -v clean="$CLEAN_CLIENT" -v what="$what" <<'SQL'
SELECT format('%s: %s next %s, %s missing serials, %s late fills, %s duplicates, %s ranges',
			  :'what', c.client_id, c.next_serial_number, c.missing_serials, c.late_fills,
			  c.duplicates, (SELECT count(*) FROM state_msg.missing_ranges m
							 WHERE m.client_id = c.client_id))
FROM state_msg.clients c
WHERE (c.client_id, c.next_serial_number, c.missing_serials, c.late_fills, c.duplicates,
	   (SELECT count(*) FROM state_msg.missing_ranges m WHERE m.client_id = c.client_id))
	  IS DISTINCT FROM
	  (c.client_id,
	   CASE WHEN :'what' = 'clean' AND c.client_id = :'clean'
			  OR :'what' = 'in_order' AND c.client_id = :'many'
			THEN :next + :n ELSE :next END::bigint,
	   CASE c.client_id WHEN :'many' THEN :nranges ELSE 0 END::bigint,
	   CASE WHEN :'what' LIKE 'fills%' AND c.client_id = :'many' THEN :n ELSE 0 END::bigint,
	   0::bigint,
	   CASE WHEN c.client_id = :'clean' THEN 0
			WHEN :'what' LIKE 'fills%' THEN :nranges - :n ELSE :nranges END::bigint);
SELECT 'clients: ' || count(*) FROM state_msg.clients HAVING count(*) <> 2;
SQL
)
	assert_empty "many ranges ($what)" "$out"
}

many_ranges_test() {
	write_range_statements
	variant ranges_clean "clean client: $RANGE_STATEMENTS one-message statements, in order" \
		"$RANGE_STATEMENTS" prepare_ranges 'psql -f "$BENCH/ranges_clean.sql"' \
		'check_ranges clean'
	variant ranges_in_order "$NRANGES-range client: the same, in order" \
		"$RANGE_STATEMENTS" prepare_ranges 'psql -f "$BENCH/ranges_in_order.sql"' \
		'check_ranges in_order'
	variant ranges_fills "$NRANGES-range client: the same, each a late fill" \
		"$RANGE_STATEMENTS" prepare_ranges 'psql -f "$BENCH/ranges_fills.sql"' \
		'check_ranges fills'
	variant ranges_fills_1 "$NRANGES-range client: the late fills in one transaction" \
		"$RANGE_STATEMENTS" prepare_ranges 'psql -1 -f "$BENCH/ranges_fills.sql"' \
		'check_ranges fills_1'
}

# Per statement, against the clean client's (targets reported, not asserted)
ranges_report() {
	local clean=${RATE[ranges_clean]} key r
	echo
	printf 'one-message statement: clean client %.2f ms\n' \
		"$(awk -v r="$clean" 'BEGIN { print 1000 / r }')"
	for key in ranges_in_order ranges_fills ranges_fills_1; do
		r=$(ratio "$clean" "${RATE[$key]}")
		printf '  %-44s %.2f ms = %5sx  (target <= 3x: %s)\n' \
			"$NRANGES-range client, ${key#ranges_}" \
			"$(awk -v r="${RATE[$key]}" 'BEGIN { print 1000 / r }')" "$r" \
			"$(awk -v v="$r" 'BEGIN { print (v <= 3 ? "met" : "NOT MET") }')"
	done
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

if [ "$mode" = ranges ]; then
	many_ranges_test
	ranges_report
	exit 0
fi
source "$(dirname "$0")/reports.sh"	# XML reports against the inbox (BENCH_REPORTS_ONLY=1: alone)

# ---------------------------------------------------------------------------
# The stream, generated once.  A client stamps messages every ~90 s and
# uploads them in batches of 10, one upload every 15 min; clients start at
# random phases over 45 min, so uploads of different clients interleave.
# ---------------------------------------------------------------------------
echo "== generating the stream: $NCLIENTS clients x $NSERIALS messages"
psql -v nclients="$NCLIENTS" -v nserials="$NSERIALS" <<'SQL'
SELECT setseed(0.42) \g /dev/null
CREATE UNLOGGED TABLE bench.clients AS
SELECT c AS client_no, 'GUID:' || upper(bench.guid(md5('client' || c))) AS client_id,
	   random() * 45 AS phase_min
FROM generate_series(1, :nclients) c;
CREATE UNLOGGED TABLE bench.uploads AS
SELECT c.client_no, u AS upload_no,
	   c.phase_min + (u + 1) * 15 + random() * 5 AS arrival_min
FROM bench.clients c, generate_series(0, (:nserials - 1) / 10) u;
CREATE UNLOGGED TABLE bench.messages AS
SELECT c.client_no, c.client_id, s AS serial_number, (s - 1) / 10 AS upload_no,
	   t.topic_type, t.topic_id,
	   (ARRAY[0, 1, 1, 2, 2, 2, 3])[1 + floor(random() * 7)::int] AS state_id,
	   timestamptz '2024-03-01 00:00+00'
	   + (c.phase_min + (s - 1) * 1.5 + random()) * interval '1 minute' AS message_time
FROM bench.clients c
CROSS JOIN generate_series(1, :nserials) s
JOIN bench.topics t ON t.topic_no = abs(hashtext(c.client_id || ':' || s)) % 50;
-- upload order: by upload arrival, the 10 messages of an upload together
CREATE UNLOGGED TABLE bench.stream AS
SELECT row_number() OVER (ORDER BY u.arrival_min, m.client_no, m.serial_number) AS seq,
	   m.client_no, m.upload_no, m.client_id, m.serial_number, m.topic_type,
	   m.topic_id, m.state_id, m.message_time
FROM bench.messages m JOIN bench.uploads u USING (client_no, upload_no)
ORDER BY seq;
CREATE UNIQUE INDEX ON bench.stream (seq);
-- lossy: 5% of uploads lost, 5% delivered late (moved to the stream's end)
SELECT setseed(0.17) \g /dev/null
CREATE UNLOGGED TABLE bench.fate AS
SELECT client_no, upload_no,
	   CASE WHEN r < 0.05 THEN 'lost' WHEN r < 0.10 THEN 'late' ELSE 'ok' END AS fate
FROM (SELECT client_no, upload_no, random() AS r FROM bench.uploads ORDER BY 1, 2) x;
CREATE UNLOGGED TABLE bench.stream_lossy AS
SELECT row_number() OVER (ORDER BY f.fate = 'late', s.seq) AS seq,
	   s.client_no, s.upload_no, s.client_id, s.serial_number, s.topic_type,
	   s.topic_id, s.state_id, s.message_time, f.fate = 'late' AS late
FROM bench.stream s JOIN bench.fate f USING (client_no, upload_no)
WHERE f.fate <> 'lost'
ORDER BY seq;
CREATE UNIQUE INDEX ON bench.stream_lossy (seq);
DROP TABLE bench.messages;
-- the speed limit: same columns, no index, no trigger
CREATE TABLE bench.plain (
	client_id text, serial_number bigint, topic_type integer, topic_id text,
	topic_id_type integer DEFAULT 0, state_id integer, criticality integer DEFAULT 0,
	message_time timestamptz, user_params text[], source text DEFAULT 'mp');
VACUUM ANALYZE bench.stream, bench.stream_lossy, bench.fate;
SQL
COLS="client_id, serial_number, topic_type, topic_id, state_id, message_time"
INSERT_STREAM="INSERT INTO state_msg.inbox ($COLS) SELECT $COLS FROM bench.stream"
# The COPY file, written once and synced, so no run pays for its writeback
psql -c "COPY (SELECT $COLS FROM bench.stream ORDER BY seq) TO '$BENCH/stream.copy'"
sync
ROWS=$(psql -At -c "SELECT count(*) FROM bench.stream")
LOSSY_ROWS=$(psql -At -c "SELECT count(*) FROM bench.stream_lossy")
PREFIX_ROWS=$(psql -At -c "SELECT count(*) FROM bench.stream WHERE client_no <= $PREFIX_CLIENTS")
psql -At -F ' ' -c "SELECT 'stream:', count(*), 'rows,', count(DISTINCT client_id), 'clients,',
	count(DISTINCT (topic_type, topic_id)), 'topics,', count(DISTINCT (client_no, upload_no)),
	'uploads,', min(message_time), '..', max(message_time) FROM bench.stream"
psql -At -F ' ' -c "SELECT 'lossy:', count(*) FILTER (WHERE fate = 'lost'), 'uploads lost,',
	count(*) FILTER (WHERE fate = 'late'), 'late,', $LOSSY_ROWS, 'rows' FROM bench.fate"

# ---------------------------------------------------------------------------
# Steady state: the same clients upload again and again, one statement per
# upload cycle (every client's next 10 messages), on state that already
# holds every topic.  Reports each cycle's rate, the HOT share of updates,
# dead tuples, and table plus index sizes after the first and last cycle.
# ---------------------------------------------------------------------------
STEADY_CYCLES=${BENCH_STEADY_CYCLES:-12}
steady_size() {
	psql -At -c "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
		WHERE c.relnamespace = 'state_msg'::regnamespace AND c.relkind = 'r'"
}
steady_test() {
	local k t0 t1 secs rows size_first size_last rates=()
	echo "== steady state: the stream once, then $STEADY_CYCLES upload cycles of every client"
	reset_state
	psql -c "$INSERT_STREAM ORDER BY seq" -c "VACUUM ANALYZE state_msg.clients, state_msg.client_state" \
		-c "CHECKPOINT"
	psql -c "SELECT pg_stat_reset_single_table_counters(c.oid) FROM pg_class c
		WHERE c.relnamespace = 'state_msg'::regnamespace AND c.relkind = 'r'" >/dev/null
	for ((k = 1; k <= STEADY_CYCLES; k++)); do
		# cycle k: upload (k - 1) mod 10 of every client, serials and times
		# moved past everything sent before
		local round=$(((k - 1) / 10 + 1)) upload=$(((k - 1) % 10))
		t0=$EPOCHREALTIME
		psql -c "INSERT INTO state_msg.inbox ($COLS)
			SELECT client_id, serial_number + $((round * NSERIALS)), topic_type, topic_id,
				   state_id, message_time + $round * interval '2 days'
			FROM bench.stream WHERE upload_no = $upload ORDER BY seq"
		t1=$EPOCHREALTIME
		rows=$(psql -At -c "SELECT count(*) FROM bench.stream WHERE upload_no = $upload")
		secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
		rates+=("$(awk -v r="$rows" -v s="$secs" 'BEGIN { printf "%.0f", r / s }')")
		[ "$k" -eq 1 ] && size_first=$(steady_size)
		printf '   cycle %2d: %7d rows %7.3f s %9s msg/s\n' "$k" "$rows" "$secs" "${rates[-1]}"
	done
	size_last=$(steady_size)
	# settle the statistics collector before reading its counters
	sleep 1
	STEADY_FIRST=${rates[0]}
	STEADY_LATER=$(printf '%s\n' "${rates[@]:$((STEADY_CYCLES / 2))}" | sort -n |
		awk '{ t[NR] = $1 } END { print NR % 2 ? t[(NR + 1) / 2] : int((t[NR / 2] + t[NR / 2 + 1]) / 2) }')
	STEADY_SIZES="$size_first $size_last"
	STEADY_STATS=$(psql -At -F ' ' -c "SELECT relname, n_tup_upd, n_tup_hot_upd,
		round(100.0 * n_tup_hot_upd / nullif(n_tup_upd, 0), 1), n_dead_tup,
		autovacuum_count + vacuum_count
		FROM pg_stat_user_tables WHERE schemaname = 'state_msg' ORDER BY relname")
	echo "   ok: $(summary)"
}
steady_report() {
	local first last
	read -r first last <<<"$STEADY_SIZES"
	echo
	echo "Steady state ($STEADY_CYCLES cycles of $NCLIENTS clients x 10 messages, one statement each):"
	printf '   first cycle %s msg/s; median of the later half %s msg/s: %s%%  (target >= 85%%: %s)\n' \
		"$STEADY_FIRST" "$STEADY_LATER" \
		"$(awk -v a="$STEADY_LATER" -v b="$STEADY_FIRST" 'BEGIN { printf "%.1f", 100 * a / b }')" \
		"$(met "$(awk -v a="$STEADY_LATER" -v b="$STEADY_FIRST" 'BEGIN { print 100 * a / b }')" 85)"
	printf '   tables + indexes after the first cycle %s MB, after the last %s MB: %sx  (target <= 1.5x: %s)\n' \
		"$((first / 1048576))" "$((last / 1048576))" \
		"$(awk -v a="$last" -v b="$first" 'BEGIN { printf "%.2f", a / b }')" \
		"$(awk -v a="$last" -v b="$first" 'BEGIN { print (a / b <= 1.5 ? "met" : "NOT MET") }')"
	echo "   table           updates    HOT  HOT %  dead tuples  vacuums"
	while read -r rel upd hot pct dead vac; do
		printf '   %-14s %8s %7s %6s %12s %8s\n' "$rel" "$upd" "$hot" "${pct:--}" "$dead" "$vac"
	done <<<"$STEADY_STATS"
}

if [ "$mode" = steady ]; then
	met() { awk -v v="$1" -v t="$2" 'BEGIN { print (v >= t ? "met" : "NOT MET") }'; }
	steady_test
	steady_report
	exit 0
fi

# ---------------------------------------------------------------------------
# The runs
# ---------------------------------------------------------------------------
# Each run is one statement in its own psql call and transaction, so its
# commit is timed too; each starts from fresh state after a checkpoint
variant plain "plain INSERT ... SELECT (unindexed table, speed limit)" "$ROWS" \
	'psql -c "TRUNCATE bench.plain" -c "CHECKPOINT"' \
	'psql -c "INSERT INTO bench.plain ($COLS) SELECT $COLS FROM bench.stream ORDER BY seq"' \
	:

variant plain_copy "plain COPY FROM file (unindexed table)" "$ROWS" \
	'psql -c "TRUNCATE bench.plain" -c "CHECKPOINT"' \
	'psql -c "COPY bench.plain ($COLS) FROM '"'"'$BENCH/stream.copy'"'"'"' \
	:

variant a "state_msg (a) INSERT ... SELECT, in order" "$ROWS" reset_state \
	'psql -c "$INSERT_STREAM ORDER BY seq"' \
	'check_in_order "(a) in order" bench.stream true'

# The same clients again: every topic of theirs already has a state, so
# this measures updates in place rather than first inserts
AGAIN_COLS="client_id, serial_number + $NSERIALS, topic_type, topic_id, state_id,
	message_time + interval '1 day'"
check_again() {
	local out
	out=$(psql -At -v nclients="$NCLIENTS" -v n=$((2 * NSERIALS + 1)) <<'SQL'
SELECT 'clients ' || count(*) || ', processed ' || sum(messages_processed)
	   || ', next serials ' || min(next_serial_number) || '..' || max(next_serial_number)
	   || ', missing ' || sum(missing_serials) || ', duplicates ' || sum(duplicates)
FROM state_msg.clients
HAVING count(*) <> :nclients OR sum(messages_processed) <> 2 * (SELECT count(*) FROM bench.stream)
	OR min(next_serial_number) <> :n OR max(next_serial_number) <> :n
	OR sum(missing_serials + duplicates) <> 0;
SELECT 'client_state rows not from the second statement: ' || count(*)
FROM state_msg.client_state WHERE serial_number <= (:n - 1) / 2 HAVING count(*) > 0;
SQL
)
	assert_empty "(a) again" "$out"
	echo "   ok: $(summary)"
}
variant a_again "state_msg (a) the same clients again (state updated in place)" "$ROWS" \
	'reset_state; psql -c "$INSERT_STREAM ORDER BY seq" -c "CHECKPOINT"' \
	'psql -c "INSERT INTO state_msg.inbox ($COLS) SELECT $AGAIN_COLS FROM bench.stream ORDER BY seq"' \
	check_again

variant a_lossy "state_msg (a) INSERT ... SELECT, lossy (5% lost, 5% late)" "$LOSSY_ROWS" \
	reset_state \
	'psql -c "INSERT INTO state_msg.inbox ($COLS)
		SELECT $COLS FROM bench.stream_lossy ORDER BY seq"' \
	'check_lossy "(a) lossy"'

variant b "state_msg (b) COPY FROM file, in order" "$ROWS" reset_state \
	'psql -c "COPY state_msg.inbox ($COLS) FROM '"'"'$BENCH/stream.copy'"'"'"' \
	'check_in_order "(b) COPY" bench.stream true'

# Four sessions, disjoint clients, timed from the first start to the last end
concurrent() {
	local pids=() k p
	for k in 0 1 2 3; do
		psql -c "$INSERT_STREAM WHERE client_no % 4 = $k ORDER BY seq" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p"
	done
}
variant c "state_msg (c) 4 concurrent sessions, a quarter of clients each" "$ROWS" \
	reset_state concurrent 'check_in_order "(c) concurrent" bench.stream true'

# The baseline's script drops and recreates its schema: fresh state each run
check_baseline() {
	local bad
	bad=$(psql -At -c "SELECT 'plpgsql_peer: ' || count(*) || ' clients, '
		|| sum(next_serial - 1) || ' serials' FROM plpgsql_peer.clients
		HAVING count(*) <> $PREFIX_CLIENTS OR sum(next_serial - 1) <> $PREFIX_ROWS")
	assert_empty "PL/pgSQL baseline state" "$bad"
}
variant plpgsql "PL/pgSQL baseline, first $PREFIX_CLIENTS clients only" "$PREFIX_ROWS" \
	'psql -f - <"$BASELINE_SQL" >/dev/null; psql -c "CHECKPOINT"' \
	'psql -c "INSERT INTO plpgsql_peer.inbox ($COLS) SELECT $COLS FROM bench.stream
		WHERE client_no <= $PREFIX_CLIENTS ORDER BY seq"' \
	check_baseline

# The same prefix through state_msg, for a like-for-like ratio
variant a_prefix "state_msg (a) INSERT ... SELECT, first $PREFIX_CLIENTS clients only" \
	"$PREFIX_ROWS" reset_state \
	'psql -c "$INSERT_STREAM WHERE client_no <= $PREFIX_CLIENTS ORDER BY seq"' \
	'check_in_order "(a) prefix" bench.stream "client_no <= $PREFIX_CLIENTS"'

many_ranges_test

if [ "$mode" = all ]; then
	steady_test
	memory_test
	source "$(dirname "$0")/summaries.sh"	# live summaries at 30 M states
fi

# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------
echo
echo "state_msg benchmark of $BUILT:" \
	"$(nproc) cores, PostgreSQL $(psql -At -c 'SHOW server_version'),"
echo "shared_buffers=1GB max_wal_size=8GB checkpoint_timeout=30min, fsync and"
echo "synchronous_commit on (defaults).  A run is one statement (four for (c)),"
echo "commit included, on fresh state; seconds are the median of $REPEAT runs."
echo
printf '%-62s %9s %8s %8s  %s\n' variant rows seconds "msgs/s" "runs (s)"
printf '%-62s %9s %8s %8s  %s\n' "$(printf -- '-%.0s' {1..62})" --------- -------- -------- --------
for line in "${RESULTS[@]}"; do
	IFS='|' read -r label rows secs rate runs <<<"$line"
	printf '%-62s %9d %8.3f %8d  %s\n' "$label" "$rows" "$secs" "$rate" "$runs"
done
echo
echo "The PL/pgSQL baseline ran on a $PREFIX_ROWS-row prefix of the stream (its first"
echo "$PREFIX_CLIENTS clients, same upload order); its rate is computed from that."
echo
# Targets are reported, not asserted: a slow machine is not a broken build
met() { awk -v v="$1" -v t="$2" 'BEGIN { print (v >= t ? "met" : "NOT MET") }'; }
r=$(ratio "${RATE[a]}" "${RATE[plpgsql]}")
printf 'ratio state_msg (a) / PL/pgSQL baseline        %8sx  (target >= 10x: %s)\n' "$r" "$(met "$r" 10)"
printf '  same 100k-row prefix for both                %8sx\n' \
	"$(ratio "${RATE[a_prefix]}" "${RATE[plpgsql]}")"
r=$(awk -v a="${RATE[a]}" -v b="${RATE[plain]}" 'BEGIN { printf "%.1f", 100 * a / b }')
printf 'ratio state_msg (a) / plain INSERT             %8s%%  (target >= 25%%: %s)\n' "$r" "$(met "$r" 25)"
printf 'ratio state_msg (b) COPY / (a) INSERT          %8sx\n' "$(ratio "${RATE[b]}" "${RATE[a]}")"
printf 'ratio state_msg (c) 4 sessions / (a) INSERT    %8sx\n' "$(ratio "${RATE[c]}" "${RATE[a]}")"
printf 'ratio state_msg (a) again / (a) first time   %8sx\n' "$(ratio "${RATE[a_again]}" "${RATE[a]}")"
ranges_report

if [ ${#WARNINGS[@]} -gt 0 ]; then
	echo
	echo "Warnings (state differs from the exact expectation, not fatal):"
	printf '   %s\n' "${WARNINGS[@]}"
fi
if [ "$mode" = all ]; then
	steady_report
	mem_report
fi
