/*-------------------------------------------------------------------------
 *
 * queue.c
 *	  The queue's tables (queued processing): which queue and shard a
 *	  message joins, reading and rewriting chunks, the counts and flow
 *	  behind state_msg.backlog, and the rotation that empties drained
 *	  partitions with TRUNCATE.
 *
 * state_msg.queue_chunks (chunks of messages: enqueue.c) is partitioned by
 * generation into queue_0, queue_1 and queue_2 (PgQ's rotating tables).
 * Enqueuing writes the current generation (state_msg.queue_rotation);
 * drainers delete what they process.  After a batch, a drainer moves the
 * current generation on, to a partition that holds no live chunk, once it
 * is older than state_msg.queue_rotation_interval, and empties every other
 * partition that holds no live chunk with TRUNCATE, so the dead chunks of
 * drained messages never wait for vacuum (autovacuum is off on the
 * partitions).  The TRUNCATE takes its ACCESS EXCLUSIVE lock only if it is
 * free at once (ConditionalLockRelationOid()): it never waits and never
 * queues behind readers or writers, and it looks for live chunks under
 * that lock, when every transaction that wrote the partition has ended.
 * Messages that wait long (a throttled fsp queue, a drain slower than the
 * arrivals) would keep their partition from ever being emptied: once a
 * partition's dead chunks outnumber its live ones SM_QUEUE_STRANDED_RATIO
 * times, drainers move its live chunks to the current generation
 * (drain.c), a cost bounded by a share of what was drained there.
 *
 * Counts: state_msg.queue_counts holds, per (queue, minute of enqueuing),
 * delta rows whose sum is the number of messages waiting; every enqueue
 * adds +n and every drain batch -n in the same transaction as the rows it
 * writes or deletes, so the sum is exact in every snapshot.
 * state_msg.queue_flow holds, per (minute, queue, topic type), the
 * messages that arrived, were processed, and were resync answers (the
 * messages of a client whose messages in the statement include a 700/2).
 * Both are insert-only between compactions (one at a time, under an
 * advisory lock tried, never waited for), so writers never wait for one
 * another; compaction folds the rows into one per key and drops flow
 * older than the views read.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "nodes/makefuncs.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "state_msg.h"

/* Advisory lock of queue compaction: (SM_LOCK_CLASS, SM_LOCK_QUEUE_COMPACT) */
#define SM_LOCK_CLASS	0x736d7367	/* "smsg", as summaries.c */
#define SM_LOCK_QUEUE_COMPACT 3

/*
 * A partition whose dead chunks number this many times its live ones has
 * its live chunks moved to the current generation
 */
#define SM_QUEUE_STRANDED_RATIO 3

/* A backend compacts after inserting this many count or flow rows */
#define SM_QUEUE_COMPACT_AFTER 1024

/* Flow older than this many minutes before the current one is dropped */
#define SM_QUEUE_FLOW_KEEP_MINUTES 70

const char *const sm_queue_names[SM_QUEUE_COUNT] = {"high", "low", "fsp"};

/* Count and flow rows this backend inserted since its last compaction */
static int64 rows_since_compaction = 0;

/* Key of the flow's accumulated rows */
typedef struct FlowKey
{
	int32		queue;
	int32		topic_type;
} FlowKey;

typedef struct FlowEntry
{
	FlowKey		key;
	int64		arrived;
	int64		processed;
	int64		answers;
} FlowEntry;

/* Key of the counts' accumulated rows */
typedef struct CountKey
{
	int32		queue;
	int32		generation;
	TimestampTz minute;
} CountKey;

typedef struct CountEntry
{
	CountKey	key;
	int64		messages;
	int64		chunks;
} CountEntry;

/* What one statement or batch adds to queue_flow and queue_counts */
struct QueueFlow
{
	HTAB	   *flow;
	HTAB	   *counts;
};

static SPIPlanPtr start_upload_plan;
static SPIPlanPtr write_flow_plan;
static SPIPlanPtr write_counts_plan;
static SPIPlanPtr compact_counts_plan;
static SPIPlanPtr live_chunks_plan;
static SPIPlanPtr compact_flow_plan;
static SPIPlanPtr rotation_plan;
static SPIPlanPtr advance_plan;
static SPIPlanPtr any_row_plan[SM_QUEUE_GENERATIONS];
static SPIPlanPtr chunk_update_plan[SM_QUEUE_GENERATIONS];
static SPIPlanPtr chunk_delete_plan[SM_QUEUE_GENERATIONS];

