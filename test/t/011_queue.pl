# Queued processing survives kill -9: a message is processed in the same
# transaction that deletes it from the queue, so a crash in the middle of a
# process_queue_batch() (after it claimed and deleted rows, and wrote some
# chunks of the batch) or in the middle of a CALL process_queue() (some
# batches committed, one not) loses nothing and applies nothing twice:
# after recovery, the messages processed plus those still queued are all
# that were enqueued, and draining the rest applies each message once.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('queue');
$node->init;
$node->start;
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION state_msg;
ALTER DATABASE postgres SET state_msg.processing = queued;
});

# 'zz-blocker' sorts after every other client: a session holding its
# clients row makes a batch wait there, after its earlier chunks
$node->safe_psql(
	'postgres', q{
SET state_msg.processing = immediate;
SELECT state_msg.ingest('zz-blocker', 1, 500, 'u', 1, now());
});

# Enqueue: 200 clients x 50 serials in 10 statements (serials 1-5, 6-10,
# ...), and one message of zz-blocker; returns the messages enqueued
sub enqueue
{
	my ($first_serial) = @_;
	for my $k (0 .. 9)
	{
		my $from = $first_serial + 5 * $k;
		my $to = $from + 4;
		$node->safe_psql(
			'postgres', qq{
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'k-' || lpad(c::text, 3, '0'), s, 500, 'u' || (s % 7), s % 4,
	   timestamptz '2024-01-01 00:00+00' + s * interval '1 minute'
FROM generate_series(1, 200) c, generate_series($from, $to) s ORDER BY c, s});
	}
	$node->safe_psql('postgres',
		"SELECT state_msg.ingest('zz-blocker', $first_serial + 1, 500, 'u', 2, now())");
	return 200 * 50 + 1;
}

# processed + queued, and the per-client figures that show no double
sub figures
{
	return $node->safe_psql(
		'postgres', q{
SELECT (SELECT count(*) FROM state_msg.queue) || ' '
	|| (SELECT coalesce(sum(messages_processed), 0) FROM state_msg.clients) || ' '
	|| (SELECT coalesce(sum(duplicates), 0) FROM state_msg.clients) || ' '
	|| (SELECT coalesce(sum(late_fills), 0) FROM state_msg.clients) || ' '
	|| (SELECT coalesce(sum(waiting), 0) FROM state_msg.backlog)});
}

# Hold zz-blocker's row, then start a drainer that will wait for it
sub crash_while_draining
{
	my ($call, $settings) = @_;
	$settings //= '';
	my $blocker = $node->background_psql('postgres');
	$blocker->query_safe(
		"BEGIN; SELECT 1 FROM state_msg.clients WHERE client_id = 'zz-blocker' FOR UPDATE;");
	my $drainer = $node->background_psql('postgres', on_error_stop => 0);
	$drainer->query_until(qr/started/, "SET state_msg.batch_chunk_size = 500;\n$settings\n\\echo started\n$call;\n");

	# wait until the drainer waits for the row lock, in the middle of its batch
	ok( $node->poll_query_until(
			'postgres', q{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND query ~ 'process_queue'}),
		"drainer waits in the middle of a batch ($call)");
	my ($pid) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
	$node->kill9;
	eval { $drainer->quit; };
	eval { $blocker->quit; };

	# the killed postmaster's children exit on their own: start once they did
	for (my $i = 0; $i < 100 && kill(0, $pid); $i++) { usleep(100_000); }
	my $started = 0;
	for (my $i = 0; $i < 30 && !$started; $i++)
	{
		$started = $node->start(fail_ok => 1);
		next if $started;
		$node->{_pid} = undef;	# the stale pid file's, not a running server
		usleep(500_000);
	}
	ok($started, 'the server starts after the crash');
}

# 1. One batch holding everything, killed mid-batch: nothing applied
my $total = enqueue(1);
crash_while_draining('SELECT state_msg.process_queue_batch()');
is(figures(), "$total 1 0 0 $total",
	'after kill -9 mid-batch: every message still queued, none applied');

$node->safe_psql('postgres', 'CALL state_msg.process_queue()');
is(figures(), '0 ' . ($total + 1) . ' 0 0 0',
	'drained after recovery: each message applied once, in order');

# 2. CALL process_queue() with small batches, killed after some committed
$total += enqueue(51);
crash_while_draining('CALL state_msg.process_queue()',
	'SET state_msg.queue_batch_size = 1000;');
my ($queued, $processed) = split / /, figures();
ok($queued > 0 && $queued < 200 * 50 + 1,
	"after kill -9 mid-CALL: some batches committed ($queued still queued)");
is($queued + $processed, $total + 1,
	'processed + queued = all enqueued: nothing lost, nothing twice');

$node->safe_psql('postgres', 'CALL state_msg.process_queue()');
is(figures(), '0 ' . ($total + 1) . ' 0 0 0',
	'drained after recovery: each message applied once, in order');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) || ' ' || min(next_serial_number) || ' ' || max(next_serial_number)
	|| ' ' || sum(missing_serials)
FROM state_msg.clients WHERE client_id LIKE 'k-%'}),
	'200 101 101 0',
	'every client has serials 1 to 100, no gap');

$node->stop;
done_testing();
