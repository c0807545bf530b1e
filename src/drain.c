/*-------------------------------------------------------------------------
 *
 * drain.c
 *	  Draining the queue: state_msg.process_queue_batch(), one batch in the
 *	  caller's transaction, as state_msg.process_queue() and the background
 *	  worker call it.
 *
 * A batch takes messages from the queues in the order high, low, fsp, and
 * within a queue shard by shard, starting at a shard that moves on with
 * every batch.  It works on a shard only under a transaction-level
 * advisory lock on it, tried, never waited for (one lock per shard,
 * whatever the queue, so no two drainers ever work on one client at once,
 * and none waits for another).  From a shard it takes the oldest messages,
 * in (upload_id, row_number) order: the order they were enqueued in, per
 * client; in the high queue it never cuts an upload, so a resync answer is
 * processed in one batch.  The messages, in that order, go to one batch of
 * the processing path (batch.c), and their queue rows are deleted in the
 * same transaction: a message is processed exactly once, whatever crashes.
 *
 * The fsp queue releases at most state_msg.fsp_throttle_messages per
 * state_msg.fsp_throttle_interval: state_msg.queue_throttle holds the start
 * of the current interval and the messages released in it; a batch locks
 * that row (SKIP LOCKED: if another batch holds it, this one takes no fsp
 * message) and a new interval begins with the first batch after the
 * current one ended.
 *
 * The claim is exact only in READ COMMITTED: each statement must see what
 * committed before the shard lock was taken (an earlier holder's deletes),
 * so process_queue_batch() refuses a transaction snapshot.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "state_msg.h"

/* Shard locks: advisory locks (SM_LOCK_SHARD_CLASS, shard) of the database */
#define SM_LOCK_SHARD_CLASS 0x736d7371	/* "smsq" */
#define SM_QUEUE_SHARDS 64
#define SM_QUEUE_GENERATIONS 3

/* Columns the claim reads: the row's place, then the inbox's columns */
enum
{
	CLAIM_GENERATION,
	CLAIM_CTID,
	CLAIM_UPLOAD_ID,
	CLAIM_ROW_NUMBER,
	CLAIM_ENQUEUED_AT,
	CLAIM_MESSAGE
};

#define CLAIM_COLUMNS \
"generation, ctid, upload_id, row_number, enqueued_at, client_id," \
" serial_number, topic_type, topic_id, topic_id_type, state_id, criticality," \
" message_time, user_params, source, user_name, user_sid, state_details_type," \
" state_details, priority, netbios_name, client_version"

/* A shard's oldest messages in a queue, in the order they were enqueued */
static const char *claim_sql =
"SELECT " CLAIM_COLUMNS " FROM state_msg.queue"
" WHERE queue OPERATOR(pg_catalog.=) $1::pg_catalog.text::state_msg.queue_name"
" AND shard OPERATOR(pg_catalog.=) $2"
" ORDER BY upload_id, row_number LIMIT $3";

/* The rest of an upload in a shard (the high queue never cuts one) */
static const char *claim_rest_sql =
"SELECT " CLAIM_COLUMNS " FROM state_msg.queue"
" WHERE queue OPERATOR(pg_catalog.=) $1::pg_catalog.text::state_msg.queue_name"
" AND shard OPERATOR(pg_catalog.=) $2"
" AND upload_id OPERATOR(pg_catalog.=) $3"
" AND row_number OPERATOR(pg_catalog.>) $4"
" ORDER BY upload_id, row_number";

static const char *throttle_sql =
"SELECT window_start, released FROM state_msg.queue_throttle"
" FOR UPDATE SKIP LOCKED";

static const char *throttle_update_sql =
"UPDATE state_msg.queue_throttle SET window_start = $1, released = $2";

static SPIPlanPtr claim_plan;
static SPIPlanPtr claim_rest_plan;
static SPIPlanPtr delete_plan[SM_QUEUE_GENERATIONS];

/* Delete claimed rows of a partition; $1 their ctids */
static const char *delete_sql =
"DELETE FROM state_msg.queue_%d"
" WHERE ctid OPERATOR(pg_catalog.=) ANY ($1)";
static SPIPlanPtr throttle_plan;
static SPIPlanPtr throttle_update_plan;

/* The shard the next batch of this backend starts at */
static int	next_start_shard = -1;

/*
 * Try to lock a shard for the transaction; never waits.  *fresh tells
 * whether this call took it (the transaction did not hold it yet).
 */
