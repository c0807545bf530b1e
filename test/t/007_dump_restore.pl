# Dump and restore (hardening item 1): pg_dump creates schema state_msg
# before the extension (the schema is not a member of it), so the check that
# refuses a schema owned by a role that is neither the installing role nor a
# superuser must let a restore through: as a superuser, with or without
# --no-owner, custom or plain format.  Every table comes back exactly, and
# the engine runs on the restored database.  Messages waiting in the queue
# (queued processing) come back exactly, with their counts, and drain.  A
# dump of an install whose schema an ordinary role owns is refused, unless
# restored with --no-owner.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use StateMsgTest;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->start;

# Who owns the schema and the extension, and the extension's version
sub owners
{
	my ($db) = @_;
	return $node->safe_psql(
		$db, q{
		SELECT n.nspowner::regrole || ' ' || e.extowner::regrole || ' ' || e.extversion
		FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
		WHERE e.extname = 'state_msg'});
}

# The engine works on a database: a writer ingests, the check cycle and a
# request by hand issue requests with new ids
sub engine_works
{
	my ($db, $what) = @_;
	my $out = $node->safe_psql(
		$db, q{
		SET ROLE sm_relay;
		INSERT INTO state_msg.inbox
			(client_id, serial_number, topic_type, topic_id, state_id, message_time)
		VALUES ('dump-new', 1, 500, 'u', 2, '2026-11-10 10:00+00'),
			   ('dump-new', 4, 500, 'u', 3, '2026-11-10 10:04+00');
		SELECT state_msg.ingest('dump-1', 101, 500, 't1', 7, '2026-11-11 10:00+00');
		RESET ROLE;
		SET state_msg.min_missing_message_age = 0;
		SELECT issued FROM state_msg.run_resync_check();
		SELECT state_msg.request_resync('dump-2')
			 > (SELECT max(request_id) FROM state_msg.resync_requests WHERE reason <> 'manual');
		SELECT next_serial_number FROM state_msg.clients WHERE client_id = 'dump-1';});
	is($out, "in_order\n1\nt\n102", "$what: the engine runs on the restored database");
}

# The waiting messages of a restored database drain, each once, their
# details whole
sub queue_drains
{
	my ($db, $what) = @_;
	my $out = $node->safe_psql(
		$db, q{
		CALL state_msg.process_queue();
		SELECT sum(messages_processed), sum(late_fills) FROM state_msg.clients
		WHERE client_id LIKE 'dump-q%';
		SELECT sum(waiting) FROM state_msg.backlog;
		SELECT length(state_details) FROM state_msg.client_state
		WHERE client_id = 'dump-q1' AND topic_id = 't3';});
	is($out, "30|0
0
40000", "$what: the waiting messages drain");
}

# A source database with every kind of row, including a rejected message,
# a serial reset's request and requests of the check cycle, and messages
# waiting in the queue (a resync answer in high, relayed ones in fsp)
$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql(
	'src', q{
	CREATE EXTENSION state_msg;
	CREATE ROLE sm_relay IN ROLE state_msg_writer;
	INSERT INTO state_msg.inbox
		(client_id, serial_number, topic_type, topic_id, state_id, message_time, user_params)
	SELECT 'dump-' || c, s, 500, 't' || (s % 3), s,
		   timestamptz '2026-11-10 00:00+00' + s * interval '1 minute',
		   ARRAY['p' || s]
	FROM generate_series(1, 5) c, generate_series(1, 100) s
	WHERE NOT (c IN (1, 2) AND s BETWEEN 40 AND 45);
	SET state_msg.on_bad_message = quarantine;
	SET client_min_messages = error;
	INSERT INTO state_msg.inbox
		(client_id, serial_number, topic_type, topic_id, state_id, message_time)
	VALUES ('dump-3', 1, 500, 't0', 1, '2026-11-20 00:00+00'),
		   ('dump-4', 101, 500, '', 1, '2026-11-10 02:00+00');
	SET state_msg.min_missing_message_age = 0;
	SELECT * FROM state_msg.run_resync_check();
	SET state_msg.processing = queued;
	INSERT INTO state_msg.inbox
		(client_id, serial_number, topic_type, topic_id, state_id, message_time,
		 user_params, state_details, source)
	SELECT 'dump-q' || c, s, CASE WHEN s = 10 AND c < 3 THEN 700 ELSE 500 END,
		   't' || s, CASE WHEN s = 10 AND c < 3 THEN 2 ELSE 1 END,
		   timestamptz '2026-11-12 00:00+00' + s * interval '1 minute', ARRAY['p', 'q' || s],
		   CASE WHEN s = 3 THEN repeat('<d>' || c || '</d>', 5000) END,
		   CASE WHEN c = 3 THEN 'fsp' ELSE 'mp' END
	FROM generate_series(1, 3) c, generate_series(1, 10) s;});
my $before = dump_state($node, 'src');
like($before, qr/waiting\|fsp 10\nwaiting\|high 20\nwaiting\|low 0/,
	'the source has messages waiting in high and fsp');
like($before, qr/serial_reset/, 'the source has a reset request');
like($before, qr/rejected/, 'the source has a rejected message');

my $custom = $node->basedir . '/src.dump';
my $plain = $node->basedir . '/src.sql';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $custom, '-d', $node->connstr('src') ],
	'pg_dump, custom format');
