/*-------------------------------------------------------------------------
 *
 * enqueue.c
 *	  Writing a statement's validated messages to the queue (queued
 *	  processing), in chunks.
 *
 * The queue stores chunks (state_msg.queue_chunks): the messages of one
 * statement in one queue and one shard, in arrival order, as an array of
 * state_msg.queued_message beside their positions, up to about 6 kB so
 * that a chunk stays in line (the partitions' toast_tuple_target lets it).
 * A chunk is one heap tuple and one index entry for dozens of messages:
 * enqueuing costs about what writing the messages' bytes costs, not a
 * B-tree insertion per message.
 *
 * The writer gathers up to SM_QUEUE_FLUSH_MESSAGES messages, then sorts
 * them by (queue, shard, position), cuts the runs into chunks and writes
 * them with table_multi_insert(), as COPY does.  A client's messages in a
 * statement holding its 700/2 (a resync answer) all join the high queue:
 * the messages gathered with or after the one that told are placed there
 * when they are written; those an earlier write placed in another queue
 * are moved at the end of the statement (sm_queue_writer_end()).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "nodes/makefuncs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/typcache.h"

#include "state_msg.h"

/* Messages gathered before they are written */
#define SM_QUEUE_FLUSH_MESSAGES 8192

/*
 * Bytes of messages (and their positions) in a chunk at most, unless one
 * message alone is larger: the chunk's tuple then stays under the
 * partitions' toast_tuple_target (8160), in line and uncompressed
 */
#define SM_QUEUE_CHUNK_BYTES 6144

/* Chunk tuples written per table_multi_insert() */
#define SM_QUEUE_CHUNK_SLOTS 64

/* A message gathered, not yet written */
typedef struct PendingMessage
{
	int16		queue;			/* SmQueue */
	int16		shard;
	bool		fsp;			/* relayed: stays in fsp, whatever it is */
	int32		topic_type;
	int64		row_number;
	const char *client_id;
	Datum		message;		/* a flat state_msg.queued_message */
} PendingMessage;

/* A resync answer's client, and the first position written knowing it */
typedef struct AnswerSince
{
	char		client_id[SM_MAX_CLIENT_ID_BYTES + 1];
	int64		since_row;
} AnswerSince;

struct QueueWriter
{
	MemoryContext context;		/* the statement's */
	MemoryContext flush_context;	/* the gathered messages; reset per write */
	HTAB	   *answer_clients; /* the batch's: clients with a 700/2 so far */
	HTAB	   *answer_since;	/* AnswerSince, for the answers' clients */
	Relation	rel;			/* the partition, RowExclusiveLock */
	EState	   *estate;
	ResultRelInfo *rri;
	TupleDesc	message_desc;	/* of state_msg.queued_message */
	Oid			message_type;
	TupleTableSlot *slots[SM_QUEUE_CHUNK_SLOTS];
	int			nslots;
	PendingMessage *pending;
	int			npending;
	CommandId	cid;
	Datum		queue_labels[SM_QUEUE_COUNT];	/* the enum's values */
	int16		generation;
	int64		upload_id;
	TimestampTz now;
	int64		first_row;		/* position of the statement's first message */
	int64		total;
	QueueFlow  *flow;
};

static SPIPlanPtr earlier_chunks_plan[SM_QUEUE_GENERATIONS];

/*
 * The chunks of an upload in some shards written before a position; $1
 * shards, $2 upload, $3 the position
 */
static const char *earlier_chunks_sql =
"SELECT c.ctid, c.queue::pg_catalog.text, c.row_numbers, c.messages"
" FROM state_msg.queue_%d c"
" WHERE c.queue OPERATOR(pg_catalog.=) ANY ('{high,low,fsp}'::state_msg.queue_name[])"
" AND c.shard OPERATOR(pg_catalog.=) ANY ($1)"
" AND c.upload_id OPERATOR(pg_catalog.=) $2"
" AND c.first_row OPERATOR(pg_catalog.<) $3";

