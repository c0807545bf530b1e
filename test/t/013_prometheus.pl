# Dashboards (issue 9, section 5) and the shared counters (section 4):
# Debian's prometheus-postgres-exporter, run with
# contrib/prometheus/state_msg.yaml against a throwaway cluster that
# preloads state_msg, must publish every state_msg_* series that
# contrib/grafana/state_msg.json uses, each with the value the extension's
# views hold.
#
# The traffic comes from several sessions (each safe_psql is one), so the
# counters of state_msg.stats, read in yet another session and by the
# exporter's own connection, prove they are shared: every session's
# committed batches, nothing of a rolled-back one.  stats_reset() zeroes
# them for every session.
#
# Until state_msg.backlog and state_msg.backlog_sources exist (queued
# processing), the test creates stand-ins with the design's columns and
# known values, only where to_regclass() finds none; with the real views it
# checks the real values.

use strict;
use warnings;

use File::Basename qw(dirname);
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $exporter = '/usr/bin/prometheus-postgres-exporter';
plan skip_all =>
  "$exporter is not installed (Debian package prometheus-postgres-exporter)"
  unless -x $exporter;

my $top = dirname(__FILE__) . '/../..';
my $queries = "$top/contrib/prometheus/state_msg.yaml";
my $dashboard = "$top/contrib/grafana/state_msg.json";

my $node = PostgreSQL::Test::Cluster->new('prometheus');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'state_msg'\n");
$node->start;

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION state_msg;
CREATE ROLE sm_exporter LOGIN IN ROLE state_msg_reader, pg_monitor;
CREATE ROLE sm_operator LOGIN IN ROLE state_msg_operator;
});

# Stand-ins for the backlog views, only where the real ones are missing
$node->safe_psql(
	'postgres', q{
DO $$
BEGIN
	IF pg_catalog.to_regclass('state_msg.backlog') IS NULL THEN
		CREATE VIEW state_msg.backlog AS
		SELECT * FROM (VALUES
			('high', 0::bigint, NULL::interval, 0.5::float8, 0.25::float8,
			 0.5::float8, 0.25::float8, NULL::interval, 0::bigint, 'normal'),
			('low', 120000::bigint, interval '2 hours', 10::float8, 8::float8,
			 30::float8, 20::float8, interval '100 minutes', 3::bigint,
			 'significant'),
			('fsp', 500::bigint, interval '90 seconds', 4::float8, 3::float8,
			 2.5::float8, 2.5::float8, NULL::interval, 0::bigint, 'growing'))
			AS b(queue, waiting, oldest_age, arrival_rate_5m, arrival_rate_60m,
				 processing_rate_5m, processing_rate_60m, drain_eta,
				 held_back_resyncs, status);
		GRANT SELECT ON state_msg.backlog TO state_msg_reader;
		RAISE NOTICE 'state_msg.backlog: stand-in';
	END IF;
	IF pg_catalog.to_regclass('state_msg.backlog_sources') IS NULL THEN
		CREATE VIEW state_msg.backlog_sources AS
		SELECT * FROM (VALUES
			(500, 'update detection', 1200::bigint, 0.25::float8),
			(9999, NULL, 7::bigint, 0::float8))
			AS s(topic_type, topic_type_name, messages_last_hour,
				 resync_answer_share);
		GRANT SELECT ON state_msg.backlog_sources TO state_msg_reader;
		RAISE NOTICE 'state_msg.backlog_sources: stand-in';
	END IF;
END
$$;
});

# Traffic, one session each.  A: in_order, gap, late_fill, duplicate
$node->safe_psql(
	'postgres', q{
SELECT state_msg.ingest('A', s, 500, 'u1', 2, '2026-11-10 10:00:00+00'::timestamptz + s * interval '1 min')
FROM unnest(ARRAY[1, 3, 2, 2]) s;
});
# one INSERT: one batch, two in_order, one rejected row
$node->safe_psql(
	'postgres', q{
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
							 state_id, message_time)
VALUES ('B', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00'),
	   ('B', 2, 500, 'u1', 3, '2026-11-10 10:01:00+00'),
	   (NULL, 3, 500, 'u1', 3, '2026-11-10 10:01:00+00');
});
# rolled back: counts nothing
$node->safe_psql(
	'postgres', q{
BEGIN;
SELECT state_msg.ingest('A', 4, 500, 'u1', 2, '2026-11-10 10:04:00+00');
SELECT state_msg.ingest(NULL, 4, 500, 'u1', 2, '2026-11-10 10:04:00+00');
ROLLBACK;
});
# resyncs: A and B asked, B completes; C asked four days ago (due for
# reissue); one unserialized message
$node->safe_psql(
	'postgres', q{
SELECT state_msg.request_resync('A');
SELECT state_msg.request_resync('B');
SELECT state_msg.ingest('C', NULL, 500, 'u1', 2, '2026-11-10 10:00:00+00');
SET state_msg.clock_offset = '-4d';
SELECT state_msg.request_resync('C');
});
$node->safe_psql('postgres',
	q{SELECT state_msg.ingest('B', 3, 700, 'r', 2, '2026-11-10 10:05:00+00');});

