/*-------------------------------------------------------------------------
 *
 * resync.c
 *	  The resync check cycle and requests by hand.
 *
 * state_msg.run_resync_check() and state_msg.request_resync() run with the
 * extension owner's rights (SECURITY DEFINER, search_path pg_catalog,
 * pg_temp) and reach the engine's tables by name, so each calls the schema
 * guard before anything else.  They are C functions for that reason: a
 * guard called from SQL by a schema-qualified name could itself be
 * redirected.  Their set-based statements are prepared once per backend
 * and kept.
 *
 * Every time they record comes from the engine clock (for the check cycle,
 * from its as_of), and no issue is dated at or before the completion it
 * follows: sm_resync_event_time(), exposed to SQL as
 * state_msg.resync_event_time().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "state_msg.h"

/*
 * How far from the engine clock the check cycle may act: a century, as for
 * the duration settings, so that every later sum of times stays in range.
 */
#define AS_OF_MAX_DISTANCE	(INT64CONST(36525) * USECS_PER_DAY)

/* Statements kept across calls for the life of the backend */
static SPIPlanPtr lock_due_plan;
static SPIPlanPtr issue_due_plan;
static SPIPlanPtr lock_client_plan;
static SPIPlanPtr issue_one_plan;
static SPIPlanPtr waiting_plan;
static SPIPlanPtr record_held_plan;

/*
 * Lock the clients due for a request, in client_id order as ingestion
 * locks them, so the cycle and concurrent batches cannot deadlock; with
 * state_msg.max_resync_requests_per_cycle, only that many, the longest
 * overdue first.  The candidates come from the open requests and the
 * missing ranges (resync_due_clients()), not from every client.  Under
 * state_msg.backlog_aware_resync, the clients whose answer waits in the
 * queue are held back (resync_held_back_clients()), before the pacing
 * counts, and counted per queue.
 * $1 reissue_before, $2 missing_before, $3 the most to lock (NULL: all),
 * $4 backlog-aware.  Returns the locked clients and the held back per
 * queue (high, low, fsp).
 */
static const char *lock_due_sql =
"WITH held AS MATERIALIZED ("
" SELECT h.client_id, h.queue"
" FROM state_msg.resync_held_back_clients($1, $2) h WHERE $4),"
" locked AS ("
" SELECT c.client_id FROM state_msg.clients c"
" WHERE c.client_id OPERATOR(pg_catalog.=) ANY (ARRAY("
"  SELECT d.client_id FROM state_msg.resync_due_clients($1, $2) d"
"  WHERE NOT EXISTS (SELECT FROM held"
"   WHERE held.client_id OPERATOR(pg_catalog.=) d.client_id)"
"  ORDER BY d.overdue DESC, d.client_id LIMIT $3))"
" ORDER BY c.client_id FOR UPDATE)"
" SELECT (SELECT pg_catalog.array_agg(client_id) FROM locked),"
"  pg_catalog.count(*) FILTER (WHERE queue OPERATOR(pg_catalog.=) 'high'),"
"  pg_catalog.count(*) FILTER (WHERE queue OPERATOR(pg_catalog.=) 'low'),"
"  pg_catalog.count(*) FILTER (WHERE queue OPERATOR(pg_catalog.=) 'fsp')"
" FROM held";

/*
 * Record what the cycle held back, per queue, for state_msg.backlog.
 * $1 as_of, $2 the counts (high, low, fsp).
 */
static const char *record_held_sql =
"INSERT INTO state_msg.resync_held_back AS h (queue, clients, as_of)"
" SELECT q.queue, $2[q.n], $1"
" FROM (VALUES ('high'::state_msg.queue_name, 1), ('low', 2), ('fsp', 3))"
"  AS q(queue, n)"
" ON CONFLICT (queue) DO UPDATE"
" SET clients = excluded.clients, as_of = excluded.as_of";

/*
 * Issue the requests of the locked clients that are still due, checked
 * again with this statement's fresh snapshot (a batch that held a client's
 * lock may have completed its resync or filled its gaps meanwhile), in
 * client_id order, so that request ids follow it whatever the plan.
 * $1 reissue_before, $2 missing_before, $3 as_of, $4 the locked clients.
 */
