/*-------------------------------------------------------------------------
 *
 * serials.c
 *	  Per-client serial tracking: next expected serial and missing ranges.
 *
 * Every client numbers its messages 1, 2, 3, ...  The site keeps the next
 * serial it expects from each client and the ranges it has seen skipped.
 * This file decides, message by message, what a serial means, working on a
 * ClientTrack in memory; batch.c reads the track from the tables and writes
 * it back.
 *
 * The rules, for a message with serial s from a client expecting next,
 * where a message's time means its effective time (sm_effective_time()):
 *	- first message of a client: it is the baseline, next = s + 1;
 *	- after a serial reset, a message older than the reset belongs to the
 *	  previous epoch: it is stale, a duplicate, unless it is part of a resync
 *	  answer (the client's cache, renumbered but with its original times;
 *	  batch.c finds it);
 *	- the first message of a resync answer whose 700/2 is a serial reset
 *	  (below) is that reset, dated by the 700/2: a reinstalled client
 *	  answering first resends its cache with serials from 1 and old times,
 *	  which are then in order in the new epoch;
 *	- s = next: in order; next advances;
 *	- s > next: a gap, [next, s - 1] is recorded as missing, next = s + 1;
 *	- s < next inside a missing range: a late fill, the range shrinks or
 *	  splits;
 *	- s < next outside every range, with a time later than every serialized
 *	  message of the client so far: the client restarted its serials (a
 *	  reinstall); a new epoch begins with s as its baseline.  A time taken
 *	  as the engine clock's (it ran too far ahead) proves nothing of the
 *	  kind: a duplicated upload of such a message would otherwise reset;
 *	- s < next otherwise: a duplicate; counted, and nothing else changes.
 * A duplicate upload of an early message carries its original time, which
 * is never later than the newest one seen, so it cannot pass for a reset.
 * Effective times keep one clock running ahead from deciding for later
 * messages: a time too far ahead counts as the engine clock's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "state_msg.h"

/*
 * Insert a range created by this chunk at position pos, growing the array as
 * needed
 */
static void
insert_range(ClientTrack *track, int pos, int64 first, int64 last,
			 TimestampTz detected_at)
{
	MissingRange *r;

	if (track->nranges == track->maxranges)
	{
		track->maxranges = Max(8, track->maxranges * 2);
		if (track->ranges == NULL)
			track->ranges = palloc(track->maxranges * sizeof(MissingRange));
		else
			track->ranges = repalloc(track->ranges,
									 track->maxranges * sizeof(MissingRange));
	}
	memmove(&track->ranges[pos + 1], &track->ranges[pos],
			(track->nranges - pos) * sizeof(MissingRange));
	r = &track->ranges[pos];
	r->first_serial = first;
	r->last_serial = last;
	r->detected_at = detected_at;
	r->stored = false;
	track->nranges++;
}

/*
 * The range at pos is about to change or go: if it is a stored row, note
 * the row for deletion; the range is then one to insert (if it stays).
 * Only the rows that change are rewritten, whatever the client's history.
 */
static void
unstore_range(ClientTrack *track, int pos)
{
	MissingRange *r = &track->ranges[pos];

	if (!r->stored)
		return;
	if (track->ndropped == track->maxdropped)
	{
		track->maxdropped = Max(8, track->maxdropped * 2);
		if (track->dropped == NULL)
			track->dropped = palloc(track->maxdropped * sizeof(int64));
		else
			track->dropped = repalloc(track->dropped,
									  track->maxdropped * sizeof(int64));
	}
	track->dropped[track->ndropped++] = r->first_serial;
	r->stored = false;
	track->ranges_changed = true;
}

/* Remove the range at position pos */
static void
remove_range(ClientTrack *track, int pos)
{
	unstore_range(track, pos);
	memmove(&track->ranges[pos], &track->ranges[pos + 1],
			(track->nranges - pos - 1) * sizeof(MissingRange));
	track->nranges--;
}

/*
 * Add a range read from state_msg.missing_ranges.  They come in
 * first_serial order, each once per serial that meets it: repeats are
 * skipped.
 */
void
sm_serials_add_range(ClientTrack *track, int64 first, int64 last,
				  TimestampTz detected_at)
{
	int			n = track->nranges;

	if (n > 0 && track->ranges[n - 1].first_serial >= first)
	{
		if (track->ranges[n - 1].first_serial == first)
			return;
		elog(ERROR, "missing ranges of client \"%s\" read out of order",
			 track->client_id);
	}
	insert_range(track, n, first, last, detected_at);
	track->ranges[n].stored = true;
}

/* qsort comparator for int64 */
static int
compare_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * The serials of a client's messages (in the chunk) whose stored missing
 * range must be read before they are tracked: those below the next serial
 * as read.  A serial at or above it can only meet a range the chunk itself
 * creates, since every stored range lies below next.  Writes them to
 * serials (room for nmsgs), sorted and without repeats; returns how many.
 */
