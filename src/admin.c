/*-------------------------------------------------------------------------
 *
 * admin.c
 *	  Operations: retention, resubmitting quarantined rows, forgetting
 *	  clients.
 *
 * state_msg.purge(), state_msg.retry_rejected() and
 * state_msg.forget_clients() run with the extension owner's rights
 * (SECURITY DEFINER, search_path pg_catalog, pg_temp) for the role
 * state_msg_operator, and reach the engine's tables by name, so each calls
 * the schema guard before anything else, as resync.c's entry points do.
 * Their statements are set-based, prepared once per backend and kept.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "state_msg.h"

/* Statements kept across calls for the life of the backend */
static SPIPlanPtr purge_plan;
static SPIPlanPtr read_rejected_plan;
static SPIPlanPtr drop_rejected_plan;
static SPIPlanPtr rereject_plan;
static SPIPlanPtr lock_clients_plan;
static SPIPlanPtr forget_plan;

/*
 * Delete completed requests whose completion is older than $1 (outstanding
 * ones have no completed_at and are never deleted), and rejected rows and
 * rejected reports rejected before $2; count each.
 */
static const char *purge_sql =
"WITH requests AS ("
" DELETE FROM state_msg.resync_requests r"
" WHERE r.completed_at OPERATOR(pg_catalog.<) $1"
" RETURNING 1),"
" rejected AS ("
" DELETE FROM state_msg.rejected_messages j"
" WHERE j.rejected_at OPERATOR(pg_catalog.<) $2"
" RETURNING 1),"
" reports AS ("
" DELETE FROM state_msg.rejected_reports p"
" WHERE p.rejected_at OPERATOR(pg_catalog.<) $2"
" RETURNING 1)"
" SELECT (SELECT pg_catalog.count(*) FROM requests),"
"  (SELECT pg_catalog.count(*) FROM rejected),"
"  (SELECT pg_catalog.count(*) FROM reports)";

/*
 * The quarantined rows asked for, locked, in rejected_id order; the columns
 * after the first are those of the inbox, in InboxColumn order.  $1 ids.
 */
static const char *read_rejected_sql =
"SELECT j.rejected_id, j.client_id, j.serial_number, j.topic_type,"
" j.topic_id, j.topic_id_type, j.state_id, j.criticality, j.message_time,"
" j.user_params, j.source, j.user_name, j.user_sid, j.state_details_type,"
" j.state_details, j.priority, j.netbios_name, j.client_version"
" FROM state_msg.rejected_messages j"
" WHERE j.rejected_id OPERATOR(pg_catalog.=) ANY ($1)"
" ORDER BY j.rejected_id FOR UPDATE";

/* Delete the rows that passed; $1 ids */
static const char *drop_rejected_sql =
"DELETE FROM state_msg.rejected_messages j"
" WHERE j.rejected_id OPERATOR(pg_catalog.=) ANY ($1)";

/*
 * Record the fresh verdict on the rows that still fail; $1 ids, $2 reasons,
 * $3 SQLSTATEs, $4 the time (engine clock)
 */
static const char *rereject_sql =
"UPDATE state_msg.rejected_messages j"
" SET reason = r.reason, sqlstate = r.sqlstate, rejected_at = $4"
" FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]),"
" pg_catalog.unnest($2::pg_catalog.text[]),"
" pg_catalog.unnest($3::pg_catalog.text[])) AS r(id, reason, sqlstate)"
" WHERE j.rejected_id OPERATOR(pg_catalog.=) r.id";

/*
 * Lock the clients to forget in client_id order, as batches lock them, so
 * that forgetting and ingestion cannot deadlock; $1 normalized ids
 */
static const char *lock_clients_sql =
"SELECT pg_catalog.array_agg(client_id) FROM ("
" SELECT c.client_id FROM state_msg.clients c"
" WHERE c.client_id OPERATOR(pg_catalog.=) ANY ($1)"
" ORDER BY c.client_id FOR UPDATE) AS locked";

/*
 * Delete the locked clients; the statement trigger forget_client_rows
 * deletes their other rows.  $1 the locked ids.
 */
static const char *forget_sql =
"DELETE FROM state_msg.clients c"
" WHERE c.client_id OPERATOR(pg_catalog.=) ANY ($1)";

/* A time as text, in the session's DateStyle and time zone */
static char *
time_text(TimestampTz t)
{
	return DatumGetCString(DirectFunctionCall1(timestamptz_out,
											   TimestampTzGetDatum(t)));
}