static const char *issue_due_sql =
"WITH due AS ("
" SELECT c.client_id,"
"  state_msg.resync_event_time($3, c.last_resync_client_completed_time)"
"   AS issued_at,"
"  state_msg.has_open_request(c) AS outstanding"
" FROM state_msg.clients c"
" WHERE c.client_id OPERATOR(pg_catalog.=) ANY ($4)"
"  AND state_msg.resync_due(c, $1, $2)),"
" requests AS ("
" INSERT INTO state_msg.resync_requests (client_id, reason, issued_at)"
" SELECT due.client_id,"
"  CASE WHEN due.outstanding THEN 'reissue' ELSE 'missing' END"
"   ::state_msg.resync_reason,"
"  due.issued_at"
" FROM due ORDER BY due.client_id"
" RETURNING reason),"
" marked AS ("
" UPDATE state_msg.clients c"
" SET last_resync_issued_time = due.issued_at,"
"  resync_requests_issued = c.resync_requests_issued OPERATOR(pg_catalog.+) 1"
" FROM due"
" WHERE c.client_id OPERATOR(pg_catalog.=) due.client_id)"
" SELECT pg_catalog.count(*) FILTER (WHERE reason OPERATOR(pg_catalog.=) 'missing'),"
"  pg_catalog.count(*) FILTER (WHERE reason OPERATOR(pg_catalog.=) 'reissue')"
" FROM requests";

/*
 * Count the clients the cycle leaves waiting, for its log line: those with
 * an outstanding request or a missing range, read after the issue (so the
 * clients just issued a request are among them, and the caller subtracts
 * them).  What is left are the clients whose missing ranges are not yet
 * min_missing_message_age old, those whose outstanding request is not yet
 * min_resync_period old, those the pacing left for a later cycle, and
 * those held back, without restating resync_due()'s rule.
 */
static const char *waiting_sql =
"SELECT pg_catalog.count(*) FROM ("
" SELECT c.client_id FROM state_msg.clients c"
" WHERE state_msg.has_open_request(c)"
" UNION"
" SELECT m.client_id FROM state_msg.missing_ranges m) AS waiting";

/* Lock one client and read its last completion; $1 client_id */
static const char *lock_client_sql =
"SELECT c.last_resync_client_completed_time FROM state_msg.clients c"
" WHERE c.client_id OPERATOR(pg_catalog.=) $1 FOR UPDATE";

/* Issue one request; $1 client_id, $2 issued_at, $3 reason (as text) */
static const char *issue_one_sql =
"WITH marked AS ("
" UPDATE state_msg.clients c"
" SET last_resync_issued_time = $2,"
"  resync_requests_issued = c.resync_requests_issued OPERATOR(pg_catalog.+) 1"
" WHERE c.client_id OPERATOR(pg_catalog.=) $1"
" RETURNING c.client_id)"
" INSERT INTO state_msg.resync_requests (client_id, reason, issued_at)"
" SELECT marked.client_id, $3::pg_catalog.text::state_msg.resync_reason, $2"
" FROM marked"
" RETURNING request_id";

/* A time as text, in the session's DateStyle and time zone */
static char *
time_text(TimestampTz t)
{
	return DatumGetCString(DirectFunctionCall1(timestamptz_out,
											   TimestampTzGetDatum(t)));
}

/*
 * Refuse an as_of the check cycle must not act at: not a finite time; more
 * than a century from the engine clock (later sums of times would overflow);
 * or, for a caller who is not a superuser, later than the engine clock
 * (acting ahead of time issues requests early and dates them ahead).  The
 * caller is the role outside any SECURITY DEFINER function, since this one
 * runs as the extension's owner.
 */
