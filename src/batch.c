/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  The one processing path: every entry point feeds messages to a batch.
 *
 * A batch validates each message as it is added (setting bad ones aside),
 * sorts the good ones by client with a tuplesort (so memory stays bounded
 * however large the statement), and then processes them in chunks:
 *
 *	1. lock the chunk's clients in client_id order, creating new ones, and
 *	   read their serial state and missing ranges;
 *	2. run serial tracking over each client's messages in arrival order;
 *	3. fold each (client, topic)'s messages into its current state, as one
 *	   message at a time would (see reducible());
 *	4. write back clients, missing ranges, current state and resync requests
 *	   with one set-based statement each.
 *
 * Because every batch locks clients in ascending client_id order, and a
 * client's rows in the other tables are only written while its row lock is
 * held, concurrent batches never deadlock on one another.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/tupdesc.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/tuplesort.h"
#include "utils/tuplestore.h"

#include "state_msg.h"

/*
 * A chunk ends at the first client boundary once it holds
 * state_msg.batch_chunk_size messages, so that a client's messages in a
 * statement are tracked together (a new client's baseline is chosen from
 * all of them); only a client with more than MAX_CHUNK_FACTOR times that
 * many messages in one statement is split, to keep memory bounded.
 */
#define MAX_CHUNK_FACTOR 8

/* Warnings for quarantined rows per batch before they are summarized */
#define MAX_REJECT_WARNINGS 10

const char *const verdict_names[VERDICT_COUNT] = {
	"in_order", "gap", "late_fill", "duplicate", "serial_reset",
	"unserialized", "rejected"
};

/* Columns of the sorted work rows: the message, its client id normalized */
enum
{
	WORK_ROW_NUMBER,			/* first: fixed offset for sort tie-breaks */
	WORK_CLIENT_ID,
	WORK_SERIAL_NUMBER,
	WORK_TOPIC_TYPE,
	WORK_TOPIC_ID,
	WORK_TOPIC_ID_TYPE,
	WORK_STATE_ID,
	WORK_CRITICALITY,
	WORK_MESSAGE_TIME,
	WORK_USER_PARAMS,
	WORK_SOURCE,
	WORK_NATTS
};

struct MessageBatch
{
	MemoryContext context;		/* everything the batch keeps */
	MemoryContext row_context;	/* reset for every message added */
	MemoryContext chunk_context;	/* reset for every chunk */
	TupleDesc	work_desc;
	TupleTableSlot *put_slot;
	TupleTableSlot *get_slot;
	Tuplesortstate *sort;
	TimestampTz now;
	int64		rows;
	int64		rejected;
	Verdict		last_verdict;
	/* the chunk being gathered */
	StateMessage *messages;		/* in context, grown as needed */
	int			nmessages;
	int			maxmessages;
};


