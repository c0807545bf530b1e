/*-------------------------------------------------------------------------
 *
 * current_state.c
 *	  The newest-state rule, and folding a client's messages into the
 *	  current state of each of its topics.
 *
 * A batch keeps, per (client, topic), only the message that one message at
 * a time would have left as the current state.  Where the rule orders a
 * topic's messages totally, that is simply the newest of them, and the
 * state upsert compares it with the stored state; where it does not, the
 * stored state is read and the messages are folded into it in arrival
 * order.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "state_msg.h"

/* Order messages by topic, then arrival, to fold each topic's in order */
static int
compare_by_topic(const void *a, const void *b)
{
	const StateMessage *ma = *(StateMessage *const *) a;
	const StateMessage *mb = *(StateMessage *const *) b;
	int			cmp = sm_compare_topics(ma, mb);

	if (cmp != 0)
		return cmp;
	if (ma->row_number != mb->row_number)
		return ma->row_number < mb->row_number ? -1 : 1;
	return 0;
}

/*
 * The newest-state rule: is a message newer than the current state of its
 * topic?  By (epoch, serial) when both carry a serial, else by effective
 * time, a tie going to the later arrival (the candidate).  This is not a
 * total order when messages with and without a serial mix, or when a
 * client's clock runs behind its serials; see reducible() for how a batch
 * still gives what one message at a time would.  The state upsert applies
 * the same rule through state_msg.is_newer_state().
 */
static bool
newer_state(bool candidate_has_serial, int64 candidate_epoch,
			int64 candidate_serial, TimestampTz candidate_time,
			bool current_has_serial, int64 current_epoch,
			int64 current_serial, TimestampTz current_time)
{
	if (candidate_has_serial && current_has_serial)
	{
		if (candidate_epoch != current_epoch)
			return candidate_epoch > current_epoch;
		return candidate_serial > current_serial;
	}
	return candidate_time >= current_time;
}

/* newer_state() for two messages */
static bool
is_newer(StateMessage *candidate, StateMessage *current)
{
	return newer_state(candidate->has_serial, candidate->serial_epoch,
					   candidate->serial_number, candidate->effective_time,
					   current->has_serial, current->serial_epoch,
					   current->serial_number, current->effective_time);
}

PG_FUNCTION_INFO_V1(state_msg_is_newer_state);

/*
 * is_newer_state(serial, epoch, message_time, processed_at, current_serial,
 *				  current_epoch, current_message_time, current_processed_at)
 * applies newer_state() to a proposed and a stored client_state row, for the
 * state upsert.  Effective times come from each row's processing time.
 */
Datum
state_msg_is_newer_state(PG_FUNCTION_ARGS)
{
	/* only the serials may be NULL: the other columns are NOT NULL */
	for (int i = 1; i < 8; i++)
		if (i != 4 && PG_ARGISNULL(i))
			PG_RETURN_NULL();
	PG_RETURN_BOOL(newer_state(!PG_ARGISNULL(0), PG_GETARG_INT64(1),
							   PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0),
							   sm_effective_time(PG_GETARG_TIMESTAMPTZ(2),
												 PG_GETARG_TIMESTAMPTZ(3)),
							   !PG_ARGISNULL(4), PG_GETARG_INT64(5),
							   PG_ARGISNULL(4) ? 0 : PG_GETARG_INT64(4),
							   sm_effective_time(PG_GETARG_TIMESTAMPTZ(6),
												 PG_GETARG_TIMESTAMPTZ(7))));
}

