# Concurrent load: pgbench clients ingest messages for 20 shared "hot"
# clients at once, as multi-row batches (INSERT into the inbox), single
# ingest() calls and resent duplicates, while others run the resync check.
# Serials come from one sequence per hot client, so every serial is sent
# exactly once (plus the deliberate duplicates of serial 1), but batches
# reach a client's row lock in any order: serials arrive out of order, open
# gaps and fill them late.  Every message sent is also logged in table sent,
# in the same statement, so the final state is computable.  Asserts no
# errors and no deadlock, and that every client's state is exactly what its
# log gives.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $hot = 20;
my $clients = 4;
my $transactions = 2000;    # per pgbench client

my $node = PostgreSQL::Test::Cluster->new('load');
$node->init;
$node->append_conf('postgresql.conf', qq{
state_msg.min_missing_message_age = 0
deadlock_timeout = 10ms
});
$node->start;

$node->safe_psql(
	'postgres', qq{
	CREATE EXTENSION state_msg;
	CREATE TABLE sent (client int NOT NULL, serial bigint NOT NULL);
	SELECT format('CREATE SEQUENCE seq_%s', n) FROM generate_series(1, $hot) n \\gexec
	-- baselines: serial 1 for every hot client
	WITH m AS MATERIALIZED (
		SELECT n, nextval(format('seq_%s', n)::regclass) AS s
		FROM generate_series(1, $hot) n),
	log AS (INSERT INTO sent SELECT n, s FROM m)
	INSERT INTO state_msg.inbox
		(client_id, serial_number, topic_type, topic_id, state_id, message_time)
	SELECT 'hot-' || n, s, 100, 't' || (s % 3), s::int,
		   timestamptz '2024-01-01 00:00+00' + s * interval '1 second'
	FROM m;
});

# A message is a function of (client, serial): topic t<s % 3>, state s, and a
# message time that grows with the serial (so a late serial is never taken
# for a serial reset).
my $message = q{'hot-' || n, s, 100, 't' || (s % 3), s::int,
	timestamptz '2024-01-01 00:00+00' + s * interval '1 second'};

