#!/usr/bin/env bash
# Resync that never storms (issue 9, part 3), shown with the fleet simulator
# on a throwaway cluster of its own (run as root; builds without assertions,
# as run.sh does): the resync-storm and site-restore scenarios under queued
# processing, drained at STORM_DRAIN messages per simulated 15-minute cycle,
# each with state_msg.backlog_aware_resync off and on, on the same seed.
# Prints one table: requests issued and reissued by the check cycles, the
# requests held back, resync answers and messages processed, the peak
# backlog (and how many days of draining it is), and the time to
# consistency (README, Fleet simulator, Queued processing).
#
#   storm.sh, or run.sh --storm   (about 17 minutes here, the four runs at once)
#
# Environment: STORM_CLIENTS (1000), STORM_DAYS (24), STORM_DRAIN (100),
# STORM_SEED (1), STORM_JOBS (runs at once, 4), BENCH_PORT (5497),
# STORM_KEEP (a directory to keep each run's output and per-cycle CSV in).
set -euo pipefail

STORM_CLIENTS=${STORM_CLIENTS:-1000}
STORM_DAYS=${STORM_DAYS:-24}
STORM_DRAIN=${STORM_DRAIN:-100}
STORM_SEED=${STORM_SEED:-1}
STORM_JOBS=${STORM_JOBS:-4}

STATE_MSG_ASSERTS=0 source "$(dirname "${BASH_SOURCE[0]}")/../setup.sh"
PORT=${BENCH_PORT:-5497}
source "$(dirname "${BASH_SOURCE[0]}")/cluster.sh"

echo "== building the fleet simulator"
make -s -C "$WORK/test/fleet" PG_CONFIG="$PG_BIN/pg_config"
FLEET=$WORK/test/fleet/fleet

psql -c "CREATE DATABASE storm_template"
psql -d storm_template -c "CREATE EXTENSION state_msg"

# The fleet: a Patch Tuesday of 40 updates on the first day (detections
# only: every client's cache then holds about 52 topics, so a resync answer
# is about 52 messages), 4 everyday messages per client and day, 90 % of the
# clients in the storm; no random loss, lateness, doubling or reinstall (so
# that the database can match the clients again), 2 % of the clients never
# answer; one statement per upload, as management points send them;
# queued processing, drained by the simulator between cycles
COMMON=(--clients "$STORM_CLIENTS" --days "$STORM_DAYS" --seed "$STORM_SEED"
	--updates 40 --required 0 --rate 4 --storm 0.9
	--loss 0 --late 0 --duplicate 0 --reinstall 0
	--batch upload --processing queued --drain "$STORM_DRAIN")
echo "== fleet: ${COMMON[*]}"

OUT=$BENCH/out
mkdir -p "$OUT"
chown postgres: "$OUT"
run_one() {
	local scenario=$1 setting=$2 db=storm_${1//-/_}_$2
	psql -c "CREATE DATABASE $db TEMPLATE storm_template"
	"$FLEET" --dbname "$db" --host "$BENCH" --port "$PORT" --user postgres \
		--scenario "$scenario" --backlog-aware "$setting" "${COMMON[@]}" \
		--cycle-log "$OUT/$scenario-$setting.csv" \
		>"$OUT/$scenario-$setting.out" 2>&1 || true
	psql -c "DROP DATABASE $db"
}

start=$(date +%s)
pids=()
for scenario in resync-storm site-restore; do
	for setting in off on; do
		run_one "$scenario" "$setting" &
		pids+=($!)
		if [ ${#pids[@]} -ge "$STORM_JOBS" ]; then
			wait "${pids[0]}"
			pids=("${pids[@]:1}")
		fi
	done
done
wait
echo "== four runs in $(( $(date +%s) - start )) s"

status=0
printf '\n| scenario | backlog_aware_resync | requests issued | reissued | held back | answers processed | messages processed | peak backlog | time to consistency |\n'
printf '|---|---|--:|--:|--:|--:|--:|--:|--:|\n'
for scenario in resync-storm site-restore; do
	for setting in off on; do
		f=$OUT/$scenario-$setting.out
		if ! tail -n 1 "$f" | grep -q '^fleet: OK '; then
			echo "$scenario, $setting: the simulator's verdict is not OK:" >&2
			grep -E '^fleet: (difference|FAIL)' "$f" | head -5 >&2 || tail -n 3 "$f" >&2
			status=1
		fi
		grep '^fleet: backlog: ' "$f" | sed -E 's/.*: ([0-9]+) requests issued, ([0-9]+) reissued, ([0-9]+) held back.*; ([0-9]+) resync answers processed, ([0-9]+) messages processed; peak backlog ([0-9]+) at [^;]*; time to consistency (.*)$/\1 \2 \3 \4 \5 \6 \7/' |
			awk -v sc="$scenario" -v st="$setting" -v drain="$STORM_DRAIN" '{
			ttc = $7 == "none" ? "not reached" : $7 " " $8
			printf "| %s | %s | %d | %d | %d | %d | %d | %d (%.1f days of draining) | %s |\n",
				sc, st, $1, $2, $3, $4, $5, $6, $6 / drain / 96, ttc
		}' || true
	done
done
if [ -n "${STORM_KEEP:-}" ]; then
	mkdir -p "$STORM_KEEP"
	cp "$OUT"/* "$STORM_KEEP"/
	echo "(each run's output and per-cycle CSV in $STORM_KEEP)"
fi
exit $status