# Another session sees every session's committed counts
is( $node->safe_psql(
		'postgres', q{
SELECT concat_ws(' ', processed, processed_in_order, processed_gap,
				 processed_late_fill, processed_duplicate,
				 processed_serial_reset, processed_unserialized, rejected,
				 batches, resyncs_issued, resyncs_reissued,
				 resyncs_completed, resyncs_held_back, shared,
				 processing_time > 0)
FROM state_msg.stats}),
	'8 4 1 1 1 0 1 1 7 3 0 1 0 t t',
	'the counters are shared by every session, counting only commits');

# The exporter, on a free port of 127.0.0.1
my $port = PostgreSQL::Test::Cluster::get_free_port();
my ($out, $err) = ('', '');
my $exporter_run;
{
	local $ENV{DATA_SOURCE_NAME} = sprintf(
		'host=%s port=%d user=sm_exporter dbname=postgres sslmode=disable',
		$node->host, $node->port);
	$exporter_run = IPC::Run::start(
		[
			$exporter, "--extend.query-path=$queries",
			"--web.listen-address=127.0.0.1:$port",
			'--log.level=warn'
		],
		'>', \$out, '2>', \$err);
}
my $http = HTTP::Tiny->new(timeout => 10);

# Scrape once the exporter answers: { name => [ [ { label => value }, value ] ] }
sub scrape
{
	my $response;
	for (my $i = 0; $i < 10 * $PostgreSQL::Test::Utils::timeout_default; $i++)
	{
		$response = $http->get("http://127.0.0.1:$port/metrics");
		last if $response->{success};
		usleep(100_000);
	}
	die "no metrics from the exporter: $response->{status} $response->{reason}\n$err"
	  unless $response->{success};
	my %metrics;
	for my $line (split /\n/, $response->{content})
	{
		next if $line =~ /^#/;
		next unless $line =~ /^([A-Za-z_:][A-Za-z0-9_:]*)(\{([^}]*)\})? (\S+)$/;
		my ($name, $labels, $value) = ($1, $3 // '', $4);
		my %l = $labels =~ /(\w+)="((?:[^"\\]|\\.)*)"/g;
		push @{ $metrics{$name} }, [ \%l, $value ];
	}
	return \%metrics;
}

