# Randomized model test: seeded random streams of client uploads (lost,
# late, duplicated and reordered uploads, reinstalled clients, clients whose
# clock runs a year ahead, relayed messages without a serial, resync answers
# (some twice in one statement, some from before a reinstall arriving late),
# bad rows, check cycles and requests by hand) go through the engine twice:
# in database "batch" as multi-row INSERT and COPY statements of random
# sizes under random state_msg.batch_chunk_size, and in database "single"
# one statement per message (ingest() or a one-row INSERT), in the same
# order; and in database "queued" as in "batch", but under
# state_msg.processing = queued, each statement drained at once with CALL
# state_msg.process_queue() (no high priority topic type, so that only
# resync answers, which travel whole, and relayed messages, which carry no
# serial, change queues: the outcome must be batch's).  Each outcome is
# compared with the prediction of an independent
# model of the rules (StateMsgModel.pm, plain Perl, no call to the engine),
# run on the same statements: clients (counters, next serial, epoch, the
# order of the resync times), client_state, missing_ranges, resync_requests,
# rejected_messages, every ingest() verdict and every check cycle's result.
#
# The engine clock is made irrelevant: state_msg.clock_offset puts it 10
# days ahead, normal message times lie 30 days behind it, skewed ones a year
# ahead (so their effective time is the engine clock of their statement),
# and the model only needs the order of the clocks of different statements.
# No client has more than 8 x batch_chunk_size messages in one statement, so
# its messages are always processed in one chunk, with one clock.
#
# Seeds: a fixed list by default; STATE_MSG_MODEL_SEED=n replays seed n;
# STATE_MSG_MODEL_ITERATIONS=n runs seeds 1 to n; STATE_MSG_MODEL_SCALE=x
# multiplies the number of clients and rounds; STATE_MSG_MODEL_TRACE=<client
# id, normalized> prints what the model did with that client's messages;
# STATE_MSG_MODEL_DRY_RUN=1 only generates and models the streams and
# prints their figures (no server).

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use List::Util qw(shuffle);
use Time::HiRes qw(time);
use POSIX qw(floor strftime);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use StateMsgModel;

my @seeds = (1, 2, 3, 4, 5);
@seeds = (1 .. $ENV{STATE_MSG_MODEL_ITERATIONS})
  if $ENV{STATE_MSG_MODEL_ITERATIONS};
@seeds = ($ENV{STATE_MSG_MODEL_SEED}) if defined $ENV{STATE_MSG_MODEL_SEED};
my $scale = $ENV{STATE_MSG_MODEL_SCALE} // 1;

my $DAY = 86_400_000_000;    # microseconds
my $MINUTE = 60_000_000;

# A dry run needs no server: the engine clock is only a base for the times
my $dry_run = $ENV{STATE_MSG_MODEL_DRY_RUN};
my ($node, $engine_now);
if ($dry_run)
{
	$engine_now = int(time() + 10 * 86_400) * 1_000_000;
}
else
{
	$node = PostgreSQL::Test::Cluster->new('model');
	$node->init;
	$node->append_conf('postgresql.conf', qq{
state_msg.clock_offset = '10d'
state_msg.min_missing_message_age = 0
fsync = off
synchronous_commit = off
});
	$node->start;
	$node->safe_psql('postgres', 'CREATE DATABASE batch');
	$node->safe_psql('postgres', 'CREATE DATABASE single');
	$node->safe_psql('postgres', 'CREATE DATABASE queued');

	# The engine clock now, in microseconds since the epoch
	$engine_now = $node->safe_psql('postgres', q{
		CREATE EXTENSION state_msg;
		SELECT (extract(epoch FROM state_msg.engine_now()) * 1000000)::bigint});
}
my $normal_base = $engine_now - 30 * $DAY;
my $skew_base = $engine_now + 365 * $DAY;
# Engine clock times of this run lie in [$p_low, $p_low + 60 days)
my $p_low = $engine_now - $DAY;

my @TOPICS = (
	[ 500, 'U-1' ], [ 500, 'U-2' ], [ 500, 'U-3' ],
	[ 402, 'CI-1' ], [ 402, 'CI-2' ], [ 301, 'A-1' ]);
my @CHUNK_SIZES = (1, 2, 7, 100, undef);    # undef: the default