/* Rewrite a chunk with the rest of its messages; $1 its ctid */
static const char *chunk_update_sql =
"UPDATE state_msg.queue_%d SET first_row = $2, row_numbers = $3, messages = $4"
" WHERE ctid OPERATOR(pg_catalog.=) $1";

static const char *chunk_delete_sql =
"DELETE FROM state_msg.queue_%d WHERE ctid OPERATOR(pg_catalog.=) $1";

/* Does a partition hold a live chunk? */
static const char *any_row_sql = "SELECT FROM state_msg.queue_%d LIMIT 1";

/*
 * A statement on one partition, queue_<generation> (sql_format's one %d),
 * prepared at its first use in the backend and kept in plans[generation]:
 * the partitions are written and read directly, not through the parent.
 */
SPIPlanPtr
sm_queue_partition_plan(SPIPlanPtr *plans, int generation,
						const char *sql_format, int nargs, Oid *argtypes)
{
	if (plans[generation] == NULL)
	{
		char	   *sql = psprintf(sql_format, generation);
		SPIPlanPtr	p = SPI_prepare(sql, nargs, argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\"", sql);
		SPI_keepplan(p);
		plans[generation] = p;
		pfree(sql);
	}
	return plans[generation];
}

/* The upload's id (one per enqueuing statement) and the generation to write */
static const char *start_upload_sql =
"SELECT pg_catalog.nextval('state_msg.queue_upload_seq'::pg_catalog.regclass),"
" r.generation FROM state_msg.queue_rotation r";

static const char *write_flow_sql =
"INSERT INTO state_msg.queue_flow (minute, queue, topic_type, arrived,"
" processed, resync_answers)"
" SELECT $1, ('{high,low,fsp}'::state_msg.queue_name[])[u.q OPERATOR(pg_catalog.+) 1],"
" u.t, u.a, u.p, u.r"
" FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.int4[]),"
" pg_catalog.unnest($3::pg_catalog.int4[]), pg_catalog.unnest($4::pg_catalog.int8[]),"
" pg_catalog.unnest($5::pg_catalog.int8[]), pg_catalog.unnest($6::pg_catalog.int8[]))"
" AS u(q, t, a, p, r)";

static const char *write_counts_sql =
"INSERT INTO state_msg.queue_counts (queue, enqueued_minute, generation,"
" messages, chunks)"
" SELECT ('{high,low,fsp}'::state_msg.queue_name[])[u.q OPERATOR(pg_catalog.+) 1],"
" u.m, u.g, u.n, u.c"
" FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int4[]),"
" pg_catalog.unnest($2::pg_catalog.timestamptz[]),"
" pg_catalog.unnest($3::pg_catalog.int2[]),"
" pg_catalog.unnest($4::pg_catalog.int8[]),"
" pg_catalog.unnest($5::pg_catalog.int8[])) AS u(q, m, g, n, c)";

/* The live chunks of each partition */
static const char *live_chunks_sql =
"SELECT generation, pg_catalog.sum(chunks)::pg_catalog.int8"
" FROM state_msg.queue_counts GROUP BY generation";

/*
 * Compaction folds only the keys that need it (more than one row, or rows
 * that sum to nothing, or flow too old to keep): a key already folded is
 * left alone, so each compaction deletes and writes only the rows inserted
 * since the last one, not the whole table again (flow keeps 70 minutes of
 * keys; rewriting them all on every drain batch left dead rows faster than
 * autovacuum took them)
 */
