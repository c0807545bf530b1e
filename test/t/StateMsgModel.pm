# An independent model of the state_msg 1.1 rules, for test/t/004_model.pl.
#
# Plain Perl data structures; it calls nothing of the engine.  It is fed the
# same statements the engine gets (rows in arrival order, grouped per client
# as the rules say) and predicts the tables the test compares: clients (every
# counter, next serial, epoch, the order of the resync times), client_state
# (every column but processed_at), missing_ranges, resync_requests (per
# client and reason: issued and completed) and rejected_messages (reasons).
#
# Times.  A message time is an integer count of microseconds since the Unix
# epoch.  The engine clock P is unknown to the model, and the test makes it
# irrelevant: every normal message time lies far before any P, every skewed
# one far after P + max_clock_skew.  So P of the statement (or check cycle)
# numbered k is represented as PBASE + k * PGAP: greater than every normal
# time, increasing with k, and far enough apart that the microseconds an
# issue or completion time may add to P never reach the next statement's.
# A row's "skewed" flag says its time is beyond P + max_clock_skew (the test
# generates it so); the model never compares such a time with P itself.

package StateMsgModel;

use strict;
use warnings;

use constant PBASE => 100_000_000_000_000_000;    # 1e17, beyond every real time
use constant PGAP => 1_000_000_000;
use constant MAX_SERIAL => 1 << 48;
use constant BIGINT_MAX => 9_223_372_036_854_775_807;

# A new, empty engine
sub new
{
	my ($class) = @_;
	return bless { clients => {}, states => {}, rejected => {}, stats => {} },
	  $class;
}

# The symbolic engine clock of statement number k
sub clock_of
{
	my ($k) = @_;
	return PBASE + $k * PGAP;
}

# The client id normalization of the README: GUIDs in any of their
# spellings become "GUID:" and the upper-case GUID; anything else is kept,
# less surrounding white space.  Returns '' for "GUID:" alone.
sub normalize_client_id
{
	my ($raw) = @_;
	my $s = $raw;
	my $prefixed = 0;
	my $hex = '[0-9A-Fa-f]';
	my $guid = "$hex\{8}-$hex\{4}-$hex\{4}-$hex\{4}-$hex\{12}";

	$s =~ s/^[ \t\n\r\f\x0b]+//;
	$s =~ s/[ \t\n\r\f\x0b]+$//;
	if ($s =~ /^guid:/i)
	{
		$prefixed = 1;
		$s = substr($s, 5);
		$s =~ s/^[ \t\n\r\f\x0b]+//;
	}
	return 'GUID:' . uc($1) if $s =~ /^\{($guid)\}$/ || $s =~ /^($guid)$/;
	return $s if !$prefixed;
	return '' if $s eq '';
	return "GUID:$s";
}

# Validate one row as the README's "Bad input" says; returns (reason,
# sqlstate) for a bad row, () for a good one.  The fields are checked in the
# order of the inbox's columns, so a row with one defect has one reason.
sub validate
{
	my ($r) = @_;
	my $blank = sub { $_[0] =~ /^[ \t\n\r\f\x0b]*$/ };

	return ('client_id must not be null', '22004') if !defined $r->{client_id};
	return ('client_id is longer than 256 bytes', '22001')
	  if length($r->{client_id}) > 256;
	return ('client_id must not be empty', '22023')
	  if $blank->($r->{client_id}) || normalize_client_id($r->{client_id}) eq '';
	if (defined $r->{serial})
	{
		return ('serial_number must not be negative', '22003') if $r->{serial} < 0;
		return ('serial_number is above ' . MAX_SERIAL, '22003')
		  if $r->{serial} > MAX_SERIAL;
	}
	return ('topic_type must not be null', '22004') if !defined $r->{topic_type};
	return ('topic_type must not be negative', '22003') if $r->{topic_type} < 0;
	return ('topic_id must not be null', '22004') if !defined $r->{topic_id};
	return ('topic_id is longer than 512 bytes', '22001')
	  if length($r->{topic_id}) > 512;
	return ('topic_id must not be empty', '22023') if $blank->($r->{topic_id});
	for my $f (qw(topic_id_type state_id criticality))
	{
		return ("$f must not be null", '22004') if !defined $r->{$f};
		return ("$f must not be negative", '22003') if $r->{$f} < 0;
	}
	return ('message_time must not be null', '22004') if !defined $r->{time};
	if (defined $r->{user_params} && @{ $r->{user_params} } > 5)
	{
		return (
			sprintf('user_params has %d elements, more than 5',
				scalar @{ $r->{user_params} }),
			'2202E');
	}
	return ('source must not be null', '22004') if !defined $r->{source};
	return ("source must be 'mp' or 'fsp'", '22023')
	  if $r->{source} ne 'mp' && $r->{source} ne 'fsp';
	return ();
}