static void
check_as_of(bool isnull, TimestampTz as_of)
{
	TimestampTz now;

	if (isnull || TIMESTAMP_NOT_FINITE(as_of))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("as_of must be a finite time, not %s",
						isnull ? "NULL" : time_text(as_of))));

	now = sm_engine_now();
	if (as_of > now + AS_OF_MAX_DISTANCE || as_of < now - AS_OF_MAX_DISTANCE)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("as_of must be within 100 years of the engine clock"),
				 errdetail("as_of is %s; the allowed range is %s to %s.",
						   time_text(as_of),
						   time_text(now - AS_OF_MAX_DISTANCE),
						   time_text(now + AS_OF_MAX_DISTANCE))));

	if (as_of > now && !superuser_arg(GetOuterUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only a superuser may run the resync check as of a time later than the engine clock"),
				 errdetail("as_of is %s; the engine clock reads %s.",
						   time_text(as_of), time_text(now)),
				 errhint("Omit as_of to act at the engine clock's time.")));
}

/*
 * state_msg.run_resync_check(as_of DEFAULT state_msg.engine_now()): the
 * check cycle, as if run at as_of.  A client with a missing range detected
 * at least min_missing_message_age before as_of and no outstanding request
 * gets one (reason missing); an outstanding request issued at least
 * min_resync_period before as_of is issued again (reason reissue).
 *
 * Under backlog_aware_resync, the clients whose answer waits in the queue
 * are held back first.  Then the candidates are locked in client_id order
 * (at most max_resync_requests_per_cycle of them, the longest overdue
 * first); then the conditions are checked again with a fresh snapshot, and
 * the requests issued.  Clients that became due in between wait for the
 * next cycle.  What was held back, per queue, goes to resync_held_back.
 *
 * Each run logs one line, as ConfigMgr's StateSys.log does: the requests
 * issued and reissued, the clients skipped, that is, those with an
 * outstanding request or a missing range that got no request this run
 * (their request or range is not old enough yet, or the pacing left them
 * for later), counted by one more statement just after the issue, and the
 * clients held back.
 */
PG_FUNCTION_INFO_V1(state_msg_run_resync_check);
Datum
state_msg_run_resync_check(PG_FUNCTION_ARGS)
{
	TimestampTz as_of = PG_ARGISNULL(0) ? 0 : PG_GETARG_TIMESTAMPTZ(0);
	Oid			lock_types[] = {TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID, BOOLOID};
	Oid			argtypes[] = {TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
	TEXTARRAYOID};
	Oid			record_types[] = {TIMESTAMPTZOID, INT8ARRAYOID};
	Datum		args[4];
	char		lock_nulls[4] = {' ', ' ', ' ', ' '};
	bool		isnull;
	int64		issued = 0;
	int64		reissued = 0;
	int64		skipped;
	Datum		held[SM_QUEUE_COUNT];
	int64		held_back = 0;
	TupleDesc	desc;
	Datum		result[2];
	bool		result_null[2] = {false, false};

	sm_guard_schema();
	check_as_of(PG_ARGISNULL(0), as_of);
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	desc = BlessTupleDesc(desc);

	args[0] = TimestampTzGetDatum(as_of - sm_duration_usecs(sm_min_resync_period));
	args[1] = TimestampTzGetDatum(as_of - sm_duration_usecs(sm_min_missing_message_age));
	args[2] = Int64GetDatum(sm_max_resync_requests_per_cycle);
	if (sm_max_resync_requests_per_cycle < 0)
		lock_nulls[2] = 'n';
	args[3] = BoolGetDatum(sm_backlog_aware_resync);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	sm_run_kept(&lock_due_plan, lock_due_sql, 4, lock_types, args, lock_nulls,
			 SPI_OK_SELECT);
	for (int q = 0; q < SM_QUEUE_COUNT; q++)
	{
		held[q] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
								q + 2, &isnull);
		held_back += DatumGetInt64(held[q]);
	}
	args[2] = TimestampTzGetDatum(as_of);
	args[3] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
							&isnull);
	if (!isnull)
	{
		sm_run_kept(&issue_due_plan, issue_due_sql, 4, argtypes, args, NULL,
				 SPI_OK_SELECT);
		issued = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1,
											 &isnull));
		reissued = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 2,
											   &isnull));
	}

	args[0] = TimestampTzGetDatum(as_of);
	args[1] = PointerGetDatum(construct_array(held, SM_QUEUE_COUNT, INT8OID,
											  sizeof(int64), FLOAT8PASSBYVAL,
											  TYPALIGN_DOUBLE));
	sm_run_kept(&record_held_plan, record_held_sql, 2, record_types, args,
			 NULL, SPI_OK_INSERT);

	sm_run_kept(&waiting_plan, waiting_sql, 0, NULL, NULL, NULL, SPI_OK_SELECT);
	skipped = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	skipped = Max(skipped - issued - reissued - held_back, 0);
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");

	ereport(LOG,
			(errmsg("state_msg: resync check as of %s: %lld issued, %lld reissued, %lld skipped, %lld held back",
					time_text(as_of), (long long) issued,
					(long long) reissued, (long long) skipped,
					(long long) held_back)));

	sm_notify_resync_issued(issued + reissued);
	sm_stats_add(SM_STAT_RESYNCS_ISSUED, issued);
	sm_stats_add(SM_STAT_RESYNCS_REISSUED, reissued);
	sm_stats_add(SM_STAT_RESYNCS_HELD_BACK, held_back);
	result[0] = Int64GetDatum(issued);
	result[1] = Int64GetDatum(reissued);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, result,
													  result_null)));
}