sub pick { return $_[ int(rand(@_)) ] }
sub chance { return rand() < $_[0] }

# A random GUID, upper case
sub guid
{
	my @h = map { sprintf('%X', int(rand(16))) } 1 .. 32;
	my $g = join('', @h);
	return join('-',
		substr($g, 0, 8), substr($g, 8, 4), substr($g, 12, 4),
		substr($g, 16, 4), substr($g, 20, 12));
}

# One of the spellings clients use for their id
sub spelling
{
	my ($c) = @_;
	if ($c->{guid})
	{
		my $g = $c->{guid};
		return pick("GUID:$g", 'GUID:' . lc $g, "guid: $g", lc $g, "{$g}",
			" GUID:$g ", 'GUID: {' . lc($g) . '}');
	}
	return pick($c->{name}, " $c->{name}", "$c->{name}  ");
}

# A bad row: a plausible message with one defect
sub bad_row
{
	my ($clients) = @_;
	my $c = pick(@$clients);
	my %r = (
		client_id => spelling($c),
		serial => 1 + int(rand(100)),
		topic_type => 500,
		topic_id => 'U-1',
		topic_id_type => 0,
		state_id => 2,
		criticality => 0,
		time => $normal_base,
		skewed => 0,
		user_params => undef,
		source => 'mp');
	my $defect = pick(
		sub { $r{client_id} = undef },
		sub { $r{client_id} = '   ' },
		sub { $r{client_id} = 'GUID:' },
		sub { $r{client_id} = 'x' x 300 },
		sub { $r{serial} = -5 },
		sub { $r{serial} = (1 << 48) + 1 },
		sub { $r{topic_type} = undef },
		sub { $r{topic_type} = -1 },
		sub { $r{topic_id} = undef },
		sub { $r{topic_id} = ' ' },
		sub { $r{topic_id} = 'T' x 600 },
		sub { $r{topic_id_type} = -2 },
		sub { $r{state_id} = undef },
		sub { $r{state_id} = -3 },
		sub { $r{criticality} = -1 },
		sub { $r{time} = undef },
		sub { $r{user_params} = [ map { "p$_" } 1 .. 6 ] },
		sub { $r{source} = 'xx' },
		sub { $r{source} = undef });
	$defect->();
	return \%r;
}

# A new message of client $c, with the next serial unless relayed
sub new_message
{
	my ($c, $topic, $state, %opts) = @_;
	$c->{t} += int(rand(60_000_000));
	my %m = (
		client_id => undef,    # spelled when delivered
		serial => $opts{relayed} ? undef : $c->{serial}++,
		topic_type => $topic->[0],
		topic_id => $topic->[1],
		topic_id_type => chance(0.8) ? 0 : int(rand(4)),
		state_id => $state,
		criticality => chance(0.9) ? 0 : 1,
		time => $c->{t},
		skewed => 0,
		user_params => chance(0.8)
		? undef
		: [ map { 'p' . int(rand(100)) } 1 .. int(rand(4)) ],
		source => $opts{relayed} ? 'fsp' : 'mp');
	if ($c->{skewy} && chance(0.3))
	{
		$m{time} = $skew_base + int(rand(30 * $DAY));
		$m{skewed} = 1;
	}
	$c->{cache}{"$topic->[0]|$topic->[1]"} = {%m} if !$opts{relayed};
	return \%m;
}

# One client's upload this round: normal messages, or a resync answer (its
# cache renumbered with new serials, original times kept, then 700/2)
sub upload
{
	my ($c, $resync) = @_;
	my @rows;
	if (%{ $c->{cache} } && ($resync || chance(0.05)))
	{
		for my $key (shuffle sort keys %{ $c->{cache} })
		{
			my %m = %{ $c->{cache}{$key} };
			$m{serial} = $c->{serial}++;
			push @rows, \%m;
		}
		push @rows, new_message($c, [ 700, 'RESYNC' ], 2);
		delete $c->{cache}{'700|RESYNC'};
		# a relay that duplicates the answer within its own batch: the
		# same answer twice in one statement (more often for the first
		# answer after a reinstall, whose first copy may be a reset)
		@rows = (@rows, map { +{%$_} } @rows)
		  if chance(delete $c->{reinstalled} ? 0.5 : 0.15);
		return { client => $c, rows => \@rows, resync => 1 };
	}
	for (1 .. 1 + int(rand(5)))
	{
		if (chance(0.06))
		{
			my $topic = chance(0.5) ? [ 800, 'DEP-1' ] : pick(@TOPICS);
			push @rows, new_message($c, $topic, pick(100, 400, 401, 1, 2),
				relayed => 1);
		}
		else
		{
			push @rows, new_message($c, pick(@TOPICS), int(rand(12)));
		}
	}
	@rows = shuffle @rows if chance(0.1);    # reordered within the upload
	return { client => $c, rows => \@rows };
}