# The one value of a metric, or of its series with the label given
sub value
{
	my ($metrics, $name, $label, $want) = @_;
	my @found = grep { !defined $label || ($_->[0]{$label} // '') eq $want }
	  @{ $metrics->{$name} // [] };
	return @found == 1 ? $found[0][1] : undef;
}

# Every metric name in the dashboard's queries
my @names;
{
	my $json = decode_json(slurp_file($dashboard));
	my %seen;
	my @todo = ($json);
	while (@todo)
	{
		my $item = shift @todo;

		if (ref $item eq 'HASH')
		{
			if (defined $item->{expr})
			{
				$seen{$_} = 1 for $item->{expr} =~ /\b(state_msg_\w+)/g;
			}
			push @todo, values %$item;
		}
		elsif (ref $item eq 'ARRAY')
		{
			push @todo, @$item;
		}
	}
	@names = sort keys %seen;
}
cmp_ok(scalar @names, '>=', 20, 'the dashboard uses the exporter\'s metrics')
  or diag explain \@names;

# What each metric must show: the SQL that reads the same value from the
# views (label value, value; NULL for NaN), and its label
my %expect = (
	(
		map {
			my ($column, $sql) = @$_;
			(   "state_msg_backlog_$column" => [
					'queue', "SELECT queue, $sql FROM state_msg.backlog"
				])
		} (
			[ 'waiting', 'waiting' ],
			[ 'oldest_age_seconds', 'coalesce(extract(epoch FROM oldest_age), 0)' ],
			[ 'arrival_rate_5m', 'arrival_rate_5m' ],
			[ 'arrival_rate_60m', 'arrival_rate_60m' ],
			[ 'processing_rate_5m', 'processing_rate_5m' ],
			[ 'processing_rate_60m', 'processing_rate_60m' ],
			[ 'drain_eta_seconds', 'extract(epoch FROM drain_eta)' ],
			[ 'draining', 'CASE WHEN drain_eta IS NULL THEN 0 ELSE 1 END' ],
			[ 'held_back_resyncs', 'held_back_resyncs' ],
			[
				'status_level',
				q{array_position(ARRAY['normal', 'growing', 'significant'], status) - 1}
			])
	),
	state_msg_backlog_sources_messages_last_hour => [
		'topic_type',
		'SELECT topic_type, messages_last_hour FROM state_msg.backlog_sources'
	],
	state_msg_backlog_sources_resync_answer_share => [
		'topic_type',
		'SELECT topic_type, resync_answer_share FROM state_msg.backlog_sources'
	],
	state_msg_resyncs_outstanding => [
		undef,
		'SELECT count(*) FROM state_msg.clients c WHERE state_msg.has_open_request(c)'
	],
	state_msg_resyncs_never_completed => [
		undef,
		'SELECT count(*) FROM state_msg.clients c WHERE state_msg.has_open_request(c) AND last_resync_client_completed_time IS NULL'
	],
	state_msg_resyncs_due_for_reissue =>
	  [ undef, 'SELECT due_for_reissue FROM state_msg.resync_outstanding' ],
	state_msg_stats_processed_messages_total => [
		'verdict', q{
SELECT v, (pg_catalog.to_jsonb(s) ->> ('processed_' || v))::bigint
FROM state_msg.stats s,
	 unnest(ARRAY['in_order', 'gap', 'late_fill', 'duplicate', 'serial_reset',
				  'unserialized']) v}
	],
	state_msg_stats_processing_seconds_total =>
	  [ undef, 'SELECT processing_time / 1000 FROM state_msg.stats' ],
	state_msg_stats_reset_time_seconds =>
	  [ undef, 'SELECT extract(epoch FROM stats_reset) FROM state_msg.stats' ],
	state_msg_stats_shared =>
	  [ undef, 'SELECT shared::int FROM state_msg.stats' ],
	map { ("state_msg_stats_${_}_total" => [ undef, "SELECT $_ FROM state_msg.stats" ]) }
	  qw(enqueued rejected batches resyncs_issued resyncs_reissued
	  resyncs_completed resyncs_held_back));

# Is the value shown the value expected (NaN for NULL)?
sub same_value
{
	my ($shown, $want) = @_;
	return $shown eq 'NaN' if $want eq '';
	return 0 if $shown !~ /^[-+]?[0-9.]+(e[-+]?[0-9]+)?$/i;
	return abs($shown - $want) <= 1e-9 * (1 + abs($want));
}

# Check every dashboard series against the views
sub check_all
{
	my ($metrics, $when) = @_;

	is(value($metrics, 'pg_exporter_last_scrape_error'),
		0, "$when: the exporter's queries ran without error")
	  or diag $err;
	for my $name (@names)
	{
		my $check = $expect{$name};
		ok($check, "$when: $name has a check") or next;
		my ($label, $sql) = @$check;
		my %want;
		for my $row (split /\n/,
			$node->safe_psql('postgres', $label ? $sql : "SELECT '', ($sql)"))
		{
			my ($l, $v) = split /\|/, $row, 2;
			$want{ $label ? "$label=$l" : '' } = $v // '';
		}
		ok($metrics->{$name}, "$when: $name is published") or next;
		my %shown = map { (($label ? "$label=" . ($_->[0]{$label} // '?') : ''), $_->[1]) }
		  @{ $metrics->{$name} };
		my $shown = \%shown;
		is_deeply([ sort keys %$shown ], [ sort keys %want ],
			"$when: $name has the series of the view's rows");
		my @wrong = grep {
			!defined $shown->{$_}
			  || !same_value($shown->{$_}, $want{$_})
		} sort keys %want;
		ok(!@wrong, "$when: $name has the view's values")
		  or diag explain { shown => $shown, want => \%want };
	}
}

my $metrics = scrape();
check_all($metrics, 'after the traffic');

# The known values, as published
is(value($metrics, 'state_msg_stats_processed_messages_total', verdict => 'in_order'),
	4, 'in_order messages of every session');
is(value($metrics, 'state_msg_stats_batches_total'), 7, 'batches');
is(value($metrics, 'state_msg_stats_rejected_total'), 1, 'rejected');
is(value($metrics, 'state_msg_stats_resyncs_issued_total'), 3, 'resyncs issued');
is(value($metrics, 'state_msg_stats_resyncs_completed_total'),
	1, 'resyncs completed');
is(value($metrics, 'state_msg_stats_shared'), 1, 'counters shared');
is(value($metrics, 'state_msg_resyncs_outstanding'), 2, 'outstanding: A and C');
is(value($metrics, 'state_msg_resyncs_never_completed'),
	2, 'never completed: A and C');
is(value($metrics, 'state_msg_resyncs_due_for_reissue'),
	1, 'due for reissue: C');

# An operator resets the counters for every session
my $reset_before = value($metrics, 'state_msg_stats_reset_time_seconds');
$node->safe_psql('postgres', 'SELECT state_msg.stats_reset()',
	extra_params => [ '-U', 'sm_operator' ]);
$metrics = scrape();
check_all($metrics, 'after stats_reset()');
is(value($metrics, 'state_msg_stats_processed_messages_total', verdict => 'in_order'),
	0, 'reset: in_order');
is(value($metrics, 'state_msg_stats_batches_total'), 0, 'reset: batches');
cmp_ok(value($metrics, 'state_msg_stats_reset_time_seconds'),
	'>', $reset_before, 'reset: the reset time moved on');

$exporter_run->signal('TERM');
$exporter_run->finish;
$node->stop;
done_testing();