# The client's row, created on its first valid message
sub client
{
	my ($self, $id) = @_;
	return $self->{clients}{$id} //= {
		id => $id,
		next => undef,
		epoch => 0,
		epoch_started => undef,
		last_message_time => undef,
		ranges => [],    # [first, last, detected_at], sorted
		processed => 0,
		missing => 0,
		late_fills => 0,
		duplicates => 0,
		resets => 0,
		unserialized => 0,
		skewed => 0,
		issued_count => 0,
		issued => undef,
		completed => undef,
		requests => [],    # { reason, completed }
	};
}

# With $self->{trace} set to a client id, note what happens to that client
sub trace
{
	my ($self, $c, $now, $what) = @_;
	return if !defined $self->{trace} || $self->{trace} ne $c->{id};
	my $rel = sub { defined $_[0] ? $_[0] - $now : '-' };
	push @{ $self->{trace_log} },
	  sprintf(
		'P%d %s; next %s, epoch %d, ranges %s, issued P%+s, completed P%+s, requests %s',
		($now - PBASE) / PGAP, $what, $c->{next} // '-', $c->{epoch},
		join(',', map { "$_->[0]-$_->[1]" } @{ $c->{ranges} }) || '-',
		$rel->($c->{issued}), $rel->($c->{completed}),
		join(',',
			map { $_->{reason} . ($_->{completed} ? '(done)' : '') }
			  @{ $c->{requests} }));
}

# Does client $id exist (has it sent a valid message)?
sub has_client
{
	my ($self, $id) = @_;
	return exists $self->{clients}{$id};
}

sub add_saturating
{
	my ($a, $b) = @_;
	return $a > BIGINT_MAX - $b ? BIGINT_MAX : $a + $b;
}

# Issue a request: dated the clock, but after the client's last completion
sub issue
{
	my ($c, $reason, $now) = @_;
	my $t = $now;
	$t = $c->{completed} + 1
	  if defined $c->{completed} && $c->{completed} + 1 > $t;
	$c->{issued} = $t;
	$c->{issued_count} = add_saturating($c->{issued_count}, 1);
	push @{ $c->{requests} }, { reason => $reason, completed => 0 };
}

# A resync completion: dated the clock, but after the client's last issue;
# completes every open request and forgets the missing serials below it
sub complete
{
	my ($c, $serial, $now) = @_;
	my $t = $now;
	$t = $c->{issued} + 1 if defined $c->{issued} && $c->{issued} + 1 > $t;
	$c->{completed} = $t;
	$_->{completed} = 1 for @{ $c->{requests} };
	$c->{ranges} = [ grep { $_->[1] >= $serial } @{ $c->{ranges} } ]
	  if defined $serial;
}

# The newest-state rule: is message $m newer than the stored state $s?
sub is_newer
{
	my ($m, $s) = @_;
	if (defined $m->{serial} && defined $s->{serial})
	{
		return $m->{epoch} > $s->{epoch} if $m->{epoch} != $s->{epoch};
		return $m->{serial} > $s->{serial};
	}
	return $m->{eff} >= $s->{eff};
}

# Fold an accepted (not duplicate) message into its topic's current state
sub fold_state
{
	my ($self, $cid, $m) = @_;
	my $key = join("\0", $cid, $m->{topic_type}, $m->{topic_id});
	my $stored = $self->{states}{$key};
	$self->{states}{$key} = $m if !defined $stored || is_newer($m, $stored);
}

