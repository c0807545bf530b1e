# A throwaway cluster for the benchmarks, sourced (after test/setup.sh) by
# run.sh and by summaries.sh when it runs alone.  Uses PORT; sets BENCH (a
# postgres-owned tmp dir: the server refuses root), PGDATA, a psql() on the
# database "bench", and an EXIT trap that stops the cluster and removes it
# and the build copy.  Unix socket only, so the port cannot clash with
# other clusters' TCP ports.
BENCH=$(mktemp -d /tmp/state_msg_bench.XXXXXX)
chown postgres: "$BENCH"
PGDATA=$BENCH/data

cleanup() {
	runuser -u postgres -- pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
	rm -rf "$BENCH" "$WORK"
}
trap cleanup EXIT

echo "== starting a throwaway cluster in $PGDATA"
runuser -u postgres -- initdb -D "$PGDATA" -A trust -U postgres --no-instructions >/dev/null
cat >>"$PGDATA/postgresql.conf" <<EOF
listen_addresses = ''
port = $PORT
unix_socket_directories = '$BENCH'
shared_buffers = 1GB
max_wal_size = 8GB
checkpoint_timeout = 30min
EOF
runuser -u postgres -- pg_ctl -D "$PGDATA" -l "$BENCH/server.log" -w start >/dev/null
runuser -u postgres -- createdb -h "$BENCH" -p "$PORT" bench

# Notices (DROP ... IF EXISTS) are noise here; warnings and errors are not
export PGOPTIONS="-c client_min_messages=warning"
psql() {
	runuser -u postgres -- "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
		-h "$BENCH" -p "$PORT" -d bench "$@"
}

# The median of the numbers given after the printf format (e.g. %.3f)
bench_median() {
	local format=$1
	shift
	printf '%s\n' "$@" | sort -n | awk -v f="$format" '{ t[NR] = $1 }
		END { printf f, NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2 }'
}
