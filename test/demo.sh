#!/usr/bin/env bash
# The demo: builds and installs state_msg, starts a throwaway cluster,
# ingests a realistic burst of client uploads (some lost, some late, a
# reinstalled client, relayed and bad messages), runs the resync check,
# answers the resyncs as clients would, and prints the monitoring views;
# then the fleet simulator (test/fleet) runs a Patch Tuesday on a small fleet;
# then, queued: the cluster restarts with the background worker, a Patch
# Tuesday burst on 2,500 clients (test/demo_queued.sql) piles up and drains,
# and gnuplot draws state_msg.backlog_history (test/plot_backlog.gp) into
# backlog_drain.png in the work directory, which the demo names at its end.
# Run as root on Debian 12; installs what it needs; leaves nothing running.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

DATA="$WORK/demo_data"
PORT=${PORT:-54329}
runuser -u postgres -- initdb -D "$DATA" -A trust -U postgres >/dev/null
trap 'runuser -u postgres -- pg_ctl -D "$DATA" -m fast stop >/dev/null 2>&1 || true' EXIT
runuser -u postgres -- pg_ctl -D "$DATA" -l "$WORK/demo.log" -w \
	-o "-p $PORT -k $WORK -c listen_addresses=''" start >/dev/null

echo "== demo cluster on port $PORT (socket in $WORK)"
runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" \
	-d postgres -f "$WORK/test/demo.sql"

echo "== the fleet simulator (test/fleet): a Patch Tuesday for 500 clients over three simulated days"
runuser -u postgres -- make -s -C "$WORK/test/fleet" PG_CONFIG="$PG_BIN/pg_config"
runuser -u postgres -- psql -X -q -h "$WORK" -p "$PORT" -d postgres \
	-c 'CREATE DATABASE fleet' -c '\c fleet' -c 'CREATE EXTENSION state_msg'
runuser -u postgres -- "$WORK/test/fleet/fleet" --dbname fleet --host "$WORK" --port "$PORT" \
	--scenario patch-tuesday --clients 500 --days 3 --batch cycle --check-every 4

echo "== queued processing: a Patch Tuesday burst on 2,500 clients, drained by the background worker"
# The same cluster again, with the library preloaded (the worker), a nap of
# a second, and a database "site" in queued mode; the worker serves it once
# test/demo_queued.sql names it in state_msg.databases.  Small batches and a
# tight fsp throttle make the drain last a minute or two, so that it can be
# watched.
runuser -u postgres -- pg_ctl -D "$DATA" -m fast -w stop >/dev/null
runuser -u postgres -- pg_ctl -D "$DATA" -l "$WORK/demo.log" -w \
	-o "-p $PORT -k $WORK -c listen_addresses='' -c shared_preload_libraries=state_msg -c state_msg.worker_naptime=1s" \
	start >/dev/null
runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -d postgres \
	-c 'CREATE DATABASE site' \
	-c 'ALTER DATABASE site SET state_msg.processing = queued' \
	-c 'ALTER DATABASE site SET state_msg.queue_batch_size = 50' \
	-c 'ALTER DATABASE site SET state_msg.fsp_throttle_messages = 400' \
	-c "ALTER DATABASE site SET state_msg.fsp_throttle_interval = '10s'" \
	-c '\c site' -c 'CREATE EXTENSION state_msg'
runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -d site \
	-v clients=2500 -f "$WORK/test/demo_queued.sql" 2>&1 | sed 's/^psql:[^ ]* NOTICE:  /   /'

# The picture: backlog_history, one line per sample, drawn by gnuplot
runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -d site -At -F $'\t' -c "
SELECT round(extract(epoch FROM sampled_at)::numeric, 3),
	   sum(waiting) FILTER (WHERE queue = 'high'), sum(waiting) FILTER (WHERE queue = 'low'),
	   sum(waiting) FILTER (WHERE queue = 'fsp'),
	   COALESCE(extract(epoch FROM max(drain_eta) FILTER (WHERE queue = 'high'))::text, 'NaN'),
	   COALESCE(extract(epoch FROM max(drain_eta) FILTER (WHERE queue = 'low'))::text, 'NaN'),
	   COALESCE(extract(epoch FROM max(drain_eta) FILTER (WHERE queue = 'fsp'))::text, 'NaN')
FROM state_msg.backlog_history GROUP BY sampled_at ORDER BY sampled_at" >"$WORK/backlog_history.tsv"
start=$(runuser -u postgres -- psql -X -q -h "$WORK" -p "$PORT" -d site -At \
	-c 'SELECT extract(epoch FROM at) FROM demo.worker_start')
gnuplot -e "data='$WORK/backlog_history.tsv'; out='$WORK/backlog_drain.png'; start=$start" \
	"$WORK/test/plot_backlog.gp"
echo
echo "== the backlog as it built and drained (state_msg.backlog_history, drawn by gnuplot):"
echo "   $WORK/backlog_drain.png"