/*
 * Start writing a statement's messages: draw its upload id and read the
 * generation to write, and the engine clock (the enqueue time of all its
 * messages); open the partition and its indexes.  answer_clients is the
 * batch's set of clients with a 700/2 among the statement's messages so
 * far.  Inside the batch's SPI connection.
 */
QueueWriter *
sm_queue_writer_begin(MemoryContext context, HTAB *answer_clients)
{
	MemoryContext old;
	QueueWriter *w;
	Oid			enum_type;
	Oid			relid;

	old = MemoryContextSwitchTo(context);
	w = palloc0(sizeof(QueueWriter));
	w->context = context;
	w->flush_context = AllocSetContextCreate(context, "state_msg enqueue",
											 ALLOCSET_DEFAULT_SIZES);
	w->answer_clients = answer_clients;
	sm_queue_start_upload(&w->upload_id, &w->generation, &relid);
	w->now = sm_engine_now();
	w->first_row = -1;

	/*
	 * The partition's lock keeps drainers from truncating it until the
	 * transaction ends (it may have been truncated since the generation was
	 * read: the lock's invalidations give the new file)
	 */
	w->rel = table_open(relid, RowExclusiveLock);
	if (RelationGetDescr(w->rel)->natts != SM_CHUNK_NATTS)
		elog(ERROR, "state_msg.queue_chunks has %d columns, not %d",
			 RelationGetDescr(w->rel)->natts, SM_CHUNK_NATTS);
	enum_type = TupleDescAttr(RelationGetDescr(w->rel), SM_CHUNK_QUEUE)->atttypid;
	for (int q = 0; q < SM_QUEUE_COUNT; q++)
		w->queue_labels[q] = DirectFunctionCall2(enum_in,
												 CStringGetDatum(sm_queue_names[q]),
												 ObjectIdGetDatum(enum_type));
	w->message_type = get_element_type(TupleDescAttr(RelationGetDescr(w->rel),
													 SM_CHUNK_MESSAGES)->atttypid);
	w->message_desc = lookup_rowtype_tupdesc_copy(w->message_type, -1);
	if (w->message_desc->natts != INBOX_NATTS)
		elog(ERROR, "state_msg.queued_message has %d columns, not %d",
			 w->message_desc->natts, INBOX_NATTS);
	w->estate = CreateExecutorState();
	w->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(w->rri, w->rel, 0, NULL, 0);
	ExecOpenIndices(w->rri, false);
	w->pending = palloc(SM_QUEUE_FLUSH_MESSAGES * sizeof(PendingMessage));
	w->cid = GetCurrentCommandId(true);
	w->flow = sm_queue_flow_begin(context);
	MemoryContextSwitchTo(old);
	return w;
}

/* Write the chunk tuples gathered in the slots: heap, then indexes */
static void
write_slots(QueueWriter *w)
{
	ExprContext *econtext = GetPerTupleExprContext(w->estate);

	if (w->nslots == 0)
		return;
	table_multi_insert(w->rel, w->slots, w->nslots, w->cid, 0, NULL);
	for (int i = 0; i < w->nslots; i++)
	{
		List	   *recheck;

		ResetExprContext(econtext);
		recheck = ExecInsertIndexTuples(w->rri, w->slots[i], w->estate,
										false, false, NULL, NIL);
		list_free(recheck);
		ExecClearTuple(w->slots[i]);
	}
	w->nslots = 0;
}