int
sm_serials_to_probe(ClientTrack *track, StateMessage *msgs, int nmsgs,
				 int64 *serials)
{
	int			n = 0;
	int			kept = 0;

	if (!track->has_baseline)
		return 0;				/* never had a serial: no ranges */
	for (int i = 0; i < nmsgs; i++)
		if (msgs[i].has_serial && msgs[i].serial_number < track->next_serial)
			serials[n++] = msgs[i].serial_number;
	if (n > 1)
		qsort(serials, n, sizeof(int64), compare_int64);
	for (int i = 0; i < n; i++)
		if (kept == 0 || serials[i] != serials[kept - 1])
			serials[kept++] = serials[i];
	return kept;
}

/* Position of the range holding serial, or -1 (binary search) */
static int
find_range(ClientTrack *track, int64 serial)
{
	int			lo = 0;
	int			hi = track->nranges - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		MissingRange *r = &track->ranges[mid];

		if (serial < r->first_serial)
			hi = mid - 1;
		else if (serial > r->last_serial)
			lo = mid + 1;
		else
			return mid;
	}
	return -1;
}

/* Take serial out of the range at pos: shrink it, split it or drop it */
static void
fill_range(ClientTrack *track, int pos, int64 serial)
{
	MissingRange *r = &track->ranges[pos];

	if (r->first_serial == serial && r->last_serial == serial)
		remove_range(track, pos);
	else
	{
		unstore_range(track, pos);
		if (r->first_serial == serial)
			r->first_serial++;
		else if (r->last_serial == serial)
			r->last_serial--;
		else
		{
			int64		last = r->last_serial;

			r->last_serial = serial - 1;
			insert_range(track, pos + 1, serial + 1, last, r->detected_at);
		}
	}
	track->ranges_changed = true;
}

/*
 * A reset: the old epoch's ranges can never be filled.  Drop them all, the
 * stored ones (read or not) and those of this chunk.
 */
void
sm_serials_drop_all_ranges(ClientTrack *track)
{
	track->drop_stored = true;
	track->drop_below = 0;
	track->ndropped = 0;
	track->nranges = 0;
	track->ranges_changed = true;
}

/* Note a serialized message's time as the client's newest, if it is */
static void
note_message_time(ClientTrack *track, TimestampTz t)
{
	if (!track->has_last_message_time || t > track->last_message_time)
	{
		track->last_message_time = t;
		track->has_last_message_time = true;
	}
}

/*
 * A serial reset: a new epoch begins at started with s as its baseline, and
 * the old epoch's ranges, which can never be filled now, are dropped
 */
static void
begin_epoch(ClientTrack *track, int64 s, TimestampTz started)
{
	sm_count(&track->counts.serial_resets, 1);
	if (track->serial_epoch == PG_INT64_MAX)
		elog(ERROR, "serial epoch of client \"%s\" out of range",
			 track->client_id);
	track->serial_epoch++;
	track->epoch_started = started;
	track->has_epoch_started = true;
	track->next_serial = s + 1;
	sm_serials_drop_all_ranges(track);
}

/*
 * Would a message with serial s and effective time t be a serial reset now:
 * below next, outside every missing range, later than every serialized
 * message of the client so far?  A time taken as the engine clock's (it ran
 * too far ahead) proves nothing of the kind: a duplicated upload of such a
 * message would otherwise reset.  The one test of the reset rule, for a
 * message and for a resync answer's 700/2.
 */
static bool
is_serial_reset(ClientTrack *track, int64 s, TimestampTz t, bool clock_skewed)
{
	return s < track->next_serial && find_range(track, s) < 0 &&
		track->has_last_message_time && t > track->last_message_time &&
		!clock_skewed;
}

/*
 * Was a message, or a resync answer, with effective time t sent before the
 * reset that began the client's epoch?  The one test of the stale rule,
 * for a message and for a resync answer's 700/2.
 */
static bool
is_stale(ClientTrack *track, TimestampTz t)
{
	return track->has_epoch_started && t < track->epoch_started;
}

/*
 * Decide what msg means for the client's serials, update the track, and
 * return the verdict.  now is the engine clock, the detection time of new
 * ranges.  answer is the 700/2 of the client's resync answer if msg is one
 * of its messages (NULL if not), and answer_first says msg is the answer's
 * first message, where the answer is judged as a whole, by its 700/2 (the
 * renumbered messages keep their original times, which could show
 * neither): an answer whose 700/2 is stale is stale as a whole (an old
 * answer from before a reinstall must not join the new epoch); any other
 * answer's messages are never stale, and if its 700/2 would be a reset the
 * reset is the answer's first message.  The epoch then starts at the
 * 700/2's time, the one time of the answer known to be later than every
 * message of the old epoch, so that old uploads arriving later are stale.
 */