/* The stored state of msg's topic for this client, or NULL */
static StateMessage *
find_stored(ClientTrack *track, StateMessage *msg)
{
	int			lo = 0;
	int			hi = track->nstored - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int			cmp = sm_compare_topics(msg, &track->stored[mid]);

		if (cmp == 0)
			return &track->stored[mid];
		if (cmp < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Order messages by (epoch, serial) */
static int
compare_by_serial(const void *a, const void *b)
{
	const StateMessage *ma = *(StateMessage *const *) a;
	const StateMessage *mb = *(StateMessage *const *) b;

	if (ma->serial_epoch != mb->serial_epoch)
		return ma->serial_epoch < mb->serial_epoch ? -1 : 1;
	if (ma->serial_number != mb->serial_number)
		return ma->serial_number < mb->serial_number ? -1 : 1;
	return 0;
}

/*
 * Can a topic's n messages (n >= 1) be reduced to their newest before they
 * meet the stored state, with the same outcome as one at a time?  Yes when
 * is_newer() orders them totally whatever the stored state: one message, or
 * messages that all carry a serial and whose times grow with it.  Else (a
 * relayed message among them, or a client clock behind its serials) the
 * stored state must be read and the messages folded into it in order.
 */
static bool
reducible(StateMessage **msgs, int n)
{
	StateMessage **by_serial;
	bool		result = true;

	if (n == 1)
		return true;
	for (int i = 0; i < n; i++)
		if (!msgs[i]->has_serial)
			return false;
	by_serial = palloc(n * sizeof(StateMessage *));
	memcpy(by_serial, msgs, n * sizeof(StateMessage *));
	qsort(by_serial, n, sizeof(StateMessage *), compare_by_serial);
	for (int i = 1; i < n && result; i++)
		result = by_serial[i]->effective_time >= by_serial[i - 1]->effective_time;
	pfree(by_serial);
	return result;
}

/* Length of the run of messages of msgs[0]'s topic in msgs[0 .. n - 1] */
static int
topic_run(StateMessage **msgs, int n)
{
	int			j = 1;

	while (j < n && sm_compare_topics(msgs[j], msgs[0]) == 0)
		j++;
	return j;
}

/*
 * Sort one client's processed messages (duplicates excluded) by topic, then
 * arrival, and note whether any topic needs the stored state.
 */
void
sm_current_state_sort(ClientTrack *track, StateMessage *msgs, int nmsgs)
{
	StateMessage **sorted = palloc(nmsgs * sizeof(StateMessage *));
	int			n = 0;

	for (int i = 0; i < nmsgs; i++)
		if (msgs[i].verdict != VERDICT_DUPLICATE)
			sorted[n++] = &msgs[i];
	if (n > 1)
		qsort(sorted, n, sizeof(StateMessage *), compare_by_topic);
	track->by_topic = sorted;
	track->nby_topic = n;

	for (int i = 0; i < n && !track->is_new && !track->needs_stored;)
	{
		int			run = topic_run(&sorted[i], n - i);

		track->needs_stored = !reducible(&sorted[i], run);
		i += run;
	}
}

/*
 * Each topic's new state, for one client: folded from nothing for a new
 * client (new_states); reduced to the newest message, which the upsert then
 * compares with the stored state (newer_states); or folded into the stored
 * state read for it (decided_states).
 */
void
sm_current_state_collect(ClientTrack *track, Tuplestorestate *new_states,
			   Tuplestorestate *newer_states, Tuplestorestate *decided_states,
			   TupleDesc desc, TimestampTz now)
{
	StateMessage **sorted = track->by_topic;
	int			n = track->nby_topic;

	for (int i = 0; i < n;)
	{
		int			run = topic_run(&sorted[i], n - i);
		bool		fold_stored = track->needs_stored && !reducible(&sorted[i], run);
		StateMessage *stored = fold_stored ? find_stored(track, sorted[i]) : NULL;
		StateMessage *newest = stored;

		for (int j = i; j < i + run; j++)
			if (newest == NULL || is_newer(sorted[j], newest))
				newest = sorted[j];

		if (newest != stored)
			sm_store_put_state(track->is_new ? new_states :
							fold_stored ? decided_states : newer_states,
							desc, newest, now);
		i += run;
	}
}