static bool
lock_shard(int shard, bool *fresh)
{
	LOCKTAG		tag;
	LockAcquireResult r;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, SM_LOCK_SHARD_CLASS, shard, 2);
	r = LockAcquire(&tag, ExclusiveLock, false, true);
	*fresh = (r == LOCKACQUIRE_OK);
	return r != LOCKACQUIRE_NOT_AVAIL;
}

/*
 * Give back a shard lock this batch took but did not use (it found nothing
 * there), so that other drainers may work on the shard's messages that
 * arrive meanwhile
 */
static void
unlock_shard(int shard)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, SM_LOCK_SHARD_CLASS, shard, 2);
	LockRelease(&tag, ExclusiveLock, false);
}

/* A text column of a claimed row as a C string, NULL for none */
static char *
claimed_text(HeapTuple tuple, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, col + 1, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* An int4 column of a claimed row; *has is false for NULL */
static int32
claimed_int4(HeapTuple tuple, TupleDesc desc, int col, bool *has)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, col + 1, &isnull);

	if (has != NULL)
		*has = !isnull;
	return isnull ? 0 : DatumGetInt32(d);
}

/*
 * A claimed row as the validated message it was when enqueued (it is not
 * validated again: the settings it was checked against may have changed,
 * and it was accepted)
 */
static void
message_from_row(HeapTuple tuple, TupleDesc desc, StateMessage *msg)
{
	int			m = CLAIM_MESSAGE;
	bool		isnull;
	Datum		d;

	memset(msg, 0, sizeof(StateMessage));
	msg->client_id = claimed_text(tuple, desc, m + INBOX_CLIENT_ID);
	d = SPI_getbinval(tuple, desc, m + INBOX_SERIAL_NUMBER + 1, &isnull);
	msg->has_serial = !isnull;
	msg->serial_number = isnull ? 0 : DatumGetInt64(d);
	msg->topic_type = claimed_int4(tuple, desc, m + INBOX_TOPIC_TYPE, NULL);
	msg->topic_id = claimed_text(tuple, desc, m + INBOX_TOPIC_ID);
	msg->topic_id_type = claimed_int4(tuple, desc, m + INBOX_TOPIC_ID_TYPE, NULL);
	msg->state_id = claimed_int4(tuple, desc, m + INBOX_STATE_ID, NULL);
	msg->criticality = claimed_int4(tuple, desc, m + INBOX_CRITICALITY, NULL);
	d = SPI_getbinval(tuple, desc, m + INBOX_MESSAGE_TIME + 1, &isnull);
	msg->message_time = DatumGetTimestampTz(d);
	d = SPI_getbinval(tuple, desc, m + INBOX_USER_PARAMS + 1, &isnull);
	msg->user_params = isnull ? (Datum) 0 : d;
	msg->source = claimed_text(tuple, desc, m + INBOX_SOURCE);
	msg->user_name = claimed_text(tuple, desc, m + INBOX_USER_NAME);
	msg->user_sid = claimed_text(tuple, desc, m + INBOX_USER_SID);
	msg->state_details_type = claimed_int4(tuple, desc,
										   m + INBOX_STATE_DETAILS_TYPE,
										   &msg->has_state_details_type);
	d = SPI_getbinval(tuple, desc, m + INBOX_STATE_DETAILS + 1, &isnull);
	msg->state_details = isnull ? (Datum) 0 : d;
	msg->priority = claimed_int4(tuple, desc, m + INBOX_PRIORITY,
								 &msg->has_priority);
	msg->netbios_name = claimed_text(tuple, desc, m + INBOX_NETBIOS_NAME);
	msg->client_version = claimed_text(tuple, desc, m + INBOX_CLIENT_VERSION);
	msg->verdict = VERDICT_REJECTED;
}

/* Delete claimed rows of one partition by their ctids; all must go */
static void
delete_claimed(int generation, Datum *ctids, int n)
{
	Oid			types[] = {TIDARRAYOID};
	Datum		args[1];

	if (n == 0)
		return;
	args[0] = PointerGetDatum(construct_array(ctids, n, TIDOID,
											  sizeof(ItemPointerData), false,
											  TYPALIGN_SHORT));
	if (SPI_execute_plan(sm_queue_partition_plan(delete_plan, generation,
												 delete_sql,
												 1, types),
						 args, NULL, false, 0) !=
		SPI_OK_DELETE)
		elog(ERROR, "SPI_execute_plan failed for a queue partition's delete");
	if (SPI_processed != (uint64) n)
		elog(ERROR, "state_msg: %llu of %d claimed queue rows deleted",
			 (unsigned long long) SPI_processed, n);
}

