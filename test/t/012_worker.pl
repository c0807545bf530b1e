# The background worker (shared_preload_libraries = 'state_msg'): the
# launcher starts once recovery has finished, one worker per database named
# in state_msg.databases; a database without the extension, or with an
# older release, is waited on quietly and served once the extension is
# there; the check cycle runs every state_msg.resync_check_interval;
# process_queue_batch is called in a transaction per call while it finds
# work; SIGHUP changes the databases served; DROP DATABASE of a served
# database succeeds without FORCE and quickly, the worker idle or inside a
# long transaction; CREATE, DROP and ALTER EXTENSION are not blocked; the
# worker comes back after its own FATAL, the launcher after its own, and
# both after a SIGKILL (which makes the postmaster restart everything).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib $FindBin::RealBin;
use StateMsgTest;

my $node = worker_node(
	'worker', q{
state_msg.databases = 'site, older'
state_msg.resync_check_interval = '2s'
restart_after_crash = on
});
$node->start;

# The pid of the worker serving a database, or '' when none runs
sub worker_pid
{
	my ($db) = @_;
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'state_msg worker' AND datname = '$db'"
	);
}

sub launcher_pid
{
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'state_msg launcher'"
	);
}

# Wait until a worker other than $old serves $db; its pid
sub wait_for_worker
{
	my ($db, $old) = @_;
	$old //= 0;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 AND bool_and(pid <> $old) FROM pg_stat_activity WHERE backend_type = 'state_msg worker' AND datname = '$db'"
	) or die "no worker for $db";
	return worker_pid($db);
}

# The server log from an offset
sub log_from
{
	my ($offset) = @_;
	return slurp_file($node->logfile, $offset);
}

# Lines of the log (from an offset) written by one process and matching
sub count_lines
{
	my ($offset, $pid, $re) = @_;
	return scalar(grep { /\[$pid\]/ && /$re/ } split /\n/, log_from($offset));
}

# Run SQL, failing if it takes longer than $limit seconds; the duration
sub timed_psql
{
	my ($db, $sql, $limit) = @_;
	my $start = time;
	my ($ret, $out, $err) = $node->psql($db, $sql, timeout => 60);
	my $took = time - $start;
	is($ret, 0, "$sql: succeeds") or diag($err);
	cmp_ok($took, '<', $limit, "$sql: not blocked (under $limit s)");
	note sprintf('%s took %.2f s', $sql, $took);
	return $took;
}

# (Re)defines the stand-in state_msg.process_queue_batch in site: it
# records its call in public.batch_calls, then runs $then (PL/pgSQL)
sub stand_in
{
	my ($then) = @_;
	$node->safe_psql(
		'site', qq{
CREATE OR REPLACE FUNCTION state_msg.process_queue_batch(max_messages integer)
RETURNS bigint LANGUAGE plpgsql AS \$\$
BEGIN
	INSERT INTO public.batch_calls
		VALUES (pg_catalog.pg_current_xact_id(), pg_catalog.clock_timestamp(), max_messages);
	$then
END \$\$;
});
}

# In $db, a BEFORE INSERT trigger $name on state_msg.clients running $body
# (PL/pgSQL), then one queued message of a new client $client: the batch
# that processes it fires the trigger
sub trigger_on_batch
{
	my ($db, $name, $body, $client) = @_;
	$node->safe_psql(
		$db, qq{
CREATE FUNCTION public.$name() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
	$body
END \$\$;
CREATE TRIGGER $name BEFORE INSERT ON state_msg.clients
	FOR EACH ROW EXECUTE FUNCTION public.$name();
SET state_msg.processing = queued;
SELECT state_msg.ingest('$client', 1, 500, 'u', 1, now());
});
}

# --- The launcher starts after recovery -----------------------------------
# The postmaster starts workers registered for BgWorkerStart_RecoveryFinished
# just before it logs "ready to accept connections", so the launcher's line
# may come first under load.  What the log can show is that the launcher
# started after the startup process began; that it waits for recovery to
# finish is its registration's (bgw_start_time).
$node->wait_for_log(qr/state_msg: launcher started/);
like(
	log_from(0),
	qr/database system was shut down at.*state_msg: launcher started/s,
	'launcher starts after the startup process');
ok(launcher_pid() ne '', 'launcher runs');
my $log = $node->wait_for_log(
	qr/state_msg: database "site" named in state_msg.databases does not exist/);

