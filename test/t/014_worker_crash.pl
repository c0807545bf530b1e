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
use FindBin;
use lib $FindBin::RealBin;
use StateMsgTest;

my $node = worker_node(
	'worker_crash', q{
state_msg.databases = 'site'
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

# queued, processed (less zz-blocker's first, processed at once),
# duplicates, late fills, waiting (backlog)
sub figures
{
	return queue_figures($node, 'site', 1);
}

sub worker_running
{
	return $node->poll_query_until('postgres', q{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE backend_type = 'state_msg worker' AND datname = 'site'});
}

# Whether the worker, waiting for a row lock, is in the middle of a batch
sub worker_waits_for_lock
{
	return $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE backend_type = 'state_msg worker' AND wait_event_type = 'Lock'});
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
my $blocker = hold_client_row($node, 'site', 'zz-blocker');
enqueue_burst($node, 'site', 1);
$k_messages += 200 * 50;
ok(worker_waits_for_lock(),
	'the worker waits in the middle of its batch');
my ($queued, $processed) = split / /, figures();
ok(kill9_and_restart($node), 'the server starts after kill -9');
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
$blocker = hold_client_row($node, 'site', 'k-100');
insert_burst($node, 'site', 51, 100);
$k_messages += 200 * 50;
ok(worker_waits_for_lock(),
	'the worker waits in the middle of the second burst');
ok(kill9_and_restart($node), 'the server starts after kill -9');
eval { $blocker->quit; };
($queued, $processed) = split / /, figures();
is($queued + $processed, $k_messages + 1,
	"after kill -9 while draining: processed + queued = enqueued ($queued queued)");
wait_drained();
check_all_applied($node, 'site', 1, $k_messages + 1);

$node->stop;
done_testing();
