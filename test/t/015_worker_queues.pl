# The queues' rules with the background worker preloaded and draining:
# priorities hold (a client's high message overtakes its low ones of the
# same statement, which the serial rules then see as late fills); the fsp
# throttle releases no more than its allowance within one interval, and
# the rest in the intervals after; and the worker's check cycle holds back
# a request whose missing serials wait in the queue (backlog_aware_resync,
# counted in resync_held_back and stats), issues at most
# max_resync_requests_per_cycle requests a cycle, the longest overdue
# first, and with backlog_aware_resync off asks as ConfigMgr would.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use StateMsgTest;

my $node = worker_node(
	'worker_queues', q{
state_msg.databases = 'site'
state_msg.resync_check_interval = 0
state_msg.min_missing_message_age = 0
state_msg.fsp_throttle_messages = 30
state_msg.fsp_throttle_interval = '1h'
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE site');
$node->safe_psql(
	'site', q{
CREATE EXTENSION state_msg;
SELECT state_msg.ingest('P1', 1, 500, 'u1', 1, now());
ALTER DATABASE site SET state_msg.processing = queued;
});

# Change the server's settings and have the worker reload them
sub reconfigure
{
	my ($conf) = @_;
	$node->append_conf('postgresql.conf', $conf);
	$node->reload;
}

sub waiting
{
	my ($queue) = @_;
	return $node->safe_psql('site',
		"SELECT waiting FROM state_msg.backlog WHERE queue = '$queue'");
}

# 1. Priorities: P1's serials 2 to 5 (low) and 6 (topic 800, high) in one
# statement; the worker takes 6 first, then 2 to 5 fill the gap it opened
$node->safe_psql(
	'site', q{
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'P1', s, CASE WHEN s = 6 THEN 800 ELSE 500 END, 'u' || s, 2, now()
FROM generate_series(2, 6) s ORDER BY s});
ok($node->poll_query_until('site', 'SELECT sum(waiting) = 0 FROM state_msg.backlog'),
	'the worker drains the statement');
is( $node->safe_psql(
		'site', q{
SELECT next_serial_number || ' ' || late_fills || ' ' || missing_serials
FROM state_msg.clients WHERE client_id = 'P1'}),
	'7 4 4',
	'high first: serial 6 opened a gap of 4, serials 2 to 5 filled it late');

# 2. The fsp throttle: 100 relayed messages, 30 an hour released
$node->safe_psql(
	'site', q{
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time, source)
SELECT 'F' || i, NULL, 1300, 'h', 1, now(), 'fsp' FROM generate_series(1, 100) i});
ok($node->poll_query_until('site', 'SELECT waiting = 70 FROM state_msg.backlog WHERE queue = \'fsp\''),
	'the worker releases the interval\'s allowance of 30');
sleep(3);    # three of the worker's naps
is( $node->safe_psql(
		'site', q{
SELECT (SELECT count(*) FROM state_msg.clients WHERE client_id LIKE 'F%') || ' '
	|| (SELECT waiting FROM state_msg.backlog WHERE queue = 'fsp')}),
	'30 70',
	'and no more within the interval');
reconfigure("state_msg.fsp_throttle_interval = '2s'\n");
ok($node->poll_query_until('site', 'SELECT waiting = 0 FROM state_msg.backlog WHERE queue = \'fsp\''),
	'the next intervals release the rest');
is($node->safe_psql('site', q{SELECT count(*) FROM state_msg.clients WHERE client_id LIKE 'F%'}),
	'100', 'each relayed message processed');

# 3. Backlog-aware resync and pacing in the worker's check cycles: R1, R2
# and R3 each miss serials 2 to 4 (detected in that order); H1 misses them
# too, but they wait in the fsp queue (its throttle now closed)
reconfigure("state_msg.fsp_throttle_messages = 0\n");
$node->safe_psql(
	'site', q{
SET state_msg.processing = immediate;
SELECT state_msg.ingest(c, s, 500, 'u' || s, 1, now())
FROM (VALUES ('R1', 1), ('R1', 5), ('R2', 1), ('R2', 5), ('R3', 1), ('R3', 5),
			 ('H1', 1), ('H1', 5)) v(c, s);
SET state_msg.processing = queued;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time, source)
SELECT 'H1', s, 500, 'u' || s, 1, now(), 'fsp' FROM generate_series(2, 4) s});
is(waiting('fsp'), '3', "H1's missing serials wait in the fsp queue");
reconfigure(
	"state_msg.max_resync_requests_per_cycle = 1\nstate_msg.resync_check_interval = '1s'\n");
ok( $node->poll_query_until(
		'site', q{
SELECT count(*) = 3 FROM state_msg.resync_requests WHERE client_id LIKE 'R%'}),
	'the worker asks R1, R2 and R3');
is( $node->safe_psql(
		'site', q{
SELECT string_agg(client_id, ' ' ORDER BY request_id) || ' '
	|| (count(DISTINCT issued_at) = 3)
FROM state_msg.resync_requests WHERE client_id LIKE 'R%'}),
	'R1 R2 R3 true',
	'one request a cycle, the longest overdue first');
is( $node->safe_psql(
		'site', q{
SELECT (SELECT count(*) FROM state_msg.resync_requests WHERE client_id = 'H1') || ' '
	|| (SELECT clients FROM state_msg.resync_held_back WHERE queue = 'fsp') || ' '
	|| (SELECT held_back_resyncs FROM state_msg.backlog WHERE queue = 'fsp') || ' '
	|| (SELECT resyncs_held_back > 0 FROM state_msg.stats)}),
	'0 1 1 true',
	'H1 held back while its serials wait: resync_held_back, backlog and stats count it');
reconfigure("state_msg.backlog_aware_resync = off\n");
ok( $node->poll_query_until(
		'site', q{
SELECT count(*) = 1 FROM state_msg.resync_requests WHERE client_id = 'H1'}),
	'backlog_aware_resync off: H1 is asked, as ConfigMgr would');

$node->stop;
done_testing();