# --- A database without the extension: waited on quietly, then served ----
$node->safe_psql('postgres', 'CREATE DATABASE site');
my $site = wait_for_worker('site');
$log = $node->wait_for_log(
	qr/not serving database "site": extension state_msg is not installed there/,
	$log);
sleep 4;
is(count_lines(0, $site, qr/LOG: .*state_msg/), 1,
	'no extension: one line in four naps, nothing else');

$node->safe_psql('site', 'CREATE EXTENSION state_msg');
$log = $node->wait_for_log(qr/\[$site\].*serving database "site"/, $log);
pass('extension created: the database is served');

# --- The check cycle runs on its interval ---------------------------------
my $served_at = $log;
$node->wait_for_log(
	qr/\[$site\].*resync check as of(?s:.*)\[$site\].*resync check as of(?s:.*)\[$site\].*resync check as of/,
	$served_at);
my $t0 = time;
my $n0 = count_lines($served_at, $site, qr/resync check as of/);
sleep 6;
my $n1 = count_lines($served_at, $site, qr/resync check as of/);
my $elapsed = time - $t0;
cmp_ok($n1 - $n0, '>=', int($elapsed / 2) - 1, 'check cycle: about every 2 s (not fewer)');
cmp_ok($n1 - $n0, '<=', int($elapsed / 2) + 1, 'check cycle: about every 2 s (not more)');

# --- Draining: process_queue_batch in a transaction per call ---------------
# Until the queue's own function exists on this branch, a stand-in records
# its calls and finds work the first five times (the extension's schema
# lets the superuser add it).  Once the real one exists this part checks
# only that it is called without error.
my $have_batch = $node->safe_psql('site',
	"SELECT to_regprocedure('state_msg.process_queue_batch(integer)') IS NOT NULL"
);
SKIP:
{
	skip 'state_msg.process_queue_batch exists: no stand-in', 3
	  if $have_batch eq 't';
	$node->safe_psql(
		'site', q{
CREATE TABLE public.batch_calls (xid xid8, at timestamptz, batch_size int);
});
	stand_in('RETURN CASE WHEN (SELECT count(*) FROM public.batch_calls) <= 5 THEN 10 ELSE 0 END;');
	$node->poll_query_until('site',
		'SELECT count(*) >= 8 FROM public.batch_calls')
	  or die 'process_queue_batch not called';
	is( $node->safe_psql(
			'site', q{
SELECT count(DISTINCT xid) = count(*), count(batch_size) = 0,
	   (SELECT max(at) - min(at) < interval '3s' FROM
		 (SELECT at FROM public.batch_calls ORDER BY at LIMIT 6) s)
FROM public.batch_calls}),
		't|t|t',
		'batches: a transaction per call, NULL batch size, straight on while work is found'
	);
	my $calls = $node->safe_psql('site', 'SELECT count(*) FROM public.batch_calls');
	sleep 3;
	my $more = $node->safe_psql('site', 'SELECT count(*) FROM public.batch_calls') - $calls;
	cmp_ok($more, '>=', 1, 'no work: called again after a nap');
	cmp_ok($more, '<=', 5, 'no work: called only once a nap');
}

