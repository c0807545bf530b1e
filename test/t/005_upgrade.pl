# Upgrades: a database on release 1.0 with data in every table is updated
# with ALTER EXTENSION state_msg UPDATE; its data is intact, the engine keeps
# working on it, and its schema is identical to a fresh install of the
# current release: every column, constraint, index, function, view,
# trigger, type, grant, setting and comment the extension owns.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->start;

my $current = $node->safe_psql('postgres',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'state_msg'");
my @releases = split /\n/, $node->safe_psql('postgres',
	"SELECT version FROM pg_available_extension_versions
	 WHERE name = 'state_msg' AND version <> '$current' ORDER BY version");
ok(@releases >= 1, "earlier releases to upgrade from: @releases");

# Everything the extension owns, described by name, never by OID: one line
# per object or property, sorted.
my $describe = q{
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'state_msg'),
member AS (
	SELECT d.classid, d.objid FROM pg_depend d, ext
	WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid
	  AND d.deptype = 'e'),
rel AS (SELECT c.* FROM pg_class c JOIN member m
		ON m.classid = 'pg_class'::regclass AND m.objid = c.oid)
SELECT line FROM (
	SELECT 'member ' || (pg_identify_object(classid, objid, 0)).type || ' '
		   || (pg_identify_object(classid, objid, 0)).identity AS line FROM member
	UNION ALL
	SELECT format('relation %s kind=%s am=%s options=%s acl=%s comment=%s',
				  r.oid::regclass, r.relkind, a.amname, r.reloptions, r.relacl,
				  obj_description(r.oid, 'pg_class'))
	FROM rel r LEFT JOIN pg_am a ON a.oid = r.relam
	UNION ALL
	SELECT format('column %s.%s #%s %s notnull=%s default=%s collation=%s identity=%s comment=%s',
				  r.oid::regclass, att.attname,
				  row_number() OVER (PARTITION BY r.oid ORDER BY att.attnum),
				  format_type(att.atttypid, att.atttypmod), att.attnotnull,
				  pg_get_expr(ad.adbin, ad.adrelid), co.collname, att.attidentity,
				  col_description(r.oid, att.attnum))
	FROM rel r JOIN pg_attribute att ON att.attrelid = r.oid
	LEFT JOIN pg_attrdef ad ON ad.adrelid = r.oid AND ad.adnum = att.attnum
	LEFT JOIN pg_collation co ON co.oid = att.attcollation
	WHERE att.attnum > 0 AND NOT att.attisdropped
	UNION ALL
	SELECT format('constraint %s %s %s', con.conrelid::regclass, con.conname,
				  pg_get_constraintdef(con.oid))
	FROM pg_constraint con JOIN rel r ON r.oid = con.conrelid
	UNION ALL
	SELECT format('index %s', pg_get_indexdef(i.indexrelid))
	FROM pg_index i JOIN rel r ON r.oid = i.indrelid
	UNION ALL
	SELECT format('trigger %s enabled=%s', pg_get_triggerdef(t.oid), t.tgenabled)
	FROM pg_trigger t JOIN rel r ON r.oid = t.tgrelid WHERE NOT t.tgisinternal
	UNION ALL
	SELECT format('view %s %s', r.oid::regclass, pg_get_viewdef(r.oid))
	FROM rel r WHERE r.relkind IN ('v', 'm')
	UNION ALL
	SELECT format('sequence %s %s %s %s %s %s', s.seqrelid::regclass, s.seqtypid::regtype,
				  s.seqstart, s.seqincrement, s.seqmax, s.seqcycle)
	FROM pg_sequence s JOIN rel r ON r.oid = s.seqrelid
	UNION ALL
	SELECT format('function %s acl=%s comment=%s', pg_get_functiondef(p.oid),
				  p.proacl, obj_description(p.oid, 'pg_proc'))
	FROM pg_proc p JOIN member m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
	WHERE p.prokind <> 'a'
	UNION ALL
	SELECT format('type %s %s acl=%s comment=%s', t.oid::regtype,
				  (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
				   FROM pg_enum e WHERE e.enumtypid = t.oid),
				  t.typacl, obj_description(t.oid, 'pg_type'))
	FROM pg_type t JOIN member m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
	UNION ALL
	SELECT format('event trigger %s %s %s %s %s', e.evtname, e.evtevent,
				  e.evtfoid::regproc, e.evtenabled, e.evttags)
	FROM pg_event_trigger e JOIN member m
		ON m.classid = 'pg_event_trigger'::regclass AND m.objid = e.oid
	UNION ALL
	SELECT format('config dump %s %s', c::regclass, x.extcondition[i])
	FROM pg_extension x, unnest(x.extconfig) WITH ORDINALITY AS u(c, i)
	WHERE x.extname = 'state_msg'
	UNION ALL
	SELECT format('schema %s owner-is-superuser=%s acl=%s', n.nspname,
				  (SELECT rolsuper FROM pg_roles WHERE oid = n.nspowner), n.nspacl)
	FROM pg_namespace n, pg_extension x
	WHERE x.extname = 'state_msg' AND n.oid = x.extnamespace
) AS d ORDER BY line COLLATE "C"
};

# Data in every table of 1.0, written as 1.0 would have (the 1.1 library
# refuses to process messages for a database still on 1.0 SQL)
my $load_1_0 = q{
INSERT INTO state_msg.clients (client_id, next_serial_number, serial_epoch,
	serial_epoch_started, last_message_time, last_processed_time,
	messages_processed, missing_serials, late_fills, duplicates, serial_resets,
	unserialized_messages, last_resync_issued_time,
	last_resync_client_completed_time, resync_requests_issued)
VALUES ('GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F', 43, 0, NULL,
		'2026-11-10 18:20+00', '2026-11-10 18:30+00', 3, 1, 0, 0, 0, 1,
		'2026-11-12 19:00+00', NULL, 1),
	   ('WKS-2', 11, 1, '2026-11-10 10:00+00', '2099-01-01 00:00+00',
		'2026-11-10 10:05+00', 12, 0, 0, 1, 1, 0,
		'2026-11-10 10:05+00', '2026-11-10 11:00+00', 1);
INSERT INTO state_msg.client_state VALUES
	('GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F', 500,
	 '3F2504E0-4F89-11D3-9A0C-0305E82C3301', 3, 3, 0, 43, 0,
	 '2026-11-10 18:20+00', '2026-11-10 18:30+00', '{200}', 'mp'),
	('WKS-2', 800, 'deploy', 0, 400, 0, NULL, 1, '2026-11-10 09:00+00',
	 '2026-11-10 10:05+00', NULL, 'fsp');
INSERT INTO state_msg.missing_ranges VALUES
	('GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F', 42, 42, '2026-11-10 18:30+00');
INSERT INTO state_msg.resync_requests (client_id, reason, issued_at, completed_at)
VALUES ('GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F', 'missing', '2026-11-12 19:00+00', NULL),
	   ('WKS-2', 'serial_reset', '2026-11-10 10:05+00', '2026-11-10 11:00+00');
INSERT INTO state_msg.rejected_messages (reason, sqlstate, row_number, client_id, topic_id)
VALUES ('topic_type must not be null', '22004', 1, 'BAD', 'x');
};

# The data as rows of text, every column but those 1.1 adds
my $data = q{
SELECT 'clients', (client_id, next_serial_number, serial_epoch, messages_processed,
				   missing_serials, late_fills, duplicates, serial_resets,
				   unserialized_messages, last_resync_issued_time,
				   last_resync_client_completed_time, resync_requests_issued)::text
FROM state_msg.clients
UNION ALL SELECT 'state', (s.client_id, s.topic_type, s.topic_id, s.topic_id_type,
						   s.state_id, s.criticality, s.serial_number, s.serial_epoch,
						   s.message_time, s.processed_at, s.user_params, s.source)::text
FROM state_msg.client_state s
UNION ALL SELECT 'range', m::text FROM state_msg.missing_ranges m
UNION ALL SELECT 'request', (r.request_id, r.client_id, r.reason, r.issued_at,
							 r.completed_at)::text
FROM state_msg.resync_requests r
UNION ALL SELECT 'rejected', (j.reason, j.sqlstate, j.client_id)::text
FROM state_msg.rejected_messages j
ORDER BY 1, 2
};

$node->safe_psql('postgres', "CREATE DATABASE fresh");
$node->safe_psql('fresh', "CREATE EXTENSION state_msg");
my $fresh = $node->safe_psql('fresh', $describe);
like($fresh, qr/function CREATE OR REPLACE FUNCTION state_msg.ingest/,
	'the description covers functions');

foreach my $release (@releases)
{
	my $db = "from_" . ($release =~ s/\W/_/gr);
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, "CREATE EXTENSION state_msg VERSION '$release'");
	$node->safe_psql($db, $load_1_0) if $release eq '1.0';
	my $before = $node->safe_psql($db, $data);

	# The current library refuses to work on SQL objects of an older release
	my ($rc, $stdout, $stderr) = $node->psql($db,
		"SELECT state_msg.ingest('WKS-3', 1, 500, 'u', 1, now())");
	isnt($rc, 0, "$release: the new library refuses an old release's objects");
	like($stderr, qr/ALTER EXTENSION state_msg UPDATE/,
		"$release: and says how to update");

	if ($release eq '1.0')
	{
		# ingest() gains arguments, so it is dropped and created again: a
		# user object depending on it stops the update, naming it; EXECUTE
		# a user granted on it is not carried over, and a warning says so
		$node->safe_psql($db, q{
			CREATE ROLE upgrade_relay;
			GRANT EXECUTE ON FUNCTION state_msg.ingest(text, bigint, integer,
				text, integer, timestamptz, integer, integer, text[], text)
				TO upgrade_relay;
			CREATE FUNCTION public.relay_one() RETURNS state_msg.verdict
			BEGIN ATOMIC
				SELECT state_msg.ingest('WKS-9', 1, 500, 'u', 1, now());
			END;});
		($rc, $stdout, $stderr) =
		  $node->psql($db, "ALTER EXTENSION state_msg UPDATE");
		isnt($rc, 0, "$release: a function depending on ingest() stops the update");
		like($stderr,
			qr/cannot update state_msg.ingest\(\) while other objects depend on it\n.*DETAIL:  .*function public\.relay_one\(\)/,
			"$release: naming it");
		$node->safe_psql($db, "DROP FUNCTION public.relay_one()");
		($rc, $stdout, $stderr) =
		  $node->psql($db, "ALTER EXTENSION state_msg UPDATE");
		is($rc, 0, "$release: then the update runs");
		like($stderr,
			qr/WARNING:  grants on state_msg.ingest\(\) are not carried over.*\n.*\n.*HINT:  .*GRANT EXECUTE ON FUNCTION state_msg.ingest TO upgrade_relay;/,
			"$release: and lists the grant it did not carry over");
		is($node->safe_psql($db, q{
			SELECT has_function_privilege('upgrade_relay',
				'state_msg.ingest(text, bigint, integer, text, integer, timestamptz, integer, integer, text[], text, text, text, integer, text, integer, text, text)',
				'EXECUTE');
			DROP ROLE upgrade_relay;}), 'f', "$release: which is gone");
	}
	else
	{
		$node->safe_psql($db, "ALTER EXTENSION state_msg UPDATE");
	}
	is($node->safe_psql($db,
		"SELECT extversion FROM pg_extension WHERE extname = 'state_msg'"),
		$current, "$release: updated to $current");
	is($node->safe_psql($db, $data), $before, "$release: data intact");
	is($node->safe_psql($db, $describe), $fresh,
		"$release: schema identical to a fresh install");

	# The engine works on the upgraded data: the gap 42 is filled late, a
	# new client starts, and a 1.0 client whose clock ran to 2099 resets
	$node->safe_psql($db, q{
		SET state_msg.min_missing_message_age = 0;
		SELECT state_msg.run_resync_check();});
	is($node->safe_psql($db, q{
		SELECT state_msg.ingest('GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F', 42,
								500, '3F2504E0-4F89-11D3-9A0C-0305E82C3301', 2,
								'2026-11-10 18:17+00');
		SELECT state_msg.ingest('WKS-3', 1, 500, 'u', 1, now());
		SELECT state_msg.ingest('WKS-2', 1, 500, 'u', 1, now());}),
		"late_fill\nin_order\nserial_reset", "$release: the engine works on upgraded data")
	  if $release eq '1.0';

	# The 1.1 columns: NULL in what 1.0 stored, then written
	is($node->safe_psql($db, q{
		SELECT count(*) FILTER (WHERE user_name IS NULL AND state_details IS NULL)
		FROM state_msg.client_state WHERE client_id <> 'WKS-4';
		SELECT state_msg.ingest('WKS-4', 1, 500, 'u', 1, now(), user_name => 'x',
			state_details => 'd', netbios_name => 'WKS-4N');
		SELECT s.user_name || s.state_details || c.netbios_name
		FROM state_msg.client_state s JOIN state_msg.clients c USING (client_id)
		WHERE client_id = 'WKS-4';}),
		"4\nin_order\nxdWKS-4N", "$release: the message fields' columns")
	  if $release eq '1.0';
}

$node->stop;
done_testing();