/* Add a chunk of n messages (one queue and shard, in order) to the slots */
static void
add_chunk(QueueWriter *w, PendingMessage *msgs, int n)
{
	TupleTableSlot *slot;
	Datum	   *rows = palloc(n * sizeof(Datum));
	Datum	   *messages = palloc(n * sizeof(Datum));

	if (w->slots[w->nslots] == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(w->context);

		w->slots[w->nslots] = table_slot_create(w->rel, NULL);
		MemoryContextSwitchTo(old);
	}
	for (int i = 0; i < n; i++)
	{
		rows[i] = Int64GetDatum(msgs[i].row_number);
		messages[i] = msgs[i].message;
	}
	slot = w->slots[w->nslots++];
	ExecClearTuple(slot);
	slot->tts_values[SM_CHUNK_GENERATION] = Int16GetDatum(w->generation);
	slot->tts_values[SM_CHUNK_QUEUE] = w->queue_labels[msgs[0].queue];
	slot->tts_values[SM_CHUNK_SHARD] = Int16GetDatum(msgs[0].shard);
	slot->tts_values[SM_CHUNK_UPLOAD_ID] = Int64GetDatum(w->upload_id);
	slot->tts_values[SM_CHUNK_FIRST_ROW] = Int64GetDatum(msgs[0].row_number);
	slot->tts_values[SM_CHUNK_ENQUEUED_AT] = TimestampTzGetDatum(w->now);
	slot->tts_values[SM_CHUNK_ROW_NUMBERS] =
		PointerGetDatum(construct_array(rows, n, INT8OID, 8, FLOAT8PASSBYVAL,
										TYPALIGN_DOUBLE));
	slot->tts_values[SM_CHUNK_MESSAGES] =
		PointerGetDatum(construct_array(messages, n, w->message_type, -1,
										false, TYPALIGN_DOUBLE));
	sm_queue_flow_waiting(w->flow, (SmQueue) msgs[0].queue, w->generation,
						  w->now, n, 1);
	memset(slot->tts_isnull, false, SM_CHUNK_NATTS * sizeof(bool));
	ExecStoreVirtualTuple(slot);
	if (w->nslots == SM_QUEUE_CHUNK_SLOTS)
		write_slots(w);
}

/* Order of pending messages: by queue, shard and position */
static int
compare_pending(const void *a, const void *b)
{
	const PendingMessage *x = a;
	const PendingMessage *y = b;

	if (x->queue != y->queue)
		return x->queue - y->queue;
	if (x->shard != y->shard)
		return x->shard - y->shard;
	return (x->row_number > y->row_number) - (x->row_number < y->row_number);
}

/*
 * Write messages as chunks: sorted by queue, shard and position, each run
 * of one queue and shard cut where a chunk would pass SM_QUEUE_CHUNK_BYTES
 */
static void
write_pending(QueueWriter *w, PendingMessage *msgs, int n)
{
	int			start = 0;
	Size		bytes = 0;

	qsort(msgs, n, sizeof(PendingMessage), compare_pending);
	for (int i = 0; i < n; i++)
	{
		Size		size = VARSIZE(DatumGetPointer(msgs[i].message)) + 8;

		if (i > start &&
			(msgs[i].queue != msgs[start].queue ||
			 msgs[i].shard != msgs[start].shard ||
			 bytes + size > SM_QUEUE_CHUNK_BYTES))
		{
			add_chunk(w, msgs + start, i - start);
			start = i;
			bytes = 0;
		}
		bytes += size;
	}
	if (n > start)
		add_chunk(w, msgs + start, n - start);
	write_slots(w);
}

/* Is the client's 700/2 among the statement's messages so far? */
static bool
is_answer_client(QueueWriter *w, const char *client_id)
{
	return hash_get_num_entries(w->answer_clients) > 0 &&
		hash_search(w->answer_clients, client_id, HASH_FIND, NULL) != NULL;
}

/*
 * Write the gathered messages: each joins its queue, a resync answer's
 * the high queue (noting the first position written knowing the client
 * answers, for sm_queue_writer_end()), and is counted in the flow
 */
static void
flush(QueueWriter *w)
{
	int64		flush_first_row;

	if (w->npending == 0)
		return;
	flush_first_row = w->pending[0].row_number;
	for (int i = 0; i < w->npending; i++)
	{
		PendingMessage *m = &w->pending[i];
		bool		answer = is_answer_client(w, m->client_id);

		m->queue = sm_queue_choose(m->fsp ? "fsp" : NULL, m->topic_type,
								   answer);
		if (answer)
		{
			AnswerSince *since;
			bool		found;

			if (w->answer_since == NULL)
			{
				HASHCTL		ctl;

				ctl.keysize = SM_MAX_CLIENT_ID_BYTES + 1;
				ctl.entrysize = sizeof(AnswerSince);
				ctl.hcxt = w->context;
				w->answer_since = hash_create("state_msg answers written", 16,
											  &ctl, HASH_ELEM | HASH_STRINGS |
											  HASH_CONTEXT);
			}
			since = hash_search(w->answer_since, m->client_id, HASH_ENTER,
								&found);
			if (!found)
				since->since_row = flush_first_row;
		}
		sm_queue_flow_add(w->flow, (SmQueue) m->queue, m->topic_type, 1, 0,
						  answer ? 1 : 0);
	}
	write_pending(w, w->pending, w->npending);
	w->npending = 0;
	MemoryContextReset(w->flush_context);
}

