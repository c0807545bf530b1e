# Logical replication into state_msg.inbox: the inbox keeps no rows and the
# apply worker fires no statement triggers, so a subscription into the inbox
# (initial copy or streamed changes) must fail loudly and keep retrying, with
# nothing processed and nothing lost: the publisher's slot is not confirmed
# past the change.  ENABLE ALWAYS on the inbox's trigger does not change
# that.  What works: replicating into an ordinary table whose ENABLE ALWAYS
# row trigger inserts into the inbox (with the inbox's trigger ENABLE ALWAYS
# too, since workers run as session_replication_role = replica); while the
# inbox's trigger is not, the worker fails and retries, and once it is, the
# rows are delivered and processed.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $columns = q{client_id text, serial_number bigint, topic_type integer,
	topic_id text, topic_id_type integer DEFAULT 0, state_id integer,
	criticality integer DEFAULT 0, message_time timestamptz,
	user_params text[], source text DEFAULT 'mp'};
my $insert_cols =
  'client_id, serial_number, topic_type, topic_id, state_id, message_time';

my $pub = PostgreSQL::Test::Cluster->new('publisher');
$pub->init(allows_streaming => 'logical');
$pub->start;

my $sub = PostgreSQL::Test::Cluster->new('subscriber');
$sub->init;
$sub->append_conf('postgresql.conf', "wal_retrieve_retry_interval = 200ms\n");
$sub->start;
$sub->safe_psql('postgres', 'CREATE EXTENSION state_msg');

# The publisher's inbox is an ordinary table of the same name and columns
$pub->safe_psql(
	'postgres', qq{
	CREATE SCHEMA state_msg;
	CREATE TABLE state_msg.inbox ($columns);
	CREATE TABLE public.relay ($columns);
	CREATE PUBLICATION to_inbox FOR TABLE state_msg.inbox;
	CREATE PUBLICATION to_relay FOR TABLE public.relay;
	INSERT INTO state_msg.inbox ($insert_cols)
	VALUES ('R1', 1, 500, 'u', 2, '2026-11-10 10:00+00');
});
my $connstr = $pub->connstr . ' dbname=postgres';

sub processed
{
	return $sub->safe_psql('postgres',
		'SELECT count(*) || \'/\' || coalesce(sum(messages_processed), 0) FROM state_msg.clients'
	);
}

# Wait until the subscription's workers have failed at least $n more times
sub wait_for_errors
{
	my ($subname, $column, $n) = @_;
	my $before = $sub->safe_psql('postgres',
		"SELECT $column FROM pg_stat_subscription_stats WHERE subname = '$subname'"
	);
	$sub->poll_query_until('postgres',
		"SELECT $column >= $before + $n FROM pg_stat_subscription_stats WHERE subname = '$subname'"
	) or die "timed out waiting for $subname to fail $n more times";
}

# 1. The initial copy (a tablesync worker's COPY) into the inbox is refused
my $offset = -s $sub->logfile;
$sub->safe_psql('postgres',
	"CREATE SUBSCRIPTION sync_inbox CONNECTION '$connstr' PUBLICATION to_inbox"
);
$offset = $sub->wait_for_log(
	qr/ERROR:  cannot replicate into table "inbox"\n.*DETAIL:  The table keeps no rows, and changes applied by logical replication fire no statement triggers/,
	$offset);
pass('initial copy into the inbox fails with the error');
wait_for_errors('sync_inbox', 'sync_error_count', 2);
pass('and is retried');
is( $sub->safe_psql(
		'postgres',
		"SELECT srsubstate IN ('i', 'd') FROM pg_subscription_rel WHERE srrelid = 'state_msg.inbox'::regclass"
	),
	't',
	'the table stays in its initial copy');
is(processed(), '0/0', 'nothing was processed');
$sub->safe_psql('postgres', 'DROP SUBSCRIPTION sync_inbox');

