# Scheduling with pg_cron, as the README's recipe says (Debian's
# postgresql-15-cron, pg_cron 1.4).
#
# pg_cron's scheduler runs in the database cron.database_name ('postgres');
# the state_msg database is another one ('site'), reached with
# cron.schedule_in_database().  A non-superuser role, member of
# state_msg_operator, with USAGE on schema cron and EXECUTE on
# cron.schedule_in_database(), schedules the check cycle and purge() every
# minute (pg_cron 1.4 has no seconds schedules), on two socket-only servers
# (listen_addresses = ''):
#
# (a) cron.use_background_workers = on: jobs run in background workers and
#     open no connection, so they need no pg_hba.conf entry (the role is
#     refused one to 'site' here, to prove it);
# (b) cron.host set to the socket directory: jobs connect through the
#     socket, as the role, and need pg_hba.conf to let it in.
#
# Each must show both jobs succeeded in cron.job_run_details, their effect
# in 'site' (a request issued for an old missing range, a quarantined row
# purged), and one log line per run of each.
#
# Queued processing (issue 9): 'site' is set to state_msg.processing =
# queued and a third job, CALL state_msg.process_queue(), drains the
# messages enqueued there (the procedure commits per batch, which pg_cron
# allows in both modes).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# pg_cron must be installed where this PostgreSQL looks for libraries
my $pkglibdir = `pg_config --pkglibdir`;
chomp $pkglibdir;
plan skip_all => "pg_cron is not installed in $pkglibdir (postgresql-15-cron)"
  unless -f "$pkglibdir/pg_cron.so";

# A socket-only server with pg_cron, the site database and the scheduler
# role; %SOCKET_DIR% in $conf stands for its socket directory
sub make_node
{
	my ($name, $conf, $hba) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init;
	$conf =~ s/%SOCKET_DIR%/$node->host/ge;
	$node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
listen_addresses = ''
$conf
});
	if ($hba)
	{
		# prepend: the first matching line decides
		my $file = $node->data_dir . '/pg_hba.conf';
		my $old = slurp_file($file);
		open my $fh, '>', $file or die "cannot write $file: $!";
		print $fh "$hba\n$old";
		close $fh;
	}
	$node->start;

	# as a superuser: pg_cron in 'postgres', state_msg in 'site', the role
	$node->safe_psql(
		'postgres', q{
CREATE EXTENSION pg_cron;
CREATE DATABASE site;
CREATE ROLE scheduler LOGIN;
GRANT USAGE ON SCHEMA cron TO scheduler;
GRANT EXECUTE ON FUNCTION cron.schedule_in_database(text, text, text, text, text, boolean)
	TO scheduler;
});
	$node->safe_psql(
		'site', q{
CREATE EXTENSION state_msg;
GRANT state_msg_operator TO scheduler;
ALTER DATABASE site SET state_msg.min_missing_message_age = 0;
ALTER DATABASE site SET state_msg.keep_rejected_messages = 0;
-- C1 has a missing range; C2 an outstanding request, not due again for
-- three days; one row is quarantined
SELECT state_msg.ingest('C1', s, 500, 'u', 1, now()) FROM unnest(ARRAY[1, 3]) s;
SELECT state_msg.ingest('C2', 1, 500, 'u', 1, now());
SELECT state_msg.request_resync('C2');
SET client_min_messages = error;
SELECT state_msg.ingest('C3', 1, 500, 'u', -1, now());
ALTER DATABASE site SET state_msg.processing = queued;
});
	# a new session: queued; Q1 to Q40 wait (one of them at high priority)
	$node->safe_psql(
		'site', q{
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'Q' || c, n, CASE WHEN n = 3 THEN 800 ELSE 500 END, 'u' || n, 1, now()
FROM generate_series(1, 40) c, generate_series(1, 3) n;
});

	# as the scheduler role, logged in to 'postgres'
	$node->safe_psql(
		'postgres', q{
SELECT cron.schedule_in_database('state_msg resync check', '* * * * *',
	'SELECT state_msg.run_resync_check()', 'site');
SELECT cron.schedule_in_database('state_msg purge', '* * * * *',
	'SELECT * FROM state_msg.purge()', 'site');
SELECT cron.schedule_in_database('state_msg process queue', '* * * * *',
	'CALL state_msg.process_queue()', 'site');
}, extra_params => [ '-U', 'scheduler' ]);
	return $node;
}

