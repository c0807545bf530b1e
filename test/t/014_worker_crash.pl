# The background worker drains a burst and survives kill -9: a message is
# processed in the same transaction that deletes it from the queue, so a
# crash of the server while the worker is in the middle of a batch, or
# while it drains batch after batch with more arriving, loses nothing and
# applies nothing twice.  After recovery the worker starts again by itself
# and drains the rest: every client then holds each of its serials once, in
# order, with no gap, no duplicate and no late fill.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('worker_crash');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'state_msg'
state_msg.databases = 'site'
state_msg.worker_naptime = '1s'
state_msg.resync_check_interval = 0
state_msg.batch_chunk_size = 500
restart_after_crash = off
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE site');
$node->safe_psql(
	'site', q{
CREATE EXTENSION state_msg;
SELECT state_msg.ingest('zz-blocker', 1, 500, 'u', 1, now());
ALTER DATABASE site SET state_msg.processing = queued;
ALTER DATABASE site SET state_msg.queue_batch_size = 700;
});

# Enqueue serials first..first+49 for 200 clients, five serials a
# statement, and one message of zz-blocker (sorted last); returns how many
sub enqueue
{
	my ($first) = @_;
	for my $k (0 .. 9)
	{
		my $from = $first + 5 * $k;
		my $to = $from + 4;
		$node->safe_psql(
			'site', qq{
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'k-' || lpad(c::text, 3, '0'), s, 500, 'u' || (s % 7), s % 4,
	   timestamptz '2024-01-01 00:00+00' + s * interval '1 minute'
FROM generate_series(1, 200) c, generate_series($from, $to) s ORDER BY c, s});
	}
	$node->safe_psql('site',
		"SELECT state_msg.ingest('zz-blocker', $first + 1, 500, 'u', 2, now())");
	return 200 * 50 + 1;
}

# queued, processed (less zz-blocker's first, processed at once),
# duplicates, late fills, waiting (backlog)
sub figures
{
	return $node->safe_psql(
		'site', q{
SELECT (SELECT count(*) FROM state_msg.queue) || ' '
	|| (SELECT sum(messages_processed) - 1 FROM state_msg.clients) || ' '
	|| (SELECT coalesce(sum(duplicates), 0) FROM state_msg.clients) || ' '
	|| (SELECT coalesce(sum(late_fills), 0) FROM state_msg.clients) || ' '
	|| (SELECT coalesce(sum(waiting), 0) FROM state_msg.backlog)});
}

sub worker_running
{
	return $node->poll_query_until('postgres', q{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE backend_type = 'state_msg worker' AND datname = 'site'});
}

# kill -9 the server; start it again once the old children are gone
sub crash_and_restart
{
	my ($pid) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
	$node->kill9;
	for (my $i = 0; $i < 100 && kill(0, $pid); $i++) { usleep(100_000); }
	my $started = 0;
	for (my $i = 0; $i < 30 && !$started; $i++)
	{
		$started = $node->start(fail_ok => 1);
		next if $started;
		$node->{_pid} = undef;
		usleep(500_000);
	}
	ok($started, 'the server starts after kill -9');
}

sub wait_drained
{
	ok( $node->poll_query_until('site', q{
SELECT sum(waiting) = 0 FROM state_msg.backlog}),
		'the worker, started again by itself, drains the rest');
}

my $k_messages = 0;

# 1. The worker is in the middle of a batch (it waits for zz-blocker's row,
#    after writing earlier chunks) when the server is killed
ok(worker_running(), 'the worker serves the database');
my $blocker = $node->background_psql('site');
$blocker->query_safe(
	"BEGIN; SELECT 1 FROM state_msg.clients WHERE client_id = 'zz-blocker' FOR UPDATE;");
enqueue(1);
$k_messages += 200 * 50;
ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE backend_type = 'state_msg worker' AND wait_event_type = 'Lock'}),
	'the worker waits in the middle of its batch');
my ($queued, $processed) = split / /, figures();
crash_and_restart();
eval { $blocker->quit; };
($queued, $processed) = split / /, figures();
is($queued + $processed, $k_messages + 1,
	"after kill -9 mid-batch: processed + queued = enqueued ($queued queued)");
wait_drained();
is(figures(), '0 ' . ($k_messages + 1) . ' 0 0 0',
	'each message applied once, in order: no duplicate, no late fill');

# 2. Batches of 700, the worker has drained some of a second burst when
#    it meets a client whose row a session holds; the server is killed
#    there, with batches committed before it and the rest waiting
$blocker = $node->background_psql('site');
$blocker->query_safe(
	"BEGIN; SELECT 1 FROM state_msg.clients WHERE client_id = 'k-100' FOR UPDATE;");
$node->safe_psql(
	'site', q{
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'k-' || lpad(c::text, 3, '0'), s, 500, 'u' || (s % 7), s % 4,
	   timestamptz '2024-01-01 00:00+00' + s * interval '1 minute'
FROM generate_series(1, 200) c, generate_series(51, 100) s ORDER BY c, s});
$k_messages += 200 * 50;
ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE backend_type = 'state_msg worker' AND wait_event_type = 'Lock'}),
	'the worker waits in the middle of the second burst');
crash_and_restart();
eval { $blocker->quit; };
($queued, $processed) = split / /, figures();
is($queued + $processed, $k_messages + 1,
	"after kill -9 while draining: processed + queued = enqueued ($queued queued)");
wait_drained();
is(figures(), '0 ' . ($k_messages + 1) . ' 0 0 0',
	'drained after recovery: each message applied once, in order');
is( $node->safe_psql(
		'site', q{
SELECT count(*) || ' ' || min(next_serial_number) || ' ' || max(next_serial_number)
	|| ' ' || sum(missing_serials)
FROM state_msg.clients WHERE client_id LIKE 'k-%'}),
	'200 101 101 0',
	'every client has serials 1 to 100, no gap');

$node->stop;
done_testing();