static const char *compact_counts_sql =
"WITH keys AS (SELECT queue, enqueued_minute, generation"
"  FROM state_msg.queue_counts"
"  GROUP BY 1, 2, 3 HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 1"
"  OR (pg_catalog.sum(messages) OPERATOR(pg_catalog.=) 0"
"  AND pg_catalog.sum(chunks) OPERATOR(pg_catalog.=) 0)),"
" folded AS (DELETE FROM state_msg.queue_counts c USING keys k"
"  WHERE c.queue OPERATOR(pg_catalog.=) k.queue"
"  AND c.enqueued_minute OPERATOR(pg_catalog.=) k.enqueued_minute"
"  AND c.generation OPERATOR(pg_catalog.=) k.generation"
"  RETURNING c.queue, c.enqueued_minute, c.generation, c.messages, c.chunks),"
" kept AS (INSERT INTO state_msg.queue_counts (queue, enqueued_minute,"
"  generation, messages, chunks)"
"  SELECT queue, enqueued_minute, generation,"
"  pg_catalog.sum(messages)::pg_catalog.int8,"
"  pg_catalog.sum(chunks)::pg_catalog.int8"
"  FROM folded GROUP BY 1, 2, 3"
"  HAVING pg_catalog.sum(messages) OPERATOR(pg_catalog.<>) 0"
"  OR pg_catalog.sum(chunks) OPERATOR(pg_catalog.<>) 0)"
" SELECT pg_catalog.count(*) FROM folded";

static const char *compact_flow_sql =
"WITH keys AS (SELECT minute, queue, topic_type FROM state_msg.queue_flow"
"  GROUP BY 1, 2, 3 HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 1"
"  OR minute OPERATOR(pg_catalog.<) $1),"
" folded AS (DELETE FROM state_msg.queue_flow f USING keys k"
"  WHERE f.minute OPERATOR(pg_catalog.=) k.minute"
"  AND f.queue OPERATOR(pg_catalog.=) k.queue"
"  AND f.topic_type OPERATOR(pg_catalog.=) k.topic_type"
"  RETURNING f.minute, f.queue, f.topic_type, f.arrived, f.processed,"
"  f.resync_answers),"
" kept AS (INSERT INTO state_msg.queue_flow (minute, queue, topic_type,"
"  arrived, processed, resync_answers)"
"  SELECT minute, queue, topic_type, pg_catalog.sum(arrived)::pg_catalog.int8,"
"  pg_catalog.sum(processed)::pg_catalog.int8,"
"  pg_catalog.sum(resync_answers)::pg_catalog.int8"
"  FROM folded WHERE minute OPERATOR(pg_catalog.>=) $1 GROUP BY 1, 2, 3)"
" SELECT pg_catalog.count(*) FROM folded";

static const char *rotation_sql =
"SELECT generation, since FROM state_msg.queue_rotation";

/* Move the generation on, unless another drainer is doing it (never waits) */
static const char *advance_sql =
"UPDATE state_msg.queue_rotation r SET generation = $1, since = $2"
" FROM (SELECT l.ctid FROM state_msg.queue_rotation l"
"  WHERE l.generation OPERATOR(pg_catalog.=) $3 FOR UPDATE SKIP LOCKED) l"
" WHERE r.ctid OPERATOR(pg_catalog.=) l.ctid";

/*
 * The queue a message joins: relayed (source fsp) messages the fsp queue,
 * whatever they are; then a resync answer's messages (its client's
 * messages in a statement holding its 700/2, which travel whole) and the
 * topic types of state_msg.high_priority_topic_types the high queue; the
 * rest the low queue.  The one home of that rule.
 */
SmQueue
sm_queue_choose(const char *source, int32 topic_type, bool resync_answer)
{
	if (source != NULL && strcmp(source, "fsp") == 0)
		return SM_QUEUE_FSP;
	if (resync_answer || sm_is_high_priority_topic_type(topic_type))
		return SM_QUEUE_HIGH;
	return SM_QUEUE_LOW;
}

/*
 * A client's shard: a hash of its normalized id, modulo SM_QUEUE_SHARDS.
 * Drainers lock shards, so no two ever process one client at once.
 */
int16
sm_queue_shard(const char *client_id)
{
	return (int16) (hash_bytes((const unsigned char *) client_id,
							   (int) strlen(client_id)) % SM_QUEUE_SHARDS);
}

/* The start of the minute (UTC) of a time */
static TimestampTz
minute_of(TimestampTz t)
{
	return t - (((t % USECS_PER_MINUTE) + USECS_PER_MINUTE) % USECS_PER_MINUTE);
}