/*
 * Feed claimed rows (in their order) to the batch, note them in the flow
 * and delete them.  Returns the number fed.
 */
static int64
take_rows(MessageBatch *batch, QueueFlow *flow, SmQueue queue,
		  SPITupleTable *rows, uint64 nrows, MemoryContext row_context)
{
	Datum	   *ctids[SM_QUEUE_GENERATIONS];
	int			nctids[SM_QUEUE_GENERATIONS] = {0};
	TupleDesc	desc = rows->tupdesc;

	for (int g = 0; g < SM_QUEUE_GENERATIONS; g++)
		ctids[g] = palloc(Max(nrows, 1) * sizeof(Datum));
	for (uint64 i = 0; i < nrows; i++)
	{
		HeapTuple	tuple = rows->vals[i];
		MemoryContext old;
		StateMessage msg;
		bool		isnull;
		int16		generation;
		TimestampTz enqueued_at;

		generation = DatumGetInt16(SPI_getbinval(tuple, desc,
												 CLAIM_GENERATION + 1, &isnull));
		if (generation < 0 || generation >= SM_QUEUE_GENERATIONS)
			elog(ERROR, "queue row of generation %d", generation);
		ctids[generation][nctids[generation]++] =
			SPI_getbinval(tuple, desc, CLAIM_CTID + 1, &isnull);
		enqueued_at = DatumGetTimestampTz(SPI_getbinval(tuple, desc,
														CLAIM_ENQUEUED_AT + 1,
														&isnull));

		old = MemoryContextSwitchTo(row_context);
		MemoryContextReset(row_context);
		message_from_row(tuple, desc, &msg);
		sm_batch_add_message(batch, &msg);
		MemoryContextSwitchTo(old);

		sm_queue_flow_add(flow, queue, msg.topic_type, 0, 1, 0);
		sm_queue_flow_waiting(flow, queue, enqueued_at, -1);
	}
	for (int g = 0; g < SM_QUEUE_GENERATIONS; g++)
		delete_claimed(g, ctids[g], nctids[g]);
	return (int64) nrows;
}

/*
 * Take up to limit messages of one queue from one shard (whose lock the
 * caller holds); in the high queue, the rest of the last upload too.
 * Returns the messages taken.
 */
static int64
claim_shard(MessageBatch *batch, QueueFlow *flow, SmQueue queue, int shard,
			int64 limit, MemoryContext row_context)
{
	Oid			types[] = {TEXTOID, INT2OID, INT8OID, INT8OID};
	Datum		args[4];
	SPITupleTable *rows;
	uint64		nrows;
	int64		taken;

	args[0] = CStringGetTextDatum(sm_queue_names[queue]);
	args[1] = Int16GetDatum(shard);
	args[2] = Int64GetDatum(limit);
	sm_run_kept(&claim_plan, claim_sql, 3, types, args, NULL, SPI_OK_SELECT);
	rows = SPI_tuptable;
	nrows = SPI_processed;
	if (nrows == 0)
	{
		SPI_freetuptable(rows);
		return 0;
	}
	taken = take_rows(batch, flow, queue, rows, nrows, row_context);

	if (queue == SM_QUEUE_HIGH && (int64) nrows == limit)
	{
		HeapTuple	last = rows->vals[nrows - 1];
		bool		isnull;

		args[2] = SPI_getbinval(last, rows->tupdesc, CLAIM_UPLOAD_ID + 1,
								&isnull);
		args[3] = SPI_getbinval(last, rows->tupdesc, CLAIM_ROW_NUMBER + 1,
								&isnull);
		sm_run_kept(&claim_rest_plan, claim_rest_sql, 4, types, args, NULL,
					SPI_OK_SELECT);
		if (SPI_processed > 0)
		{
			SPITupleTable *rest = SPI_tuptable;

			taken += take_rows(batch, flow, queue, rest, SPI_processed,
							   row_context);
			SPI_freetuptable(rest);
		}
	}
	SPI_freetuptable(rows);
	return taken;
}

/*
 * Lock the throttle's row and return how many fsp messages may be released
 * now (0 if another batch holds the row); *window_start and *released get
 * the interval's start and what it released so far.
 */