my %scripts = (
	# four messages for random hot clients in one batch
	'001_batch@6' => qq{
\\set a random(1, $hot)
\\set b random(1, $hot)
\\set c random(1, $hot)
\\set d random(1, $hot)
WITH m AS MATERIALIZED (
	SELECT n, nextval(format('seq_%s', n)::regclass) AS s
	FROM unnest(ARRAY[:a, :b, :c, :d]::int[]) WITH ORDINALITY AS u(n, o)
	ORDER BY o),
log AS (INSERT INTO sent SELECT n, s FROM m)
INSERT INTO state_msg.inbox
	(client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT $message FROM m;
},
	# one message through ingest()
	'002_single@3' => qq{
\\set a random(1, $hot)
WITH m AS MATERIALIZED (
	SELECT :a::int AS n, nextval(format('seq_%s', :a)::regclass) AS s),
log AS (INSERT INTO sent SELECT n, s FROM m)
SELECT state_msg.ingest($message) FROM m;
},
	# serial 1 again, exactly as first sent: a duplicate
	'003_duplicate@1' => qq{
\\set a random(1, $hot)
WITH m AS MATERIALIZED (SELECT :a::int AS n, 1::bigint AS s),
log AS (INSERT INTO sent SELECT n, s FROM m)
SELECT state_msg.ingest($message) FROM m;
},
	# the resync check cycle, locking every client with a due gap
	'004_resync_check@1' => q{
SELECT * FROM state_msg.run_resync_check();
});

$node->pgbench(
	"--no-vacuum --client=$clients --jobs=$clients --transactions=$transactions",
	0,
	[
		qr{number of transactions actually processed: @{[$clients * $transactions]}/@{[$clients * $transactions]}},
		qr{number of failed transactions: 0 }
	],
	[qr{^$}],
	'pgbench: concurrent batches, ingest() calls and resync checks',
	\%scripts);

ok(!$node->log_contains('deadlock detected'), 'no deadlock in the server log');
ok(!$node->log_contains('ERROR'), 'no error in the server log');

my ($sent, $processed) = split /\|/, $node->safe_psql(
	'postgres', q{
	SELECT (SELECT count(*) FROM sent),
		   (SELECT sum(messages_processed) FROM state_msg.clients)});
cmp_ok($sent, '>', $clients * $transactions, 'messages were sent');
is($processed, $sent, 'every message sent was processed exactly once');

# Per client, from the log: every serial 1..max arrived (no hole), the next
# serial is max + 1 and matches the sequence, duplicates are the resent
# serials, every gap was filled late, no reset, no range left.
is( $node->safe_psql(
		'postgres', q{
		WITH s AS (
			SELECT client, count(*) AS msgs, count(DISTINCT serial) AS serials,
				   max(serial) AS max_serial
			FROM sent GROUP BY client)
		SELECT string_agg(coalesce(c.client_id, 'hot-' || s.client), ',')
		FROM state_msg.clients c
		FULL JOIN s ON c.client_id = 'hot-' || s.client
		WHERE c.client_id IS NULL OR s.client IS NULL
		   OR c.messages_processed <> s.msgs
		   OR s.serials <> s.max_serial
		   OR c.next_serial_number <> s.max_serial + 1
		   OR c.next_serial_number <> (SELECT q.last_value + 1 FROM pg_sequences q
									   WHERE q.sequencename = 'seq_' || s.client)
		   OR c.duplicates <> s.msgs - s.serials
		   OR c.missing_serials <> c.late_fills
		   OR c.serial_resets <> 0 OR c.serial_epoch <> 0
		   OR c.unserialized_messages <> 0}),
	'',
	'every client: counters and next serial match its log');
is($node->safe_psql('postgres', 'SELECT count(*) FROM state_msg.missing_ranges'),
	'0', 'every gap was filled');
is($node->safe_psql('postgres', 'SELECT count(*) FROM state_msg.rejected_messages'),
	'0', 'nothing rejected');

# Current state: per (client, topic) the highest serial sent
is( $node->safe_psql(
		'postgres', q{
		WITH e AS (
			SELECT DISTINCT ON (client, serial % 3)
				   'hot-' || client AS client_id, 't' || (serial % 3) AS topic_id, serial
			FROM sent ORDER BY client, serial % 3, serial DESC)
		SELECT count(*) FROM e
		FULL JOIN state_msg.client_state cs USING (client_id, topic_id)
		WHERE cs.serial_number IS DISTINCT FROM e.serial
		   OR cs.state_id IS DISTINCT FROM e.serial::int
		   OR cs.serial_epoch <> 0}),
	'0',
	'client_state holds the newest serial of every topic');

# The resync check issued at most one request per client (none is due for
# reissue within min_resync_period), and the counters agree with the rows.
is( $node->safe_psql(
		'postgres', q{
		SELECT count(*) FROM state_msg.clients c
		WHERE c.resync_requests_issued <> (SELECT count(*) FROM state_msg.resync_requests r
										   WHERE r.client_id = c.client_id)
		   OR c.resync_requests_issued > 1
		   OR (c.resync_requests_issued = 1) <> (c.last_resync_issued_time IS NOT NULL)}),
	'0',
	'resync requests consistent with the clients');
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FROM state_msg.resync_requests WHERE reason <> 'missing'}),
	'0',
	'only gap requests were issued');

note($node->safe_psql(
		'postgres', q{
		SELECT format('%s messages, %s late fills, %s duplicates, %s requests',
					  sum(messages_processed), sum(late_fills), sum(duplicates),
					  sum(resync_requests_issued))
		FROM state_msg.clients}));

$node->stop;
done_testing();