my $bgw = make_node('bgw', 'cron.use_background_workers = on',
	'local site scheduler reject');
my $sock = make_node('sock', "cron.host = '%SOCKET_DIR%'");

# cron.host names the socket directory the sock node listens in
is($sock->safe_psql('postgres', 'SHOW cron.host'),
	$sock->safe_psql('postgres', 'SHOW unix_socket_directories'),
	'cron.host is the socket directory');
is($bgw->safe_psql('postgres', 'SHOW listen_addresses'), '', 'socket only');

for my $node ($bgw, $sock)
{
	my $name = $node->name;

	# jobs start on the minute: wait for both to have finished a run
	ok( $node->poll_query_until(
			'postgres', q{
SELECT count(DISTINCT jobid) = 3 FROM cron.job_run_details
WHERE status IN ('succeeded', 'failed')}),
		"$name: the three jobs ran");
	is( $node->safe_psql(
			'postgres', q{
SELECT string_agg(DISTINCT j.jobname || ' ' || d.username || ' ' || d.database
				  || ' ' || d.status, ', ' ORDER BY j.jobname || ' ' || d.username
				  || ' ' || d.database || ' ' || d.status)
FROM cron.job_run_details d JOIN cron.job j USING (jobid)}),
		'state_msg process queue scheduler site succeeded, '
		  . 'state_msg purge scheduler site succeeded, '
		  . 'state_msg resync check scheduler site succeeded',
		"$name: the three jobs succeeded as the scheduler role in site");

	# process_queue() drained the queue: every message applied once
	is( $node->safe_psql(
			'site', q{
SELECT (SELECT count(*) FROM state_msg.queue) || ' '
	|| count(*) || ' ' || sum(messages_processed) || ' ' || sum(late_fills)
	|| ' ' || (SELECT waiting FROM state_msg.backlog WHERE queue = 'low')
FROM state_msg.clients WHERE client_id LIKE 'Q%'}),
		'0 40 120 80 0',
		"$name: process_queue drained the queue (each client's high 800, serial 3, first: serials 1 and 2 late fills)");

	# their effect: C1's missing range got a request, the bad row is gone
	is( $node->safe_psql(
			'site', q{
SELECT string_agg(client_id || ' ' || reason, ', ' ORDER BY client_id, request_id)
FROM state_msg.resync_requests}),
		'C1 missing, C2 manual',
		"$name: the check cycle issued C1's request");
	is($node->safe_psql('site', 'SELECT count(*) FROM state_msg.rejected_messages'),
		'0', "$name: purge deleted the quarantined row");

	# one log line per run of each: the first run issued C1's request and
	# skipped C2 (outstanding, not yet due); later runs skip both
	my $log = slurp_file($node->logfile);
	like(
		$log,
		qr/LOG:  state_msg: resync check as of [^\n]+: 1 issued, 0 reissued, 1 skipped/,
		"$name: the check cycle logged its run");
	like(
		$log,
		qr/LOG:  state_msg: purge as of [^\n]+: 0 completed resync requests, 1 rejected messages and 0 rejected reports deleted/,
		"$name: purge logged its run");
	$node->stop;
}

# With background workers no job connected: the role may not connect to site
like(
	slurp_file($bgw->logfile),
	qr/cron job \d+ starting/,
	'bgw: the scheduler started the jobs');
unlike(
	slurp_file($bgw->logfile),
	qr/pg_hba.conf rejects connection for host "\[local\]", user "scheduler", database "site"/,
	'bgw: no job connected');

done_testing();
