# Crash recovery: committed batches survive an immediate shutdown (crash)
# exactly, uncommitted ones leave nothing, whether the transaction had
# finished its batch (and a checkpoint wrote its pages) or was in the middle
# of one; ingestion works after recovery, and a clean restart keeps the state.

use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use StateMsgTest;

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION state_msg');

my $timeout = IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default);

# A psql session in the background, fed from $io->{in}, its output in
# $io->{out} and $io->{err}
sub start_session
{
	my ($io) = @_;
	%$io = (in => '', out => '', err => '');
	return IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres') ],
		'<', \$io->{in}, '>', \$io->{out}, '2>', \$io->{err}, $timeout);
}

# Every missing range, as client:first-last in order
sub missing_ranges
{
	return $node->safe_psql(
		'postgres', q{
		SELECT string_agg(format('%s:%s-%s', client_id, first_serial, last_serial),
						  ',' ORDER BY client_id, first_serial)
		FROM state_msg.missing_ranges});
}

# Committed batch 1: clients crash-0..crash-9, serials 1..100 each, except
# crash-0's serial 50 (a gap); topic t<s % 5>, state_id = serial.
$node->safe_psql(
	'postgres', q{
	INSERT INTO state_msg.inbox
		(client_id, serial_number, topic_type, topic_id, state_id, message_time)
	SELECT 'crash-' || c, s, 100, 't' || (s % 5), s,
		   timestamptz '2024-01-01 00:00+00' + s * interval '1 minute'
	FROM generate_series(0, 9) c, generate_series(1, 100) s
	WHERE NOT (c = 0 AND s = 50)
	ORDER BY c, s});