static int64
throttle_allowance(TimestampTz now, TimestampTz *window_start, int64 *released)
{
	bool		isnull;

	sm_run_kept(&throttle_plan, throttle_sql, 0, NULL, NULL, NULL,
				SPI_OK_SELECT);
	if (SPI_processed == 0)
		return 0;
	*window_start = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
													  SPI_tuptable->tupdesc,
													  1, &isnull));
	*released = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 2, &isnull));
	SPI_freetuptable(SPI_tuptable);
	if (TIMESTAMP_NOT_FINITE(*window_start) || now < *window_start ||
		now - *window_start >= sm_duration_usecs(sm_fsp_throttle_interval))
	{
		/* the interval ended: a new one begins now */
		*window_start = now;
		*released = 0;
	}
	return Max(0, (int64) sm_fsp_throttle_messages - *released);
}

/* Record fsp messages released in the throttle's current interval */
static void
throttle_release(TimestampTz window_start, int64 released)
{
	Oid			types[] = {TIMESTAMPTZOID, INT8OID};
	Datum		args[2];

	args[0] = TimestampTzGetDatum(window_start);
	args[1] = Int64GetDatum(released);
	sm_run_kept(&throttle_update_plan, throttle_update_sql, 2, types, args,
				NULL, SPI_OK_UPDATE);
}

PG_FUNCTION_INFO_V1(state_msg_process_queue_batch);

/*
 * state_msg.process_queue_batch(max_messages): process one batch of queued
 * messages, at most max_messages and at most state_msg.queue_batch_size
 * (NULL: that size), in the caller's transaction; returns the messages
 * processed (0 when none can be taken now)
 */
Datum
state_msg_process_queue_batch(PG_FUNCTION_ARGS)
{
	int64		limit = sm_queue_batch_size;
	int64		taken = 0;
	MessageBatch *batch;
	QueueFlow  *flow;
	MemoryContext context;
	MemoryContext row_context;
	int			start;
	TimestampTz now;

	if (!PG_ARGISNULL(0))
	{
		if (PG_GETARG_INT32(0) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_messages must not be negative")));
		limit = Min(limit, PG_GETARG_INT32(0));
	}
	sm_guard_schema();
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("state_msg.process_queue_batch() must run in a READ COMMITTED transaction"),
				 errdetail("Its statements must see what other drainers committed before it locked their shards."),
				 errhint("Call it in a transaction of its own, at the default isolation level.")));
	if (limit == 0)
		PG_RETURN_INT64(0);

	context = AllocSetContextCreate(CurrentMemoryContext, "state_msg drain",
									ALLOCSET_DEFAULT_SIZES);
	row_context = AllocSetContextCreate(context, "state_msg drain row",
										ALLOCSET_DEFAULT_SIZES);
	flow = sm_queue_flow_begin(context);
	if (next_start_shard < 0)
		next_start_shard = MyProcPid % SM_QUEUE_SHARDS;
	start = next_start_shard;
	next_start_shard = (next_start_shard + 1) % SM_QUEUE_SHARDS;

	batch = sm_batch_begin_immediate();		/* connects to SPI */
	now = sm_engine_now();
	for (int q = 0; q < SM_QUEUE_COUNT && taken < limit; q++)
	{
		int64		queue_limit = limit - taken;
		int64		queue_taken = 0;
		TimestampTz window_start = 0;
		int64		released = 0;

		if (q == SM_QUEUE_FSP)
		{
			int64		allowance = throttle_allowance(now, &window_start,
													   &released);

			queue_limit = Min(queue_limit, allowance);
		}
		for (int i = 0; i < SM_QUEUE_SHARDS && queue_taken < queue_limit; i++)
		{
			int			shard = (start + i) % SM_QUEUE_SHARDS;
			bool		fresh;
			int64		n;

			if (!lock_shard(shard, &fresh))
				continue;
			n = claim_shard(batch, flow, (SmQueue) q, shard,
							queue_limit - queue_taken, row_context);
			if (n == 0 && fresh)
				unlock_shard(shard);
			queue_taken += n;
		}
		if (q == SM_QUEUE_FSP && queue_taken > 0)
			throttle_release(window_start, released + queue_taken);
		taken += queue_taken;
	}
	/*
	 * The flow first: the batch disconnects from SPI.  Then process (the
	 * claimed rows' TOAST values are read there, before any TRUNCATE).
	 */
	if (taken > 0)
		sm_queue_flow_write(flow, sm_engine_now());
	sm_batch_finish(batch, NULL);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	sm_queue_maybe_compact(taken > 0);
	sm_queue_rotate();
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	MemoryContextDelete(context);
	PG_RETURN_INT64(taken);
}