# --- Woken by new work: the queue drains without waiting for a nap ---------
# With the queue's own process_queue_batch (the queue's branch), the nap is
# made an hour long, so only sm_worker_wake() at the enqueue's commit can
# start a drain: of the worker that runs, or, when none runs, of one the
# launcher starts at once.
SKIP:
{
	skip 'state_msg.process_queue_batch lands with the queue: not here yet', 7
	  unless $have_batch eq 't';

	# the worker samples the backlog when it starts serving, then every minute
	is( $node->safe_psql(
			'site',
			'SELECT count(DISTINCT sampled_at) >= 1 FROM state_msg.backlog_history'),
		't',
		'the worker sampled the backlog');

	my $enqueue = sub {
		my ($first, $count) = @_;
		my $start = time;
		$node->safe_psql(
			'site', qq{
SET state_msg.processing = queued;
INSERT INTO state_msg.inbox
	(client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'w-' || (s % 50), $first + s / 50, 100, 't', 1, now()
FROM generate_series(0, $count - 1) s ORDER BY s % 50, s});
		$node->poll_query_until('site',
			'SELECT NOT EXISTS (SELECT FROM state_msg.queue)')
		  or die 'queue not drained';
		return time - $start;
	};

	$node->safe_psql('postgres',
		"ALTER SYSTEM SET state_msg.worker_naptime = '1h'");
	$node->reload;
	sleep 3;					# the last nap of a second ends
	cmp_ok($enqueue->(1, 5000), '<', 10,
		'5000 messages enqueued: the worker, woken, drains them at once');
	is( $node->safe_psql(
			'site',
			"SELECT sum(messages_processed) FROM state_msg.clients WHERE client_id LIKE 'w-%'"
		),
		'5000',
		'every message processed once');
	is(worker_pid('site'), $site, 'drained by the worker');

	# no worker runs: the launcher starts one when woken
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($site)");
	$node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'state_msg worker' AND datname = 'site'"
	) or die;
	cmp_ok($enqueue->(1000, 100), '<', 10,
		'no worker running: woken, the launcher starts one, which drains');
	$site = wait_for_worker('site', $site);
	is( $node->safe_psql(
			'site',
			"SELECT sum(messages_processed) FROM state_msg.clients WHERE client_id LIKE 'w-%'"
		),
		'5100',
		'every message processed once');

	$node->safe_psql('postgres',
		"ALTER SYSTEM SET state_msg.worker_naptime = '1s'");
	$node->reload;
	pass('nap back to a second');
}

# --- Errors: logged, a pause doubling from one nap, then on ----------------
my $calls;
# A batch that fails: the stand-in raises, or, with the queue's own, a
# trigger on state_msg.clients fails the batch of a queued message.
$log = -s $node->logfile;
if ($have_batch eq 't')
{
	trigger_on_batch('site', 'fail',
		q{RAISE EXCEPTION 'batch failure for the test';}, 'err-1');
}
else
{
	stand_in(q{RAISE EXCEPTION 'batch failure for the test';});
}
$log = $node->wait_for_log(
	qr/\[$site\] ERROR:  batch failure for the test(?s:.*)\[$site\] LOG:  state_msg: worker for database "site" pauses for 1000 ms after an error/,
	$log);
# (every call from now on fails: what it recorded rolls back)
$calls = $node->safe_psql('site', 'SELECT count(*) FROM public.batch_calls')
  unless $have_batch eq 't';
$log = $node->wait_for_log(
	qr/\[$site\] ERROR:  batch failure for the test(?s:.*)\[$site\] LOG:  state_msg: worker for database "site" pauses for 2000 ms after an error/,
	$log);
pass('a failing batch: logged, a pause of a nap, then twice that');
if ($have_batch eq 't')
{
	$node->safe_psql('site', 'DROP TRIGGER fail ON state_msg.clients');
	$node->poll_query_until('site',
		'SELECT NOT EXISTS (SELECT FROM state_msg.queue)')
	  or die;
	is( $node->safe_psql(
			'site',
			"SELECT messages_processed FROM state_msg.clients WHERE client_id = 'err-1'"
		),
		'1',
		'the failure gone: the message that failed is processed once');
}
else
{
	is($node->safe_psql('site', 'SELECT count(*) FROM public.batch_calls'),
		$calls, 'the failed calls rolled back');
	stand_in(q{RETURN 0;});
	$node->poll_query_until('site',
		"SELECT count(*) > $calls FROM public.batch_calls")
	  or die;
	pass('the failure gone: batches run again');
}
is(worker_pid('site'), $site, 'errors: the worker never exited');

# --- An older release: waited on quietly, served after the update ----------
$node->safe_psql('postgres', 'CREATE DATABASE older');
$node->safe_psql('older', "CREATE EXTENSION state_msg VERSION '1.0'");
my $older = wait_for_worker('older');
$log = $node->wait_for_log(
	qr/not serving database "older": extension state_msg is at release 1.0 there, the library is at release 1.1/,
	$log);
my $quiet_from = $log;
sleep 4;
is(count_lines($quiet_from, $older, qr/LOG: .*state_msg/), 0,
	'older release: nothing more logged in four naps');
timed_psql('older', 'ALTER EXTENSION state_msg UPDATE', 10);
$log = $node->wait_for_log(qr/\[$older\].*serving database "older"/, $log);
$node->wait_for_log(qr/\[$older\].*resync check as of/, $log);
pass('updated: the database is served, its check cycle runs');