/* Start a batch: connect to SPI and set up the sort */
MessageBatch *
batch_begin(void)
{
	MemoryContext context = AllocSetContextCreate(CurrentMemoryContext,
												  "state_msg batch",
												  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(context);
	MessageBatch *batch = palloc0(sizeof(MessageBatch));
	TupleDesc	desc = CreateTemplateTupleDesc(WORK_NATTS);
	AttrNumber	sort_columns[] = {WORK_CLIENT_ID + 1, WORK_ROW_NUMBER + 1};
	Oid			sort_operators[] = {TextLessOperator, Int8LessOperator};
	Oid			sort_collations[] = {C_COLLATION_OID, InvalidOid};
	bool		nulls_first[] = {false, false};

	sm_guard_schema();			/* before any owner-rights statement */
	batch->context = context;
	batch->row_context = AllocSetContextCreate(context, "state_msg row",
											   ALLOCSET_DEFAULT_SIZES);
	batch->chunk_context = AllocSetContextCreate(context, "state_msg chunk",
												 ALLOCSET_DEFAULT_SIZES);
	batch->now = GetCurrentTransactionStartTimestamp();
	batch->last_verdict = VERDICT_REJECTED;

	TupleDescInitEntry(desc, WORK_ROW_NUMBER + 1, "row_number", INT8OID, -1, 0);
	TupleDescInitEntry(desc, WORK_CLIENT_ID + 1, "client_id", TEXTOID, -1, 0);
	TupleDescInitEntry(desc, WORK_SERIAL_NUMBER + 1, "serial_number", INT8OID, -1, 0);
	TupleDescInitEntry(desc, WORK_TOPIC_TYPE + 1, "topic_type", INT4OID, -1, 0);
	TupleDescInitEntry(desc, WORK_TOPIC_ID + 1, "topic_id", TEXTOID, -1, 0);
	TupleDescInitEntry(desc, WORK_TOPIC_ID_TYPE + 1, "topic_id_type", INT4OID, -1, 0);
	TupleDescInitEntry(desc, WORK_STATE_ID + 1, "state_id", INT4OID, -1, 0);
	TupleDescInitEntry(desc, WORK_CRITICALITY + 1, "criticality", INT4OID, -1, 0);
	TupleDescInitEntry(desc, WORK_MESSAGE_TIME + 1, "message_time", TIMESTAMPTZOID, -1, 0);
	TupleDescInitEntry(desc, WORK_USER_PARAMS + 1, "user_params", TEXTARRAYOID, -1, 0);
	TupleDescInitEntry(desc, WORK_SOURCE + 1, "source", TEXTOID, -1, 0);
	batch->work_desc = desc;
	batch->put_slot = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
	batch->get_slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	/* a bulk sort, like an index build's: it may use maintenance_work_mem */
	batch->sort = tuplesort_begin_heap(desc, 2, sort_columns, sort_operators,
									   sort_collations, nulls_first,
									   Max(work_mem, maintenance_work_mem),
									   NULL, TUPLESORT_NONE);
	batch->maxmessages = 64;
	batch->messages = palloc(batch->maxmessages * sizeof(StateMessage));

	MemoryContextSwitchTo(old);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	return batch;
}

/*
 * Set a bad row aside: store it in state_msg.rejected_messages with its
 * reason, and warn (the first few times in a batch).  Under
 * on_bad_message = error, fail the statement instead.
 */
static void
quarantine(MessageBatch *batch, Datum *values, bool *isnull,
		   int sqlstate, const char *reason)
{
	char	   *client = isnull[INBOX_CLIENT_ID] ? NULL :
		TextDatumGetCString(values[INBOX_CLIENT_ID]);

	if (sm_on_bad_message == BAD_MESSAGE_ERROR)
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg("invalid state message: %s", reason),
				 client ?
				 errdetail("Row %lld of the statement, client_id \"%s\".",
						   (long long) batch->rows, client) :
				 errdetail("Row %lld of the statement.", (long long) batch->rows),
				 errhint("Set state_msg.on_bad_message to \"quarantine\" to set bad rows aside and process the rest.")));

	batch->rejected++;
	if (batch->rejected <= MAX_REJECT_WARNINGS)
		ereport(WARNING,
				(errcode(sqlstate),
				 errmsg("state message rejected: %s", reason),
				 errdetail("Row %lld of the statement was stored in state_msg.rejected_messages.",
						   (long long) batch->rows)));

	store_rejected(values, isnull, batch->rows, sqlstate, reason);
}

/*
 * Add one inbox row to the batch.  A bad row is dealt with at once (false
 * is returned); a good one waits for batch_finish().
 */
bool
batch_add(MessageBatch *batch, Datum *values, bool *isnull)
{
	MemoryContext old = MemoryContextSwitchTo(batch->row_context);
	TupleTableSlot *slot = batch->put_slot;
	StateMessage msg;
	int			sqlstate;
	char	   *reason;

	CHECK_FOR_INTERRUPTS();
	MemoryContextReset(batch->row_context);
	batch->rows++;

	if (!message_check(values, isnull, batch->rows, &msg, &sqlstate, &reason))
	{
		quarantine(batch, values, isnull, sqlstate, reason);
		MemoryContextSwitchTo(old);
		batch->last_verdict = VERDICT_REJECTED;
		return false;
	}

	ExecClearTuple(slot);
	memset(slot->tts_isnull, false, WORK_NATTS * sizeof(bool));
	slot->tts_values[WORK_CLIENT_ID] = CStringGetTextDatum(msg.client_id);
	slot->tts_values[WORK_ROW_NUMBER] = Int64GetDatum(msg.row_number);
	slot->tts_values[WORK_SERIAL_NUMBER] = Int64GetDatum(msg.serial_number);
	slot->tts_isnull[WORK_SERIAL_NUMBER] = !msg.has_serial;
	slot->tts_values[WORK_TOPIC_TYPE] = Int32GetDatum(msg.topic_type);
	slot->tts_values[WORK_TOPIC_ID] = CStringGetTextDatum(msg.topic_id);
	slot->tts_values[WORK_TOPIC_ID_TYPE] = Int32GetDatum(msg.topic_id_type);
	slot->tts_values[WORK_STATE_ID] = Int32GetDatum(msg.state_id);
	slot->tts_values[WORK_CRITICALITY] = Int32GetDatum(msg.criticality);
	slot->tts_values[WORK_MESSAGE_TIME] = TimestampTzGetDatum(msg.message_time);
	slot->tts_values[WORK_USER_PARAMS] = msg.user_params;
	slot->tts_isnull[WORK_USER_PARAMS] = (msg.user_params == (Datum) 0);
	slot->tts_values[WORK_SOURCE] = CStringGetTextDatum(msg.source);
	ExecStoreVirtualTuple(slot);
	tuplesort_puttupleslot(batch->sort, slot);

	MemoryContextSwitchTo(old);
	return true;
}

