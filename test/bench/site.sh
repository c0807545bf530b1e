#!/usr/bin/env bash
# A site-scale Patch Tuesday (issue 8, section 3): the fleet simulator's
# patch-tuesday scenario, 150,000 clients and 200 update topics (100
# updates, a 500 and a 402 topic each), about 100 messages a client, into a
# database that already holds a month of state (150,000 other clients x 200
# topics, 30 M client_state rows, loaded as summaries.sh loads them), with
# 2 % of uploads lost and 5 % late; six simulated days, so the check cycles
# two days on, the resync answers and the three-day reissues all happen.
# The same stream goes first into an empty database of the same cluster
# (its first SITE_EMPTY_MESSAGES messages), for the rates.
#
#   run.sh --site    sources it after run.sh's set-up (its cluster, its psql)
#
# Environment: SITE_CLIENTS (150000; 15000 for a quick run a tenth the size),
# SITE_DAYS (6), SITE_SEED (1), SITE_REPEAT (runs per view timing, 7),
# SITE_CHECK_EVERY (cycles between check cycles, 1: every 15 simulated
# minutes, as the site runs them),
# SITE_EMPTY_MESSAGES (messages of the stream into the empty database:
# 2,000,000 scaled with the fleet by default; 0: the whole stream),
# SITE_LAST_MESSAGES (the stretch at the end whose rate is reported:
# 1,000,000 scaled with the fleet).  Figures are reported, not asserted; the
# simulator's own verdict on the database is fatal.

SITE_CLIENTS=${SITE_CLIENTS:-150000}
SITE_DAYS=${SITE_DAYS:-6}
SITE_SEED=${SITE_SEED:-1}
SITE_REPEAT=${SITE_REPEAT:-7}
SITE_CHECK_EVERY=${SITE_CHECK_EVERY:-1}
SITE_EMPTY_MESSAGES=${SITE_EMPTY_MESSAGES:-$((2000000 * SITE_CLIENTS / 150000))}
SITE_LAST_MESSAGES=${SITE_LAST_MESSAGES:-$((1000000 * SITE_CLIENTS / 150000))}
SITE_PROGRESS=$((SITE_LAST_MESSAGES / 20))	# a progress line every 5 % of the last stretch
# The stream: one Patch Tuesday, 100 updates (a scan, 100 detections a
# client, enforcement of the 1 % it requires), a little everyday traffic;
# one COPY per cycle for all clients, as a management point batches
SITE_FLAGS=(--scenario patch-tuesday --clients "$SITE_CLIENTS" --days "$SITE_DAYS"
	--seed "$SITE_SEED" --updates 100 --required 0.01 --rate 0.25
	--loss 0.02 --late 0.05 --check-every "$SITE_CHECK_EVERY" --batch cycle --no-settle
	--progress "$SITE_PROGRESS")
site_t0=$EPOCHREALTIME

echo "== site: building the fleet simulator"
make -s -C "$WORK/test/fleet" PG_CONFIG="$PG_BIN/pg_config"
FLEET=$WORK/test/fleet/fleet

site_secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# Rate (msg/s) of the stretch of the stream from message FROM to TO, from a
# simulator's progress lines: from the last line at or before FROM (the
# start if none) to the first at or after TO, over the wall-clock seconds
# (COL 6: check cycles, claims and the simulator's work included) or the
# seconds in the delivering statements (COL 8); "-" if the log does not
# reach TO.  Prints "rate messages seconds".
site_rate() {
	local log=$1 from=$2 to=$3 col=$4
	awk -v from="$from" -v to="$to" -v col="$col" '
		/^fleet: progress: / {
			d = $3; t = $col
			if (d <= from) { d0 = d; t0 = t }
			if (d >= to && !done) { d1 = d; t1 = t; done = 1 }
		}
		END {
			if (!done || t1 <= t0) { print "- - -"; exit }
			printf "%.0f %d %.1f\n", (d1 - d0) / (t1 - t0), d1 - d0, t1 - t0
		}' d0=0 t0=0 "$log"
}

