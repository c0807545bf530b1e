/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  The one processing path: every entry point feeds messages to a batch.
 *
 * A batch validates each message as it is added (setting bad ones aside),
 * sorts the good ones by client with a tuplesort (so memory stays bounded
 * however large the statement), and then processes them in chunks:
 *
 *	1. lock the chunk's clients in client_id order, creating new ones, read
 *	   their serial state and the missing ranges their serials can meet, and
 *	   read the engine clock once (the chunk's time);
 *	2. run serial tracking over each client's messages in arrival order,
 *	   with effective times and the resync events they carry (serials.c,
 *	   resync_events.c);
 *	3. fold each (client, topic)'s messages into its current state, as one
 *	   message at a time would (current_state.c);
 *	4. write back clients, changed missing ranges, current state and resync
 *	   requests with one set-based statement each (store.c).
 *
 * Because every batch locks clients in ascending client_id order, and a
 * client's rows in the other tables are only written while its row lock is
 * held, concurrent batches never deadlock on one another.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/tupdesc.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
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

/*
 * A chunk also ends at the first client boundary once its messages take
 * state_msg.batch_chunk_memory; a client alone is split at twice that, so
 * that a chunk's messages never take more.
 */
#define MAX_CHUNK_MEMORY_FACTOR 2

/* Warnings for quarantined rows per batch before they are summarized */
#define MAX_REJECT_WARNINGS 10

const char *const sm_verdict_names[VERDICT_COUNT] = {
	"in_order", "gap", "late_fill", "duplicate", "serial_reset",
	"unserialized", "rejected", "queued"
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
	WORK_USER_NAME,
	WORK_USER_SID,
	WORK_STATE_DETAILS_TYPE,
	WORK_STATE_DETAILS,
	WORK_PRIORITY,
	WORK_NETBIOS_NAME,
	WORK_CLIENT_VERSION,
	WORK_NATTS
};

struct MessageBatch
{
	MemoryContext context;		/* everything the batch keeps */
	MemoryContext row_context;	/* reset for every message added */
	MemoryContext chunk_context;	/* reset for every chunk */
	int			guc_nest_level; /* the batch's planner settings */
	TupleDesc	work_desc;
	TupleTableSlot *put_slot;
	TupleTableSlot *get_slot;
	Tuplesortstate *sort;
	int64		rows;			/* messages and rejected rows added */
	int64		counts[VERDICT_COUNT];	/* of each verdict, so far */
	Verdict		last_verdict;
	TimestampTz began;			/* for state_msg.stats' processing time */
	/* the chunk being gathered */
	StateMessage *messages;		/* in context, grown as needed */
	int			nmessages;
	int			maxmessages;
	Size		toasted_bytes;	/* raw size of the chunk's state details
								 * held as TOAST pointers */
	/* queued processing (queue.c) */
	bool		enqueue;		/* enqueue the messages, do not process */
	QueueWriter *writer;		/* where they go, from the first one on */
	HTAB	   *answer_clients; /* clients with a 700/2 among the messages */
	QueueFlow  *flow;			/* an entry point's immediate batch: its
								 * messages as arrived and processed */
};


/*
 * Plan the batch's own statements without sequential or bitmap scans (and
 * without JIT), as a function's SET clause would: the settings hold until
 * sm_batch_finish() (or
 * the (sub)transaction's abort) restores the caller's.  Every table the
 * engine reads is read for the keys of the batch's own clients, and a
 * scan of a small table (which the planner would choose, and a kept plan
 * would keep as the table grows) makes a SERIALIZABLE batch take a
 * predicate lock on the whole table, in conflict with every other batch
 * that writes to it; an index probe locks only the index pages and rows of
 * its own keys.
 */
static int
batch_planner_settings(void)
{
	int			nest_level = NewGUCNestLevel();

	(void) set_config_option("enable_seqscan", "off", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_bitmapscan", "off", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);

	/*
	 * A kept plan over a chunk-sized tuplestore is estimated costly enough
	 * for JIT, which would then compile it at every execution
	 */
	(void) set_config_option("jit", "off", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return nest_level;
}

/*
 * Start a batch: connect to SPI, set up the sort and the planner settings
 * of the batch's statements.  enqueue: only enqueue the messages (queued
 * processing); flow: record the messages in the queue's flow as arrived
 * and processed (an entry point's batch in immediate mode).
 */
static MessageBatch *
batch_begin(bool enqueue, bool flow)
{
	MemoryContext context;
	MemoryContext old;
	MessageBatch *batch;
	TupleDesc	desc;
	AttrNumber	sort_columns[] = {WORK_CLIENT_ID + 1, WORK_ROW_NUMBER + 1};
	Oid			sort_operators[] = {TextLessOperator, Int8LessOperator};
	Oid			sort_collations[] = {C_COLLATION_OID, InvalidOid};
	bool		nulls_first[] = {false, false};

	sm_guard_schema();			/* before any owner-rights statement */
	sm_require_current_release();
	context = AllocSetContextCreate(CurrentMemoryContext, "state_msg batch",
									ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(context);
	batch = palloc0(sizeof(MessageBatch));
	desc = CreateTemplateTupleDesc(WORK_NATTS);
	batch->context = context;
	batch->row_context = AllocSetContextCreate(context, "state_msg row",
											   ALLOCSET_DEFAULT_SIZES);
	batch->chunk_context = AllocSetContextCreate(context, "state_msg chunk",
												 ALLOCSET_DEFAULT_SIZES);
	batch->last_verdict = VERDICT_REJECTED;
	batch->began = GetCurrentTimestamp();

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
	TupleDescInitEntry(desc, WORK_USER_NAME + 1, "user_name", TEXTOID, -1, 0);
	TupleDescInitEntry(desc, WORK_USER_SID + 1, "user_sid", TEXTOID, -1, 0);
	TupleDescInitEntry(desc, WORK_STATE_DETAILS_TYPE + 1, "state_details_type", INT4OID, -1, 0);
	TupleDescInitEntry(desc, WORK_STATE_DETAILS + 1, "state_details", TEXTOID, -1, 0);
	TupleDescInitEntry(desc, WORK_PRIORITY + 1, "priority", INT4OID, -1, 0);
	TupleDescInitEntry(desc, WORK_NETBIOS_NAME + 1, "netbios_name", TEXTOID, -1, 0);
	TupleDescInitEntry(desc, WORK_CLIENT_VERSION + 1, "client_version", TEXTOID, -1, 0);
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
	batch->enqueue = enqueue;
	if (enqueue || flow)
	{
		HASHCTL		ctl;

		ctl.keysize = SM_MAX_CLIENT_ID_BYTES + 1;
		ctl.entrysize = SM_MAX_CLIENT_ID_BYTES + 1;
		ctl.hcxt = context;
		batch->answer_clients = hash_create("state_msg resync answers", 16,
											&ctl,
											HASH_ELEM | HASH_STRINGS |
											HASH_CONTEXT);
	}
	if (flow)
		batch->flow = sm_queue_flow_begin(context);

	MemoryContextSwitchTo(old);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	batch->guc_nest_level = batch_planner_settings();
	return batch;
}

/*
 * Start an entry point's batch (inbox, ingest(), ingest_report(),
 * retry_rejected()): it processes its messages, or under
 * state_msg.processing = queued enqueues them
 */
MessageBatch *
sm_batch_begin(void)
{
	return batch_begin(sm_processing == PROCESSING_QUEUED,
					   sm_processing != PROCESSING_QUEUED);
}

/*
 * Start a drainer's batch: it processes its messages whatever
 * state_msg.processing says (the drainer records their flow itself)
 */
MessageBatch *
sm_batch_begin_immediate(void)
{
	return batch_begin(false, false);
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
	/* the id may be huge (its length is checked here): quote its start */
	char	   *client = isnull[INBOX_CLIENT_ID] ? NULL :
		sm_echo_text(values[INBOX_CLIENT_ID]);

	if (sm_on_bad_message == BAD_MESSAGE_ERROR)
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg("invalid state message: %s", reason),
				 client ?
				 errdetail("Row %lld of the statement, client_id \"%s\".",
						   (long long) batch->rows, client) :
				 errdetail("Row %lld of the statement.", (long long) batch->rows),
				 errhint("Set state_msg.on_bad_message to \"quarantine\" to set bad rows aside and process the rest.")));

	batch->counts[VERDICT_REJECTED]++;
	sm_stats_add(SM_STAT_REJECTED, 1);
	if (batch->counts[VERDICT_REJECTED] <= MAX_REJECT_WARNINGS)
		ereport(WARNING,
				(errcode(sqlstate),
				 errmsg("state message rejected: %s", reason),
				 errdetail("Row %lld of the statement was stored in state_msg.rejected_messages.",
						   (long long) batch->rows)));

	sm_store_rejected(values, isnull, batch->rows, sqlstate, reason);
}

static bool is_resync_complete(const StateMessage *msg);
static bool is_answer_client(MessageBatch *batch, const char *client_id);

/* A C string as a text datum, NULL for none */
static void
put_text(TupleTableSlot *slot, int col, const char *s)
{
	slot->tts_isnull[col] = (s == NULL);
	slot->tts_values[col] = s == NULL ? (Datum) 0 : CStringGetTextDatum(s);
}

/* A text datum as a C string, NULL for none */
static char *
get_text(TupleTableSlot *slot, int col)
{
	return slot->tts_isnull[col] ? NULL :
		TextDatumGetCString(slot->tts_values[col]);
}

/*
 * Queue a validated message for sm_batch_finish(), in the sort by client.
 * The sort copies the row, state_details as the datum it is: a TOAST
 * pointer stays a pointer (see message_from_slot()).
 */
static void
put_message(MessageBatch *batch, const StateMessage *msg)
{
	TupleTableSlot *slot = batch->put_slot;

	ExecClearTuple(slot);
	memset(slot->tts_isnull, false, WORK_NATTS * sizeof(bool));
	slot->tts_values[WORK_CLIENT_ID] = CStringGetTextDatum(msg->client_id);
	slot->tts_values[WORK_ROW_NUMBER] = Int64GetDatum(msg->row_number);
	slot->tts_values[WORK_SERIAL_NUMBER] = Int64GetDatum(msg->serial_number);
	slot->tts_isnull[WORK_SERIAL_NUMBER] = !msg->has_serial;
	slot->tts_values[WORK_TOPIC_TYPE] = Int32GetDatum(msg->topic_type);
	slot->tts_values[WORK_TOPIC_ID] = CStringGetTextDatum(msg->topic_id);
	slot->tts_values[WORK_TOPIC_ID_TYPE] = Int32GetDatum(msg->topic_id_type);
	slot->tts_values[WORK_STATE_ID] = Int32GetDatum(msg->state_id);
	slot->tts_values[WORK_CRITICALITY] = Int32GetDatum(msg->criticality);
	slot->tts_values[WORK_MESSAGE_TIME] = TimestampTzGetDatum(msg->message_time);
	slot->tts_values[WORK_USER_PARAMS] = msg->user_params;
	slot->tts_isnull[WORK_USER_PARAMS] = (msg->user_params == (Datum) 0);
	slot->tts_values[WORK_SOURCE] = CStringGetTextDatum(msg->source);
	put_text(slot, WORK_USER_NAME, msg->user_name);
	put_text(slot, WORK_USER_SID, msg->user_sid);
	slot->tts_values[WORK_STATE_DETAILS_TYPE] = Int32GetDatum(msg->state_details_type);
	slot->tts_isnull[WORK_STATE_DETAILS_TYPE] = !msg->has_state_details_type;
	slot->tts_values[WORK_STATE_DETAILS] = msg->state_details;
	slot->tts_isnull[WORK_STATE_DETAILS] = (msg->state_details == (Datum) 0);
	slot->tts_values[WORK_PRIORITY] = Int32GetDatum(msg->priority);
	slot->tts_isnull[WORK_PRIORITY] = !msg->has_priority;
	put_text(slot, WORK_NETBIOS_NAME, msg->netbios_name);
	put_text(slot, WORK_CLIENT_VERSION, msg->client_version);
	ExecStoreVirtualTuple(slot);

	/* a resync answer's messages join the high queue (queue.c) */
	if (batch->answer_clients != NULL && is_resync_complete(msg))
		(void) hash_search(batch->answer_clients, msg->client_id, HASH_ENTER,
						   NULL);

	if (batch->enqueue)
	{
		/*
		 * Enqueued at once, in arrival order (the work row's columns after
		 * row_number are the inbox's); the writer places a client's messages
		 * in the high queue once answer_clients holds it
		 */
		StaticAssertStmt(WORK_CLIENT_ID == INBOX_CLIENT_ID + 1 &&
						 WORK_CLIENT_VERSION == INBOX_CLIENT_VERSION + 1,
						 "work rows hold the inbox columns in inbox order");
		if (batch->writer == NULL)
			batch->writer = sm_queue_writer_begin(batch->context,
												  batch->answer_clients);
		sm_queue_writer_put(batch->writer, msg->row_number,
							slot->tts_values + WORK_CLIENT_ID,
							slot->tts_isnull + WORK_CLIENT_ID,
							msg->client_id);
		return;
	}
	tuplesort_puttupleslot(batch->sort, slot);
}

/* Does the client have a 700/2 among the batch's messages? */
static bool
is_answer_client(MessageBatch *batch, const char *client_id)
{
	return hash_get_num_entries(batch->answer_clients) > 0 &&
		hash_search(batch->answer_clients, client_id, HASH_FIND, NULL) != NULL;
}

/*
 * Add one validated message (client id normalized, as sm_message_check()
 * leaves it) to the batch: the entry point for sources that are not inbox
 * rows.  It is numbered after everything added before it.
 */
void
sm_batch_add_message(MessageBatch *batch, const StateMessage *msg)
{
	MemoryContext old = MemoryContextSwitchTo(batch->row_context);
	StateMessage numbered = *msg;

	CHECK_FOR_INTERRUPTS();
	MemoryContextReset(batch->row_context);
	numbered.row_number = ++batch->rows;
	put_message(batch, &numbered);
	if (batch->enqueue)
		batch->last_verdict = VERDICT_QUEUED;
	MemoryContextSwitchTo(old);
}

/*
 * Add one inbox row to the batch.  A bad row is dealt with at once (false
 * is returned); a good one waits for sm_batch_finish().
 */
bool
sm_batch_add(MessageBatch *batch, Datum *values, bool *isnull)
{
	MemoryContext old = MemoryContextSwitchTo(batch->row_context);
	StateMessage msg;
	int			sqlstate;
	char	   *reason;
	bool		ok;

	CHECK_FOR_INTERRUPTS();
	MemoryContextReset(batch->row_context);
	batch->rows++;

	ok = sm_message_check(values, isnull, batch->rows, &msg, &sqlstate, &reason);
	if (ok)
	{
		put_message(batch, &msg);
		if (batch->enqueue)
			batch->last_verdict = VERDICT_QUEUED;
	}
	else
	{
		quarantine(batch, values, isnull, sqlstate, reason);
		batch->last_verdict = VERDICT_REJECTED;
	}
	MemoryContextSwitchTo(old);
	return ok;
}

/*
 * Set aside a row its source could not turn into an inbox row (an XML
 * report's message whose serial is not a number, say) as a bad inbox row
 * is: quarantined, or under on_bad_message = error an error.  It is
 * numbered in turn, so that rows keep their positions in the source.
 */
void
sm_batch_reject(MessageBatch *batch, Datum *values, bool *isnull,
				int sqlstate, const char *reason)
{
	MemoryContext old = MemoryContextSwitchTo(batch->row_context);

	CHECK_FOR_INTERRUPTS();
	MemoryContextReset(batch->row_context);
	batch->rows++;
	quarantine(batch, values, isnull, sqlstate, reason);
	batch->last_verdict = VERDICT_REJECTED;
	MemoryContextSwitchTo(old);
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

/*
 * Copy the sorted work row in get_slot into a StateMessage, in the chunk's
 * memory (the slot's row goes with the next one).  state_details is copied
 * as the datum it is: a value in line (compressed or not) takes its size in
 * the chunk's memory, a TOAST pointer only the pointer's, and is counted in
 * toasted_bytes instead.  Such a pointer stays valid for as long as the
 * batch runs: it was read by the statement that runs the batch (the
 * inbox's INSERT, the call of ingest() or of retry_rejected()), whose
 * snapshot keeps vacuum from removing the value, and a TOAST value is read
 * whatever later deleted its row (the batch may replace the client_state
 * row it came from, retry_rejected() deletes the rejected_messages row it
 * read).  Writing it to client_state detoasts it one row at a time and
 * stores a copy in client_state's own TOAST table.
 */
static void
message_from_slot(MessageBatch *batch, TupleTableSlot *slot,
				  StateMessage *msg)
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
	msg->user_name = get_text(slot, WORK_USER_NAME);
	msg->user_sid = get_text(slot, WORK_USER_SID);
	msg->has_state_details_type = !n[WORK_STATE_DETAILS_TYPE];
	msg->state_details_type = msg->has_state_details_type ?
		DatumGetInt32(v[WORK_STATE_DETAILS_TYPE]) : 0;
	msg->state_details = (Datum) 0;
	if (!n[WORK_STATE_DETAILS])
	{
		msg->state_details = datumCopy(v[WORK_STATE_DETAILS], false, -1);
		if (VARATT_IS_EXTERNAL(DatumGetPointer(msg->state_details)))
			batch->toasted_bytes +=
				toast_raw_datum_size(msg->state_details) - VARHDRSZ;
	}
	msg->has_priority = !n[WORK_PRIORITY];
	msg->priority = msg->has_priority ? DatumGetInt32(v[WORK_PRIORITY]) : 0;
	msg->netbios_name = get_text(slot, WORK_NETBIOS_NAME);
	msg->client_version = get_text(slot, WORK_CLIENT_VERSION);
	msg->effective_time = msg->message_time;
	msg->clock_skewed = false;
	msg->verdict = VERDICT_REJECTED;
	msg->serial_epoch = 0;
}

/* Is msg a resync-complete message (topic type 700, state id 2)? */
static bool
is_resync_complete(const StateMessage *msg)
{
	return msg->topic_type == SM_RESYNC_TOPIC_TYPE &&
		msg->state_id == SM_RESYNC_COMPLETE_STATE;
}


/*
 * Find the client's resync answers among its messages of the statement (of
 * the chunk's part, for a client split across chunks).  Every 700/2 with a
 * serial ends an answer: itself and the messages before it, in arrival
 * order, whose serials run consecutively up to it, as a renumbered cache's
 * do.  Messages without a serial neither join a run nor end it; a run
 * stops at the previous answer's 700/2, so answers never overlap (the same
 * answer delivered twice in one statement is two answers).  An upload sent
 * before a reinstall, arriving in the same statement, breaks the run and
 * so is not part of the answer.  Sets answer_of[i] to the position of the
 * 700/2 of the answer msgs[i] belongs to, or -1.
 */
static void
find_resync_answers(const StateMessage *msgs, int nmsgs, int *answer_of)
{
	int			prev_end = -1;	/* the previous answer's 700/2 */

	for (int i = 0; i < nmsgs; i++)
		answer_of[i] = -1;
	for (int end = 0; end < nmsgs; end++)
	{
		int64		expect;

		if (!msgs[end].has_serial || !is_resync_complete(&msgs[end]))
			continue;
		answer_of[end] = end;
		expect = msgs[end].serial_number - 1;
		for (int i = end - 1; i > prev_end; i--)
		{
			if (!msgs[i].has_serial)
				continue;
			if (msgs[i].serial_number != expect)
				break;
			answer_of[i] = end;
			expect--;
		}
		prev_end = end;
	}
}

/*
 * Run serial tracking over one client's messages, in arrival order, with
 * the resync events they carry.  now is the engine clock of the chunk.
 */
static void
track_client(MessageBatch *batch, ClientTrack *track, StateMessage *msgs,
			 int nmsgs, TimestampTz now)
{
	int		   *answer_of = palloc(nmsgs * sizeof(int));
	int			answer = -1;	/* the 700/2 of the answer being processed */

	Assert(nmsgs > 0);
	for (int i = 0; i < nmsgs; i++)
	{
		/* the latest non-NULL header values, whatever the verdict */
		if (msgs[i].netbios_name != NULL)
			track->netbios_name = msgs[i].netbios_name;
		if (msgs[i].client_version != NULL)
			track->client_version = msgs[i].client_version;
		msgs[i].effective_time = sm_effective_time(msgs[i].message_time, now);
		msgs[i].clock_skewed = (msgs[i].effective_time != msgs[i].message_time);
		if (msgs[i].clock_skewed)
			sm_count(&track->counts.clock_skewed_messages, 1);
	}
	find_resync_answers(msgs, nmsgs, answer_of);

	if (!track->has_baseline)
		sm_serials_choose_baseline(track, msgs, nmsgs);

	for (int i = 0; i < nmsgs; i++)
	{
		StateMessage *msg = &msgs[i];
		bool		answer_first = answer_of[i] >= 0 && answer_of[i] != answer;

		if (answer_of[i] >= 0)
			answer = answer_of[i];
		msg->verdict = sm_serials_apply(track, msg, now,
										answer_of[i] >= 0 ? &msgs[answer] : NULL,
										answer_first);
		batch->last_verdict = msg->verdict;
		batch->counts[msg->verdict]++;

		/*
		 * A reset's request first: a 700/2 that is a reset completes it.  A
		 * duplicate 700/2 (a stale answer's too) completes nothing.
		 */
		if (msg->verdict == VERDICT_SERIAL_RESET)
			sm_resync_reset_issued(track, now);
		if (msg->verdict != VERDICT_DUPLICATE && is_resync_complete(msg))
		{
			sm_resync_completed(track, now);
			if (msg->has_serial)
				sm_serials_forget_below(track, msg->serial_number);
		}
	}
	pfree(answer_of);
}


/* Process the gathered chunk: lock, track, keep newest states, write */
static void
flush_chunk(MessageBatch *batch)
{
	StateMessage *msgs = batch->messages;
	int			nmsgs = batch->nmessages;
	int			ntracks = 0;
	ClientTrack *tracks;
	int		   *starts;
	TupleDesc	desc = sm_store_states_desc();
	Tuplestorestate *new_states = tuplestore_begin_heap(false, false, work_mem);
	Tuplestorestate *newer_states = tuplestore_begin_heap(false, false, work_mem);
	Tuplestorestate *decided_states = tuplestore_begin_heap(false, false, work_mem);
	TimestampTz now;

	/* Messages arrive sorted by client: one track per run of a client */
	for (int i = 0; i < nmsgs; i++)
	{
		Assert(i == 0 || strcmp(msgs[i - 1].client_id, msgs[i].client_id) <= 0);
		Assert(i == 0 || strcmp(msgs[i - 1].client_id, msgs[i].client_id) < 0 ||
			   msgs[i - 1].row_number < msgs[i].row_number);
		if (i == 0 || strcmp(msgs[i].client_id, msgs[i - 1].client_id) != 0)
			ntracks++;
	}
	tracks = palloc0(ntracks * sizeof(ClientTrack));
	starts = palloc((ntracks + 1) * sizeof(int));
	ntracks = 0;
	for (int i = 0; i < nmsgs; i++)
	{
		if (i == 0 || strcmp(msgs[i].client_id, msgs[i - 1].client_id) != 0)
		{
			tracks[ntracks].client_id = msgs[i].client_id;
			starts[ntracks++] = i;
		}
	}
	starts[ntracks] = nmsgs;
	elog(DEBUG1, "state_msg: chunk of %d messages from %d clients",
		 nmsgs, ntracks);

	sm_store_load_clients(tracks, ntracks, msgs, starts);

	/*
	 * The chunk's one engine clock reading, taken once the clients are
	 * locked (not at the transaction's start), so that a request issued
	 * while this batch waited for a lock is never completed before its
	 * issue.
	 */
	now = sm_engine_now();

	for (int k = 0; k < ntracks; k++)
	{
		StateMessage *first = &msgs[starts[k]];
		int			n = starts[k + 1] - starts[k];

		track_client(batch, &tracks[k], first, n, now);
		sm_current_state_sort(&tracks[k], first, n);
		if (batch->flow != NULL)
		{
			bool		answer = is_answer_client(batch, tracks[k].client_id);

			for (int i = 0; i < n; i++)
				sm_queue_flow_add(batch->flow,
								  sm_queue_choose(first[i].source,
												  first[i].topic_type, answer),
								  first[i].topic_type, 1, 1, answer ? 1 : 0);
		}
	}
	sm_store_load_states(tracks, ntracks);
	for (int k = 0; k < ntracks; k++)
		sm_current_state_collect(&tracks[k], new_states, newer_states,
							  decided_states, desc, now);

	sm_store_save_clients(tracks, ntracks, now, batch->context);
	sm_store_write_states(desc, new_states, newer_states, decided_states,
					   batch->context);
	tuplestore_end(new_states);
	tuplestore_end(newer_states);
	tuplestore_end(decided_states);

	batch->nmessages = 0;
	batch->toasted_bytes = 0;
	MemoryContextReset(batch->chunk_context);
}

/*
 * Bytes the chunk being gathered holds: its messages' fields (state
 * details in line included) and their entries in the message array (whose
 * spare capacity is not counted, or one large chunk would make every later
 * one look full), plus the full size of the state details it holds as
 * TOAST pointers, which its writes read whole, one row at a time.
 */
static Size
chunk_bytes(MessageBatch *batch)
{
	return MemoryContextMemAllocated(batch->chunk_context, true) +
		(Size) batch->nmessages * sizeof(StateMessage) +
		batch->toasted_bytes;
}

/*
 * Finish the enqueue (queued processing): the messages were written as they
 * came; the clients with a 700/2 among them are resync answers
 */
static void
enqueue_finish(MessageBatch *batch)
{
	if (batch->writer == NULL)
		return;					/* no good message */
	batch->counts[VERDICT_QUEUED] = sm_queue_writer_end(batch->writer);
	batch->writer = NULL;
}

/*
 * Count the batch in state_msg.stats: its messages processed, by verdict,
 * and, if it processed any, itself and its time since sm_batch_begin()
 */
static void
count_batch(MessageBatch *batch)
{
	int64		processed = 0;

	for (int v = VERDICT_IN_ORDER; v <= VERDICT_UNSERIALIZED; v++)
	{
		sm_stats_add(SM_STAT_PROCESSED_IN_ORDER + (v - VERDICT_IN_ORDER),
					 batch->counts[v]);
		processed += batch->counts[v];
	}
	if (processed > 0)
	{
		sm_stats_add(SM_STAT_BATCHES, 1);
		sm_stats_add(SM_STAT_PROCESSING_USECS,
					 GetCurrentTimestamp() - batch->began);
	}
}

/*
 * Process (or, in queued processing, enqueue) every message added and
 * close the batch.  Returns the verdict of the last message (of the only
 * one, for ingest()) and, if counts is not NULL, fills
 * counts[VERDICT_COUNT] with the number of each verdict.
 */
Verdict
sm_batch_finish(MessageBatch *batch, int64 *counts)
{
	MemoryContext old;
	Verdict		verdict;
	int			client_start = 0;	/* where the current client's messages
									 * begin in the chunk */
	Size		chunk_memory = (Size) sm_batch_chunk_memory * 1024;

	tuplesort_performsort(batch->sort);
	if (batch->enqueue)
		enqueue_finish(batch);
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
			if (batch->nmessages >= sm_batch_chunk_size ||
				chunk_bytes(batch) >= chunk_memory)
				flush_chunk(batch);
			client_start = batch->nmessages;
		}
		else if (batch->nmessages - client_start >=
				 MAX_CHUNK_FACTOR * sm_batch_chunk_size ||
				 chunk_bytes(batch) >= MAX_CHUNK_MEMORY_FACTOR * chunk_memory)
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
		message_from_slot(batch, batch->get_slot,
						  &batch->messages[batch->nmessages++]);
	}
	if (batch->nmessages > 0)
		flush_chunk(batch);
	MemoryContextSwitchTo(old);
	if (batch->flow != NULL)
	{
		sm_queue_flow_write(batch->flow, sm_engine_now());
		sm_queue_maybe_compact(false);
	}
	tuplesort_end(batch->sort);
	ExecDropSingleTupleTableSlot(batch->put_slot);
	ExecDropSingleTupleTableSlot(batch->get_slot);

	if (batch->counts[VERDICT_REJECTED] > MAX_REJECT_WARNINGS)
		ereport(WARNING,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%lld more state messages were rejected",
						(long long) (batch->counts[VERDICT_REJECTED] - MAX_REJECT_WARNINGS)),
				 errdetail("All %lld rejected rows were stored in state_msg.rejected_messages.",
						   (long long) batch->counts[VERDICT_REJECTED])));

	AtEOXact_GUC(true, batch->guc_nest_level);
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	count_batch(batch);
	verdict = batch->last_verdict;
	if (counts != NULL)
		memcpy(counts, batch->counts, sizeof(batch->counts));
	MemoryContextDelete(batch->context);
	return verdict;
}