# Position of the missing range holding serial $s, or -1
sub find_range
{
	my ($c, $s) = @_;
	my $r = $c->{ranges};
	for my $i (0 .. $#$r)
	{
		return $i if $r->[$i][0] <= $s && $s <= $r->[$i][1];
	}
	return -1;
}

# One client's rows of one statement (its chunk), in arrival order, at
# engine clock $now
sub process_chunk
{
	my ($self, $cid, $rows, $now) = @_;
	my $c = $self->client($cid);
	my @msgs = map {
		+{
			%$_,
			client => $cid,
			eff => $_->{skewed} ? $now : $_->{time}
		}
	} @$rows;

	# The client's resync answers in this statement: every 700/2 that has a
	# serial ends one, together with the serialized messages just before it
	# whose serials count up to it one by one (a renumbered cache), back to
	# the previous answer's 700/2 at most (answers never overlap).  Messages
	# without a serial are in none and do not interrupt one.  Each answer is
	# judged as a whole at its first message, in arrival order.
	my %answer_of;    # message position => position of its answer's 700/2
	my %answer_start; # position of a 700/2 => its answer's first message
	my @serialized = grep { defined $msgs[$_]{serial} } 0 .. $#msgs;
	my @ends = grep {
		$msgs[$_]{topic_type} == 700 && $msgs[$_]{state_id} == 2
	} @serialized;
	my $prev_end = -1;
	for my $end (@ends)
	{
		my @before = grep { $_ < $end && $_ > $prev_end } @serialized;
		my @run = ($end);
		while (@before
			&& $msgs[ $before[-1] ]{serial} == $msgs[ $run[0] ]{serial} - 1)
		{
			unshift @run, pop @before;
		}
		$answer_of{$_} = $end for @run;
		$answer_start{$end} = $run[0];
		$self->{stats}{'resync answers'}++;
		$self->{stats}{'messages left out of an answer before it'}++
		  if @before;
		$self->{stats}{'answers after another in their statement'}++
		  if $prev_end >= 0;
		$prev_end = $end;
	}
	my $last_end = @ends ? $ends[-1] : undef;

	# Is the answer ending at $end stale as a whole (its 700/2 earlier than
	# the client's epoch start when it is judged)?
	my $answer_stale = sub {
		my ($end) = @_;
		return defined $c->{epoch_started}
		  && $msgs[$end]{eff} < $c->{epoch_started};
	};

	# Would the answer's 700/2 be a serial reset when the answer begins?
	# Then the reset is the answer's first message, at the 700/2's time.
	my $answer_resets = sub {
		my ($end) = @_;
		my $m = $msgs[$end];
		return
			 $m->{serial} < $c->{next}
		  && find_range($c, $m->{serial}) < 0
		  && defined $c->{last_message_time}
		  && $m->{eff} > $c->{last_message_time}
		  && !$m->{skewed};
	};

	# Baseline of a client never seen with a serial: the lowest serial,
	# scanning in arrival order, stopping at what looks like a reset
	if (!defined $c->{next})
	{
		my ($min, $newest);
		for my $m (grep { defined $_->{serial} } @msgs)
		{
			if (   defined $min
				&& $m->{serial} < $min
				&& $m->{eff} > $newest
				&& !$m->{skewed})
			{
				$self->{stats}{'baseline scan stopped'}++;
				last;
			}
			$min = $m->{serial} if !defined $min || $m->{serial} < $min;
			$newest = $m->{eff} if !defined $newest || $m->{eff} > $newest;
		}
		$c->{next} = $min;
	}

	my $stale_answer;    # the answer being processed is stale as a whole
	my $answer_reset_here;    # an answer of this statement reset
	for my $i (0 .. $#msgs)
	{
		my $m = $msgs[$i];
		my $s = $m->{serial};
		my $eff = $m->{eff};
		my $end = $answer_of{$i};
		my $first = defined $end && $answer_start{$end} == $i;
		my $verdict;

		$c->{processed}++;
		$c->{skewed}++ if $m->{skewed};
		$self->{stats}{'skewed'}++ if $m->{skewed};
		if ($first)
		{
			$stale_answer = $answer_stale->($end);
			$self->{stats}{'answers stale as a whole'}++ if $stale_answer;
			$self->{stats}{'answers judged after another in their statement'}++
			  if $end != $ends[0];
			$self->{stats}{'answers after one that reset in their statement'}++
			  if $answer_reset_here;
		}
		$self->{stats}{'exempt from the stale rule'}++
		  if defined $end
		  && !$stale_answer
		  && defined $c->{epoch_started}
		  && $eff < $c->{epoch_started};

		if (!defined $s)
		{
			$verdict = 'unserialized';
			$c->{unserialized}++;
		}
		elsif (defined $end && $stale_answer)
		{
			$verdict = 'duplicate';    # an old answer: of a previous epoch
			$self->{stats}{'stale, in a stale answer'}++;
		}
		elsif (!defined $end
			&& defined $c->{epoch_started}
			&& $eff < $c->{epoch_started})
		{
			$verdict = 'duplicate';    # stale: of the previous epoch
			$self->{stats}{'stale'}++;
			$self->{stats}{'stale, before an answer in its statement'}++
			  if defined $last_end && $i < $last_end;
		}
		elsif ($first && $answer_resets->($end))
		{
			$verdict = 'serial_reset';
			$c->{resets}++;
			$c->{epoch}++;
			$c->{epoch_started} = $msgs[$end]{eff};
			$c->{next} = $s + 1;
			$c->{ranges} = [];
			issue($c, 'serial_reset', $now);
			$self->{stats}{'reset by an answer'}++;
			$self->{stats}{'reset by an answer before its 700/2'}++
			  if $i != $end;
			$self->{stats}{'reset by an answer after another in its statement'}++
			  if $end != $ends[0];
			$answer_reset_here = 1;
		}
		elsif ($s == $c->{next})
		{
			$verdict = 'in_order';
			$c->{next} = $s + 1;
		}
		elsif ($s > $c->{next})
		{
			$verdict = 'gap';
			push @{ $c->{ranges} }, [ $c->{next}, $s - 1, $now ];
			$c->{missing} = add_saturating($c->{missing}, $s - $c->{next});
			$c->{next} = $s + 1;
		}
		elsif ((my $pos = find_range($c, $s)) >= 0)
		{
			my ($f, $l, $d) = @{ $c->{ranges}[$pos] };
			my @keep;
			push @keep, [ $f, $s - 1, $d ] if $f < $s;
			push @keep, [ $s + 1, $l, $d ] if $s < $l;
			splice @{ $c->{ranges} }, $pos, 1, @keep;
			$verdict = 'late_fill';
			$c->{late_fills}++;
		}
		elsif (defined $c->{last_message_time}
			&& $eff > $c->{last_message_time}
			&& !$m->{skewed})
		{
			$verdict = 'serial_reset';
			$c->{resets}++;
			$c->{epoch}++;
			$c->{epoch_started} = $eff;
			$c->{next} = $s + 1;
			$c->{ranges} = [];
			issue($c, 'serial_reset', $now);
		}
		else
		{
			$verdict = 'duplicate';
		}

		if ($verdict eq 'duplicate')
		{
			$c->{duplicates}++;
		}
		else
		{
			$c->{last_message_time} = $eff
			  if defined $s
			  && (!defined $c->{last_message_time}
				|| $eff > $c->{last_message_time});
			$m->{epoch} = $c->{epoch};

			# Any resync-complete message but a duplicate completes, a reset
			# too (its own request first: the reset is decided, then the
			# message's content applies)
			if ($m->{topic_type} == 700 && $m->{state_id} == 2)
			{
				complete($c, $s, $now);
				$self->{stats}{'completions'}++;
			}
			$self->fold_state($cid, $m);
		}
		$m->{verdict} = $verdict;
		$self->trace($c, $now,
			sprintf('serial %s, %s/%s state %s, %s: %s',
				$s // 'NULL', $m->{topic_type}, $m->{topic_id}, $m->{state_id},
				$m->{skewed} ? 'skewed' : "time $m->{time}", $verdict));
	}
	return map { $_->{verdict} } @msgs;
}

# One statement: rows in arrival order, at the engine clock of statement
# number $k (one clock for the whole statement: the test keeps every
# client's rows of a statement in one chunk, and different clients' chunks
# never compare their clocks).  Returns each row's verdict, in row order.
sub statement
{
	my ($self, $rows, $k) = @_;
	my $now = clock_of($k);
	my (%by_client, @order, @verdicts);

	for my $i (0 .. $#$rows)
	{
		my $r = $rows->[$i];
		if (my ($reason, $sqlstate) = validate($r))
		{
			$self->{rejected}{"$reason|$sqlstate"}++;
			$verdicts[$i] = 'rejected';
			next;
		}
		my $cid = normalize_client_id($r->{client_id});
		push @order, $cid if !$by_client{$cid};
		push @{ $by_client{$cid} }, $i;
	}
	for my $cid (@order)
	{
		my @idx = @{ $by_client{$cid} };
		my @v = $self->process_chunk($cid, [ map { $rows->[$_] } @idx ], $now);
		@verdicts[@idx] = @v;
	}
	return @verdicts;
}

# The check cycle at engine clock of statement $k (as_of defaults to it),
# with min_missing_message_age 0; $reissue says whether min_resync_period
# is 0 (every outstanding request is due again) or too long for any to be.
# Returns (issued, reissued).
sub check
{
	my ($self, $k, $reissue) = @_;
	my $as_of = clock_of($k);
	my ($issued, $reissued) = (0, 0);

	for my $c (values %{ $self->{clients} })
	{
		my $outstanding = defined $c->{issued}
		  && (!defined $c->{completed} || $c->{completed} < $c->{issued});
		if ($outstanding)
		{
			next if !$reissue || $c->{issued} > $as_of;
			issue($c, 'reissue', $as_of);
			$reissued++;
			$self->trace($c, $as_of, 'check cycle: reissue');
		}
		elsif (grep { $_->[2] <= $as_of } @{ $c->{ranges} })
		{
			issue($c, 'missing', $as_of);
			$issued++;
			$self->trace($c, $as_of, 'check cycle: missing');
		}
	}
	return ($issued, $reissued);
}

# request_resync() by hand, as statement $k
sub request_resync
{
	my ($self, $raw_id, $k) = @_;
	my $c = $self->{clients}{ normalize_client_id($raw_id) };
	issue($c, 'manual', clock_of($k));
	$self->trace($c, clock_of($k), 'request_resync()');
}

# A time as the dumps show it: '-' for none, 'P' for an engine clock time,
# else microseconds since the epoch
sub show_time
{
	my ($t) = @_;
	return '-' if !defined $t;
	return 'P' if $t >= PBASE;
	return $t;
}

# The order of the two resync times, as the monitoring queries see it
sub resync_order
{
	my ($c) = @_;
	my ($i, $d) = ($c->{issued}, $c->{completed});
	return '-' if !defined $i && !defined $d;
	return 'I' if !defined $d;
	return 'C' if !defined $i;
	return $i > $d ? 'I>C' : $i < $d ? 'C>I' : 'I=C';
}

# The predicted tables, as sorted lines (see the test's dump queries).
# Every time the engine records is an engine clock time ('P'): processing,
# range detection, issue and completion.
sub dump
{
	my ($self) = @_;
	my (@clients, @states, @ranges, @requests, @rejected);

	for my $c (values %{ $self->{clients} })
	{
		push @clients, join('|',
			$c->{id}, $c->{next} // '-', $c->{epoch},
			show_time($c->{epoch_started}), show_time($c->{last_message_time}),
			$c->{processed}, $c->{missing}, $c->{late_fills}, $c->{duplicates},
			$c->{resets}, $c->{unserialized}, $c->{skewed}, $c->{issued_count},
			'P', show_time($c->{issued}), show_time($c->{completed}),
			resync_order($c));
		push @ranges, join('|', $c->{id}, $_->[0], $_->[1], show_time($_->[2]))
		  for @{ $c->{ranges} };
		my %by_reason;
		for my $r (@{ $c->{requests} })
		{
			$by_reason{ $r->{reason} }[0]++;
			$by_reason{ $r->{reason} }[1] += $r->{completed};
		}
		push @requests, join('|', $c->{id}, $_, @{ $by_reason{$_} }, 0, 0)
		  for keys %by_reason;
	}
	for my $m (values %{ $self->{states} })
	{
		push @states, join('|',
			$m->{client}, $m->{topic_type}, $m->{topic_id}, $m->{topic_id_type},
			$m->{state_id}, $m->{criticality}, $m->{serial} // '-', $m->{epoch},
			$m->{time},
			defined $m->{user_params}
			? '{' . join(',', @{ $m->{user_params} }) . '}'
			: '-',
			$m->{source});
	}
	push @rejected, "$_|$self->{rejected}{$_}" for keys %{ $self->{rejected} };

	return {
		clients => [ sort @clients ],
		client_state => [ sort @states ],
		missing_ranges => [ sort @ranges ],
		resync_requests => [ sort @requests ],
		rejected_messages => [ sort @rejected ],
	};
}

1;
