#!/usr/bin/env bash
# SERIALIZABLE with disjoint clients: how many batches fail with 40001.
#
#   ssi.sh
#
# Six pgbench sessions (-c 6) ingest batches under
# default_transaction_isolation = serializable, each session on a set of
# state_msg clients of its own: no two sessions ever send messages of the
# same client, so every serialization failure is a false conflict of the
# engine's reads (SIREAD locks), not a real one.  Every batch is one
# multi-row INSERT into state_msg.inbox of 10 to 50 messages for 5 to 10 of
# the session's clients; now and then a message is held back and sent late
# (a gap, then a late fill), a pair of relayed messages (no serial) makes
# the batch read the client's stored state, a client restarts its serials
# (a reset issues a resync request) and a resync answer completes it.  The
# batches are generated once (seeded, so every run sends the same ones) into
# a table the sessions only read.  pgbench retries a failed batch
# (--max-tries), so the stream stays whole; it prints the batches retried
# (those whose first try failed) and the retries.  The server log then says
# which of the engine's statements raised the failures.
#
# Run as root on Debian 12.  By default setup.sh builds and installs the
# checkout (into the system PostgreSQL, holding the install lock for the
# run, or into STATE_MSG_PG_ROOT's copy); with SSI_PG_BIN set, the extension
# already installed in that installation is measured as it is (no build, no
# lock), to compare builds.  Environment:
#   SSI_PG_BIN       bin directory of an installation to use as it is
#   SSI_PORT         port (5496)
#   SSI_SESSIONS     pgbench sessions (6)
#   SSI_BATCHES      batches per session (300: 1,800 in all)
#   SSI_CLIENTS      state_msg clients per session (40)
#   SSI_BACKGROUND   other clients ingested before the run, 20 topics each,
#                    so that the tables are large (0)
#   SSI_EXISTING     if 1, the sessions' clients exist before the run (one
#                    relayed message each), so that no batch creates one (0)
#   SSI_SEED         seed of the generated stream (1)
#   SSI_LATE         % of messages held back and sent late, in the client's
#                    next turn (1: a gap, then a late fill)
#   SSI_RELAYED      % of a client's turns in a batch that carry two relayed
#                    messages of one topic (1)
#   SSI_RESETS       % of a client's turns that restart its serials (0.2)
#   SSI_SERVER_CONF  lines added to postgresql.conf (e.g.
#                    "max_pred_locks_per_page = 32")
#   SSI_KEEP         if set, leave the cluster running afterwards, to look into
set -euo pipefail

if [ -n "${SSI_PG_BIN:-}" ]; then
	PG_BIN=$SSI_PG_BIN
	export PATH="$PG_BIN:$PATH"
	BUILT="as installed in $PG_BIN"
else
	STATE_MSG_ASSERTS=0 source "$(dirname "$0")/../setup.sh"
	BUILT=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
fi
PORT=${SSI_PORT:-5496}
SESSIONS=${SSI_SESSIONS:-6}
BATCHES=${SSI_BATCHES:-300}
CLIENTS=${SSI_CLIENTS:-40}
BACKGROUND=${SSI_BACKGROUND:-0}
EXISTING=${SSI_EXISTING:-0}
SEED=${SSI_SEED:-1}
LATE=${SSI_LATE:-1}
RELAYED=${SSI_RELAYED:-1}
RESETS=${SSI_RESETS:-0.2}