/* Is the sorted work row in slot from client_id? */
static bool
same_client(TupleTableSlot *slot, const char *client_id)
{
	bool		isnull;
	text	   *id = DatumGetTextPP(slot_getattr(slot, WORK_CLIENT_ID + 1, &isnull));
	size_t		len = VARSIZE_ANY_EXHDR(id);

	return strlen(client_id) == len &&
		memcmp(VARDATA_ANY(id), client_id, len) == 0;
}

/* Copy the sorted work row in get_slot into a StateMessage */
static void
message_from_slot(TupleTableSlot *slot, StateMessage *msg)
{
	Datum	   *v;
	bool	   *n;

	slot_getallattrs(slot);
	v = slot->tts_values;
	n = slot->tts_isnull;
	msg->client_id = TextDatumGetCString(v[WORK_CLIENT_ID]);
	msg->row_number = DatumGetInt64(v[WORK_ROW_NUMBER]);
	msg->has_serial = !n[WORK_SERIAL_NUMBER];
	msg->serial_number = msg->has_serial ? DatumGetInt64(v[WORK_SERIAL_NUMBER]) : 0;
	msg->topic_type = DatumGetInt32(v[WORK_TOPIC_TYPE]);
	msg->topic_id = TextDatumGetCString(v[WORK_TOPIC_ID]);
	msg->topic_id_type = DatumGetInt32(v[WORK_TOPIC_ID_TYPE]);
	msg->state_id = DatumGetInt32(v[WORK_STATE_ID]);
	msg->criticality = DatumGetInt32(v[WORK_CRITICALITY]);
	msg->message_time = DatumGetTimestampTz(v[WORK_MESSAGE_TIME]);
	msg->user_params = n[WORK_USER_PARAMS] ? (Datum) 0 :
		PointerGetDatum(PG_DETOAST_DATUM_COPY(v[WORK_USER_PARAMS]));
	msg->source = TextDatumGetCString(v[WORK_SOURCE]);
	msg->verdict = VERDICT_REJECTED;
	msg->serial_epoch = 0;
}


/* Order messages by topic, then arrival, to fold each topic's in order */
static int
compare_by_topic(const void *a, const void *b)
{
	const StateMessage *ma = *(StateMessage *const *) a;
	const StateMessage *mb = *(StateMessage *const *) b;
	int			cmp = compare_topics(ma, mb);

	if (cmp != 0)
		return cmp;
	if (ma->row_number != mb->row_number)
		return ma->row_number < mb->row_number ? -1 : 1;
	return 0;
}

/*
 * Is candidate newer than current for the same topic?  By (epoch, serial)
 * when both carry a serial, else by message time, a tie going to the later
 * arrival.  This is not a total order when messages with and without a
 * serial mix, or when a client's clock runs behind its serials; see
 * reducible() for how a batch still gives what one message at a time
 * would.
 */
static bool
is_newer(StateMessage *candidate, StateMessage *current)
{
	if (candidate->has_serial && current->has_serial)
	{
		if (candidate->serial_epoch != current->serial_epoch)
			return candidate->serial_epoch > current->serial_epoch;
		return candidate->serial_number > current->serial_number;
	}
	return candidate->message_time >= current->message_time;
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
		int			cmp = compare_topics(msg, &track->stored[mid]);

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
		result = by_serial[i]->message_time >= by_serial[i - 1]->message_time;
	pfree(by_serial);
	return result;
}

/* Length of the run of messages of msgs[0]'s topic in msgs[0 .. n - 1] */
static int
topic_run(StateMessage **msgs, int n)
{
	int			j = 1;

	while (j < n && compare_topics(msgs[j], msgs[0]) == 0)
		j++;
	return j;
}

/*
 * Sort one client's processed messages (duplicates excluded) by topic, then
 * arrival, and note whether any topic needs the stored state.
 */
static void
sort_by_topic(ClientTrack *track, StateMessage *msgs, int nmsgs)
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
static void
collect_states(ClientTrack *track, Tuplestorestate *new_states,
			   Tuplestorestate *newer_states, Tuplestorestate *decided_states,
			   TupleDesc desc)
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
			store_put_state(track->is_new ? new_states :
							fold_stored ? decided_states : newer_states,
							desc, newest);
		i += run;
	}
}

/* Run serial tracking over one client's messages, in arrival order */
static void
track_client(MessageBatch *batch, ClientTrack *track, StateMessage *msgs,
			 int nmsgs)
{
	for (int i = 0; i < nmsgs; i++)
	{
		StateMessage *msg = &msgs[i];

		msg->verdict = serials_apply(track, msg, batch->now);
		batch->last_verdict = msg->verdict;

		if (msg->verdict != VERDICT_DUPLICATE &&
			msg->topic_type == SM_RESYNC_TOPIC_TYPE &&
			msg->state_id == SM_RESYNC_COMPLETE_STATE)
		{
			track->resync_completed = true;
			track->resets_completed = track->resets;
			if (msg->has_serial)
				serials_forget_below(track, msg->serial_number);
		}
	}
}


