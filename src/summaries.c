/*-------------------------------------------------------------------------
 *
 * summaries.c
 *	  Live summaries: the count deltas of client_state, their compaction,
 *	  the stale mark and the rebuild.
 *
 * state_msg.state_counts holds, per (topic type, topic id, state id), rows
 * whose sum is the number of clients whose current state of that topic is
 * that state.  Whatever writes client_state inserts, in the same
 * transaction, the net change it made (one row per key it changed, +1 per
 * new current state, -1 per state replaced or deleted), and nothing ever
 * updates a row, so concurrent batches share no row and never wait for
 * each other here; the sum is exact in every snapshot, because the deltas
 * commit (or roll back) with the states they describe.
 *
 * PostgreSQL 15 has no RETURNING OLD, so the states an upsert replaces are
 * read before it, by a statement that probes client_state for the upsert's
 * keys with the upsert's own condition.  That is exact because the batch
 * holds its clients' row locks (FOR UPDATE, or the serializable upsert):
 * nothing else writes those clients' states until it commits, and a
 * REPEATABLE READ or SERIALIZABLE batch whose clients changed after its
 * snapshot fails on that lock instead.
 *
 * Concurrency with the operations that delete deltas or recount:
 *
 * - Compaction (DELETE ... RETURNING summed into one row per key, in one
 *   statement) runs under pg_try_advisory_xact_lock(SM_LOCK_COMPACT): one
 *   at a time, and a second one returns at once instead of waiting.  It
 *   needs READ COMMITTED: it deletes the rows its statement's snapshot
 *   sees (committed deltas, and its own transaction's) and writes their
 *   sum; deltas of transactions still in progress are invisible to it and
 *   stay, to be added on their commit, or vanish on their rollback; nothing
 *   else deletes deltas while it holds the lock, so it never waits for a
 *   row.  Under REPEATABLE READ or SERIALIZABLE its snapshot may be older
 *   than the lock, and it would try to delete rows an earlier compaction
 *   already folded (a serialization failure), so it refuses there, and a
 *   batch in such a transaction leaves compaction to others.
 *
 * - With state_msg.live_summaries off, a batch (or forget) writes no deltas
 *   and marks the counts stale: before its first write of client_state it
 *   takes pg_advisory_xact_lock_shared(SM_LOCK_STALE) (no two batches
 *   conflict on it) and, unless a mark is there, inserts one.  It looks
 *   with the latest snapshot, not the transaction's, so that a REPEATABLE
 *   READ batch sees a rebuild that committed after its snapshot.
 *
 * - rebuild_state_counts() (READ COMMITTED only) takes SM_LOCK_COMPACT and
 *   SM_LOCK_STALE exclusively (waiting for compactions and for batches
 *   running with live_summaries off), then client_state in SHARE mode
 *   (waiting for transactions that wrote states), and replaces the deltas
 *   it sees by a count of client_state, and deletes the stale marks.  A
 *   batch that inserted deltas before it and had not yet written its states
 *   (it read the states they replace, which the rebuild counts) adds them
 *   after, exactly.  Locks are taken in that order, and batches take
 *   SM_LOCK_STALE before they write client_state, so the two never
 *   deadlock (except with one transaction that writes states with
 *   live_summaries on and then again with it off).
 *
 * - TRUNCATE of client_state empties state_counts and the stale marks
 *   (truncate_state_counts()).  Every delta is inserted while its
 *   transaction holds a lock on client_state (the probe's, or the write's:
 *   the deltas of new clients are inserted after their states), so the
 *   TRUNCATE waits for all of them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/snapmgr.h"

#include "state_msg.h"

/* Advisory lock keys: (SM_LOCK_CLASS, key), pg_advisory_xact_lock(int, int) */
#define SM_LOCK_CLASS	0x736d7367	/* "smsg" */
#define SM_LOCK_COMPACT 1			/* compaction (exclusive, tried) */
#define SM_LOCK_STALE	2			/* batches with live_summaries off
									 * (shared) against the rebuild */

/* A backend compacts after inserting this many delta rows since it last did */
#define SM_COMPACT_AFTER_DELTAS 4096

/* Delta rows this backend inserted since its last compaction */
static int64 deltas_since_compaction = 0;

/* Statements kept across calls for the life of the backend */
static SPIPlanPtr count_new_plan;
static SPIPlanPtr count_newer_plan;
static SPIPlanPtr count_replaced_plan;
static SPIPlanPtr find_stale_plan;
static SPIPlanPtr mark_stale_plan;
static SPIPlanPtr compact_plan;

/*
 * The deltas of a chunk's states, from sm_states (store.c), one row per
 * (topic type, topic id, state id) whose count changed.  New clients have
 * no state yet: +1 for each of theirs (run after their insert).
 */