Verdict
sm_serials_apply(ClientTrack *track, StateMessage *msg, TimestampTz now,
			  const StateMessage *answer, bool answer_first)
{
	int64		s = msg->serial_number;
	TimestampTz t = msg->effective_time;
	Verdict		verdict;
	int			pos;

	sm_count(&track->counts.messages_processed, 1);
	msg->serial_epoch = track->serial_epoch;
	if (!msg->has_serial)
	{
		sm_count(&track->counts.unserialized_messages, 1);
		return VERDICT_UNSERIALIZED;
	}

	if (!track->has_baseline)
	{
		track->has_baseline = true;
		track->next_serial = s;
	}

	if (answer_first)
		track->answer_stale = is_stale(track, answer->effective_time);
	if (answer != NULL ? track->answer_stale : is_stale(track, t))
	{
		/* Sent before the reset that began this epoch: stale */
		sm_count(&track->counts.duplicates, 1);
		msg->serial_epoch = track->serial_epoch - 1;
		return VERDICT_DUPLICATE;
	}
	else if (answer_first &&
			 is_serial_reset(track, answer->serial_number,
							 answer->effective_time, answer->clock_skewed))
	{
		/* A reinstalled client's resync answer: the reset is here */
		verdict = VERDICT_SERIAL_RESET;
		begin_epoch(track, s, answer->effective_time);
	}
	else if (s == track->next_serial)
	{
		verdict = VERDICT_IN_ORDER;
		track->next_serial = s + 1;
	}
	else if (s > track->next_serial)
	{
		verdict = VERDICT_GAP;
		sm_count(&track->counts.missing_serials, s - track->next_serial);
		insert_range(track, track->nranges, track->next_serial, s - 1, now);
		track->ranges_changed = true;
		track->next_serial = s + 1;
	}
	else if ((pos = find_range(track, s)) >= 0)
	{
		verdict = VERDICT_LATE_FILL;
		sm_count(&track->counts.late_fills, 1);
		fill_range(track, pos, s);
	}
	else if (is_serial_reset(track, s, t, msg->clock_skewed))
	{
		/* A reinstalled client: old ranges can never be filled now */
		verdict = VERDICT_SERIAL_RESET;
		begin_epoch(track, s, t);
	}
	else
	{
		sm_count(&track->counts.duplicates, 1);
		return VERDICT_DUPLICATE;
	}

	note_message_time(track, t);
	msg->serial_epoch = track->serial_epoch;
	return verdict;
}

/*
 * Choose a new client's baseline from its first messages (in arrival
 * order): the lowest serial, so that messages uploaded out of order in the
 * same statement are gaps and late fills rather than duplicates.  The scan
 * stops at a message that looks like a serial reset (a lower serial with a
 * later time than all before it), which must not lower the baseline.
 */
void
sm_serials_choose_baseline(ClientTrack *track, StateMessage *msgs, int nmsgs)
{
	TimestampTz newest = 0;

	for (int i = 0; i < nmsgs; i++)
	{
		StateMessage *msg = &msgs[i];

		if (!msg->has_serial)
			continue;
		if (track->has_baseline && msg->serial_number < track->next_serial)
		{
			if (msg->effective_time > newest && !msg->clock_skewed)
				break;
		}
		if (!track->has_baseline || msg->serial_number < track->next_serial)
			track->next_serial = msg->serial_number;
		if (!track->has_baseline || msg->effective_time > newest)
			newest = msg->effective_time;
		track->has_baseline = true;
	}
}

/*
 * A resync answer makes every gap before it irrelevant: drop the missing
 * serials below serial.  The stored ranges that begin below it all end
 * below it too (serial itself was just processed, so no range holds it):
 * they go by their key range, read or not.
 */
void
sm_serials_forget_below(ClientTrack *track, int64 serial)
{
	int			keep = 0;

	if (serial > track->drop_below)
	{
		track->drop_below = serial;
		track->ranges_changed = true;
	}
	for (int i = 0; i < track->ndropped; i++)
		if (track->dropped[i] >= serial)
			track->dropped[keep++] = track->dropped[i];
	track->ndropped = keep;

	keep = 0;
	for (int i = 0; i < track->nranges; i++)
	{
		MissingRange *r = &track->ranges[i];

		if (r->last_serial < serial)
			continue;
		if (r->first_serial < serial)
		{
			/* cannot happen: serial itself was just processed */
			r->first_serial = serial + 1;
			r->stored = false;	/* its row begins below serial: dropped */
		}
		track->ranges[keep++] = *r;
	}
	track->nranges = keep;
}
