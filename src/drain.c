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
 * and none waits for another).  From a shard it takes the oldest chunks
 * (enqueue.c), in (upload_id, first_row) order: the order their messages
 * were enqueued in, per client; a chunk the limit cuts is rewritten with
 * its rest; in the high queue it never cuts a chunk nor a client's
 * messages of an upload, so a resync answer is processed in one batch.  The messages, in that order,
 * go to one batch of the processing path (batch.c), and their chunks are
 * deleted (or rewritten) in the same transaction: a message is processed
 * exactly once, whatever crashes.
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
#include "utils/typcache.h"

#include "state_msg.h"

/* Shard locks: advisory locks (SM_LOCK_SHARD_CLASS, shard) of the database */
#define SM_LOCK_SHARD_CLASS 0x736d7371	/* "smsq" */

/* Chunks a claim reads at a time */
#define SM_CLAIM_CHUNKS 16

/* Chunks a batch moves out of partitions mostly dead, at most */
#define SM_MOVE_CHUNKS 256

/* Columns the claim reads */
enum
{
	CLAIM_GENERATION,
	CLAIM_CTID,
	CLAIM_UPLOAD_ID,
	CLAIM_ENQUEUED_AT,
	CLAIM_ROW_NUMBERS,
	CLAIM_MESSAGES
};

#define CLAIM_COLUMNS \
"generation, ctid, upload_id, enqueued_at, row_numbers, messages"

/* A shard's oldest chunks in a queue, in the order they were enqueued */
static const char *claim_sql =
"SELECT " CLAIM_COLUMNS " FROM state_msg.queue_chunks"
" WHERE queue OPERATOR(pg_catalog.=) $1::pg_catalog.text::state_msg.queue_name"
" AND shard OPERATOR(pg_catalog.=) $2"
" ORDER BY upload_id, first_row LIMIT $3";

/* The rest of an upload in a shard (the high queue never cuts an answer) */
static const char *claim_rest_sql =
"SELECT " CLAIM_COLUMNS " FROM state_msg.queue_chunks"
" WHERE queue OPERATOR(pg_catalog.=) $1::pg_catalog.text::state_msg.queue_name"
" AND shard OPERATOR(pg_catalog.=) $2"
" AND upload_id OPERATOR(pg_catalog.=) $3"
" ORDER BY upload_id, first_row";

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

/* A text column of a queued message as a C string, NULL for none */
static char *
message_text(Datum *values, bool *isnull, int col)
{
	return isnull[col] ? NULL : TextDatumGetCString(values[col]);
}

/*
 * A queued message (its inbox columns) as the validated message it was
 * when enqueued (it is not validated again: the settings it was checked
 * against may have changed, and it was accepted)
 */