/*
 * Enqueue one validated message (its inbox columns, client id normalized,
 * in inbox order), at its position in the statement
 */
void
sm_queue_writer_put(QueueWriter *w, int64 row_number, Datum *values,
					bool *isnull, const char *client_id)
{
	MemoryContext old = MemoryContextSwitchTo(w->flush_context);
	PendingMessage *m = &w->pending[w->npending++];
	char	   *source = TextDatumGetCString(values[INBOX_SOURCE]);

	m->fsp = strcmp(source, "fsp") == 0;
	pfree(source);
	m->shard = sm_queue_shard(client_id);
	m->topic_type = DatumGetInt32(values[INBOX_TOPIC_TYPE]);
	m->row_number = row_number;
	m->client_id = pstrdup(client_id);
	/* flat: a TOAST pointer among the values is fetched */
	m->message = HeapTupleGetDatum(heap_form_tuple(w->message_desc, values,
												   isnull));
	MemoryContextSwitchTo(old);
	if (w->first_row < 0)
		w->first_row = row_number;
	w->total++;
	if (w->npending == SM_QUEUE_FLUSH_MESSAGES)
		flush(w);
}

/*
 * The client id of a queued message (a flat state_msg.queued_message), in
 * the caller's memory context
 */
static char *
message_client_id(Datum message)
{
	bool		isnull;
	Datum		d = GetAttributeByNum(DatumGetHeapTupleHeader(message),
									  INBOX_CLIENT_ID + 1, &isnull);

	return TextDatumGetCString(d);
}

/*
 * Move to the high queue the messages of resync answers that an earlier
 * write placed in the low queue (the statement's messages before the one
 * that told their client answers), and count those and the ones in high
 * and fsp as resync answers.  Their chunks are rewritten without them (or
 * deleted), and they are written again as chunks of the high queue.
 */