DIR=$(mktemp -d /tmp/state_msg_ssi.XXXXXX)
chown postgres: "$DIR"
PGDATA=$DIR/data
cleanup() {
	if [ -n "${SSI_KEEP:-}" ]; then
		echo "== left running: psql -h $DIR -p $PORT -d bench (stop: pg_ctl -D $PGDATA stop)"
		return
	fi
	runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop \
		>/dev/null 2>&1 || true
	rm -rf "$DIR"
	[ -z "${WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

echo "== state_msg $BUILT: a throwaway cluster in $PGDATA"
runuser -u postgres -- "$PG_BIN/initdb" -D "$PGDATA" -A trust -U postgres \
	--no-instructions >/dev/null
cat >>"$PGDATA/postgresql.conf" <<EOF
listen_addresses = ''
port = $PORT
unix_socket_directories = '$DIR'
log_line_prefix = '%m [%p] '
log_min_messages = warning
${SSI_SERVER_CONF:-}
EOF
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$DIR/server.log" -w \
	start >/dev/null
runuser -u postgres -- "$PG_BIN/createdb" -h "$DIR" -p "$PORT" bench

export PGOPTIONS="-c client_min_messages=warning"
psql() {
	runuser -u postgres -- "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
		-h "$DIR" -p "$PORT" -d bench "$@"
}

# The stream: one row per message, by (session, batch, arrival).  Client
# ids are random GUIDs, so the sessions' clients interleave in every index,
# as real clients do.
echo "== generating $SESSIONS x $BATCHES batches ($CLIENTS clients per session, seed $SEED;" \
	"late $LATE%, relayed $RELAYED%, resets $RESETS%)"
perl - "$SESSIONS" "$BATCHES" "$CLIENTS" "$SEED" "$LATE" "$RELAYED" "$RESETS" \
	>"$DIR/stream.tsv" <<'EOF'
use strict;
use warnings;
my ($sessions, $batches, $clients, $seed, $late, $relayed, $resets) = @ARGV;
srand($seed);
my $base = 1735689600;			# 2025-01-01 00:00:00 UTC
sub guid
{
	my $h = join('', map { sprintf('%04X', int(rand(65536))) } 1 .. 8);
	return 'GUID:' . join('-', substr($h, 0, 8), substr($h, 8, 4),
		substr($h, 12, 4), substr($h, 16, 4), substr($h, 20, 12));
}
my @topics = map { guid() =~ s/^GUID://r } 1 .. 50;
for my $s (0 .. $sessions - 1)
{
	my @c = map { { id => guid(), next => 1, minute => 0, held => [],
					open_reset => 0 } } 1 .. $clients;
	for my $batch (0 .. $batches - 1)
	{
		my $m = 5 + int(rand(6));			# 5 to 10 clients
		my $n = 10 + int(rand(41));			# 10 to 50 messages
		my %pick;
		$pick{int(rand($clients))} = 1 while keys %pick < $m;
		my @pick = sort { $a <=> $b } keys %pick;
		my @count = (1) x $m;
		$count[int(rand($m))]++ for 1 .. $n - $m;
		my $ord = 0;
		for my $k (0 .. $m - 1)
		{
			my $cl = $c[$pick[$k]];
			my @out = @{ $cl->{held} };		# late fills first
			$cl->{held} = [];
			if (rand() < $resets / 100)
			{
				# reinstalled: serials restart (a reset, a resync request)
				$cl->{next} = 1;
				$cl->{open_reset} = 1;
			}
			for (1 .. $count[$k])
			{
				my $msg = [ $cl->{next}++, 500, $topics[int(rand(20))],
							1 + int(rand(3)), $base + 60 * ++$cl->{minute},
							'mp' ];
				if (rand() < $late / 100)
				{
					push @{ $cl->{held} }, $msg;	# sent next time: a gap now
				}
				else
				{
					push @out, $msg;
				}
			}
			if ($cl->{open_reset} && rand() < 0.2)
			{
				# the resync answer: 700/2 completes the reset's request
				push @out, [ $cl->{next}++, 700, 'resync', 2,
							 $base + 60 * ++$cl->{minute}, 'mp' ];
				$cl->{open_reset} = 0;
			}
			if (rand() < $relayed / 100)
			{
				# two relayed messages of one topic: the stored state is read
				for (1 .. 2)
				{
					push @out, [ '\N', 800, 'deployment', 400,
								 $base + 60 * ++$cl->{minute}, 'fsp' ];
				}
			}
			for my $msg (@out)
			{
				print join("\t", $s, $batch, $ord++, $cl->{id}, @$msg), "\n";
			}
		}
	}
}
EOF

psql <<EOF
CREATE EXTENSION state_msg;
CREATE SCHEMA ssi;
CREATE TABLE ssi.stream (session int, batch int, ord int, client_id text,
	serial_number bigint, topic_type int, topic_id text, state_id int,
	epoch bigint, source text);
\copy ssi.stream FROM '$DIR/stream.tsv'
CREATE INDEX ON ssi.stream (session, batch);
ANALYZE ssi.stream;
EOF
echo "   $(psql -At -c "SELECT count(*) || ' messages, ' ||
	count(DISTINCT client_id) || ' clients' FROM ssi.stream")"

if [ "$BACKGROUND" -gt 0 ]; then
	echo "== ingesting $BACKGROUND other clients, 20 topics each"
	psql <<EOF
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time)
SELECT 'GUID:' || upper(md5('background' || c)::uuid::text), t, 500,
	upper(md5('topic' || t)::uuid::text), 1,
	'2025-01-01 00:00:00+00'::timestamptz + t * interval '1 minute'
FROM generate_series(1, $BACKGROUND) c, generate_series(1, 20) t;
VACUUM ANALYZE;
EOF
fi

if [ "$EXISTING" = 1 ]; then
	echo "== creating the sessions' clients: one relayed message each"
	psql <<EOF
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time, source)
SELECT DISTINCT client_id, NULL::bigint, 800, 'deployment', 100,
	'2025-01-01 00:00:00+00'::timestamptz, 'fsp'
FROM ssi.stream;
VACUUM ANALYZE;
EOF
fi

# Each session sends its own batches in order; a failed try is retried from
# the start of the script, so :batch only advances once the batch committed
cat >"$DIR/batch.sql" <<'EOF'
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time, source)
SELECT client_id, serial_number, topic_type, topic_id, state_id,
	pg_catalog.to_timestamp(epoch), source