static const char *count_new_sql =
"INSERT INTO state_msg.state_counts (topic_type, topic_id, state_id, clients)"
" SELECT n.topic_type, n.topic_id COLLATE pg_catalog.\"C\", n.state_id,"
" pg_catalog.count(*) FROM sm_states n GROUP BY 1, 2, 3";

/*
 * For the upserts (run before them): per proposed state, the stored one of
 * its key, probed by primary key; where the upsert will write (no stored
 * state, or, for the conditional upsert, its own is_newer_state()
 * condition), +1 for the new state and -1 for the stored one.  A state
 * replaced by the same state id cancels out.
 */
#define COUNT_REPLACED_SQL(condition) \
"INSERT INTO state_msg.state_counts (topic_type, topic_id, state_id, clients)" \
" SELECT n.topic_type, n.topic_id COLLATE pg_catalog.\"C\", d.state_id," \
" pg_catalog.sum(d.delta) FROM sm_states n" \
" LEFT JOIN LATERAL (SELECT c.state_id, c.serial_number, c.serial_epoch," \
"   c.message_time, c.processed_at FROM state_msg.client_state c" \
"   WHERE c.client_id OPERATOR(pg_catalog.=) n.client_id COLLATE pg_catalog.\"C\"" \
"   AND c.topic_type OPERATOR(pg_catalog.=) n.topic_type" \
"   AND c.topic_id OPERATOR(pg_catalog.=) n.topic_id COLLATE pg_catalog.\"C\"" \
"   LIMIT 1) AS s ON true" \
" CROSS JOIN LATERAL (VALUES (n.state_id, 1), (s.state_id, -1)) AS d(state_id, delta)" \
" WHERE d.state_id IS NOT NULL" condition \
" GROUP BY 1, 2, 3 HAVING pg_catalog.sum(d.delta) OPERATOR(pg_catalog.<>) 0"

static const char *count_newer_sql = COUNT_REPLACED_SQL(
" AND (s.state_id IS NULL OR state_msg.is_newer_state(n.serial_number,"
"   n.serial_epoch, n.message_time, n.processed_at, s.serial_number,"
"   s.serial_epoch, s.message_time, s.processed_at))");

static const char *count_replaced_sql = COUNT_REPLACED_SQL("");

static const char *find_stale_sql =
"SELECT FROM state_msg.state_counts_stale LIMIT 1";

static const char *mark_stale_sql =
"INSERT INTO state_msg.state_counts_stale DEFAULT VALUES";

/* Fold every visible delta into one row per key; returns the rows folded */
static const char *compact_sql =
"WITH folded AS (DELETE FROM state_msg.state_counts"
"  RETURNING topic_type, topic_id, state_id, clients),"
" kept AS (INSERT INTO state_msg.state_counts (topic_type, topic_id, state_id, clients)"
"  SELECT topic_type, topic_id, state_id, pg_catalog.sum(clients)::pg_catalog.int8"
"  FROM folded GROUP BY 1, 2, 3"
"  HAVING pg_catalog.sum(clients) OPERATOR(pg_catalog.<>) 0)"
" SELECT pg_catalog.count(*) FROM folded";

static const char *const rebuild_sql[] = {
	"LOCK TABLE state_msg.client_state IN SHARE MODE",
	"DELETE FROM state_msg.state_counts",
	"INSERT INTO state_msg.state_counts (topic_type, topic_id, state_id, clients)"
	" SELECT s.topic_type, s.topic_id, s.state_id, pg_catalog.count(*)"
	" FROM state_msg.client_state s GROUP BY 1, 2, 3",
	"DELETE FROM state_msg.state_counts_stale",
};

static const char *const truncate_sql =
"TRUNCATE state_msg.state_counts, state_msg.state_counts_stale";

/* Take one of the extension's transaction-level advisory locks */
static void
advisory_lock(int32 key, bool shared)
{
	if (shared)
		DirectFunctionCall2(pg_advisory_xact_lock_shared_int4,
							Int32GetDatum(SM_LOCK_CLASS), Int32GetDatum(key));
	else
		DirectFunctionCall2(pg_advisory_xact_lock_int4,
							Int32GetDatum(SM_LOCK_CLASS), Int32GetDatum(key));
}

/* Refuse to run name under a transaction snapshot (see the file comment) */
static void
require_read_committed(const char *name)
{
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("%s must run in a READ COMMITTED transaction", name),
				 errdetail("Its statements must see what committed before it took its locks."),
				 errhint("Call it in a transaction of its own, at the default isolation level.")));
}

/*
 * Insert the deltas of one kind of state write (before the upserts, after
 * the insert of new clients' states; see sm_store_write_states())
 */
