# Replication, as the README's FAQ describes it.
#
# (a) A streaming standby, made from a base backup of a primary with data,
#     serves every table, every monitoring view and the two monitoring
#     queries with the same rows as the primary, and refuses ingestion and
#     resync requests (the inbox, ingest(), the check cycle,
#     request_resync()) as read-only.
# (b) Logical replication of the five tables that hold the state (never the
#     inbox, which holds no rows) to a reporting server that has the
#     extension installed: the initial copy and later ingestion on the
#     publisher arrive, so its tables and views equal the publisher's.
#     Identity sequences are not replicated, and rows the subscriber writes
#     itself collide with the publisher's and stop the apply worker.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# The tables that hold rows, in publication order, with a sort key each
my @state_tables = (
	[ clients => 'client_id' ],
	[ client_state => 'client_id, topic_type, topic_id' ],
	[ missing_ranges => 'client_id, first_serial' ],
	[ resync_requests => 'request_id' ],
	[ rejected_messages => 'rejected_id' ]);

# Every column of every table, the inbox included (it returns no rows)
my %table_query = map {
	my ($table, $key) = @$_;
	("table $table" => "SELECT * FROM state_msg.$table ORDER BY $key")
} @state_tables, [ inbox => '1' ];

# The views and the two monitoring queries.  The views read the clock
# (now()) only for the three-day rule: resync_reissue_due.waited changes
# from one moment to the next and is left out; the counts and the list of
# due clients are stable while min_resync_period is far from the test's
# duration, so they are compared under the default (3 days: nothing due)
# and under 0 (every outstanding request due).
my %view_query = (
	'view sr_clientmessagestats' =>
	  'SELECT * FROM state_msg.sr_clientmessagestats ORDER BY clientid',
	'view resync_outstanding' => 'SELECT issued_not_completed, never_completed,
		due_for_reissue FROM state_msg.resync_outstanding',
	'view resync_outstanding, min_resync_period 0' =>
	  'SET state_msg.min_resync_period = 0;
	   SELECT issued_not_completed, never_completed, due_for_reissue
	   FROM state_msg.resync_outstanding',
	'view resync_reissue_due, min_resync_period 0' =>
	  'SET state_msg.min_resync_period = 0;
	   SELECT client_id, last_resync_issued_time,
		   last_resync_client_completed_time
	   FROM state_msg.resync_reissue_due ORDER BY client_id',
	'monitoring query 1' => 'SET search_path = state_msg, public;
	   select count(*) from SR_ClientMessageStats where LastResyncIssuedTime is not null
		 and (LastResyncIssuedTime > LastResyncClientCompletedTime);',
	'monitoring query 2' => 'SET search_path = state_msg, public;
	   select count(*) from SR_ClientMessageStats where LastResyncIssuedTime is not null
		 and LastResyncClientCompletedTime is null;');

# Run each query on a node, in one session (each query's settings are reset
# after it); returns name => rows as text
sub run_all
{
	my ($node, %queries) = @_;
	my @names = sort keys %queries;
	my $script = join('',
		map { "\\echo ==== $_\n$queries{$_};\nRESET ALL;\n" } @names);
	my $out = $node->safe_psql('postgres', $script);
	my %rows;
	foreach my $part (split /^==== /m, $out)
	{
		next if $part eq '';
		my ($name, $rows) = split /\n/, $part, 2;
		$rows //= '';
		chomp $rows;
		$rows{$name} = $rows;
	}
	is_deeply([ sort keys %rows ], \@names, 'every query ran on ' . $node->name)
	  or diag($out);
	return %rows;
}

# Every query gives the same rows on both nodes
sub compare_nodes
{
	my ($what, $expected_node, $node, %queries) = @_;
	my %expected = run_all($expected_node, %queries);
	my %got = run_all($node, %queries);
	foreach my $name (sort keys %queries)
	{
		is($got{$name}, $expected{$name}, "$what: $name");
	}
}

# Messages into the inbox as one statement; rows are
# [client, serial, topic_type, topic_id, state_id, time]
sub ingest
{
	my ($node, @rows) = @_;
	my $values = join(
		",\n",
		map {
			my ($client, $serial, $type, $topic, $state, $time) = @$_;
			sprintf("('%s', %s, %d, '%s', %d, '%s')",
				$client, $serial // 'NULL', $type, $topic, $state, $time)
		} @rows);
	$node->safe_psql(
		'postgres', qq{
		SET client_min_messages = error;  -- no WARNING for a rejected row
		INSERT INTO state_msg.inbox
			(client_id, serial_number, topic_type, topic_id, state_id, message_time)
		VALUES $values});
}

#
# (a) A streaming standby
#
my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 'logical');
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION state_msg');

# Before the base backup: A in order then a gap [5, 5]; B a gap [12, 14];
# C five messages; a row with a blank topic id is rejected
ingest($primary,
	[ 'WKS-A', 1, 500, 'u1', 2, '2020-01-01 10:01+00' ],
	[ 'WKS-A', 2, 500, 'u2', 2, '2020-01-01 10:02+00' ],
	[ 'WKS-A', 3, 500, 'u1', 3, '2020-01-01 10:03+00' ],
	[ 'WKS-A', 6, 402, 'd1', 10, '2020-01-01 10:06+00' ],
	[ 'WKS-B', 10, 500, 'u1', 2, '2020-01-01 11:00+00' ],
	[ 'WKS-B', 15, 500, 'u1', 3, '2020-01-01 11:05+00' ],
	[ 'WKS-B', 11, 500, 'u2', 1, '2020-01-01 11:01+00' ],
	(map { [ 'WKS-C', $_, 500, "u$_", 2, "2020-01-01 12:0$_+00" ] } 1 .. 5),
	[ 'WKS-C', 6, 500, ' ', 2, '2020-01-01 12:06+00' ]);

$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;

# Streamed after the backup: A's serial 4 fills part of its gap late; C is
# reinstalled (serial 1 again, a day later: a reset, which issues a request);
# D opens a gap [3, 4]; E sends a message without a serial (fallback status
# point relay)
is( $primary->safe_psql(
		'postgres', q{
		SELECT state_msg.ingest('WKS-A', 4, 500, 'u2', 3, '2020-01-01 10:04+00');
		SELECT state_msg.ingest('WKS-C', 1, 500, 'u1', 1, '2020-01-02 09:00+00');
		SELECT state_msg.ingest('WKS-D', 1, 500, 'u1', 2, '2020-01-01 13:01+00');
		SELECT state_msg.ingest('WKS-D', 2, 500, 'u2', 2, '2020-01-01 13:02+00');
		SELECT state_msg.ingest('WKS-D', 5, 500, 'u1', 3, '2020-01-01 13:05+00');
		SELECT state_msg.ingest('WKS-E', NULL, 800, 'deploy', 400,
								'2020-01-01 14:00+00', source => 'fsp');}),
	"late_fill\nserial_reset\nin_order\nin_order\ngap\nunserialized",
	'primary: a late fill, a reset, a gap, a message without a serial');

# The check cycle, with missing ranges due at once (a superuser setting),
# issues a request to A, B and D; D answers: its cached state renumbered (6)
# and the resync-complete message (700/2, serial 7), which completes its
# request and drops its missing serials.  Then D is asked again by hand.
is( $primary->safe_psql(
		'postgres', q{
		SET state_msg.min_missing_message_age = 0;
		SELECT issued || ',' || reissued FROM state_msg.run_resync_check();}),
	'3,0',
	'primary: the check cycle issues three requests');
ingest($primary,
	[ 'WKS-D', 6, 500, 'u2', 2, '2020-01-01 13:02+00' ],
	[ 'WKS-D', 7, 700, 'resync', 2, '2020-01-03 08:00+00' ]);
$primary->safe_psql('postgres', q{SELECT state_msg.request_resync('WKS-D')});

is( $primary->safe_psql(
		'postgres', q{
		SELECT string_agg(client_id || ':' || reason || ':'
						  || (completed_at IS NOT NULL), ' ' ORDER BY request_id)
		FROM state_msg.resync_requests}),
	'WKS-C:serial_reset:false WKS-A:missing:false WKS-B:missing:false '
	  . 'WKS-D:missing:true WKS-D:manual:false',
	'primary: requests as issued and completed');
is( $primary->safe_psql(
		'postgres', q{
		SELECT string_agg(client_id || ':' || first_serial || '-' || last_serial,
						  ' ' ORDER BY client_id)
		FROM state_msg.missing_ranges}),
	'WKS-A:5-5 WKS-B:12-14',
	"primary: missing ranges of A and B; D's dropped by its completion");

$primary->wait_for_catchup($standby, 'replay');

# Rows worth comparing: one query of each kind returns some
my %on_primary = run_all($primary, %table_query, %view_query);
is($on_primary{'monitoring query 1'}, '1', 'query 1 counts D (asked again)');
is($on_primary{'monitoring query 2'}, '3', 'query 2 counts A, B and C');
is($on_primary{'view resync_outstanding, min_resync_period 0'}, '1|3|4',
	'resync_outstanding with every outstanding request due');
like($on_primary{'table rejected_messages'}, qr/topic_id must not be/,
	'the rejected row is kept');
is($on_primary{'table inbox'}, '', 'the inbox holds no rows');

compare_nodes('standby', $primary, $standby, %table_query, %view_query);

# The standby also evaluates the helpers and the engine clock
is( $standby->safe_psql(
		'postgres', q{
		SELECT state_msg.normalize_client_id('guid: 6b0c9a51-3d1e-4f7a-9c21-0a1b2c3d4e5f'),
			   state_msg.min_missing_message_age(),
			   state_msg.engine_now() > now() - interval '1 minute'}),
	'GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F|48:00:00|t',
	'standby: helper functions and the engine clock');

# Ingestion on the standby is refused as read-only, SQLSTATE 25006, with
# the message of the first write each entry point attempts
my %refused = (
	'INSERT into the inbox' => [
		q{INSERT INTO state_msg.inbox
		  (client_id, serial_number, topic_type, topic_id, state_id, message_time)
		  VALUES ('WKS-A', 7, 500, 'u1', 4, '2020-01-01 10:07+00')},
		'cannot execute INSERT in a read-only transaction'
	],
	'COPY into the inbox' => [
		q{COPY state_msg.inbox
		  (client_id, serial_number, topic_type, topic_id, state_id, message_time)
		  FROM STDIN},
		'cannot execute COPY during recovery'
	],
	'ingest()' => [
		q{SELECT state_msg.ingest('WKS-A', 7, 500, 'u1', 4, '2020-01-01 10:07+00')},
		'cannot execute INSERT in a read-only transaction'
	],
	'run_resync_check()' => [
		q{SELECT * FROM state_msg.run_resync_check()},
		'cannot execute SELECT FOR UPDATE in a read-only transaction'
	],
	'request_resync()' => [
		q{SELECT state_msg.request_resync('WKS-A')},
		'cannot execute SELECT FOR UPDATE in a read-only transaction'
	]);
foreach my $what (sort keys %refused)
{
	my ($sql, $message) = @{ $refused{$what} };
	my ($rc, $stdout, $stderr) =
	  $standby->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	isnt($rc, 0, "standby: $what fails");
	like($stderr, qr/ERROR:  25006: \Q$message\E/,
		"standby: $what is refused: $message");
}
is( $standby->safe_psql(
		'postgres',
		q{SELECT next_serial_number FROM state_msg.clients
		  WHERE client_id = 'WKS-A'}),
	'7',
	'standby: nothing changed');

#
# (b) Logical replication to a reporting server
#

# The publisher needs wal_level = logical (set by allows_streaming =>
# 'logical' above) and a role with REPLICATION that may read the tables for
# the initial copy: state_msg_reader grants SELECT on them.
$primary->safe_psql(
	'postgres', q{
	CREATE ROLE sm_replicator LOGIN REPLICATION IN ROLE state_msg_reader;
	CREATE PUBLICATION state_msg_pub FOR TABLE
		state_msg.clients, state_msg.client_state, state_msg.missing_ranges,
		state_msg.resync_requests, state_msg.rejected_messages;});
is( $primary->safe_psql(
		'postgres', q{
		SELECT string_agg(tablename, ' ' ORDER BY tablename)
		FROM pg_publication_tables WHERE pubname = 'state_msg_pub'}),
	'client_state clients missing_ranges rejected_messages resync_requests',
	'publisher: the five tables that hold rows are published');

# A publication of the whole schema would include the inbox: list the tables
is( $primary->safe_psql(
		'postgres', q{
		CREATE PUBLICATION whole_schema FOR TABLES IN SCHEMA state_msg;
		SELECT count(*) FROM pg_publication_tables
		WHERE pubname = 'whole_schema' AND tablename = 'inbox';
		DROP PUBLICATION whole_schema;}),
	'1',
	'publisher: FOR TABLES IN SCHEMA would include the inbox');

# The subscriber has the extension installed (same release): the same
# tables to apply to, and the views and functions to read them with
my $reporting = PostgreSQL::Test::Cluster->new('reporting');
$reporting->init;
$reporting->start;
my $publisher = sprintf('host=%s port=%d dbname=postgres user=sm_replicator',
	$primary->host, $primary->port);
$reporting->safe_psql(
	'postgres', qq{
	CREATE EXTENSION state_msg;
	CREATE SUBSCRIPTION state_msg_sub CONNECTION '$publisher'
		PUBLICATION state_msg_pub WITH (copy_data = true);});
$reporting->wait_for_subscription_sync($primary, 'state_msg_sub');

compare_nodes('subscriber, initial copy', $primary, $reporting, %table_query,
	%view_query);

# More ingestion on the publisher, changing every table by insert, update
# and delete: B fills its gap [12, 14] late, A answers its request
# (completion, range dropped), a new client F starts, an old-epoch
# straggler of C is stale, another row is rejected, and a check cycle
# reissues the outstanding requests of B, C and D
ingest($primary,
	[ 'WKS-B', 13, 500, 'u3', 1, '2020-01-01 11:03+00' ],
	[ 'WKS-B', 12, 500, 'u3', 2, '2020-01-01 11:02+00' ],
	[ 'WKS-B', 14, 500, 'u3', 3, '2020-01-01 11:04+00' ],
	[ 'WKS-A', 7, 500, 'u1', 3, '2020-01-01 10:03+00' ],
	[ 'WKS-A', 8, 700, 'resync', 2, '2020-01-04 08:00+00' ],
	[ 'WKS-F', 100, 402, 'd1', 8, '2020-01-05 08:00+00' ],
	[ 'WKS-C', 6, 500, 'u9', 2, '2020-01-01 12:06+00' ],
	[ 'WKS-F', -1, 402, 'd1', 8, '2020-01-05 08:00+00' ]);
is( $primary->safe_psql(
		'postgres', q{
		SET state_msg.min_resync_period = 0;
		SELECT issued || ',' || reissued FROM state_msg.run_resync_check();}),
	'0,3',
	'publisher: the check cycle reissues the requests of B, C and D');
$primary->wait_for_catchup('state_msg_sub');

compare_nodes('subscriber, after more ingestion', $primary, $reporting,
	%table_query, %view_query);
is( $reporting->safe_psql(
		'postgres', q{
		SELECT count(*) FROM state_msg.resync_requests;
		SELECT count(*) FROM state_msg.missing_ranges;
		SELECT count(*) FROM state_msg.rejected_messages;}),
	"8\n0\n2",
	'subscriber: requests reissued, ranges filled, rows rejected');

# Identity columns' sequences are not replicated: the subscriber's are
# unused, so a request issued on the subscriber takes an id the publisher
# already used
is( $reporting->safe_psql(
		'postgres', q{
		SELECT is_called FROM state_msg.resync_requests_request_id_seq;
		SELECT is_called FROM state_msg.rejected_messages_rejected_id_seq;}),
	"f\nf", 'subscriber: the identity sequences are not replicated');
my ($rc, $stdout, $stderr) = $reporting->psql('postgres',
	q{SELECT state_msg.request_resync('WKS-A')});
like(
	$stderr,
	qr/duplicate key value violates unique constraint "resync_requests_pkey"/,
	'subscriber: a request issued there collides with a replicated id');

# The subscriber's engine must not write to the replicated tables: a client
# first ingested on the subscriber, then on the publisher, stops the apply
# worker on a duplicate key until the subscriber's row is removed
is($reporting->safe_psql('postgres',
		q{SELECT state_msg.ingest('WKS-G', 1, 500, 'u1', 2, '2020-01-06 08:00+00')}),
	'in_order', 'subscriber: a local ingest succeeds');
my $log_offset = -s $reporting->logfile;
$primary->safe_psql('postgres',
	q{SELECT state_msg.ingest('WKS-G', 1, 500, 'u1', 2, '2020-01-06 08:00+00')});
$reporting->wait_for_log(
	qr/duplicate key value violates unique constraint "clients_pkey"/,
	$log_offset);
pass('subscriber: the apply worker stops on the local client row');
$reporting->safe_psql(
	'postgres', q{
	DELETE FROM state_msg.client_state WHERE client_id = 'WKS-G';
	DELETE FROM state_msg.clients WHERE client_id = 'WKS-G';});
$primary->wait_for_catchup('state_msg_sub');
compare_nodes('subscriber, once its own rows are removed', $primary,
	$reporting, %table_query);

$reporting->stop;
$standby->stop;
$primary->stop;
done_testing();