FROM ssi.stream WHERE session = :client_id AND batch = :batch ORDER BY ord;
\set batch :batch + 1
EOF
chown postgres: "$DIR/batch.sql"

echo "== $SESSIONS sessions x $BATCHES batches under SERIALIZABLE"
offset=$(stat -c %s "$DIR/server.log")
PGOPTIONS="$PGOPTIONS -c default_transaction_isolation=serializable" \
	runuser -u postgres -- "$PG_BIN/pgbench" -h "$DIR" -p "$PORT" -n \
	-c "$SESSIONS" -j "$SESSIONS" -t "$BATCHES" -D batch=0 \
	--max-tries=1000 -f "$DIR/batch.sql" bench >"$DIR/pgbench.out" 2>&1 || {
	cat "$DIR/pgbench.out"
	exit 1
}
grep -E 'actually processed|failed transactions|retried|total number of retries|^tps' \
	"$DIR/pgbench.out" | sed 's/^/   /'

# Which statement of the engine raised each failure (the CONTEXT line the
# server logs under it), and why
echo "== serialization failures by statement of the engine"
tail -c +$((offset + 1)) "$DIR/server.log" | awk '
	/ERROR:  could not serialize/ { pending = 1; next }
	pending && /DETAIL:/ {
		sub(/.*Reason code: +/, ""); gsub(/[0-9]+/, "N"); reason = $0; next }
	pending && /CONTEXT:/ {
		sub(/.*CONTEXT: +SQL statement "/, ""); stmt = substr($0, 1, 60)
		count[stmt " | " reason]++; pending = 0; next }
	pending && /STATEMENT:/ {
		count["(the INSERT itself, or its commit) | " reason]++; pending = 0 }
	END { for (k in count) printf "   %5d  %s\n", count[k], k }' | sort -rn

retried=$(awk '/number of transactions retried/ { print $5 }' "$DIR/pgbench.out")
retried=${retried:-0}
total=$((SESSIONS * BATCHES))
echo "== $retried of $total batches failed at least once with 40001 ($(awk \
	-v r="$retried" -v t="$total" 'BEGIN { printf "%.2f", 100 * r / t }')%)"

# Every batch committed once: every message was processed once
check=$(psql -At -c "WITH sent AS (SELECT count(*) + 20 * $BACKGROUND
		+ CASE WHEN $EXISTING = 1 THEN count(DISTINCT client_id) ELSE 0 END AS n
		FROM ssi.stream)
	SELECT CASE WHEN sum(messages_processed) = (SELECT n FROM sent)
	THEN 'every message processed once'
	ELSE 'FAILED: ' || sum(messages_processed) || ' messages processed, '
		|| (SELECT n FROM sent) || ' sent' END
	FROM state_msg.clients")
echo "   $check"
[[ $check != FAILED* ]]
