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
use FindBin;
use lib $FindBin::RealBin;
use StateMsgTest;

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

# queued, processed (zz-blocker's first included), and the per-client
# figures that show no double
sub figures
{
	return queue_figures($node, 'postgres', 0);
}

# Hold zz-blocker's row, then start a drainer that will wait for it
sub crash_while_draining
{
	my ($call, $settings) = @_;
	$settings //= '';
	my $blocker = hold_client_row($node, 'postgres', 'zz-blocker');
	my $drainer = $node->background_psql('postgres', on_error_stop => 0);
	$drainer->query_until(qr/started/, "SET state_msg.batch_chunk_size = 500;\n$settings\n\\echo started\n$call;\n");

	# wait until the drainer waits for the row lock, in the middle of its batch
	ok( $node->poll_query_until(
			'postgres', q{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND query ~ 'process_queue'}),
		"drainer waits in the middle of a batch ($call)");
	ok(kill9_and_restart($node), 'the server starts after the crash');
	eval { $drainer->quit; };
	eval { $blocker->quit; };
}

# 1. One batch holding everything, killed mid-batch: nothing applied
my $total = enqueue_burst($node, 'postgres', 1);
crash_while_draining('SELECT state_msg.process_queue_batch()',
	'SET state_msg.queue_batch_size = 20000;');
is(figures(), "$total 1 0 0 $total",
	'after kill -9 mid-batch: every message still queued, none applied');

$node->safe_psql('postgres', 'CALL state_msg.process_queue()');
is(figures(), '0 ' . ($total + 1) . ' 0 0 0',
	'drained after recovery: each message applied once, in order');

# 2. CALL process_queue() with small batches, killed after some committed
$total += enqueue_burst($node, 'postgres', 51);
crash_while_draining('CALL state_msg.process_queue()',
	'SET state_msg.queue_batch_size = 1500;');
my ($queued, $processed) = split / /, figures();
ok($queued > 0 && $queued < 200 * 50 + 1,
	"after kill -9 mid-CALL: some batches committed ($queued still queued)");
is($queued + $processed, $total + 1,
	'processed + queued = all enqueued: nothing lost, nothing twice');

$node->safe_psql('postgres', 'CALL state_msg.process_queue()');
check_all_applied($node, 'postgres', 0, $total + 1);

$node->stop;
done_testing();