/* The label of a value of an enum type */
static char *
enum_label(Oid value)
{
	HeapTuple	tuple = SearchSysCache1(ENUMOID, ObjectIdGetDatum(value));
	char	   *label;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for enum value %u", value);
	label = pstrdup(NameStr(((Form_pg_enum) GETSTRUCT(tuple))->enumlabel));
	ReleaseSysCache(tuple);
	return label;
}

/*
 * state_msg.request_resync(client_id, reason DEFAULT 'manual'): issue one
 * request by hand, or for a reason found elsewhere; returns its id.  It is
 * dated by the engine clock once the client's row is locked (not at the
 * transaction's start), and never at or before the client's last
 * completion.
 */
PG_FUNCTION_INFO_V1(state_msg_request_resync);
Datum
state_msg_request_resync(PG_FUNCTION_ARGS)
{
	char	   *id;
	Oid			lock_types[] = {TEXTOID};
	Oid			issue_types[] = {TEXTOID, TIMESTAMPTZOID, TEXTOID};
	Datum		args[3];
	bool		isnull;
	Datum		completed;
	TimestampTz issued_at;
	int64		request_id;

	sm_guard_schema();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("client_id and reason must not be null")));
	id = sm_normalize_client_id(text_to_cstring(PG_GETARG_TEXT_PP(0)));

	args[0] = CStringGetTextDatum(id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	sm_run_kept(&lock_client_plan, lock_client_sql, 1, lock_types, args, NULL,
			 SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("client \"%s\" is not known", id),
				 errhint("A client becomes known with its first message.")));
	completed = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
							  &isnull);
	issued_at = sm_resync_event_time(sm_engine_now(), !isnull,
									 isnull ? 0 : DatumGetTimestampTz(completed));

	args[1] = TimestampTzGetDatum(issued_at);
	args[2] = CStringGetTextDatum(enum_label(PG_GETARG_OID(1)));
	sm_run_kept(&issue_one_plan, issue_one_sql, 3, issue_types, args, NULL,
			 SPI_OK_INSERT_RETURNING);
	if (SPI_processed != 1)
		elog(ERROR, "request for locked client \"%s\" not issued", id);
	request_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1,
											 &isnull));
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");

	sm_notify_resync_issued(1);
	sm_stats_add(SM_STAT_RESYNCS_ISSUED, 1);
	PG_RETURN_INT64(request_id);
}

/*
 * state_msg.resync_event_time(now, after): sm_resync_event_time() for SQL,
 * where a NULL after means there is no event to follow.
 */
PG_FUNCTION_INFO_V1(state_msg_resync_event_time);
Datum
state_msg_resync_event_time(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(sm_resync_event_time(PG_GETARG_TIMESTAMPTZ(0),
											   !PG_ARGISNULL(1),
											   PG_ARGISNULL(1) ? 0 :
											   PG_GETARG_TIMESTAMPTZ(1)));
}
