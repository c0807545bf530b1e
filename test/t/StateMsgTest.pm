# Helpers shared by the TAP tests in test/t: the set-up, load and checks
# that several of them use, kept here so that they stay the same in each.
# Loaded with `use FindBin; use lib $FindBin::RealBin;` (as 004_model.pl
# loads StateMsgModel.pm), so it is found wherever prove runs from.

package StateMsgTest;

use strict;
use warnings;

use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

our @EXPORT = qw(dump_state worker_node insert_burst enqueue_burst
  queue_figures hold_client_row check_all_applied kill9_and_restart);

# The whole state of $db, every column, for exact comparisons
sub dump_state
{
	my ($node, $db) = @_;
	return $node->safe_psql(
		$db, q{
		SELECT 'clients', c::text FROM state_msg.clients c
		UNION ALL SELECT 'state', s::text FROM state_msg.client_state s
		UNION ALL SELECT 'range', m::text FROM state_msg.missing_ranges m
		UNION ALL SELECT 'request', r::text FROM state_msg.resync_requests r
		UNION ALL SELECT 'rejected', j::text FROM state_msg.rejected_messages j
		UNION ALL SELECT 'queue', md5(q::text) FROM state_msg.queue q
		UNION ALL SELECT 'waiting', b.queue || ' ' || b.waiting FROM state_msg.backlog b
		ORDER BY 1, 2});
}

# A new node, not started, whose server preloads the library (so the
# background worker runs) with a nap of a second; $conf adds settings
sub worker_node
{
	my ($name, $conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'state_msg'
state_msg.worker_naptime = '1s'
$conf});
	return $node;
}

# One statement into the inbox of $db: clients k-001 to k-200, serials
# $from to $to each, in client and serial order
sub insert_burst
{
	my ($node, $db, $from, $to) = @_;
	$node->safe_psql(
		$db, qq{
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'k-' || lpad(c::text, 3, '0'), s, 500, 'u' || (s % 7), s % 4,
	   timestamptz '2024-01-01 00:00+00' + s * interval '1 minute'
FROM generate_series(1, 200) c, generate_series($from, $to) s ORDER BY c, s});
}

# Enqueue serials $first to $first + 49 of the 200 clients, five serials a
# statement (10 statements), and one relayed message of zz-blocker: in the
# fsp queue, which drains after the others, so that a drainer meets it only
# in the batch that takes the burst's last messages (a session holding its
# row then stops that batch, after every earlier batch committed); returns
# the messages enqueued
sub enqueue_burst
{
	my ($node, $db, $first) = @_;
	for my $k (0 .. 9)
	{
		my $from = $first + 5 * $k;
		insert_burst($node, $db, $from, $from + 4);
	}
	$node->safe_psql($db,
		"SELECT state_msg.ingest('zz-blocker', NULL, 500, 'u', 2, now(), source => 'fsp')");
	return 200 * 50 + 1;
}

# "queued processed duplicates late_fills waiting" in $db: processed less
# $before (messages processed before the bursts), waiting from the backlog;
# after a crash, queued + processed show nothing lost and nothing applied
# twice, duplicates and late fills nothing applied out of order
sub queue_figures
{
	my ($node, $db, $before) = @_;
	return $node->safe_psql(
		$db, qq{
SELECT (SELECT count(*) FROM state_msg.queue) || ' '
	|| (SELECT coalesce(sum(messages_processed), 0) - $before FROM state_msg.clients) || ' '
	|| (SELECT coalesce(sum(duplicates), 0) FROM state_msg.clients) || ' '
	|| (SELECT coalesce(sum(late_fills), 0) FROM state_msg.clients) || ' '
	|| (SELECT coalesce(sum(waiting), 0) FROM state_msg.backlog)});
}

# A session in $db holding $client's clients row (FOR UPDATE, its
# transaction left open), so that a batch reaching that client waits there
sub hold_client_row
{
	my ($node, $db, $client) = @_;
	my $session = $node->background_psql($db);
	$session->query_safe(
		"BEGIN; SELECT 1 FROM state_msg.clients WHERE client_id = '$client' FOR UPDATE;");
	return $session;
}

# Once the bursts of serials 1 to 100 are drained from $db: nothing
# queued, $processed messages applied (less $before, as queue_figures
# counts them), none twice or out of order, and each client's serials all
# there with no gap
sub check_all_applied
{
	my ($node, $db, $before, $processed) = @_;
	is(queue_figures($node, $db, $before), "0 $processed 0 0 0",
		'drained after recovery: each message applied once, in order');
	is( $node->safe_psql(
			$db, q{
SELECT count(*) || ' ' || min(next_serial_number) || ' ' || max(next_serial_number)
	|| ' ' || sum(missing_serials)
FROM state_msg.clients WHERE client_id LIKE 'k-%'}),
		'200 101 101 0',
		'every client has serials 1 to 100, no gap');
}

# kill -9 the server, then start it again once the killed postmaster's
# children have exited on their own (until then a start fails); whether it
# started
sub kill9_and_restart
{
	my ($node) = @_;
	my ($pid) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
	$node->kill9;
	for (my $i = 0; $i < 100 && kill(0, $pid); $i++) { usleep(100_000); }
	my $started = 0;
	for (my $i = 0; $i < 30 && !$started; $i++)
	{
		$started = $node->start(fail_ok => 1);
		next if $started;
		$node->{_pid} = undef;	# the stale pid file's, not a running server
		usleep(500_000);
	}
	return $started;
}

1;