/* The bigint of column col of the first result row (0 if NULL) */
static int64
first_int64(int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
								  col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

/* Build the one-row result of a function with n bigint OUT parameters */
Datum
sm_result_row(FunctionCallInfo fcinfo, Datum *values, int n)
{
	TupleDesc	desc;
	bool	   *nulls = palloc0(n * sizeof(bool));

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (desc->natts != n)
		elog(ERROR, "return type must have %d columns", n);
	desc = BlessTupleDesc(desc);
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

/*
 * state_msg.purge(OUT completed_requests, OUT rejected_messages,
 * OUT rejected_reports): apply the retention settings as of the engine
 * clock.  A completed request is deleted once its completed_at is more than
 * keep_completed_requests old, a quarantined row or report once its
 * rejected_at is more than keep_rejected_messages old; outstanding requests
 * are kept whatever their age.  Logs one line.
 */
PG_FUNCTION_INFO_V1(state_msg_purge);
Datum
state_msg_purge(PG_FUNCTION_ARGS)
{
	Oid			argtypes[] = {TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		args[2];
	Datum		result[3];
	TimestampTz now;
	int64		requests;
	int64		rejected;
	int64		reports;

	sm_guard_schema();
	now = sm_engine_now();
	args[0] = TimestampTzGetDatum(now - sm_duration_usecs(sm_keep_completed_requests));
	args[1] = TimestampTzGetDatum(now - sm_duration_usecs(sm_keep_rejected_messages));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	sm_run_kept(&purge_plan, purge_sql, 2, argtypes, args, NULL, SPI_OK_SELECT);
	requests = first_int64(1);
	rejected = first_int64(2);
	reports = first_int64(3);
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");

	ereport(LOG,
			(errmsg("state_msg: purge as of %s: %lld completed resync requests, %lld rejected messages and %lld rejected reports deleted",
					time_text(now), (long long) requests,
					(long long) rejected, (long long) reports)));

	result[0] = Int64GetDatum(requests);
	result[1] = Int64GetDatum(rejected);
	result[2] = Int64GetDatum(reports);
	PG_RETURN_DATUM(sm_result_row(fcinfo, result, 3));
}

/*
 * state_msg.retry_rejected(rejected_ids): resubmit quarantined rows (after
 * the operator fixed them, or the engine's rules changed) through the batch
 * path, as one batch, in rejected_id order.  A row that now passes
 * validation is processed and its rejected_messages row deleted; one that
 * still fails stays where it is, with the fresh reason, SQLSTATE and
 * rejected_at (it is not stored again, and on_bad_message does not apply).
 * Ids that name no quarantined row are ignored: resubmitted plus rejected
 * is the number of rows found.  Returns the counts: resubmitted, then one
 * per verdict, as sm_batch_finish() gives them.
 */
PG_FUNCTION_INFO_V1(state_msg_retry_rejected);
Datum
state_msg_retry_rejected(PG_FUNCTION_ARGS)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext row_context;
	Oid			read_types[] = {INT8ARRAYOID};
	Oid			rereject_types[] = {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	TIMESTAMPTZOID};
	MessageBatch *batch;
	SPITupleTable *rows;
	uint64		nrows;
	Datum	   *passed;
	Datum	   *failed;
	Datum	   *failed_reasons;
	Datum	   *failed_states;
	int			npassed = 0;
	int			nfailed = 0;
	int64		counts[VERDICT_COUNT];
	Datum		result[1 + VERDICT_RESULT_COUNT];
	Datum		args[4];

	sm_guard_schema();
	batch = sm_batch_begin();		/* connects to SPI */

	args[0] = PG_GETARG_DATUM(0);
	sm_run_kept(&read_rejected_plan, read_rejected_sql, 1, read_types, args,
			 NULL, SPI_OK_SELECT);
	rows = SPI_tuptable;
	nrows = SPI_processed;
	if (nrows > MaxAllocSize / sizeof(Datum))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many rejected rows to retry at once: %llu",
						(unsigned long long) nrows)));

	passed = palloc(Max(nrows, 1) * sizeof(Datum));
	failed = palloc(Max(nrows, 1) * sizeof(Datum));
	failed_reasons = palloc(Max(nrows, 1) * sizeof(Datum));
	failed_states = palloc(Max(nrows, 1) * sizeof(Datum));
	row_context = AllocSetContextCreate(CurrentMemoryContext,
										"state_msg retry row",
										ALLOCSET_DEFAULT_SIZES);
	for (uint64 i = 0; i < nrows; i++)
	{
		MemoryContext outer = MemoryContextSwitchTo(row_context);
		Datum		values[INBOX_NATTS];
		bool		isnull[INBOX_NATTS];
		bool		id_null;
		Datum		id;
		StateMessage msg;
		int			sqlstate;
		char	   *reason;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(row_context);
		id = SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &id_null);
		for (int col = 0; col < INBOX_NATTS; col++)
			values[col] = SPI_getbinval(rows->vals[i], rows->tupdesc, col + 2,
										&isnull[col]);
		if (sm_message_check(values, isnull, (int64) i + 1, &msg, &sqlstate,
						  &reason))
		{
			sm_batch_add_message(batch, &msg);
			passed[npassed++] = id;
		}
		else
		{
			MemoryContextSwitchTo(outer);
			failed[nfailed] = id;
			failed_reasons[nfailed] = CStringGetTextDatum(reason);
			failed_states[nfailed] =
				CStringGetTextDatum(unpack_sql_state(sqlstate));
			nfailed++;
		}
		MemoryContextSwitchTo(outer);
	}
	MemoryContextDelete(row_context);

	if (npassed > 0)
	{
		args[0] = PointerGetDatum(construct_array(passed, npassed, INT8OID,
												  8, FLOAT8PASSBYVAL,
												  TYPALIGN_DOUBLE));
		sm_run_kept(&drop_rejected_plan, drop_rejected_sql, 1, read_types, args,
				 NULL, SPI_OK_DELETE);
	}
	if (nfailed > 0)
	{
		args[0] = PointerGetDatum(construct_array(failed, nfailed, INT8OID,
												  8, FLOAT8PASSBYVAL,
												  TYPALIGN_DOUBLE));
		args[1] = PointerGetDatum(construct_array(failed_reasons, nfailed,
												  TEXTOID, -1, false,
												  TYPALIGN_INT));
		args[2] = PointerGetDatum(construct_array(failed_states, nfailed,
												  TEXTOID, -1, false,
												  TYPALIGN_INT));
		args[3] = TimestampTzGetDatum(sm_engine_now());
		sm_run_kept(&rereject_plan, rereject_sql, 4, rereject_types, args,
				 NULL, SPI_OK_UPDATE);
	}

	sm_batch_finish(batch, counts);	/* processes, and disconnects from SPI */
	MemoryContextSwitchTo(caller);

	counts[VERDICT_REJECTED] = nfailed;
	result[0] = Int64GetDatum(npassed);
	for (int v = 0; v < VERDICT_RESULT_COUNT; v++)
		result[1 + v] = Int64GetDatum(counts[v]);
	PG_RETURN_DATUM(sm_result_row(fcinfo, result, 1 + VERDICT_RESULT_COUNT));
}

