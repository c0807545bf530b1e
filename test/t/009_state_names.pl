# The state names catalog keeps what users wrote (issue 7): their edits of
# shipped names, their additions and their deletions of shipped names
# survive pg_dump and pg_restore (custom format, and plain through psql)
# exactly, without colliding with the names CREATE EXTENSION ships; an
# update from 1.0 ships the same names as a fresh install; and a later
# release that ships new names and corrects shipped ones (simulated with the
# statement its update script would run) adds them without overwriting any
# name a user edited, added or deleted.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('names');
$node->init;
$node->start;

# The catalog as users see it, and the user's rows, every column
sub names
{
	my ($db) = @_;
	return $node->safe_psql(
		$db, q{
		SELECT 'name', n::text FROM state_msg.state_names n
		UNION ALL SELECT 'user', u::text FROM state_msg.user_state_names u
		ORDER BY 1, 2});
}

# One name as state_names shows it ('' when there is none)
sub name_of
{
	my ($db, $topic_type, $state_id) = @_;
	return $node->safe_psql($db,
		"SELECT state_name FROM state_msg.state_names
		 WHERE topic_type = $topic_type AND state_id = $state_id");
}

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql(
	'src', q{
	CREATE EXTENSION state_msg;
	CREATE ROLE sm_names_ops IN ROLE state_msg_operator;
	SET ROLE sm_names_ops;
	UPDATE state_msg.state_names SET state_name = 'Missing', state_description = 'ours'
	WHERE topic_type = 500 AND state_id = 2;
	UPDATE state_msg.state_names SET state_description = 'as shipped, pinned'
	WHERE topic_type = 402 AND state_id = 6;
	INSERT INTO state_msg.state_names VALUES
		(9001, 1, 'Custom: ready', 'our agent'), (9001, 2, 'Custom: failed', NULL);
	DELETE FROM state_msg.state_names WHERE topic_type = 1660;
	-- a deleted shipped name inserted again is the user's row
	DELETE FROM state_msg.state_names WHERE topic_type = 401 AND state_id = 5;
	INSERT INTO state_msg.state_names VALUES (401, 5, 'Not applicable (ours)', NULL);});
my $before = names('src');
is($node->safe_psql('src', 'SELECT count(*) FROM state_msg.user_state_names'),
	'7', 'the source has 7 rows of the user: 2 edits, 3 additions, 2 tombstones');
is(name_of('src', 1660, 1), '', 'the source has a deleted shipped name');

my $custom = $node->basedir . '/names.dump';
my $plain = $node->basedir . '/names.sql';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $custom, '-d', $node->connstr('src') ],
	'pg_dump, custom format');
$node->command_ok([ 'pg_dump', '-Fp', '-f', $plain, '-d', $node->connstr('src') ],
	'pg_dump, plain format');
my $sql = slurp_file($plain);
like($sql, qr/COPY state_msg\.user_state_names /, 'the dump holds the user\'s rows');
unlike($sql, qr/state_msg\.shipped_state_names \(|INTO state_msg\.shipped_state_names/,
	'the dump holds no shipped names (CREATE EXTENSION ships them)');

$node->safe_psql('postgres', 'CREATE DATABASE dst1');
$node->command_ok(
	[ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst1'), $custom ],
	'pg_restore of the custom format');
is(names('dst1'), $before, 'restored from the custom format: every name and user row as it was');

$node->safe_psql('postgres', 'CREATE DATABASE dst2');
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('dst2'), '-f', $plain ],
	'the plain-format dump restored with psql');
is(names('dst2'), $before, 'restored from SQL: every name and user row as it was');

# The restored catalog works on: a second dump of it restores the same
$node->safe_psql('dst2', q{
	UPDATE state_msg.state_names SET state_name = 'Custom: done' WHERE topic_type = 9001 AND state_id = 2;
	DELETE FROM state_msg.state_names WHERE topic_type = 500 AND state_id = 0;});
my $again = names('dst2');
my $custom2 = $node->basedir . '/names2.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $custom2, '-d', $node->connstr('dst2') ],
	'pg_dump of the restored database');
$node->safe_psql('postgres', 'CREATE DATABASE dst3');
$node->command_ok(
	[ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst3'), $custom2 ],
	'pg_restore of it');
is(names('dst3'), $again, 'edits made after a restore survive the next dump and restore');

# An update from 1.0 ships the same names as a fresh install
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION state_msg');
$node->safe_psql('postgres', 'CREATE DATABASE from_1_0');
$node->safe_psql('from_1_0', q{CREATE EXTENSION state_msg VERSION '1.0'});
$node->safe_psql('from_1_0', 'ALTER EXTENSION state_msg UPDATE');
is(names('from_1_0'), names('fresh'), 'updated from 1.0: the same names as a fresh install');
is($node->safe_psql('fresh', 'SELECT count(*) FROM state_msg.state_names'),
	'140', 'a fresh install ships 140 names');

# A later release: its update script adds new names and corrects shipped
# ones in shipped_state_names, as the README tells release authors to
my $next_release = q{
	INSERT INTO state_msg.shipped_state_names AS s
		(topic_type, state_id, state_name, state_description)
	VALUES (500, 2, 'Update is required (corrected)', NULL),
		   (500, 3, 'Update is installed (corrected)', NULL),
		   (402, 6, 'General failure (corrected)', NULL),
		   (1660, 1, 'Sensor off (corrected)', NULL),
		   (9001, 1, 'Shipped custom', NULL),
		   (9001, 3, 'Shipped custom 3', NULL),
		   (3000, 1, 'A new topic''s state', NULL)
	ON CONFLICT (topic_type, state_id) DO UPDATE
		SET state_name = EXCLUDED.state_name,
			state_description = EXCLUDED.state_description;
};
$node->safe_psql('dst1', $next_release);
is(name_of('dst1', 3000, 1), "A new topic's state", 'next release: a newly shipped name appears');
is(name_of('dst1', 9001, 3), 'Shipped custom 3', 'next release: a newly shipped name of a user\'s topic appears');
is(name_of('dst1', 500, 3), 'Update is installed (corrected)', 'next release: a correction of a name nobody edited shows');
is(name_of('dst1', 500, 2), 'Missing', 'next release: an edited name keeps its edit');
is(name_of('dst1', 402, 6), 'General failure', 'next release: a name edited to its shipped text keeps it');
is(name_of('dst1', 9001, 1), 'Custom: ready', 'next release: a user\'s addition wins over a name shipped later');
is(name_of('dst1', 1660, 1), '', 'next release: a deleted name stays deleted');
is($node->safe_psql('dst1', 'SELECT count(*) FROM state_msg.state_names'),
	'142', 'next release: 140 shipped - 2 deleted + 2 added by the user + 2 newly shipped');

# A user's row deleted from user_state_names returns to the shipped one
$node->safe_psql('dst1', q{
	DELETE FROM state_msg.user_state_names WHERE topic_type = 500 AND state_id = 2;});
is(name_of('dst1', 500, 2), 'Update is required (corrected)',
	'deleting the user\'s row shows the shipped name again');

$node->stop;
done_testing();