/* Start accumulating a statement's or batch's counts and flow */
QueueFlow *
sm_queue_flow_begin(MemoryContext context)
{
	QueueFlow  *flow = MemoryContextAllocZero(context, sizeof(QueueFlow));
	HASHCTL		ctl;

	ctl.keysize = sizeof(FlowKey);
	ctl.entrysize = sizeof(FlowEntry);
	ctl.hcxt = context;
	flow->flow = hash_create("state_msg queue flow", 16, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ctl.keysize = sizeof(CountKey);
	ctl.entrysize = sizeof(CountEntry);
	flow->counts = hash_create("state_msg queue counts", 16, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	return flow;
}

/* Add messages that arrived, were processed, were resync answers */
void
sm_queue_flow_add(QueueFlow *flow, SmQueue queue, int32 topic_type,
				  int64 arrived, int64 processed, int64 answers)
{
	FlowKey		key;
	FlowEntry  *e;
	bool		found;

	memset(&key, 0, sizeof(key));
	key.queue = queue;
	key.topic_type = topic_type;
	e = hash_search(flow->flow, &key, HASH_ENTER, &found);
	if (!found)
		e->arrived = e->processed = e->answers = 0;
	e->arrived += arrived;
	e->processed += processed;
	e->answers += answers;
}

/*
 * Add to the messages, and the chunks holding them, waiting in a queue and
 * a partition that were enqueued at a time
 */
void
sm_queue_flow_waiting(QueueFlow *flow, SmQueue queue, int generation,
					  TimestampTz enqueued_at, int64 messages, int64 chunks)
{
	CountKey	key;
	CountEntry *e;
	bool		found;

	memset(&key, 0, sizeof(key));
	key.queue = queue;
	key.generation = generation;
	key.minute = minute_of(enqueued_at);
	e = hash_search(flow->counts, &key, HASH_ENTER, &found);
	if (!found)
		e->messages = e->chunks = 0;
	e->messages += messages;
	e->chunks += chunks;
}

/* An array of n values of an 8-byte, pass-by-value type */
static Datum
wide_array(Datum *elems, int n, Oid elemtype)
{
	return PointerGetDatum(construct_array(elems, n, elemtype, 8,
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * Insert what was accumulated: one queue_flow row per (queue, topic type)
 * in the minute of now, one queue_counts row per (queue, minute of
 * enqueuing).  Inside an SPI connection.
 */
void
sm_queue_flow_write(QueueFlow *flow, TimestampTz now)
{
	long		nflow = hash_get_num_entries(flow->flow);
	long		ncounts = hash_get_num_entries(flow->counts);
	HASH_SEQ_STATUS seq;
	int			i;

	if (nflow > 0)
	{
		Datum	   *q = palloc(nflow * sizeof(Datum));
		Datum	   *t = palloc(nflow * sizeof(Datum));
		Datum	   *a = palloc(nflow * sizeof(Datum));
		Datum	   *p = palloc(nflow * sizeof(Datum));
		Datum	   *r = palloc(nflow * sizeof(Datum));
		Oid			types[] = {TIMESTAMPTZOID, INT4ARRAYOID, INT4ARRAYOID,
		INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID};
		Datum		args[6];
		FlowEntry  *e;

		i = 0;
		hash_seq_init(&seq, flow->flow);
		while ((e = hash_seq_search(&seq)) != NULL)
		{
			q[i] = Int32GetDatum(e->key.queue);
			t[i] = Int32GetDatum(e->key.topic_type);
			a[i] = Int64GetDatum(e->arrived);
			p[i] = Int64GetDatum(e->processed);
			r[i] = Int64GetDatum(e->answers);
			i++;
		}
		args[0] = TimestampTzGetDatum(minute_of(now));
		args[1] = PointerGetDatum(construct_array(q, i, INT4OID, 4, true,
												  TYPALIGN_INT));
		args[2] = PointerGetDatum(construct_array(t, i, INT4OID, 4, true,
												  TYPALIGN_INT));
		args[3] = wide_array(a, i, INT8OID);
		args[4] = wide_array(p, i, INT8OID);
		args[5] = wide_array(r, i, INT8OID);
		sm_run_kept(&write_flow_plan, write_flow_sql, 6, types, args, NULL,
					SPI_OK_INSERT);
		rows_since_compaction += i;
	}
	if (ncounts > 0)
	{
		Datum	   *q = palloc(ncounts * sizeof(Datum));
		Datum	   *m = palloc(ncounts * sizeof(Datum));
		Datum	   *g = palloc(ncounts * sizeof(Datum));
		Datum	   *n = palloc(ncounts * sizeof(Datum));
		Datum	   *c = palloc(ncounts * sizeof(Datum));
		Oid			types[] = {INT4ARRAYOID, TIMESTAMPTZARRAYOID, INT2ARRAYOID,
		INT8ARRAYOID, INT8ARRAYOID};
		Datum		args[5];
		CountEntry *e;

		i = 0;
		hash_seq_init(&seq, flow->counts);
		while ((e = hash_seq_search(&seq)) != NULL)
		{
			if (e->messages == 0 && e->chunks == 0)
				continue;
			q[i] = Int32GetDatum(e->key.queue);
			m[i] = TimestampTzGetDatum(e->key.minute);
			g[i] = Int16GetDatum((int16) e->key.generation);
			n[i] = Int64GetDatum(e->messages);
			c[i] = Int64GetDatum(e->chunks);
			i++;
		}
		if (i > 0)
		{
			args[0] = PointerGetDatum(construct_array(q, i, INT4OID, 4, true,
													  TYPALIGN_INT));
			args[1] = wide_array(m, i, TIMESTAMPTZOID);
			args[2] = PointerGetDatum(construct_array(g, i, INT2OID, 2, true,
													  TYPALIGN_SHORT));
			args[3] = wide_array(n, i, INT8OID);
			args[4] = wide_array(c, i, INT8OID);
			sm_run_kept(&write_counts_plan, write_counts_sql, 5, types, args,
						NULL, SPI_OK_INSERT);
			rows_since_compaction += i;
		}
	}
}

/*
 * Fold the count and flow rows into one per key under the compaction lock,
 * if no other compaction holds it.  Inside an SPI connection, READ
 * COMMITTED (it deletes the rows its statements see: see summaries.c).
 */
static bool
compact(void)
{
	Oid			types[] = {TIMESTAMPTZOID};
	Datum		args[1];

	if (IsolationUsesXactSnapshot())
		return false;
	if (!DatumGetBool(DirectFunctionCall2(pg_try_advisory_xact_lock_int4,
										  Int32GetDatum(SM_LOCK_CLASS),
										  Int32GetDatum(SM_LOCK_QUEUE_COMPACT))))
		return false;
	sm_run_kept(&compact_counts_plan, compact_counts_sql, 0, NULL, NULL, NULL,
				SPI_OK_SELECT);
	args[0] = TimestampTzGetDatum(minute_of(sm_engine_now()) -
								  SM_QUEUE_FLOW_KEEP_MINUTES * USECS_PER_MINUTE);
	sm_run_kept(&compact_flow_plan, compact_flow_sql, 1, types, args, NULL,
				SPI_OK_SELECT);
	rows_since_compaction = 0;
	return true;
}

/*
 * Compact once this backend has inserted enough count and flow rows since
 * it last did (or always, if force).  Inside an SPI connection.
 */
void
sm_queue_maybe_compact(bool force)
{
	if (force || rows_since_compaction >= SM_QUEUE_COMPACT_AFTER)
		(void) compact();
}

/* The oid of partition queue_<generation> */
static Oid partition_oid(int generation);

/*
 * Start an upload (an enqueuing statement): draw its id, and read the
 * generation to write and its partition's oid.  Inside an SPI connection.
 */
void
sm_queue_start_upload(int64 *upload_id, int16 *generation, Oid *relid)
{
	bool		isnull;

	sm_run_kept(&start_upload_plan, start_upload_sql, 0, NULL, NULL, NULL,
				SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "state_msg.queue_rotation must hold one row");
	*upload_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1, &isnull));
	*generation = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 2,
											  &isnull));
	SPI_freetuptable(SPI_tuptable);
	if (*generation < 0 || *generation >= SM_QUEUE_GENERATIONS)
		elog(ERROR, "state_msg.queue_rotation holds generation %d",
			 *generation);
	*relid = partition_oid(*generation);
}

/*
 * A chunk's messages and their positions (its row_numbers and messages
 * columns), in the caller's memory context
 */
void
sm_queue_chunk_read(QueueChunk *chunk, Datum row_numbers, Datum messages)
{
	ArrayType  *rows = DatumGetArrayTypeP(row_numbers);
	ArrayType  *msgs = DatumGetArrayTypeP(messages);
	Datum	   *row_datums;
	int			nrows;
	int16		typlen;
	bool		typbyval;
	char		typalign;

	deconstruct_array(rows, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &row_datums, NULL, &nrows);
	chunk->message_type = ARR_ELEMTYPE(msgs);
	get_typlenbyvalalign(chunk->message_type, &typlen, &typbyval, &typalign);
	deconstruct_array(msgs, chunk->message_type, typlen, typbyval, typalign,
					  &chunk->messages, NULL, &chunk->n);
	if (nrows != chunk->n || chunk->n == 0)
		elog(ERROR, "state_msg.queue_chunks holds a chunk of %d messages and %d positions",
			 chunk->n, nrows);
	chunk->row_numbers = palloc(nrows * sizeof(int64));
	for (int i = 0; i < nrows; i++)
		chunk->row_numbers[i] = DatumGetInt64(row_datums[i]);
}

/*
 * Rewrite the chunk at ctid in partition queue_<generation> to hold only
 * chunk's messages first .. first + n - 1, or delete it if n is 0.  Inside
 * an SPI connection.
 */
void
sm_queue_chunk_rewrite(int generation, Datum ctid, QueueChunk *chunk,
					   int first, int n)
{
	Oid			types[] = {TIDOID, INT8OID, INT8ARRAYOID, InvalidOid};
	Datum		args[4];
	Datum	   *rows;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			r;

	args[0] = ctid;
	if (n == 0)
		r = SPI_execute_plan(sm_queue_partition_plan(chunk_delete_plan,
													 generation,
													 chunk_delete_sql,
													 1, types),
							 args, NULL, false, 0);
	else
	{
		types[3] = get_array_type(chunk->message_type);
		rows = palloc(n * sizeof(Datum));
		for (int i = 0; i < n; i++)
			rows[i] = Int64GetDatum(chunk->row_numbers[first + i]);
		get_typlenbyvalalign(chunk->message_type, &typlen, &typbyval,
							 &typalign);
		args[1] = Int64GetDatum(chunk->row_numbers[first]);
		args[2] = PointerGetDatum(construct_array(rows, n, INT8OID, 8,
												  FLOAT8PASSBYVAL,
												  TYPALIGN_DOUBLE));
		args[3] = PointerGetDatum(construct_array(chunk->messages + first, n,
												  chunk->message_type,
												  typlen, typbyval, typalign));
		r = SPI_execute_plan(sm_queue_partition_plan(chunk_update_plan,
													 generation,
													 chunk_update_sql,
													 4, types),
							 args, NULL, false, 0);
	}
	if (r < 0 || SPI_processed != 1)
		elog(ERROR, "state_msg: a queue chunk was not rewritten");
}

/*
 * The inbox columns of a queued message (a flat state_msg.queued_message
 * of tuple descriptor desc)
 */
void
sm_queue_message_deform(TupleDesc desc, Datum message, Datum *values,
						bool *isnull)
{
	HeapTupleHeader header = DatumGetHeapTupleHeader(message);
	HeapTupleData tuple;

	tuple.t_len = HeapTupleHeaderGetDatumLength(header);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = header;
	heap_deform_tuple(&tuple, desc, values, isnull);
}

/* The oid of partition queue_<generation> */
static Oid
partition_oid(int generation)
{
	char		name[NAMEDATALEN];
	Oid			nsp = get_namespace_oid("state_msg", false);
	Oid			rel;

	snprintf(name, sizeof(name), "queue_%d", generation);
	rel = get_relname_relid(name, nsp);
	if (!OidIsValid(rel))
		elog(ERROR, "partition state_msg.%s is missing", name);
	return rel;
}

/* Does partition queue_<generation> hold a live row (seen now)? */
static bool
partition_has_rows(int generation)
{
	if (SPI_execute_plan(sm_queue_partition_plan(any_row_plan, generation,
												 any_row_sql,
												 0, NULL),
						 NULL, NULL, false, 1) !=
		SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed for a queue partition");
	return SPI_processed > 0;
}

/* What truncate_if_empty() found */
typedef enum
{
	PARTITION_EMPTY,			/* no live chunk (truncated if it had pages) */
	PARTITION_HAS_CHUNKS,
	PARTITION_BUSY				/* its lock was not free */
} PartitionState;

/*
 * Empty partition queue_<generation> with TRUNCATE if its lock is free at
 * once and it holds no live chunk, and it has pages to give back
 */
static PartitionState
truncate_if_empty(int generation)
{
	Oid			relid = partition_oid(generation);
	Relation	rel;
	BlockNumber pages;
	char		sql[64];

	if (!ConditionalLockRelationOid(relid, AccessExclusiveLock))
		return PARTITION_BUSY;
	if (partition_has_rows(generation))
	{
		UnlockRelationOid(relid, AccessExclusiveLock);
		return PARTITION_HAS_CHUNKS;
	}
	rel = table_open(relid, NoLock);
	pages = RelationGetNumberOfBlocks(rel);
	table_close(rel, NoLock);
	if (pages == 0)
	{
		/* nothing to give back: leave the lock to others */
		UnlockRelationOid(relid, AccessExclusiveLock);
		return PARTITION_EMPTY;
	}
	snprintf(sql, sizeof(sql), "TRUNCATE state_msg.queue_%d", generation);
	if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "SPI_execute failed for \"%s\"", sql);
	elog(DEBUG1, "state_msg: truncated drained queue partition queue_%d",
		 generation);
	return PARTITION_EMPTY;
}

/*
 * The live chunks of each partition, by queue_counts (exact in every
 * snapshot, and cheap: it holds a few rows per minute of enqueuing)
 */
static void
count_live_chunks(int64 *live)
{
	for (int g = 0; g < SM_QUEUE_GENERATIONS; g++)
		live[g] = 0;
	sm_run_kept(&live_chunks_plan, live_chunks_sql, 0, NULL, NULL, NULL,
				SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int			g = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[i],
													SPI_tuptable->tupdesc, 1,
													&isnull));
		int64		n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
													SPI_tuptable->tupdesc, 2,
													&isnull));

		if (g >= 0 && g < SM_QUEUE_GENERATIONS)
			live[g] = n;
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Is partition queue_<generation>, which holds live chunks, mostly dead
 * chunks?  Its live chunks then keep the space of many more drained ones
 * from being given back: moving them to the current generation lets
 * TRUNCATE give it back.  Live chunks by queue_counts, dead ones by the
 * statistics collector (n_dead_tup: its n_live_tup is no count of what a
 * partition holds, when drainers' deletes are reported before the
 * enqueuers' inserts).
 */
static bool
partition_stranded(int generation, int64 live)
{
	PgStat_StatTabEntry *stats;

	if (live <= 0)
		return true;			/* counts off, yet chunks there: move them */
	stats = pgstat_fetch_stat_tabentry(partition_oid(generation));
	return stats != NULL &&
		stats->n_dead_tuples >= SM_QUEUE_STRANDED_RATIO * live;
}

/*
 * After a drain batch: move the current generation on, to a partition that
 * holds no live chunk, when it is older than
 * state_msg.queue_rotation_interval, and empty the other partitions that
 * hold no live chunk; set stranded[g] for the partitions whose live chunks
 * should move to the current generation.  Returns the current generation.
 * Inside an SPI connection; never waits for a lock.
 */
int
sm_queue_rotate(bool *stranded)
{
	bool		isnull;
	int			current;
	TimestampTz since;
	TimestampTz now = sm_engine_now();
	int64		live[SM_QUEUE_GENERATIONS];

	sm_run_kept(&rotation_plan, rotation_sql, 0, NULL, NULL, NULL,
				SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "state_msg.queue_rotation must hold one row");
	current = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	since = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 2,
											  &isnull));
	if (current < 0 || current >= SM_QUEUE_GENERATIONS)
		elog(ERROR, "state_msg.queue_rotation holds generation %d", current);
	count_live_chunks(live);

	/* (a clock moved back leaves since ahead: due too) */
	if (now < since ||
		now - since >= sm_duration_usecs(sm_queue_rotation_interval))
	{
		for (int k = 1; k < SM_QUEUE_GENERATIONS; k++)
		{
			int			next = (current + k) % SM_QUEUE_GENERATIONS;
			Oid			types[] = {INT2OID, TIMESTAMPTZOID, INT2OID};
			Datum		args[3];

			if (live[next] > 0 || truncate_if_empty(next) != PARTITION_EMPTY)
				continue;

			/*
			 * Another drainer may move it at the same time: the one that
			 * locks the row moves it; the other skips it, and changes
			 * nothing
			 */
			args[0] = Int16GetDatum(next);
			args[1] = TimestampTzGetDatum(now);
			args[2] = Int16GetDatum(current);
			sm_run_kept(&advance_plan, advance_sql, 3, types, args, NULL,
						SPI_OK_UPDATE);
			if (SPI_processed == 1)
				current = next;
			break;
		}
	}
	for (int g = 0; g < SM_QUEUE_GENERATIONS; g++)
	{
		stranded[g] = false;
		if (g == current)
			continue;
		if (live[g] > 0)
			stranded[g] = partition_stranded(g, live[g]);
		else if (truncate_if_empty(g) == PARTITION_HAS_CHUNKS)
			stranded[g] = partition_stranded(g, 0);
	}
	return current;
}

