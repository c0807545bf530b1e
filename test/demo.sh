#!/usr/bin/env bash
# The demo: builds and installs state_msg, starts a throwaway cluster,
# ingests a realistic burst of client uploads (some lost, some late, a
# reinstalled client, relayed and bad messages), runs the resync check,
# answers the resyncs as clients would, and prints the monitoring views;
# then the fleet simulator (test/fleet) runs a Patch Tuesday on a small fleet.
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