# The events of one seed's stream, in delivery order: uploads (each row
# spelled as delivered), bad rows, check cycles and requests by hand
sub generate_stream
{
	my $nclients = int((120 + rand(80)) * $scale);
	my $rounds = int(25 * $scale);
	my (@clients, %due, @events);

	for my $i (1 .. $nclients)
	{
		my $c = {
			name => "host-$i",
			guid => chance(0.8) ? guid() : undef,
			t => $normal_base + int(rand($DAY)),
			serial => chance(0.5) ? 1 : 1 + int(rand(5000)),
			cache => {},
			skewy => chance(0.1),
			reinstall => !chance(0.12) ? -1
			: chance(0.3) ? int(rand(3))
			: int(rand($rounds)),
			resync_at => -1,
			active => 0.15 + rand(0.3),
		};
		$c->{id} = $c->{guid} ? "GUID:$c->{guid}" : $c->{name};
		push @clients, $c;
	}

	for my $round (0 .. $rounds + 10)
	{
		if ($round <= $rounds)
		{
			for my $c (@clients)
			{
				$c->{t} += 15 * $MINUTE + int(rand(5 * $MINUTE));
				if ($c->{reinstall} == $round)
				{
					# an upload raised before the reinstall, held back by a
					# relay that delivers it in the same statement as, and
					# just before, the client's resync answer (or its next
					# upload, if it will not answer)
					$c->{backlog} = upload($c, 0)->{rows} if chance(0.5);
					# a resync answer sent before the reinstall, held back
					# and delivered late, after the reinstall's reset or
					# not, alone or with others in its statement
					push @{ $due{ $round + int(rand(6)) } }, upload($c, 1)
					  if chance(0.3);
					$c->{serial} = 1;
					$c->{reinstalled} = 1;
					# the cache survives the reinstall, or not: an answer
					# then resends the old messages with their old times
					$c->{cache} = {} if chance(0.5);
					$c->{t} += int(rand(10 * 60 * $MINUTE));
					# answering the reset's request, soon, or a resync
					# answer as the first upload after the reinstall
					$c->{resync_at} =
					  chance(0.4) ? $round : $round + 1 + int(rand(4))
					  if chance(0.7);
				}
				my $resync = $c->{resync_at} == $round;
				next if !$resync && !chance($c->{active});
				my $u = upload($c, $resync);
				unshift @{ $u->{rows} }, @{ delete $c->{backlog} }
				  if $c->{backlog} && ($resync || $c->{resync_at} < $round);
				my $fate = rand();
				if ($fate < 0.05)
				{
					next;    # lost
				}
				elsif ($fate < 0.15)
				{
					push @{ $due{ $round + 1 + int(rand(8)) } }, $u;    # late
				}
				elsif ($fate < 0.20)
				{
					push @{ $due{$round} }, $u;    # and a duplicate, later
					push @{ $due{ $round + int(rand(6)) } }, $u;
				}
				else
				{
					push @{ $due{$round} }, $u;
				}
			}
		}
		my @batch = shuffle @{ delete $due{$round} // [] };
		if (chance(0.4))
		{
			push @batch, { bad => 1, rows => [ bad_row(\@clients) ] }
			  for 1 .. 1 + int(rand(3));
			@batch = shuffle @batch;
		}
		for my $u (@batch)
		{
			my @rows =
			  $u->{bad}
			  ? @{ $u->{rows} }
			  : map { +{ %$_, client_id => spelling($u->{client}) } }
			  @{ $u->{rows} };
			push @events,
			  {
				type => 'upload',
				client => $u->{bad} ? undef : $u->{client}{id},
				rows => \@rows
			  };
		}
		push @events,
		  { type => 'request', client_id => spelling(pick(@clients)) }
		  if chance(0.15);
		push @events, { type => 'check', reissue => chance(0.5) }
		  if chance(0.25) || $round == $rounds + 10;
	}
	return @events;
}

# Pack the uploads into statements of random sizes, each under a random
# batch_chunk_size, no client with more than 8 x chunk size messages in it
sub pack_statements
{
	my @events = @_;
	my (@out, $cur);
	my $close = sub { push @out, $cur if $cur && @{ $cur->{rows} }; $cur = undef };

	for my $e (@events)
	{
		if ($e->{type} ne 'upload')
		{
			$close->();
			push @out, $e;
			next;
		}
		my $n = @{ $e->{rows} };
		if ($cur
			&& ($cur->{uploads} >= $cur->{target}
				|| (defined $e->{client}
					&& ($cur->{per_client}{ $e->{client} } // 0) + $n >
					$cur->{cap})))
		{
			$close->();
		}
		if (!$cur)
		{
			# a chunk size under which the upload stays in one chunk
			my $size;
			do { $size = pick(@CHUNK_SIZES) }
			  while defined $size && 8 * $size < $n;
			my $r = rand();
			$cur = {
				type => 'statement',
				rows => [],
				uploads => 0,
				target => $r < 0.4 ? 1 + int(rand(3))
				: $r < 0.85 ? 5 + int(rand(30))
				: 40 + int(rand(80)),
				chunk_size => $size,
				cap => 8 * ($size // 32768),
				format => chance(0.5) ? 'copy' : 'insert',
				per_client => {},
			};
		}
		push @{ $cur->{rows} }, @{ $e->{rows} };
		$cur->{uploads}++;
		$cur->{per_client}{ $e->{client} } += $n if defined $e->{client};
	}
	$close->();
	return @out;
}

# A time in microseconds since the epoch as a timestamptz literal, UTC
sub timestamp_text
{
	my ($us) = @_;
	my $s = floor($us / 1_000_000);
	return strftime('%Y-%m-%d %H:%M:%S', gmtime($s))
	  . sprintf('.%06d+00', $us - $s * 1_000_000);
}

# A row's values as text (NULL as undef), in inbox column order
sub row_values
{
	my ($r) = @_;
	return (
		$r->{client_id}, $r->{serial}, $r->{topic_type}, $r->{topic_id},
		$r->{topic_id_type}, $r->{state_id}, $r->{criticality},
		defined $r->{time} ? timestamp_text($r->{time}) : undef,
		defined $r->{user_params}
		? '{' . join(',', @{ $r->{user_params} }) . '}'
		: undef,
		$r->{source});
}

# A value as an SQL literal
sub sql_literal
{
	my ($v) = @_;
	return 'NULL' if !defined $v;
	return $v if $v =~ /^-?\d+$/;
	$v =~ s/'/''/g;
	return "'$v'";
}

my $COLUMNS = 'client_id, serial_number, topic_type, topic_id, topic_id_type, '
  . 'state_id, criticality, message_time, user_params, source';

# One INSERT statement of rows into the inbox
sub insert_sql
{
	my @rows = @_;
	return "INSERT INTO state_msg.inbox ($COLUMNS) VALUES\n"
	  . join(",\n",
		map { '(' . join(', ', map { sql_literal($_) } row_values($_)) . ')' }
		  @rows)
	  . ";\n";
}

# One COPY statement of rows into the inbox, with its data inline
sub copy_sql
{
	my @rows = @_;
	return "COPY state_msg.inbox ($COLUMNS) FROM stdin;\n"
	  . join('',
		map { join("\t", map { $_ // '\N' } row_values($_)) . "\n" } @rows)
	  . "\\.\n";
}

# One ingest() call of a row, as event $k: its output is "e<k>|<verdict>"
sub ingest_sql
{
	my ($k, $r) = @_;
	my @v = map { sql_literal($_) } row_values($r);
	# ingest()'s arguments: client, serial, type, topic, state, time, then
	# topic_id_type, criticality, user_params, source
	return "SELECT 'e$k', state_msg.ingest("
	  . join(', ', @v[ 0, 1, 2, 3, 5, 7, 4, 6 ])
	  . ", $v[8]::text[], $v[9]);\n";
}

# A check cycle as event $k, with min_resync_period 0 (every outstanding
# request is reissued) or too long for any; its output is "e<k>|issued|reissued"
sub check_sql
{
	my ($k, $e) = @_;
	my $period = $e->{reissue} ? '0' : '100d';
	return "SET state_msg.min_resync_period = '$period';\n"
	  . "SELECT 'e$k', * FROM state_msg.run_resync_check();\n";
}

# request_resync() as event $k: its output is "e<k>|t"
sub request_sql
{
	my ($k, $e) = @_;
	return "SELECT 'e$k', state_msg.request_resync("
	  . sql_literal($e->{client_id})
	  . ") IS NOT NULL;\n";
}

# Run the events through a model and build the engine's script.  $single:
# one statement per message.  Returns the model, the script, the output
# lines expected from it and the count of each verdict.
sub run_model
{
	my ($single, @events) = @_;
	my $model = StateMsgModel->new;
	$model->{trace} = $ENV{STATE_MSG_MODEL_TRACE};
	my $k = 0;
	my (@sql, @queued_sql, @expect, %verdicts);

	push @sql, "SET client_min_messages = error;\n";
	push @queued_sql, "SET client_min_messages = error;\n",
	  "SET state_msg.processing = queued;\n",
	  "SET state_msg.high_priority_topic_types = '';\n";
	for my $e (@events)
	{
		if ($e->{type} eq 'check')
		{
			my ($issued, $reissued) = $model->check(++$k, $e->{reissue});
			push @sql, check_sql($k, $e);
			push @queued_sql, check_sql($k, $e);
			push @expect, "e$k|$issued|$reissued";
		}
		elsif ($e->{type} eq 'request')
		{
			next if !$e->{known};
			$model->request_resync($e->{client_id}, ++$k);
			push @sql, request_sql($k, $e);
			push @queued_sql, request_sql($k, $e);
			push @expect, "e$k|t";
		}
		elsif (!$single)
		{
			my @statement = (
				defined $e->{chunk_size}
				? "SET state_msg.batch_chunk_size = $e->{chunk_size};\n"
				: "RESET state_msg.batch_chunk_size;\n",
				$e->{format} eq 'copy'
				? copy_sql(@{ $e->{rows} })
				: insert_sql(@{ $e->{rows} }));

			$verdicts{$_}++ for $model->statement($e->{rows}, ++$k);
			push @sql, @statement;
			push @queued_sql, @statement, "CALL state_msg.process_queue();\n";
		}
		else
		{
			for my $r (@{ $e->{rows} })
			{
				my ($verdict) = $model->statement([$r], ++$k);
				$verdicts{$verdict}++;
				if ($r->{via_insert})
				{
					push @sql, insert_sql($r);
				}
				else
				{
					push @sql, ingest_sql($k, $r);
					push @expect, "e$k|$verdict";
				}
			}
		}
	}
	diag(($single ? 'single' : 'batch') . ": $_") for @{ $model->{trace_log} };
	return ($model, join('', @sql), \@expect, \%verdicts, join('', @queued_sql));
}

# A time column as the dumps show it: '-', 'P' (an engine clock time of this
# run) or microseconds since the epoch
sub time_sql
{
	my ($col) = @_;
	my $us = "(extract(epoch FROM $col) * 1000000)::bigint";
	return "CASE WHEN $col IS NULL THEN '-'"
	  . " WHEN $us >= $p_low AND $us < $p_low + 60 * $DAY THEN 'P'"
	  . " ELSE ${us}::text END";
}

# The engine's tables, as the model's dump shows them
sub dump_engine
{
	my ($db) = @_;
	my %queries = (
		clients => "SELECT concat_ws('|', client_id,"
		  . " coalesce(next_serial_number::text, '-'), serial_epoch, "
		  . time_sql('serial_epoch_started') . ', '
		  . time_sql('last_message_time') . ','
		  . ' messages_processed, missing_serials, late_fills, duplicates,'
		  . ' serial_resets, unserialized_messages,'
		  . ' clock_skewed_messages, resync_requests_issued, '
		  . time_sql('last_processed_time') . ', '
		  . time_sql('last_resync_issued_time') . ', '
		  . time_sql('last_resync_client_completed_time') . ','
		  . " CASE WHEN last_resync_issued_time IS NULL AND last_resync_client_completed_time IS NULL THEN '-'"
		  . " WHEN last_resync_client_completed_time IS NULL THEN 'I'"
		  . " WHEN last_resync_issued_time IS NULL THEN 'C'"
		  . " WHEN last_resync_issued_time > last_resync_client_completed_time THEN 'I>C'"
		  . " WHEN last_resync_issued_time < last_resync_client_completed_time THEN 'C>I'"
		  . " ELSE 'I=C' END) FROM state_msg.clients c",
		client_state => "SELECT concat_ws('|', client_id, topic_type, topic_id,"
		  . ' topic_id_type, state_id, criticality,'
		  . " coalesce(serial_number::text, '-'), serial_epoch,"
		  . ' (extract(epoch FROM message_time) * 1000000)::bigint,'
		  . " coalesce(user_params::text, '-'), source)"
		  . ' FROM state_msg.client_state',
		missing_ranges => "SELECT concat_ws('|', client_id, first_serial,"
		  . ' last_serial, '
		  . time_sql('detected_at')
		  . ') FROM state_msg.missing_ranges',
		resync_requests => "SELECT concat_ws('|', client_id, reason, count(*),"
		  . ' count(completed_at),'
		  . ' count(*) FILTER (WHERE '
		  . time_sql('issued_at')
		  . " <> 'P' OR "
		  . time_sql('completed_at')
		  . " NOT IN ('P', '-')),"
		  . ' count(*) FILTER (WHERE completed_at <= issued_at))'
		  . ' FROM state_msg.resync_requests GROUP BY client_id, reason',
		rejected_messages => "SELECT concat_ws('|', reason, sqlstate, count(*))"
		  . ' FROM state_msg.rejected_messages GROUP BY reason, sqlstate');
	my %dump = map { $_ => [] } keys %queries;
	my $out = $node->safe_psql($db,
		join("\nUNION ALL\n",
			map { "SELECT '$_', * FROM ($queries{$_}) AS q" } sort keys %queries));
	for my $line (split /\n/, $out)
	{
		my ($table, $row) = split /\|/, $line, 2;
		push @{ $dump{$table} }, $row;
	}
	$dump{$_} = [ sort @{ $dump{$_} } ] for keys %dump;
	return \%dump;
}

# The lines only one side has, model's first, in sorted order
sub differences
{
	my ($model, $engine) = @_;
	my (%m, %e, @diff);
	$m{$_}++ for @$model;
	$e{$_}++ for @$engine;
	for my $line (sort keys %{ { %m, %e } })
	{
		my $d = ($m{$line} // 0) - ($e{$line} // 0);
		push @diff, "  model:  $line" if $d > 0;
		push @diff, "  engine: $line" if $d < 0;
	}
	return @diff;
}

my @HEADERS = (
	clients => 'client|next|epoch|epoch_started|last_message_time|processed|'
	  . 'missing|late_fills|duplicates|resets|unserialized|clock_skewed|'
	  . 'requests_issued|last_processed_time|last_resync_issued_time|'
	  . 'last_resync_client_completed_time|issued vs completed',
	client_state => 'client|type|topic|topic_id_type|state|criticality|'
	  . 'serial|epoch|message_time|user_params|source',
	missing_ranges => 'client|first|last|detected_at',
	resync_requests => 'client|reason|issued|completed|'
	  . 'not dated by the engine clock|completed before issued',
	rejected_messages => 'reason|sqlstate|count',
	output => 'event|ingest() verdict, or issued|reissued of a check cycle');

# Compare one database with its model; report the first differences
sub compare
{
	my ($seed, $db, $model, $output, $expect) = @_;
	my $dump = dump_engine($db);
	my $predicted = $model->dump;
	my $ok = 1;

	# Queued, a relayed message is processed after its client's other
	# messages of the statement (it waits in the fsp queue): the epoch its
	# state records (informational: a state without a serial is compared by
	# time) is the one after them
	if ($db eq 'queued')
	{
		for my $d ($dump, $predicted)
		{
			s/^((?:[^|]*\|){6}-\|)[^|]*/$1*/ for @{ $d->{client_state} };
		}
	}

	for (my $i = 0; $i < @HEADERS; $i += 2)
	{
		my ($table, $header) = @HEADERS[ $i, $i + 1 ];
		my @diff =
		  $table eq 'output'
		  ? differences($expect, [ grep { $_ ne '' } split /\n/, $output ])
		  : differences($predicted->{$table}, $dump->{$table});
		next if !@diff;
		$ok = 0;
		diag("seed $seed, database $db, $table: "
			  . scalar(@diff)
			  . " lines differ ($header); the first:\n"
			  . join("\n", @diff[ 0 .. ($#diff < 19 ? $#diff : 19) ]));
	}
	return $ok;
}

for my $seed (@seeds)
{
	srand($seed);
	my @events = generate_stream();

	# Requests by hand only for clients the engine knows by then: a client
	# is known once a valid message of it was processed, in either database
	my $known = StateMsgModel->new;
	for my $e (@events)
	{
		if ($e->{type} eq 'upload')
		{
			$known->statement($e->{rows}, 0);
		}
		elsif ($e->{type} eq 'request')
		{
			$e->{known} = $known->has_client(
				StateMsgModel::normalize_client_id($e->{client_id}));
		}
	}
	for my $e (@events)
	{
		next if $e->{type} ne 'upload';
		$_->{via_insert} = chance(0.3) for @{ $e->{rows} };
	}
	my @statements = pack_statements(@events);

	my ($batch_model, $batch_sql, $batch_expect, $batch_verdicts, $queued_sql) =
	  run_model(0, @statements);
	my ($single_model, $single_sql, $single_expect, $single_verdicts) =
	  run_model(1, @statements);

	# What the streams hold, and how often batch and one at a time differ
	my $counts = sub {
		my ($h) = @_;
		return join(', ', map { "$_ $h->{$_}" } sort keys %$h);
	};
	my ($bd, $sd) = ($batch_model->dump, $single_model->dump);
	my %differ = map { $_ => scalar differences($bd->{$_}, $sd->{$_}) } keys %$bd;
	my @sts = grep { $_->{type} eq 'statement' } @statements;
	my $rows = 0;
	$rows += @{ $_->{rows} } for @sts;
	note(sprintf('seed %s: %d clients, %d rows in %d statements, %d checks',
			$seed, scalar @{ $bd->{clients} }, $rows, scalar @sts,
			scalar grep { $_->{type} eq 'check' } @statements));
	note('  verdicts, batch: ' . $counts->($batch_verdicts));
	note('  verdicts, single: ' . $counts->($single_verdicts));
	note('  events, batch: ' . $counts->($batch_model->{stats}));
	note('  events, single: ' . $counts->($single_model->{stats}));
	note('  predicted lines differing between batch and single: '
		  . $counts->(\%differ));

	next if $dry_run;
	for my $db ('batch', 'single', 'queued')
	{
		$node->safe_psql($db, q{
			SET client_min_messages = warning;
			DROP EXTENSION IF EXISTS state_msg;
			CREATE EXTENSION state_msg});
	}
	my $t0 = time();
	my $batch_out = $node->safe_psql('batch', $batch_sql);
	my $t1 = time();
	my $single_out = $node->safe_psql('single', $single_sql);
	my $t2 = time();
	my $queued_out = $node->safe_psql('queued', $queued_sql);
	my $t3 = time();

	ok(compare($seed, 'batch', $batch_model, $batch_out, $batch_expect),
		"seed $seed: statements of random sizes and chunk sizes give what the model predicts"
	);
	ok(compare($seed, 'single', $single_model, $single_out, $single_expect),
		"seed $seed: one message per statement gives what the model predicts");
	ok(compare($seed, 'queued', $batch_model, $queued_out, $batch_expect),
		"seed $seed: the statements enqueued and drained give what the model predicts");
	note(sprintf('  seconds: batch %.1f, single %.1f, queued %.1f, comparisons %.1f',
			$t1 - $t0, $t2 - $t1, $t3 - $t2, time() - $t3));
}

pass('dry run') if $dry_run;
done_testing();