# 2. Streamed changes (the apply worker) into the inbox are refused, even
# with the inbox's trigger ENABLE ALWAYS; the change stays on the publisher
$sub->safe_psql('postgres',
	"CREATE SUBSCRIPTION apply_inbox CONNECTION '$connstr' PUBLICATION to_inbox WITH (copy_data = false)"
);
$sub->wait_for_subscription_sync($pub, 'apply_inbox');
$offset = -s $sub->logfile;
$pub->safe_psql('postgres',
	"INSERT INTO state_msg.inbox ($insert_cols) VALUES ('R2', 1, 500, 'u', 2, '2026-11-10 10:00+00')"
);
my $sent_lsn = $pub->lsn('insert');
$offset = $sub->wait_for_log(
	qr/ERROR:  cannot replicate into table "inbox"\n(.*\n)*.*CONTEXT:  processing remote data .* "INSERT" for replication target relation "state_msg.inbox"/,
	$offset);
pass('a streamed insert into the inbox fails with the error');
wait_for_errors('apply_inbox', 'apply_error_count', 2);
pass('and is retried');
$sub->safe_psql('postgres',
	'ALTER TABLE state_msg.inbox ENABLE ALWAYS TRIGGER inbox_process');
wait_for_errors('apply_inbox', 'apply_error_count', 2);
pass('ENABLE ALWAYS on the inbox trigger does not make it work');
is(processed(), '0/0', 'nothing was processed');
is( $pub->safe_psql(
		'postgres',
		"SELECT confirmed_flush_lsn < '$sent_lsn' FROM pg_replication_slots WHERE slot_name = 'apply_inbox'"
	),
	't',
	'the publisher still has the change to send');
$sub->safe_psql('postgres', 'DROP SUBSCRIPTION apply_inbox');

# 3. Into an ordinary table whose row trigger inserts into the inbox.  While
# the inbox's trigger fires only in role origin, the worker's insert is
# refused, and retried.
$sub->safe_psql(
	'postgres', qq{
	ALTER TABLE state_msg.inbox ENABLE TRIGGER inbox_process;
	CREATE TABLE public.relay ($columns);
	CREATE FUNCTION public.relay_to_inbox() RETURNS trigger LANGUAGE plpgsql AS
	\$\$BEGIN
		INSERT INTO state_msg.inbox SELECT NEW.*;
		RETURN NULL;
	END\$\$;
	CREATE TRIGGER relay_to_inbox BEFORE INSERT ON public.relay
		FOR EACH ROW EXECUTE FUNCTION public.relay_to_inbox();
	ALTER TABLE public.relay ENABLE ALWAYS TRIGGER relay_to_inbox;
});
$pub->safe_psql('postgres',
	"INSERT INTO public.relay ($insert_cols) SELECT 'R3', s, 500, 'u' || s % 3, 2, '2026-11-10 10:00+00'::timestamptz + s * interval '1 min' FROM generate_series(1, 10) s"
);
$offset = -s $sub->logfile;
$sub->safe_psql('postgres',
	"CREATE SUBSCRIPTION relay CONNECTION '$connstr' PUBLICATION to_relay");
$sub->wait_for_log(
	qr/ERROR:  cannot insert into table "inbox" while session_replication_role is replica/,
	$offset);
wait_for_errors('relay', 'sync_error_count', 1);
is(processed(), '0/0',
	'refused while the inbox trigger does not fire in role replica');

# Once it fires in every role, the retried copy and later changes are
# processed, each message once
$sub->safe_psql('postgres',
	'ALTER TABLE state_msg.inbox ENABLE ALWAYS TRIGGER inbox_process');
$sub->wait_for_subscription_sync($pub, 'relay');
$pub->safe_psql('postgres',
	"INSERT INTO public.relay ($insert_cols) SELECT 'R3', s, 500, 'u' || s % 3, 2, '2026-11-10 10:00+00'::timestamptz + s * interval '1 min' FROM generate_series(11, 20) s"
);
$pub->wait_for_catchup('relay');
is( $sub->safe_psql(
		'postgres',
		q{SELECT client_id, next_serial_number, messages_processed, missing_serials, duplicates,
			(SELECT count(*) FROM state_msg.client_state), (SELECT count(*) FROM public.relay)
		  FROM state_msg.clients}),
	'R3|21|20|0|0|3|0',
	'through an ordinary table, every message is processed once');

$sub->stop;
$pub->stop;
done_testing();
