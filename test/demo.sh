#!/usr/bin/env bash
# The demo: builds and installs state_msg, starts a throwaway cluster,
# ingests a realistic burst of client uploads (some lost, some late, a
# reinstalled client, relayed and bad messages), runs the resync check,
# answers the resyncs as clients would, and prints the monitoring views.
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
