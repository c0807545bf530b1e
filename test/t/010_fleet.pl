# The fleet simulator (test/fleet, README "Fleet simulator") end to end:
# each scenario on a small fleet over several simulated days, through the
# inbox (one COPY per cycle, and one per upload as a management point
# sends them), and through state_msg.ingest_report() once the server has
# it.  The simulator builds here (make -C test/fleet, libpq from
# postgresql-server-dev-15's libpq-dev), runs as the cluster's superuser
# (it moves state_msg.clock_offset), and checks every client, state,
# missing range, request and counter against its own record and model of
# the rules; its last line is its verdict.  This test asserts the verdict,
# then reads the monitoring views itself: after the final resync only the
# clients that never answer are outstanding, never completed, and nothing
# is due or undelivered.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# Build the simulator with the pg_config on PATH (the one under test)
my $fleet = 'test/fleet/fleet';
my ($build_out, $build_err) = ('', '');
my $built = IPC::Run::run([ 'make', '-s', '-C', 'test/fleet' ],
	'>', \$build_out, '2>', \$build_err);
ok($built && -x $fleet, 'the simulator builds')
  or diag("make -C test/fleet: $build_out$build_err");

my $node = PostgreSQL::Test::Cluster->new('fleet');
$node->init;
$node->append_conf('postgresql.conf', qq{
synchronous_commit = off
});
$node->start;
# every run starts from an empty database with the extension: a copy
$node->safe_psql('postgres', 'CREATE DATABASE fleet_template');
$node->safe_psql('fleet_template', 'CREATE EXTENSION state_msg');

# One run of the simulator on a fresh database; returns its output lines
sub simulate
{
	my ($name, @args) = @_;
	return finish(start_simulation($name, @args));
}

# Start a run of the simulator on a fresh database (finish() waits for it)
sub start_simulation
{
	my ($name, @args) = @_;
	my $db = $name =~ s/\W/_/gr;
	$node->safe_psql('postgres', "CREATE DATABASE $db TEMPLATE fleet_template");
	my $run = { name => $name, db => $db, out => '', err => '' };
	$run->{h} = IPC::Run::start(
		[
			$fleet, '--dbname', $db, '--host', $node->host,
			'--port', $node->port, @args
		],
		'>', \$run->{out}, '2>', \$run->{err});
	return $run;
}

# Wait for a run, assert its verdict and the views; returns its output
sub finish
{
	my ($run) = @_;
	my ($name, $db) = ($run->{name}, $run->{db});
	my $ok = $run->{h}->finish;
	my $out = $run->{out};
	my @lines = split /\n/, $out;
	my $verdict = $lines[-1] // '';
	like($verdict, qr/^fleet: OK /, "$name: the simulator's verdict")
	  or diag("$out$run->{err}");
	ok($ok, "$name: exit status 0");
	note($_) for @lines;
	views($name, $db, $out);
	return $out;
}

# The monitoring views after the final resync: only the clients that never
# answer have a request outstanding, none of them ever completed one
sub views
{
	my ($name, $db, $out) = @_;
	my ($known, $offline) =
	  $out =~ /^fleet: (\d+) clients known to the site, (\d+) of them never answer$/m;
	my ($end) = $out =~ /^fleet: the simulated clock ends at (.*)$/m;
	ok(defined $known && $known > 0 && defined $end, "$name: clients known");
	return if !defined $known || !defined $end;

	# the views read the engine clock: put it where the simulation ended
	my $clock = "DO \$\$BEGIN PERFORM set_config('state_msg.clock_offset',
		((extract(epoch FROM timestamptz '$end') -
		  extract(epoch FROM clock_timestamp())) * 1000000)::bigint || 'us',
		false); END\$\$;";
	my @got = split /\n/, $node->safe_psql(
		$db, $clock . q{
		SELECT issued_not_completed || ' ' || never_completed || ' ' || due_for_reissue
		FROM state_msg.resync_outstanding;
		SET search_path = state_msg, public;
		select count(*) from SR_ClientMessageStats where LastResyncIssuedTime is not null
		  and (LastResyncIssuedTime > LastResyncClientCompletedTime);
		select count(*) from SR_ClientMessageStats where LastResyncIssuedTime is not null
		  and LastResyncClientCompletedTime is null;
		select count(*) from SR_ClientMessageStats;
		RESET search_path;
		SELECT (SELECT count(*) FROM state_msg.resync_candidates) || ' ' ||
			   (SELECT count(*) FROM state_msg.resync_requests
				WHERE delivered_at IS NULL AND completed_at IS NULL) || ' ' ||
			   (SELECT count(*) FROM state_msg.clients c
				WHERE NOT state_msg.has_open_request(c)
				  AND EXISTS (SELECT FROM state_msg.missing_ranges m
							  WHERE m.client_id = c.client_id))});
	is($got[0], "0 $offline 0",
		"$name: resync_outstanding: only the clients that never answer");
	is( join(' ', @got[ 1 .. 3 ]),
		"0 $offline $known",
		"$name: the two monitoring queries, one row per client");
	is($got[4], '0 0 0',
		"$name: nothing due, nothing undelivered, no gaps left but the silent clients'"
	);
}

simulate('rollout', qw(--scenario rollout --clients 200 --days 4 --seed 1
	  --batch cycle --check-every 4));
# one COPY per upload, as a management point sends them
simulate('patch_tuesday', qw(--scenario patch-tuesday --clients 100 --days 3
	  --seed 2 --updates 10 --check-every 4));
simulate('resync_storm', qw(--scenario resync-storm --clients 250 --days 4
	  --seed 3 --batch cycle --storm 0.4 --check-every 4));