static void
move_earlier_answers(QueueWriter *w)
{
	HASH_SEQ_STATUS seq;
	AnswerSince *since;
	Datum	   *shards;
	int			nshards = 0;
	int64		before = 0;
	Oid			types[] = {INT2ARRAYOID, INT8OID, INT8OID};
	Datum		args[3];
	SPITupleTable *chunks;
	uint64		nchunks;
	PendingMessage *moved;
	int			nmoved = 0;
	int			maxmoved = 64;

	if (w->answer_since == NULL)
		return;
	shards = palloc(hash_get_num_entries(w->answer_since) * sizeof(Datum));
	hash_seq_init(&seq, w->answer_since);
	while ((since = hash_seq_search(&seq)) != NULL)
		if (since->since_row > w->first_row)
		{
			shards[nshards++] = Int16GetDatum(sm_queue_shard(since->client_id));
			before = Max(before, since->since_row);
		}
	if (nshards == 0)
		return;					/* every answer was written knowing it */

	CommandCounterIncrement();	/* see the chunks written */
	args[0] = PointerGetDatum(construct_array(shards, nshards, INT2OID, 2,
											  true, TYPALIGN_SHORT));
	args[1] = Int64GetDatum(w->upload_id);
	args[2] = Int64GetDatum(before);
	if (SPI_execute_plan(sm_queue_partition_plan(earlier_chunks_plan,
												 w->generation,
												 earlier_chunks_sql, 3, types),
						 args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed for a resync answer's chunks");
	chunks = SPI_tuptable;
	nchunks = SPI_processed;
	moved = palloc(maxmoved * sizeof(PendingMessage));
	for (uint64 c = 0; c < nchunks; c++)
	{
		bool		isnull;
		Datum		ctid = SPI_getbinval(chunks->vals[c], chunks->tupdesc, 1,
										 &isnull);
		char	   *queue = TextDatumGetCString(SPI_getbinval(chunks->vals[c],
															  chunks->tupdesc,
															  2, &isnull));
		SmQueue		q = strcmp(queue, "high") == 0 ? SM_QUEUE_HIGH :
			strcmp(queue, "fsp") == 0 ? SM_QUEUE_FSP : SM_QUEUE_LOW;
		QueueChunk	chunk;
		int			nkept = 0;

		sm_queue_chunk_read(&chunk,
							SPI_getbinval(chunks->vals[c], chunks->tupdesc, 3,
										  &isnull),
							SPI_getbinval(chunks->vals[c], chunks->tupdesc, 4,
										  &isnull));
		for (int i = 0; i < chunk.n; i++)
		{
			char	   *client = message_client_id(chunk.messages[i]);
			AnswerSince *s = hash_search(w->answer_since, client, HASH_FIND,
										 NULL);
			int32		topic_type;

			if (s == NULL || chunk.row_numbers[i] >= s->since_row)
			{
				/* not an answer's, or counted as one when written */
				chunk.row_numbers[nkept] = chunk.row_numbers[i];
				chunk.messages[nkept++] = chunk.messages[i];
				continue;
			}
			topic_type = DatumGetInt32(GetAttributeByNum(DatumGetHeapTupleHeader(chunk.messages[i]),
														 INBOX_TOPIC_TYPE + 1,
														 &isnull));
			if (q != SM_QUEUE_LOW)
			{
				/* high (its topic type) or fsp: it stays; it is an answer's */
				sm_queue_flow_add(w->flow, q, topic_type, 0, 0, 1);
				chunk.row_numbers[nkept] = chunk.row_numbers[i];
				chunk.messages[nkept++] = chunk.messages[i];
				continue;
			}
			/* arrived in high, not low */
			sm_queue_flow_add(w->flow, SM_QUEUE_LOW, topic_type, -1, 0, 0);
			sm_queue_flow_add(w->flow, SM_QUEUE_HIGH, topic_type, 1, 0, 1);
			if (nmoved == maxmoved)
			{
				maxmoved *= 2;
				moved = repalloc(moved, maxmoved * sizeof(PendingMessage));
			}
			moved[nmoved].queue = SM_QUEUE_HIGH;
			moved[nmoved].shard = sm_queue_shard(client);
			moved[nmoved].row_number = chunk.row_numbers[i];
			moved[nmoved].message = chunk.messages[i];
			nmoved++;
		}
		if (nkept < chunk.n)
		{
			sm_queue_chunk_rewrite(w->generation, ctid, &chunk, 0, nkept);
			sm_queue_flow_waiting(w->flow, SM_QUEUE_LOW, w->generation,
								  w->now, nkept - chunk.n, nkept == 0 ? -1 : 0);
		}
	}
	if (nmoved > 0)
	{
		CommandCounterIncrement();
		w->cid = GetCurrentCommandId(true);
		write_pending(w, moved, nmoved);
	}
	SPI_freetuptable(chunks);
}

/*
 * Finish the statement's enqueue: write the last messages, move the resync
 * answers' messages written before their client was known to answer,
 * write the counts and the flow, count the messages and wake the worker.
 * Returns the messages enqueued.  Inside the batch's SPI connection.
 */
int64
sm_queue_writer_end(QueueWriter *w)
{
	int64		total = w->total;

	flush(w);
	move_earlier_answers(w);
	for (int i = 0; i < SM_QUEUE_CHUNK_SLOTS && w->slots[i] != NULL; i++)
		ExecDropSingleTupleTableSlot(w->slots[i]);
	ExecCloseIndices(w->rri);
	FreeExecutorState(w->estate);
	table_close(w->rel, NoLock);
	CommandCounterIncrement();	/* later statements see the chunks */
	if (total > 0)
	{
		sm_queue_flow_write(w->flow, w->now);
		sm_queue_maybe_compact(false);
		sm_stats_add(SM_STAT_ENQUEUED, total);
		sm_worker_wake();
	}
	return total;
}