void
sm_summaries_count(SummaryKind kind, TupleDesc desc, Tuplestorestate *rows,
				   MemoryContext batch_context)
{
	SPIPlanPtr *plan;
	const char *sql;

	switch (kind)
	{
		case SUMMARY_NEW:
			plan = &count_new_plan;
			sql = count_new_sql;
			break;
		case SUMMARY_NEWER:
			plan = &count_newer_plan;
			sql = count_newer_sql;
			break;
		default:
			plan = &count_replaced_plan;
			sql = count_replaced_sql;
			break;
	}
	sm_store_run_with_rows(plan, sql, "sm_states", desc, rows, SPI_OK_INSERT,
						   batch_context);
	deltas_since_compaction += (int64) SPI_processed;
}

/*
 * Note delta rows inserted elsewhere (forget), towards this backend's next
 * compaction
 */
void
sm_summaries_counted(uint64 rows)
{
	deltas_since_compaction += (int64) rows;
}

/*
 * Mark the counts stale (with live_summaries off), before the caller's
 * first write of client_state: see the file comment.  Inside an SPI
 * connection.
 */
void
sm_summaries_mark_stale(void)
{
	int			rc;

	advisory_lock(SM_LOCK_STALE, true);
	if (find_stale_plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(find_stale_sql, 0, NULL);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\"", find_stale_sql);
		SPI_keepplan(p);
		find_stale_plan = p;
	}
	rc = SPI_execute_snapshot(find_stale_plan, NULL, NULL, GetLatestSnapshot(),
							  InvalidSnapshot, false, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_snapshot failed for \"%s\": %s",
			 find_stale_sql, SPI_result_code_string(rc));
	if (SPI_processed == 0)
		sm_run_kept(&mark_stale_plan, mark_stale_sql, 0, NULL, NULL, NULL,
					SPI_OK_INSERT);
}

/*
 * Fold the deltas under the compaction lock, if no other compaction holds
 * it; *folded gets the rows folded.  Inside an SPI connection, READ
 * COMMITTED.
 */
static bool
compact(int64 *folded)
{
	bool		isnull;

	if (!DatumGetBool(DirectFunctionCall2(pg_try_advisory_xact_lock_int4,
										  Int32GetDatum(SM_LOCK_CLASS),
										  Int32GetDatum(SM_LOCK_COMPACT))))
		return false;
	sm_run_kept(&compact_plan, compact_sql, 0, NULL, NULL, NULL, SPI_OK_SELECT);
	*folded = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	deltas_since_compaction = 0;
	return true;
}

/*
 * After a batch's writes: compact once this backend has inserted enough
 * deltas since it last did, unless the transaction uses a transaction
 * snapshot (others compact then) or another compaction runs.
 */
void
sm_summaries_maybe_compact(void)
{
	int64		folded;

	if (deltas_since_compaction < SM_COMPACT_AFTER_DELTAS ||
		IsolationUsesXactSnapshot())
		return;
	(void) compact(&folded);
}

PG_FUNCTION_INFO_V1(state_msg_compact_state_counts);

/*
 * state_msg.compact_state_counts(): fold the deltas now; the rows folded,
 * or NULL if another compaction holds the lock
 */
Datum
state_msg_compact_state_counts(PG_FUNCTION_ARGS)
{
	int64		folded = 0;
	bool		done;

	sm_guard_schema();
	require_read_committed("state_msg.compact_state_counts()");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	done = compact(&folded);
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	if (!done)
		PG_RETURN_NULL();
	PG_RETURN_INT64(folded);
}

PG_FUNCTION_INFO_V1(state_msg_rebuild_state_counts);

/*
 * state_msg.rebuild_state_counts(): count client_state afresh, as the
 * counts after a period with live_summaries off; returns the keys counted
 */
Datum
state_msg_rebuild_state_counts(PG_FUNCTION_ARGS)
{
	int64		keys = 0;

	sm_guard_schema();
	require_read_committed("state_msg.rebuild_state_counts()");
	advisory_lock(SM_LOCK_COMPACT, false);
	advisory_lock(SM_LOCK_STALE, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	for (size_t i = 0; i < lengthof(rebuild_sql); i++)
	{
		int			rc = SPI_execute(rebuild_sql[i], false, 0);

		if (rc < 0)
			elog(ERROR, "SPI_execute failed for \"%s\": %s",
				 rebuild_sql[i], SPI_result_code_string(rc));
		if (i == 2)
			keys = (int64) SPI_processed;
	}
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	deltas_since_compaction = 0;
	PG_RETURN_INT64(keys);
}

PG_FUNCTION_INFO_V1(state_msg_truncate_state_counts);

/*
 * AFTER TRUNCATE statement trigger on client_state: no state is left, so
 * the exact counts are none
 */
Datum
state_msg_truncate_state_counts(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("state_msg.truncate_state_counts() must be an AFTER TRUNCATE trigger")));
	sm_guard_schema();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(truncate_sql, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "SPI_execute failed for \"%s\"", truncate_sql);
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	return PointerGetDatum(NULL);
}