$node->command_ok([ 'pg_dump', '-Fp', '-f', $plain, '-d', $node->connstr('src') ],
	'pg_dump, plain format');
like(slurp_file($plain), qr/CREATE SCHEMA state_msg;.*CREATE EXTENSION IF NOT EXISTS state_msg WITH SCHEMA state_msg;/s,
	'the dump creates the schema before the extension');

# Restore as the bootstrap superuser, keeping owners
$node->safe_psql('postgres', 'CREATE DATABASE dst1');
$node->command_ok(
	[ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst1'), $custom ],
	'pg_restore as a superuser');
is(dump_state($node, 'dst1'), $before, 'restored: every row as it was');
is(owners('dst1'), owners('src'), 'restored: the same owners');
engine_works('dst1', 'restored');
queue_drains('dst1', 'restored');

# Restore as another superuser with --no-owner: it owns the schema
$node->safe_psql('postgres', 'CREATE ROLE restorer SUPERUSER LOGIN');
$node->safe_psql('postgres', 'CREATE DATABASE dst2 OWNER restorer');
$node->command_ok(
	[
		'pg_restore', '--exit-on-error', '--no-owner', '-U', 'restorer',
		'-d', $node->connstr('dst2'), $custom
	],
	'pg_restore --no-owner as another superuser');
is(dump_state($node, 'dst2'), $before, 'restored with --no-owner: every row as it was');
is(owners('dst2'), 'restorer restorer 1.1', 'restored with --no-owner: the restoring role owns the schema');
engine_works('dst2', 'restored with --no-owner');

# A plain-format dump through psql
$node->safe_psql('postgres', 'CREATE DATABASE dst3');
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('dst3'), '-f', $plain ],
	'plain-format dump restored with psql');
is(dump_state($node, 'dst3'), $before, 'restored from SQL: every row as it was');
engine_works('dst3', 'restored from SQL');
queue_drains('dst3', 'restored from SQL');

# A dump of an install whose schema an ordinary role owns (as release 1.0
# allowed) carries that owner: the restore is refused
$node->safe_psql('postgres', 'CREATE ROLE mallory');
$node->safe_psql('src', 'ALTER SCHEMA state_msg OWNER TO mallory');
my $vulnerable = $node->basedir . '/vulnerable.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $vulnerable, '-d', $node->connstr('src') ],
	'pg_dump of an install in a schema an ordinary role owns');
$node->safe_psql('postgres', 'CREATE DATABASE dst4');
my ($stdout, $stderr);
my $ok = IPC::Run::run(
	[ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst4'), $vulnerable ],
	'>', \$stdout, '2>', \$stderr);
ok(!$ok, 'restoring it fails');
like(
	$stderr,
	qr/schema "state_msg" is owned by role "mallory", which is neither the installing role nor a superuser/,
	'restoring it fails on the schema owner');
is($node->safe_psql('dst4', q{SELECT count(*) FROM pg_extension WHERE extname = 'state_msg'}),
	'0', 'and leaves no extension');
# restored without owners, it is safe, and works
$node->safe_psql('postgres', 'CREATE DATABASE dst5');
$node->command_ok(
	[ 'pg_restore', '--exit-on-error', '--no-owner', '-d', $node->connstr('dst5'), $vulnerable ],
	'restoring it with --no-owner works');
is(dump_state($node, 'dst5'), $before, 'restored with --no-owner: every row as it was');
engine_works('dst5', 'restored with --no-owner from an unsafe install');

$node->stop;
done_testing();