static void
message_from_values(Datum *values, bool *isnull, StateMessage *msg)
{
	memset(msg, 0, sizeof(StateMessage));
	msg->client_id = message_text(values, isnull, INBOX_CLIENT_ID);
	msg->has_serial = !isnull[INBOX_SERIAL_NUMBER];
	msg->serial_number = msg->has_serial ?
		DatumGetInt64(values[INBOX_SERIAL_NUMBER]) : 0;
	msg->topic_type = DatumGetInt32(values[INBOX_TOPIC_TYPE]);
	msg->topic_id = message_text(values, isnull, INBOX_TOPIC_ID);
	msg->topic_id_type = DatumGetInt32(values[INBOX_TOPIC_ID_TYPE]);
	msg->state_id = DatumGetInt32(values[INBOX_STATE_ID]);
	msg->criticality = DatumGetInt32(values[INBOX_CRITICALITY]);
	msg->message_time = DatumGetTimestampTz(values[INBOX_MESSAGE_TIME]);
	msg->user_params = isnull[INBOX_USER_PARAMS] ? (Datum) 0 :
		values[INBOX_USER_PARAMS];
	msg->source = message_text(values, isnull, INBOX_SOURCE);
	msg->user_name = message_text(values, isnull, INBOX_USER_NAME);
	msg->user_sid = message_text(values, isnull, INBOX_USER_SID);
	msg->has_state_details_type = !isnull[INBOX_STATE_DETAILS_TYPE];
	msg->state_details_type = msg->has_state_details_type ?
		DatumGetInt32(values[INBOX_STATE_DETAILS_TYPE]) : 0;
	msg->state_details = isnull[INBOX_STATE_DETAILS] ? (Datum) 0 :
		values[INBOX_STATE_DETAILS];
	msg->has_priority = !isnull[INBOX_PRIORITY];
	msg->priority = msg->has_priority ? DatumGetInt32(values[INBOX_PRIORITY]) : 0;
	msg->netbios_name = message_text(values, isnull, INBOX_NETBIOS_NAME);
	msg->client_version = message_text(values, isnull, INBOX_CLIENT_VERSION);
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

/* What a claim needs beside the batch */
typedef struct Claim
{
	MessageBatch *batch;
	QueueFlow  *flow;
	SmQueue		queue;
	MemoryContext row_context;	/* one message's, reset per message */
	TupleDesc	message_desc;	/* of state_msg.queued_message, or NULL */
	int64		last_upload;	/* of the last chunk taken */
	HTAB	   *upload_clients; /* high: clients taken of last_upload */
} Claim;

/* A client id, as the key of Claim.upload_clients */
typedef struct ClientKey
{
	char		client_id[SM_MAX_CLIENT_ID_BYTES + 1];
} ClientKey;

/*
 * Note a client taken from the high queue's last upload (or forget them
 * all, when the next chunk belongs to another upload)
 */
static void
remember_clients(Claim *claim, bool forget, const char *client_id)
{
	if (claim->upload_clients == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(ClientKey);
		ctl.entrysize = sizeof(ClientKey);
		ctl.hcxt = MemoryContextGetParent(claim->row_context);
		claim->upload_clients = hash_create("state_msg answers taken", 64,
											&ctl, HASH_ELEM | HASH_STRINGS |
											HASH_CONTEXT);
	}
	if (forget)
	{
		HASH_SEQ_STATUS seq;
		ClientKey  *key;

		hash_seq_init(&seq, claim->upload_clients);
		while ((key = hash_seq_search(&seq)) != NULL)
			(void) hash_search(claim->upload_clients, key, HASH_REMOVE, NULL);
	}
	else
		(void) hash_search(claim->upload_clients, client_id, HASH_ENTER, NULL);
}

/*
 * A claimed chunk's row: its partition, its ctid, when its messages were
 * enqueued, its upload, and its messages (in the caller's memory context)
 */
static void
read_chunk(HeapTuple tuple, TupleDesc desc, int16 *generation, Datum *ctid,
		   TimestampTz *enqueued_at, int64 *upload, QueueChunk *chunk)
{
	bool		null;

	*generation = DatumGetInt16(SPI_getbinval(tuple, desc,
											  CLAIM_GENERATION + 1, &null));
	if (*generation < 0 || *generation >= SM_QUEUE_GENERATIONS)
		elog(ERROR, "queue chunk of generation %d", *generation);
	*ctid = SPI_getbinval(tuple, desc, CLAIM_CTID + 1, &null);
	*enqueued_at = DatumGetTimestampTz(SPI_getbinval(tuple, desc,
													 CLAIM_ENQUEUED_AT + 1,
													 &null));
	*upload = DatumGetInt64(SPI_getbinval(tuple, desc, CLAIM_UPLOAD_ID + 1,
										  &null));
	sm_queue_chunk_read(chunk,
						SPI_getbinval(tuple, desc, CLAIM_ROW_NUMBERS + 1, &null),
						SPI_getbinval(tuple, desc, CLAIM_MESSAGES + 1, &null));
}

/*
 * A chunk's message as the validated message it was, in the claim's row
 * context (reset first: it holds one message at a time)
 */
static void
read_message(Claim *claim, const QueueChunk *chunk, int m, StateMessage *msg)
{
	MemoryContext old;
	Datum		values[INBOX_NATTS];
	bool		isnull[INBOX_NATTS];

	if (claim->message_desc == NULL)
	{
		/* in the drain's context, which outlives the row context */
		old = MemoryContextSwitchTo(MemoryContextGetParent(claim->row_context));
		claim->message_desc = lookup_rowtype_tupdesc_copy(chunk->message_type,
														  -1);
		MemoryContextSwitchTo(old);
	}
	old = MemoryContextSwitchTo(claim->row_context);
	MemoryContextReset(claim->row_context);
	sm_queue_message_deform(claim->message_desc, chunk->messages[m], values,
							isnull);
	message_from_values(values, isnull, msg);
	MemoryContextSwitchTo(old);
}

/*
 * Feed a message to the batch and note it in the flow (and, in the high
 * queue, its client as one taken from the last upload)
 */
static void
take_message(Claim *claim, StateMessage *msg)
{
	sm_batch_add_message(claim->batch, msg);
	sm_queue_flow_add(claim->flow, claim->queue, msg->topic_type, 0, 1, 0);
	if (claim->queue == SM_QUEUE_HIGH)
		remember_clients(claim, false, msg->client_id);
}

/*
 * The high queue never cuts a client's resync answer: take, from chunks of
 * the last upload in the shard, the messages of the clients already taken
 * from it, and rewrite those chunks with the others' messages (or delete
 * them).  Returns the messages taken.
 */
static int64
take_answers_rest(Claim *claim, SPITupleTable *rows, uint64 nrows)
{
	int64		taken = 0;

	for (uint64 i = 0; i < nrows; i++)
	{
		int16		generation;
		Datum		ctid;
		TimestampTz enqueued_at;
		int64		upload;
		QueueChunk	chunk;
		int			nkept = 0;

		read_chunk(rows->vals[i], rows->tupdesc, &generation, &ctid,
				   &enqueued_at, &upload, &chunk);
		for (int m = 0; m < chunk.n; m++)
		{
			StateMessage msg;

			read_message(claim, &chunk, m, &msg);
			if (hash_search(claim->upload_clients, msg.client_id, HASH_FIND,
							NULL) == NULL)
			{
				chunk.row_numbers[nkept] = chunk.row_numbers[m];
				chunk.messages[nkept++] = chunk.messages[m];
				continue;
			}
			take_message(claim, &msg);
			taken++;
		}
		sm_queue_flow_waiting(claim->flow, claim->queue, generation,
							  enqueued_at, nkept - chunk.n, nkept == 0 ? -1 : 0);
		if (nkept < chunk.n)
			sm_queue_chunk_rewrite(generation, ctid, &chunk, 0, nkept);
	}
	return taken;
}

/*
 * Take claimed chunks, in their order, until limit messages are taken (in
 * the high queue whole chunks, whatever the limit): feed their messages to
 * the batch, note them in the flow, and delete the chunks taken whole and
 * rewrite the one taken in part with its rest.  Returns the messages
 * taken.
 */
static int64
take_chunks(Claim *claim, SPITupleTable *rows, uint64 nrows, int64 limit)
{
	Datum	   *ctids[SM_QUEUE_GENERATIONS];
	int			nctids[SM_QUEUE_GENERATIONS] = {0};
	int64		taken = 0;

	for (int g = 0; g < SM_QUEUE_GENERATIONS; g++)
		ctids[g] = palloc(Max(nrows, 1) * sizeof(Datum));
	for (uint64 i = 0; i < nrows && taken < limit; i++)
	{
		int16		generation;
		Datum		ctid;
		TimestampTz enqueued_at;
		int64		upload;
		QueueChunk	chunk;
		int			take;

		read_chunk(rows->vals[i], rows->tupdesc, &generation, &ctid,
				   &enqueued_at, &upload, &chunk);
		if (claim->queue == SM_QUEUE_HIGH && upload != claim->last_upload)
			remember_clients(claim, true, NULL);
		claim->last_upload = upload;
		take = chunk.n;
		if (claim->queue != SM_QUEUE_HIGH && take > limit - taken)
			take = (int) (limit - taken);
		for (int m = 0; m < take; m++)
		{
			StateMessage msg;

			read_message(claim, &chunk, m, &msg);
			take_message(claim, &msg);
		}
		sm_queue_flow_waiting(claim->flow, claim->queue, generation,
							  enqueued_at, -take, take == chunk.n ? -1 : 0);
		if (take == chunk.n)
			ctids[generation][nctids[generation]++] = ctid;
		else
			sm_queue_chunk_rewrite(generation, ctid, &chunk, take,
								   chunk.n - take);
		taken += take;
	}
	for (int g = 0; g < SM_QUEUE_GENERATIONS; g++)
		delete_claimed(g, ctids[g], nctids[g]);
	return taken;
}

/*
 * Take up to limit messages of one queue from one shard (whose lock the
 * caller holds); in the high queue, whole chunks, and then the rest of the
 * last upload's messages of the clients taken from it (a resync answer is
 * processed whole).  Returns the messages taken.
 */
static int64
claim_shard(Claim *claim, int shard, int64 limit)
{
	Oid			types[] = {TEXTOID, INT2OID, INT8OID};
	Datum		args[3];
	int64		taken = 0;

	args[0] = CStringGetTextDatum(sm_queue_names[claim->queue]);
	args[1] = Int16GetDatum(shard);
	args[2] = Int64GetDatum(SM_CLAIM_CHUNKS);
	while (taken < limit)
	{
		SPITupleTable *rows;
		uint64		nrows;

		/* (the chunks this transaction took are gone for its statements) */
		sm_run_kept(&claim_plan, claim_sql, 3, types, args, NULL,
					SPI_OK_SELECT);
		rows = SPI_tuptable;
		nrows = SPI_processed;
		taken += take_chunks(claim, rows, nrows, limit - taken);
		SPI_freetuptable(rows);
		if (nrows < SM_CLAIM_CHUNKS)
			break;
	}
	if (claim->queue == SM_QUEUE_HIGH && taken >= limit)
	{
		args[2] = Int64GetDatum(claim->last_upload);
		sm_run_kept(&claim_rest_plan, claim_rest_sql, 3, types, args, NULL,
					SPI_OK_SELECT);
		if (SPI_processed > 0)
		{
			SPITupleTable *rest = SPI_tuptable;

			taken += take_answers_rest(claim, rest, SPI_processed);
			SPI_freetuptable(rest);
		}
	}
	return taken;
}

/*
 * Move the live chunks of partitions mostly dead to the current generation
 * (see queue.c), shard by shard under the shard's lock (tried: a drainer
 * working on the shard is left alone), at most SM_MOVE_CHUNKS of them.
 * A partition so emptied is truncated by a later rotation.
 */
static void
move_stranded(int current, const bool *stranded, int start)
{
	int64		budget = SM_MOVE_CHUNKS;

	for (int g = 0; g < SM_QUEUE_GENERATIONS && budget > 0; g++)
	{
		if (g == current || !stranded[g])
			continue;
		for (int i = 0; i < SM_QUEUE_SHARDS && budget > 0; i++)
		{
			int			shard = (start + i) % SM_QUEUE_SHARDS;
			bool		fresh;

			int64		moved;

			if (!lock_shard(shard, &fresh))
				continue;
			moved = sm_queue_move_chunks(g, current, shard, budget);
			if (moved == 0 && fresh)
				unlock_shard(shard);
			budget -= moved;
		}
	}
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
	Claim		claim;
	MemoryContext context;
	int			start;
	int			current;
	bool		stranded[SM_QUEUE_GENERATIONS];
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
	memset(&claim, 0, sizeof(claim));
	claim.row_context = AllocSetContextCreate(context, "state_msg drain row",
											  ALLOCSET_DEFAULT_SIZES);
	claim.flow = sm_queue_flow_begin(context);
	if (next_start_shard < 0)
		next_start_shard = MyProcPid % SM_QUEUE_SHARDS;
	start = next_start_shard;
	next_start_shard = (next_start_shard + 1) % SM_QUEUE_SHARDS;

	claim.batch = sm_batch_begin_immediate();	/* connects to SPI */
	now = sm_engine_now();
	for (int q = 0; q < SM_QUEUE_COUNT && taken < limit; q++)
	{
		int64		queue_limit = limit - taken;
		int64		queue_taken = 0;
		TimestampTz window_start = 0;
		int64		released = 0;

		claim.queue = (SmQueue) q;
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
			n = claim_shard(&claim, shard, queue_limit - queue_taken);
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
	 * claimed chunks' TOAST values are read there, before any TRUNCATE).
	 */
	if (taken > 0)
		sm_queue_flow_write(claim.flow, sm_engine_now());
	sm_batch_finish(claim.batch, NULL);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	sm_queue_maybe_compact(taken > 0);
	current = sm_queue_rotate(stranded);
	move_stranded(current, stranded, start);
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	MemoryContextDelete(context);
	PG_RETURN_INT64(taken);
}