/* Process the gathered chunk: lock, track, keep newest states, write */
static void
flush_chunk(MessageBatch *batch)
{
	StateMessage *msgs = batch->messages;
	int			nmsgs = batch->nmessages;
	ClientTrack *tracks = palloc0(nmsgs * sizeof(ClientTrack));
	int		   *starts = palloc((nmsgs + 1) * sizeof(int));
	int			ntracks = 0;
	TupleDesc	desc = store_states_desc();
	Tuplestorestate *new_states = tuplestore_begin_heap(false, false, work_mem);
	Tuplestorestate *newer_states = tuplestore_begin_heap(false, false, work_mem);
	Tuplestorestate *decided_states = tuplestore_begin_heap(false, false, work_mem);
	TimestampTz event_time;

	/* Messages arrive sorted by client: one track per run of a client */
	for (int i = 0; i < nmsgs; i++)
	{
		if (ntracks == 0 ||
			strcmp(msgs[i].client_id, tracks[ntracks - 1].client_id) != 0)
		{
			tracks[ntracks].client_id = msgs[i].client_id;
			starts[ntracks++] = i;
		}
	}
	starts[ntracks] = nmsgs;

	store_load_clients(tracks, ntracks);

	/*
	 * A resync completion is stamped with the clock once the clients are
	 * locked, not with the transaction's start: a request issued while this
	 * batch waited for the lock must not look completed before its issue.
	 */
	event_time = GetCurrentTimestamp();

	for (int k = 0; k < ntracks; k++)
	{
		StateMessage *first = &msgs[starts[k]];
		int			n = starts[k + 1] - starts[k];

		if (!tracks[k].has_baseline)
			serials_choose_baseline(&tracks[k], first, n);
		track_client(batch, &tracks[k], first, n);
		sort_by_topic(&tracks[k], first, n);
	}
	store_load_states(tracks, ntracks);
	for (int k = 0; k < ntracks; k++)
		collect_states(&tracks[k], new_states, newer_states, decided_states,
					   desc);

	store_save_clients(tracks, ntracks, event_time, batch->context);
	store_write_states(desc, new_states, newer_states, decided_states,
					   batch->context);
	tuplestore_end(new_states);
	tuplestore_end(newer_states);
	tuplestore_end(decided_states);

	batch->nmessages = 0;
	MemoryContextReset(batch->chunk_context);
}

/*
 * Process every message added, close the batch and return the verdict of
 * the last message (of the only one, for ingest()).
 */
Verdict
batch_finish(MessageBatch *batch)
{
	MemoryContext old;
	Verdict		verdict;
	int			client_start = 0;	/* where the current client's messages
									 * begin in the chunk */

	tuplesort_performsort(batch->sort);
	old = MemoryContextSwitchTo(batch->chunk_context);
	while (tuplesort_gettupleslot(batch->sort, true, false, batch->get_slot,
								  NULL))
	{
		CHECK_FOR_INTERRUPTS();
		if (batch->nmessages > 0 &&
			!same_client(batch->get_slot,
						 batch->messages[batch->nmessages - 1].client_id))
		{
			/* a new client: end the chunk here if it is full */
			if (batch->nmessages >= sm_batch_chunk_size)
				flush_chunk(batch);
			client_start = batch->nmessages;
		}
		else if (batch->nmessages - client_start >=
				 MAX_CHUNK_FACTOR * sm_batch_chunk_size)
		{
			/* one client alone has too many messages: split it */
			flush_chunk(batch);
			client_start = 0;
		}
		if (batch->nmessages == batch->maxmessages)
		{
			batch->maxmessages *= 2;
			batch->messages = repalloc(batch->messages,
									   batch->maxmessages * sizeof(StateMessage));
		}
		message_from_slot(batch->get_slot, &batch->messages[batch->nmessages++]);
	}
	if (batch->nmessages > 0)
		flush_chunk(batch);
	MemoryContextSwitchTo(old);
	tuplesort_end(batch->sort);
	ExecDropSingleTupleTableSlot(batch->put_slot);
	ExecDropSingleTupleTableSlot(batch->get_slot);

	if (batch->rejected > MAX_REJECT_WARNINGS)
		ereport(WARNING,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%lld more state messages were rejected",
						(long long) (batch->rejected - MAX_REJECT_WARNINGS)),
				 errdetail("All %lld rejected rows were stored in state_msg.rejected_messages.",
						   (long long) batch->rejected)));

	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	verdict = batch->last_verdict;
	MemoryContextDelete(batch->context);
	return verdict;
}