/*
 * Move up to limit chunks of one shard from partition queue_<from> to
 * queue_<to> (the current generation), keeping everything but the
 * generation (their order is unchanged), and move their counts with them.
 * The caller holds the shard's lock.  Returns the chunks moved.  Inside an
 * SPI connection.
 */
int64
sm_queue_move_chunks(int from, int to, int shard, int64 limit)
{
	char	   *sql = psprintf("WITH moved AS (DELETE FROM state_msg.queue_%d c"
							   " WHERE c.ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
							   "SELECT m.ctid FROM state_msg.queue_%d m"
							   " WHERE m.queue OPERATOR(pg_catalog.=) ANY ('{high,low,fsp}'::state_msg.queue_name[])"
							   " AND m.shard OPERATOR(pg_catalog.=) $1 LIMIT $2))"
							   " RETURNING c.*),"
							   " written AS (INSERT INTO state_msg.queue_%d SELECT %d, queue,"
							   " shard, upload_id, first_row, enqueued_at, row_numbers, messages"
							   " FROM moved)"
							   " SELECT queue::pg_catalog.text, enqueued_at,"
							   " pg_catalog.cardinality(messages) FROM moved",
							   from, from, to, to);
	Oid			types[] = {INT2OID, INT8OID};
	Datum		args[2];
	QueueFlow  *flow;
	uint64		moved;

	args[0] = Int16GetDatum(shard);
	args[1] = Int64GetDatum(limit);
	if (SPI_execute_with_args(sql, 2, types, args, NULL, false, 0) !=
		SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed moving queue chunks");
	pfree(sql);
	moved = SPI_processed;
	if (moved == 0)
		return 0;
	flow = sm_queue_flow_begin(CurrentMemoryContext);
	for (uint64 i = 0; i < moved; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *name = TextDatumGetCString(SPI_getbinval(tuple, desc, 1,
															 &isnull));
		TimestampTz enqueued_at = DatumGetTimestampTz(SPI_getbinval(tuple, desc,
																	2, &isnull));
		int64		n = DatumGetInt32(SPI_getbinval(tuple, desc, 3, &isnull));
		SmQueue		q = strcmp(name, "high") == 0 ? SM_QUEUE_HIGH :
			strcmp(name, "fsp") == 0 ? SM_QUEUE_FSP : SM_QUEUE_LOW;

		sm_queue_flow_waiting(flow, q, from, enqueued_at, -n, -1);
		sm_queue_flow_waiting(flow, q, to, enqueued_at, n, 1);
	}
	SPI_freetuptable(SPI_tuptable);
	sm_queue_flow_write(flow, sm_engine_now());
	return (int64) moved;
}