/*
 * state_msg.forget_clients(client_ids): forget clients for good (retired
 * machines), as deleting their clients rows does: their states, missing
 * ranges and requests go with them, and a client met again starts afresh.
 * Ids are normalized as messages' are; unknown ids and NULL elements are
 * ignored.  Returns the number of clients forgotten.
 */
PG_FUNCTION_INFO_V1(state_msg_forget_clients);
Datum
state_msg_forget_clients(PG_FUNCTION_ARGS)
{
	ArrayType  *given = PG_GETARG_ARRAYTYPE_P(0);
	Oid			argtypes[] = {TEXTARRAYOID};
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			nids = 0;
	Datum		args[1];
	bool		isnull;
	int64		forgotten = 0;

	sm_guard_schema();
	deconstruct_array(given, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			continue;
		elems[nids++] = CStringGetTextDatum(
											sm_normalize_client_id(TextDatumGetCString(elems[i])));
	}
	if (nids == 0)
		PG_RETURN_INT64(0);
	args[0] = PointerGetDatum(construct_array(elems, nids, TEXTOID, -1, false,
											  TYPALIGN_INT));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	sm_run_kept(&lock_clients_plan, lock_clients_sql, 1, argtypes, args, NULL,
			 SPI_OK_SELECT);
	args[0] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
							&isnull);
	if (!isnull)
	{
		sm_run_kept(&forget_plan, forget_sql, 1, argtypes, args, NULL,
				 SPI_OK_DELETE);
		forgotten = (int64) SPI_processed;
	}
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");

	PG_RETURN_INT64(forgotten);
}