# Session A: a large batch for the same clients (50000 messages, two chunks,
# including a late fill and a resync complete for crash-0) plus 1000 new
# clients, processed but left uncommitted.
my %a;
my $ha = start_session(\%a);
$a{in} .= q{
BEGIN;
INSERT INTO state_msg.inbox
	(client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'crash-' || c, s, 100, 't' || (s % 5), s,
	   timestamptz '2024-01-01 00:00+00' + s * interval '1 minute'
FROM generate_series(0, 9) c, generate_series(101, 5100) s
UNION ALL
SELECT 'ghost-a-' || g, s, 100, 't', 1, timestamptz '2024-01-01 00:00+00'
FROM generate_series(1, 1000) g, generate_series(1, 5) s
UNION ALL
SELECT 'crash-0', 50, 100, 't0', 50, timestamptz '2024-01-01 00:50+00'
UNION ALL
SELECT 'crash-0', 5101, 700, 'resync', 2, timestamptz '2024-01-10 00:00+00';
SELECT count(*), max(next_serial_number), sum(messages_processed),
	   (SELECT count(*) FROM state_msg.missing_ranges)
FROM state_msg.clients;
\echo A_DONE
};
ok(pump_until($ha, $timeout, \$a{out}, qr/A_DONE/),
	'uncommitted batch A processed')
  or diag("psql A stderr: $a{err}");
like($a{out}, qr/^1010\|5102\|56001\|0$/m,
	'inside A: its clients, serials and the completed resync are there');
is($node->safe_psql('postgres', 'SELECT count(*) FROM state_msg.clients'),
	'10', 'batch A is not visible to others');

# Session B: a batch creating new clients a-ghost-b-* (which sort before
# crash-*) and then waiting inside its trigger for crash-5, locked by A.
my %b;
my $hb = start_session(\%b);
$b{in} .= q{
BEGIN;
INSERT INTO state_msg.inbox
	(client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'a-ghost-b-' || g, 1, 100, 't', 1, timestamptz '2024-01-01 00:00+00'
FROM generate_series(1, 500) g
UNION ALL
SELECT 'crash-5', 101, 100, 't1', 101, timestamptz '2024-01-01 01:41+00';
\echo B_DONE
};
$hb->pump_nb;
ok( $node->poll_query_until(
		'postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		WHERE wait_event_type = 'Lock' AND query LIKE '%a-ghost-b-%'}),
	'batch B waits for a client row locked by A');

# Write everything, uncommitted pages included, to disk
$node->safe_psql('postgres', 'CHECKPOINT');

# Committed batch 2, after the checkpoint: only the WAL has it.  Clients
# wal-1..wal-5, serials 1..20 except 7 and 8 (a gap [7,8]), topic w.
$node->safe_psql(
	'postgres', q{
	INSERT INTO state_msg.inbox
		(client_id, serial_number, topic_type, topic_id, state_id, message_time)
	SELECT 'wal-' || c, s, 200, 'w', s,
		   timestamptz '2024-02-01 00:00+00' + s * interval '1 minute'
	FROM generate_series(1, 5) c, generate_series(1, 20) s
	WHERE s NOT IN (7, 8)
	ORDER BY c, s});

my $before = dump_state($node, 'postgres');

# Crash
$node->stop('immediate');
for my $h ($ha, $hb)
{
	eval { $h->kill_kill; };
}
unlike($b{out}, qr/B_DONE/, 'batch B never finished');
$node->start;

is(dump_state($node, 'postgres'), $before, 'state after crash recovery is exactly the committed state');

is( $node->safe_psql(
		'postgres', q{
		SELECT count(*), sum(messages_processed), min(next_serial_number),
			   max(next_serial_number), sum(missing_serials), sum(late_fills),
			   sum(duplicates), sum(serial_resets), max(serial_epoch)
		FROM state_msg.clients WHERE client_id LIKE 'crash-%'}),
	'10|999|101|101|1|0|0|0|0',
	'batch 1 clients: counters and next serials intact');
is( $node->safe_psql(
		'postgres', q{
		SELECT count(*), sum(messages_processed), min(next_serial_number),
			   max(next_serial_number), sum(missing_serials)
		FROM state_msg.clients WHERE client_id LIKE 'wal-%'}),
	'5|90|21|21|10',
	'batch 2 (WAL only) clients replayed');
is(missing_ranges(),
	'crash-0:50-50,wal-1:7-8,wal-2:7-8,wal-3:7-8,wal-4:7-8,wal-5:7-8',
	'missing ranges intact');
is( $node->safe_psql(
		'postgres', q{
		SELECT count(*),
			   count(*) FILTER (WHERE serial_number = CASE topic_id
					WHEN 't0' THEN 100 WHEN 't1' THEN 96 WHEN 't2' THEN 97
					WHEN 't3' THEN 98 WHEN 't4' THEN 99 END
				  AND state_id = serial_number AND serial_epoch = 0)
		FROM state_msg.client_state WHERE client_id LIKE 'crash-%'}),
	'50|50',
	'batch 1 client_state: the newest serial of each topic');
is( $node->safe_psql(
		'postgres', q{
		SELECT count(*), min(serial_number), max(serial_number)
		FROM state_msg.client_state WHERE client_id LIKE 'wal-%'}),
	'5|20|20',
	'batch 2 client_state replayed');
is( $node->safe_psql(
		'postgres', q{
		SELECT (SELECT count(*) FROM state_msg.clients WHERE client_id LIKE '%ghost%')
			 + (SELECT count(*) FROM state_msg.client_state WHERE client_id LIKE '%ghost%')
			 + (SELECT count(*) FROM state_msg.missing_ranges WHERE client_id LIKE '%ghost%'),
			   (SELECT count(*) FROM state_msg.client_state WHERE serial_number > 100
					AND client_id LIKE 'crash-%'),
			   (SELECT count(*) FROM state_msg.resync_requests),
			   (SELECT count(*) FROM state_msg.rejected_messages)}),
	'0|0|0|0',
	'nothing of the uncommitted batches is visible');

# The indexes agree with the heaps
$node->safe_psql('postgres', 'CREATE EXTENSION amcheck');
is( $node->safe_psql(
		'postgres', q{
		SELECT count(*) > 0 AND count(*) = (
				SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
				JOIN pg_class ic ON ic.oid = i.indexrelid
				WHERE c.relnamespace = 'state_msg'::regnamespace
				  AND ic.relkind = 'i')	-- not the queue's partitioned index
		FROM (
			SELECT bt_index_check(i.indexrelid, true)
			FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
			JOIN pg_class ic ON ic.oid = i.indexrelid
			JOIN pg_am am ON am.oid = ic.relam AND am.amname = 'btree'
			WHERE c.relnamespace = 'state_msg'::regnamespace
			  AND ic.relkind = 'i') x}),
	't',
	'amcheck: every state_msg index is consistent with its table');

# Ingestion after recovery
is( $node->safe_psql(
		'postgres', q{
		SELECT state_msg.ingest('crash-0', 101, 100, 't1', 101, '2024-01-01 01:41+00')
		UNION ALL
		SELECT state_msg.ingest('crash-0', 50, 100, 't0', 50, '2024-01-01 00:50+00')
		UNION ALL
		SELECT state_msg.ingest('crash-1', 100, 100, 't0', 100, '2024-01-01 01:40+00')
		UNION ALL
		SELECT state_msg.ingest('after-crash', 1, 100, 't', 1, '2024-03-01 00:00+00')
		UNION ALL
		SELECT state_msg.ingest('wal-1', 8, 200, 'w', 8, '2024-02-01 00:08+00')}),
	"in_order\nlate_fill\nduplicate\nin_order\nlate_fill",
	'ingest() verdicts after recovery');
$node->safe_psql(
	'postgres', q{
	INSERT INTO state_msg.inbox
		(client_id, serial_number, topic_type, topic_id, state_id, message_time)
	SELECT 'crash-' || c, s, 100, 't' || (s % 5), s,
		   timestamptz '2024-01-01 00:00+00' + s * interval '1 minute'
	FROM generate_series(1, 9) c, generate_series(101, 110) s
	ORDER BY c, s});
is( $node->safe_psql(
		'postgres', q{
		SELECT string_agg(format('%s:%s:%s:%s:%s', client_id, next_serial_number,
								 messages_processed, late_fills, duplicates),
						  ',' ORDER BY client_id)
		FROM state_msg.clients
		WHERE client_id IN ('crash-0', 'crash-1', 'crash-9', 'after-crash', 'wal-1')}),
	'after-crash:2:1:0:0,crash-0:102:101:1:0,crash-1:111:111:0:1,crash-9:111:110:0:0,wal-1:21:19:1:0',
	'next serials and counters after recovery');
is(missing_ranges(),
	'wal-1:7-7,wal-2:7-8,wal-3:7-8,wal-4:7-8,wal-5:7-8',
	'late fills after recovery shrink the ranges');

# A clean restart keeps the state
$before = dump_state($node, 'postgres');
$node->restart;
is(dump_state($node, 'postgres'), $before, 'clean restart keeps the state exactly');
is( $node->safe_psql(
		'postgres',
		q{SELECT state_msg.ingest('crash-0', 102, 100, 't2', 102, '2024-01-01 01:42+00')}),
	'in_order',
	'ingestion continues after a clean restart');

$node->stop;
done_testing();