# Run the simulator against database DB, output to LOG, its backend's
# private memory (RssAnon, kB) sampled into LOG.mem; with LIMIT > 0, stop it
# once it has delivered LIMIT messages
site_fleet() {
	local db=$1 log=$2 limit=$3 pid sampler fleet_pid rc=0 d
	: >"$log.mem"
	"$FLEET" --host "$BENCH" --port "$PORT" --user postgres --dbname "$db" \
		"${SITE_FLAGS[@]}" "${@:4}" >"$log" 2>&1 &
	fleet_pid=$!
	(
		pid=
		for _ in $(seq 200); do
			pid=$(psql -At -c "SELECT pid FROM pg_stat_activity
				WHERE application_name = 'fleet' AND datname = '$db'" 2>/dev/null || true)
			[ -n "$pid" ] && break
			sleep 0.1
		done
		[ -n "$pid" ] || exit 0
		anon=0
		while [ -r "/proc/$pid/status" ]; do
			while read -r k v _; do
				if [ "$k" = RssAnon: ] && ((v > anon)); then anon=$v; fi
			done <"/proc/$pid/status" 2>/dev/null || break
			echo "$anon" >"$log.mem"
			sleep 0.2
		done
	) &
	sampler=$!
	if [ "$limit" -gt 0 ]; then
		while kill -0 "$fleet_pid" 2>/dev/null; do
			d=$(sed -n 's/^fleet: progress: \([0-9]*\) .*/\1/p' "$log" | tail -n 1)
			if [ -n "$d" ] && [ "$d" -ge "$limit" ]; then
				kill "$fleet_pid" 2>/dev/null || true
				break
			fi
			sleep 0.2
		done
		wait "$fleet_pid" 2>/dev/null || true
	else
		wait "$fleet_pid" || rc=$?
	fi
	wait "$sampler" 2>/dev/null || true
	return $rc
}

# Sizes (bytes) of the extension's tables: "table heap indexes" lines
site_sizes() {
	psql -At -F ' ' -c "SELECT c.relname, pg_relation_size(c.oid) + pg_relation_size(c.oid, 'fsm')
			+ pg_relation_size(c.oid, 'vm') + coalesce(pg_total_relation_size(c.reltoastrelid), 0),
		pg_indexes_size(c.oid)
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = 'state_msg' AND c.relkind = 'r' ORDER BY c.relname"
}

# ---------------------------------------------------------------------------
# The stream into an empty database of the same cluster
# ---------------------------------------------------------------------------
LOG_EMPTY=$BENCH/site_empty.log
LOG_SITE=$BENCH/site.log
if [ "$SITE_EMPTY_MESSAGES" -gt 0 ]; then
	echo "== site: the stream into an empty database, its first $SITE_EMPTY_MESSAGES messages"
else
	echo "== site: the whole stream into an empty database"
fi
runuser -u postgres -- createdb -h "$BENCH" -p "$PORT" site_empty
runuser -u postgres -- "$PG_BIN/psql" -X -q -h "$BENCH" -p "$PORT" -d site_empty \
	-c "CREATE EXTENSION state_msg"
psql -c "CHECKPOINT"
site_fleet site_empty "$LOG_EMPTY" "$SITE_EMPTY_MESSAGES" || {
	echo "FAILED: the simulator into the empty database:" >&2
	tail -n 20 "$LOG_EMPTY" >&2
	exit 1
}
EMPTY_DELIVERED=$(sed -n 's/^fleet: progress: \([0-9]*\) .*/\1/p' "$LOG_EMPTY" | tail -n 1)
EMPTY_MEM=$(cat "$LOG_EMPTY.mem")
EMPTY_MEM=${EMPTY_MEM:-0}
[ "$SITE_EMPTY_MESSAGES" -gt 0 ] || tail -n 1 "$LOG_EMPTY"
echo "   $EMPTY_DELIVERED messages delivered"
runuser -u postgres -- dropdb -h "$BENCH" -p "$PORT" --force site_empty

# ---------------------------------------------------------------------------
# A month of state, then the Patch Tuesday on top of it
# ---------------------------------------------------------------------------
echo "== site: loading a month of state, $SITE_CLIENTS clients x 200 topics"
source "$(dirname "${BASH_SOURCE[0]}")/month_state.sh"
load_month_state "$SITE_CLIENTS"
echo "   loaded in $MONTH_LOAD s; rebuild_state_counts() $MONTH_REBUILD s ($MONTH_KEYS keys); vacuum analyze $MONTH_VACUUM s"
site_t1=$EPOCHREALTIME
SIZES_BEFORE=$(site_sizes)
LSN_BEFORE=$(psql -At -c "SELECT pg_current_wal_lsn()")

echo "== site: the Patch Tuesday, ${SITE_FLAGS[*]}"
site_fleet bench "$LOG_SITE" 0 --preloaded || {
	echo "FAILED: the simulator's verdict on the database:" >&2
	grep -v '^fleet: progress: ' "$LOG_SITE" | tail -n 20 >&2
	exit 1
}
site_t2=$EPOCHREALTIME
WAL=$(psql -At -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$LSN_BEFORE')")
SIZES_AFTER=$(site_sizes)
SITE_MEM=$(cat "$LOG_SITE.mem")
SITE_MEM=${SITE_MEM:-0}
grep -v '^fleet: progress: ' "$LOG_SITE" | sed 's/^/   /'
# the simulator's summary: delivered messages and its seconds
read -r DELIVERED INGEST_SECS < <(sed -n 's/^fleet: patch-tuesday, .*: [0-9]* messages generated, \([0-9]*\) delivered .*; \([0-9.]*\) s, .*/\1 \2/p' "$LOG_SITE")
MPM=$(awk -v d="$DELIVERED" 'BEGIN { print d / 1e6 }')	# millions of messages

# ---------------------------------------------------------------------------
# Monitoring views and queries at this size
# ---------------------------------------------------------------------------
# Median time (ms, psql's \timing) of a query, SITE_REPEAT runs after one
# warm-up, in one session
site_time() {
	local sql=$1 script i
	script="SET search_path = state_msg, public;"$'\n'"$sql \\g /dev/null"$'\n'"\\timing on"
	for ((i = 0; i < SITE_REPEAT; i++)); do
		script+=$'\n'"$sql \\g /dev/null"
	done
	# shellcheck disable=SC2046 # one word per time
	bench_median %.1f $(printf '%s\n' "$script" | psql -At -f - |
		sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')
}
ONE_CLIENT=$(printf 'GUID:%08X-F1EE-4000-8000-%012X' "$SITE_SEED" 7)
VIEW_QUERIES=(
	"sr_clientmessagestats (every row)|SELECT * FROM state_msg.sr_clientmessagestats"
	"resync_outstanding|SELECT * FROM state_msg.resync_outstanding"
	"resync_reissue_due|SELECT * FROM state_msg.resync_reissue_due"
	"resync_candidates|SELECT * FROM state_msg.resync_candidates"
	"topic_state_summary|SELECT * FROM state_msg.topic_state_summary"
	"update_compliance|SELECT * FROM state_msg.update_compliance"
	"client_compliance, one client|SELECT * FROM state_msg.client_compliance WHERE client_id = '$ONE_CLIENT'"
	"monitoring query 1 (domain.md 5)|select count(*) from SR_ClientMessageStats where LastResyncIssuedTime is not null and (LastResyncIssuedTime > LastResyncClientCompletedTime)"
	"monitoring query 2 (domain.md 5)|select count(*) from SR_ClientMessageStats where LastResyncIssuedTime is not null and LastResyncClientCompletedTime is null"
)
echo "== site: monitoring views and queries (median of $SITE_REPEAT runs)"
VIEW_TIMES=()
for vq in "${VIEW_QUERIES[@]}"; do
	IFS='|' read -r label sql <<<"$vq"
	rows=$(psql -At -c "SET search_path = state_msg, public; SELECT count(*) FROM ($sql) q")
	ms=$(site_time "$sql")
	VIEW_TIMES+=("$label|$rows|$ms")
done
# One check cycle at this size, as of now (days after the simulation: what
# is due is issued), rolled back
CHECK_MS=$( (for _ in 1 2 3; do
	printf '%s\n' "BEGIN;" "\\timing on" \
		"SELECT * FROM state_msg.run_resync_check(now()) \\g /dev/null" "\\timing off" "ROLLBACK;"
done) | psql -At -f - | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | sort -n | sed -n 2p)
STATS=$(psql -At -F ' ' -c "SELECT relname, n_live_tup, n_dead_tup, autovacuum_count,
		autoanalyze_count, n_tup_upd, n_tup_hot_upd
	FROM pg_stat_user_tables WHERE schemaname = 'state_msg' ORDER BY relname")
site_t3=$EPOCHREALTIME

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
FIRST=$SITE_EMPTY_MESSAGES
[ "$FIRST" -gt 0 ] || FIRST=$((SITE_LAST_MESSAGES * 2))
LAST_FROM=$((DELIVERED - SITE_LAST_MESSAGES))
for col in 6 8; do
	read -r "R_EMPTY_FIRST_$col" _ _ < <(site_rate "$LOG_EMPTY" 0 "$FIRST" $col)
	read -r "R_SITE_FIRST_$col" _ _ < <(site_rate "$LOG_SITE" 0 "$FIRST" $col)
	read -r "R_SITE_LAST_$col" _ _ < <(site_rate "$LOG_SITE" "$LAST_FROM" "$DELIVERED" $col)
	read -r "R_EMPTY_LAST_$col" _ _ < <(site_rate "$LOG_EMPTY" "$LAST_FROM" "$DELIVERED" $col)
done
pct() { if [ "$1" = - ] || [ "$2" = - ]; then echo -; else awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", 100 * a / b }'; fi; }
met() { if [ "$1" = - ]; then echo "not measured"; else awk -v v="$1" 'BEGIN { print (v >= 70 ? "met" : "NOT MET") }'; fi; }

echo
echo "Site-scale Patch Tuesday: $SITE_CLIENTS clients, $SITE_DAYS simulated days, seed $SITE_SEED,"
echo "on $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo "   month of state loaded: $SITE_CLIENTS other clients x 200 topics ($MONTH_LOAD s + rebuild $MONTH_REBUILD s + vacuum $MONTH_VACUUM s)"
printf '   stream: %d messages delivered (%.1f a client), simulator %s s, %.0f msg/s overall\n' \
	"$DELIVERED" "$(awk -v d="$DELIVERED" -v c="$SITE_CLIENTS" 'BEGIN { print d / c }')" \
	"$INGEST_SECS" "$(awk -v d="$DELIVERED" -v s="$INGEST_SECS" 'BEGIN { print d / s }')"
echo "   total: $(site_secs "$site_t0" "$site_t3") s (empty-database stream, load $(site_secs "$site_t0" "$site_t1") s;" \
	"Patch Tuesday with the simulator's check $(site_secs "$site_t1" "$site_t2") s; views $(site_secs "$site_t2" "$site_t3") s)"
echo "   one check cycle (run_resync_check(), rolled back; median of 3): $CHECK_MS ms for $(psql -At -c "SELECT count(*) FROM state_msg.clients") clients"
echo "   rates, msg/s: over the wall clock (check cycles, claims, the simulator's work included) | in the delivering statements"
rate_row() { printf '     %-52s %8s | %8s\n' "$@"; }
rate_row "first $FIRST messages, empty database" "$R_EMPTY_FIRST_6" "$R_EMPTY_FIRST_8"
rate_row "first $FIRST messages, on the month of state" "$R_SITE_FIRST_6" "$R_SITE_FIRST_8"
rate_row "  month of state / empty" "$(pct "$R_SITE_FIRST_6" "$R_EMPTY_FIRST_6")%" "$(pct "$R_SITE_FIRST_8" "$R_EMPTY_FIRST_8")%"
rate_row "last $SITE_LAST_MESSAGES messages, on the month of state" "$R_SITE_LAST_6" "$R_SITE_LAST_8"
rate_row "last $SITE_LAST_MESSAGES messages, empty database" "$R_EMPTY_LAST_6" "$R_EMPTY_LAST_8"
r6=$(pct "$R_SITE_LAST_6" "$R_EMPTY_LAST_6")
r8=$(pct "$R_SITE_LAST_8" "$R_EMPTY_LAST_8")
ratio_met() { if [ "$1" = - ]; then echo "not measured"; else echo "$1% $(met "$1")"; fi; }
rate_row "  month of state / empty (target >= 70%)" "$(ratio_met "$r6")" "$(ratio_met "$r8")"
[ "$R_EMPTY_LAST_6" != - ] ||
	echo "     (the empty database got the first $FIRST messages only: SITE_EMPTY_MESSAGES=0 sends it the whole stream)"
r8=$(pct "$R_SITE_LAST_8" "$R_EMPTY_FIRST_8")
echo "     last $SITE_LAST_MESSAGES on the month of state / first $FIRST into empty, in statements: $r8%"
echo "       (different parts of the stream: the peak's large statements against the tail's small ones)"
printf '   WAL: %s MB, %s MB per million messages\n' "$(mb "$WAL")" \
	"$(awk -v w="$WAL" -v m="$MPM" 'BEGIN { printf "%.1f", w / 1048576 / m }')"
echo "   sizes (MB): table before -> after (per million messages), indexes before -> after (per million)"
join <(echo "$SIZES_BEFORE" | sort) <(echo "$SIZES_AFTER" | sort) |
	awk -v m="$MPM" '{ printf "     %-22s %9.1f -> %9.1f (%+7.1f)   %9.1f -> %9.1f (%+7.1f)\n",
		$1, $2 / 1048576, $4 / 1048576, ($4 - $2) / 1048576 / m,
		$3 / 1048576, $5 / 1048576, ($5 - $3) / 1048576 / m }'
printf '   peak private memory (RssAnon) of the backend: %s MB on the month of state, %s MB into the empty database\n' \
	"$(mb $((SITE_MEM * 1024)))" "$(mb $((EMPTY_MEM * 1024)))"
echo "   afterwards (pg_stat_user_tables): table, live, dead tuples, autovacuums, autoanalyzes, updates, HOT updates"
echo "$STATS" | awk '{ printf "     %-22s %10s %9s %3s %3s %10s %10s\n", $1, $2, $3, $4, $5, $6, $7 }'
echo "   monitoring (ms, median of $SITE_REPEAT; target < 100 ms each):"
for line in "${VIEW_TIMES[@]}"; do
	IFS='|' read -r label rows ms <<<"$line"
	printf '     %-36s %9s ms  %8s rows  (%s)\n' "$label" "$ms" "$rows" \
		"$(awk -v v="$ms" 'BEGIN { print (v < 100 ? "met" : "NOT MET") }')"
done