# --- DDL on the extension is not blocked by the worker serving it ----------
timed_psql('older', 'ALTER EXTENSION state_msg UPDATE', 10);
timed_psql('older', 'DROP EXTENSION state_msg', 10);
$log = $node->wait_for_log(
	qr/\[$older\].*not serving database "older": extension state_msg is not installed there/,
	$log);
timed_psql('older', 'CREATE EXTENSION state_msg', 10);
$log = $node->wait_for_log(qr/\[$older\].*serving database "older"/, $log);
pass('dropped and created again: served again');

# --- DROP DATABASE of a served database, the worker idle -------------------
timed_psql('postgres', 'DROP DATABASE older', 10);
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'state_msg worker' AND datname = 'older'"
) or die;
$log = $node->wait_for_log(
	qr/database "older" named in state_msg.databases does not exist/, $log);
pass('dropped: the launcher notes the database is gone');

# created again under the same name: served again
$node->safe_psql('postgres', 'CREATE DATABASE older');
$node->safe_psql('older', 'CREATE EXTENSION state_msg');
$older = wait_for_worker('older');
$log = $node->wait_for_log(qr/\[$older\].*serving database "older"/, $log);
pass('created again: served again');

# --- SIGHUP changes the databases served -----------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE slow');
$node->safe_psql('slow', 'CREATE EXTENSION state_msg');
$node->safe_psql('postgres',
	"ALTER SYSTEM SET state_msg.databases = 'site, slow'");
$node->reload;
my $slow = wait_for_worker('slow');
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'state_msg worker' AND datname = 'older'"
) or die;
pass('SIGHUP: a worker for the newly named database, none for the one no longer named');
is(worker_pid('site'), $site, 'SIGHUP: the worker of a database still named runs on');

# --- DROP DATABASE of a served database, the worker in a long transaction --
# The worker's transaction sleeps: in the stand-in process_queue_batch, or,
# with the queue's own, in a trigger on state_msg.clients that the batch of
# one queued message fires.
if ($have_batch eq 't')
{
	trigger_on_batch('slow', 'nap',
		'PERFORM pg_catalog.pg_sleep(600); RETURN NEW;', 'slow-1');
}
else
{
	$node->safe_psql(
		'slow', q{
CREATE FUNCTION state_msg.process_queue_batch(integer)
RETURNS bigint LANGUAGE sql AS 'SELECT pg_catalog.pg_sleep(600)::text::bigint';
});
}
$node->poll_query_until('postgres',
	"SELECT wait_event = 'PgSleep' FROM pg_stat_activity WHERE pid = $slow")
  or die;
timed_psql('postgres', 'DROP DATABASE slow', 10);
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_database WHERE datname = 'slow'"),
	'0', 'dropped');

# --- The worker's own FATAL: the launcher starts it again ------------------
my $launcher = launcher_pid();
$node->safe_psql('postgres', "SELECT pg_terminate_backend($site)");
my $site2 = wait_for_worker('site', $site);
isnt($site2, $site, 'worker terminated: a new one serves the database');
is(launcher_pid(), $launcher, 'worker terminated: the launcher ran on');
$site = $site2;

# --- The launcher's own FATAL: it comes back, one worker per database ------
$node->safe_psql('postgres', "SELECT pg_terminate_backend($launcher)");
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 AND bool_and(pid <> $launcher) FROM pg_stat_activity WHERE backend_type = 'state_msg launcher'"
) or die;
$site2 = wait_for_worker('site', $site);
sleep 2;
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(datname, ',') FROM pg_stat_activity WHERE backend_type = 'state_msg worker'"
	),
	'site',
	'launcher terminated: a new launcher, and one worker for the one database left');
$site = $site2;

# --- SIGKILL of the worker: the postmaster restarts everything -------------
$log = -s $node->logfile;
kill 'KILL', $site;
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log);
$node->wait_for_log(
	qr/all server processes terminated; reinitializing(?s:.*)state_msg: launcher started/,
	$log);
$site = wait_for_worker('site', $site);
$node->wait_for_log(qr/\[$site\].*resync check as of/, $log);
pass('worker killed: after the restart and recovery the database is served again');

# --- The database still works after all this --------------------------------
is( $node->safe_psql(
		'site',
		"SELECT state_msg.ingest('C1', 1, 500, 'u', 1, now())"),
	'in_order',
	'ingest works in the served database');

$node->stop;
done_testing();