simulate('site_restore', qw(--scenario site-restore --clients 200 --days 4
	  --seed 4 --batch cycle --check-every 4));
# rough weather: many more lost, late, doubled uploads and reinstalls, and
# six days, so that the requests of the storm's silent clients are
# reissued (three days after the two-day age); with this seed a reinstalled
# client answers a resync first, and old uploads arrive in the statement of
# an answer (README, "Two findings, fixed in 1.1")
my $rough = simulate('rough', qw(--scenario resync-storm --clients 120 --days 6
	  --seed 1 --batch cycle --loss 0.1 --late 0.2 --duplicate 0.05
	  --reinstall 0.15 --offline 0.05 --rate 12 --check-every 2));
my ($reissued) = $rough =~ /(\d+) reissued by check cycles/;
ok($reissued && $reissued > 0, "rough: requests reissued (@{[ $reissued // 'none' ]})");
my ($answer_resets, $stale_by_answer) = $rough =~
  /resync answers by the rules: (\d+) resets at an answer's first message, (\d+) stale/;
ok($answer_resets && $stale_by_answer,
	"rough: an answer's reset and old uploads before an answer ("
	  . ($answer_resets // 'none') . ', '
	  . ($stale_by_answer // 'none') . ')');

# the same resync answer delivered twice in one statement, and answers sent
# before a reinstall arriving after its reset: many doubled and late
# uploads and reinstalls.  Each seed brings one of the two cases (any seed
# passes; these ones are where the case comes up)
my %answer_case = (
	20 => [ 'doubled', qr/\((\d+) after one that reset\)/,
		'an answer after one that reset in its statement' ],
	41 => [ 'old_answers', qr/(\d+) answers stale as a whole/,
		'answers stale as a whole' ]);
for my $seed (sort { $a <=> $b } keys %answer_case)
{
	my ($name, $re, $what) = @{ $answer_case{$seed} };
	my $out = simulate($name, qw(--scenario resync-storm --clients 120 --days 6
		  --batch cycle --loss 0.1 --late 0.3 --duplicate 0.3 --reinstall 0.3
		  --offline 0.05 --rate 12 --check-every 2), '--seed', $seed);
	my ($count) = $out =~ $re;
	ok($count && $count > 0, "$name: $what (@{[ $count // 'none' ]})");
}

SKIP:
{
	skip 'state_msg.ingest_report() is not in this build', 1
	  if $node->safe_psql('rollout',
		"SELECT to_regprocedure('state_msg.ingest_report(text)') IS NULL") eq 't';
	simulate('report', qw(--scenario patch-tuesday --clients 100 --days 3
		  --seed 6 --updates 8 --via report --check-every 4));
}

# Queued processing (README, Fleet simulator, Queued processing): uploads
# only enqueue and the simulator drains 20 messages a cycle, so that the
# resync answers after the restore (nearly every client's within a day,
# about 22 messages each) wait in the high queue for days (one statement
# per upload, as the clients send them).  A small fleet
# makes a small burst: the requests are reissued after one day here
# (state_msg.min_resync_period, for the simulator's sessions), not three.
# With state_msg.backlog_aware_resync off the check cycle reissues the
# requests whose answers wait (ConfigMgr's rule), each reissue bringing one
# more answer; on, it holds them back: on the same seed, fewer requests.
my @queued = qw(--scenario site-restore --clients 400 --days 14 --seed 11
  --updates 10 --required 0 --rate 2 --loss 0 --late 0 --duplicate 0
  --reinstall 0 --processing queued --drain 20);
my $has_setting = $node->safe_psql('fleet_template',
	"LOAD 'state_msg'; SELECT current_setting('state_msg.backlog_aware_resync', true) IS NOT NULL");
if ($has_setting eq 't')
{
	# the two at once: each mostly waits for the server
	local $ENV{PGOPTIONS} = '-c state_msg.min_resync_period=1d';
	my $off_run = start_simulation('queued_off', @queued, qw(--backlog-aware off));
	my $on_run = start_simulation('queued_on', @queued, qw(--backlog-aware on));
	my $off = finish($off_run);
	my $on = finish($on_run);
	my $re = qr/^fleet: backlog: .*: (\d+) requests issued, (\d+) reissued, (\d+) held back/m;
	my @off = $off =~ $re;
	my @on = $on =~ $re;
	ok( @off && @on && $on[0] + $on[1] < $off[0] + $off[1],
		"queued: fewer requests with backlog_aware_resync on (on: @on; off: @off)");
	ok(@on && $on[2] > 0 && @off && $off[2] == 0,
		'queued: held back only with backlog_aware_resync on');
}
else
{
	simulate('queued', @queued);
  SKIP:
	{
		skip 'state_msg.backlog_aware_resync is not in this build', 2;
	}
}

# The fsp throttle holding relayed messages at the end of the run (one a
# simulated hour, a rollout's deployment messages relayed and drained 300
# a cycle): the end of the run lifts it and drains them too
{
	local $ENV{PGOPTIONS} = '-c state_msg.fsp_throttle_messages=1';
	simulate('throttled', qw(--scenario rollout --clients 300 --days 4 --seed 1
		  --processing queued --drain 300));
}

# Generation alone (no server): the simulator is never the bottleneck
my ($out, $err) = ('', '');
IPC::Run::run(
	[
		$fleet, qw(--dry-run --scenario patch-tuesday --clients 5000 --days 1
		  --updates 40)
	],
	'>', \$out, '2>', \$err);
like($out, qr/^fleet: OK dry run, \d+ msg\/s, \d+ msg per CPU second$/m,
	'dry run');
diag($1) if $out =~ /^(fleet: OK dry run.*)$/m;

$node->stop;
done_testing();
