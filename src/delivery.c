/*-------------------------------------------------------------------------
 *
 * delivery.c
 *	  Resync requests handed to the clients.
 *
 * A request is a row in state_msg.resync_requests; a management point
 * hands it to its client at the client's next policy poll, as ConfigMgr
 * turns it into policy.  state_msg.claim_resync_requests() gives a
 * management point the clients to ask, marking their requests delivered;
 * state_msg.pending_resync() answers one client's policy check; and every
 * path that issues requests sends NOTIFY state_msg_resync at commit, so
 * that management points can listen instead of poll.
 *
 * Both functions run with the extension owner's rights (the writer, the
 * management point's role, has no rights on the tables), so they call the
 * schema guard first, like every owner-rights entry point.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "state_msg.h"

/* The channel of the NOTIFY sent when requests are issued */
#define RESYNC_CHANNEL "state_msg_resync"

static SPIPlanPtr claim_plan;
static SPIPlanPtr pending_plan;

/*
 * Claim the clients with undelivered open requests, oldest request first.
 * A client is claimed by locking its clients row with SKIP LOCKED, so two
 * management points never hand out the same client's requests (the one
 * that comes second skips it, or, if the first committed meanwhile, finds
 * its requests delivered when the UPDATE re-checks them), and one never
 * waits for a batch that holds the client.  Every open undelivered request
 * of a claimed client is marked, since one resync answers them all; the row
 * returned is its newest.  $1 max_requests, $2 delivered_at.
 */
static const char *claim_sql =
"WITH candidates AS ("
" SELECT r.client_id, pg_catalog.min(r.issued_at) AS first_issued"
" FROM state_msg.resync_requests r"
" WHERE r.completed_at IS NULL AND r.delivered_at IS NULL"
" GROUP BY r.client_id),"
" claimed AS ("
" SELECT c.client_id, k.first_issued"
" FROM candidates k JOIN state_msg.clients c"
"  ON c.client_id OPERATOR(pg_catalog.=) k.client_id"
" ORDER BY k.first_issued, c.client_id"
" LIMIT $1 FOR UPDATE OF c SKIP LOCKED),"
" marked AS ("
" UPDATE state_msg.resync_requests r SET delivered_at = $2"
" FROM claimed"
" WHERE r.client_id OPERATOR(pg_catalog.=) claimed.client_id"
"  AND r.completed_at IS NULL AND r.delivered_at IS NULL"
" RETURNING r.request_id, r.client_id, r.reason, r.issued_at,"
"  claimed.first_issued)"
" SELECT request_id, client_id, reason, issued_at FROM ("
" SELECT DISTINCT ON (client_id) request_id, client_id, reason, issued_at,"
"  first_issued"
" FROM marked"
" ORDER BY client_id, issued_at DESC, request_id DESC) AS newest"
" ORDER BY first_issued, client_id";

/* $1 client_id (normalized) */
static const char *pending_sql =
"SELECT state_msg.has_open_request(c) FROM state_msg.clients c"
" WHERE c.client_id OPERATOR(pg_catalog.=) $1";

/*
 * Tell listeners that n requests were issued, at commit (NOTIFY is
 * transactional, so a rolled-back issue is never announced).  Called by
 * every path that issues requests: the check cycle, request_resync() and a
 * batch's serial resets.
 */
void
sm_notify_resync_issued(int64 n)
{
	char		payload[32];

	if (n <= 0)
		return;
	snprintf(payload, sizeof(payload), INT64_FORMAT, n);
	Async_Notify(RESYNC_CHANNEL, payload);
}

/*
 * state_msg.claim_resync_requests(max_requests DEFAULT 1000): one row per
 * client whose requests this call hands out, at most max_requests, oldest
 * undelivered request first.  Requests completed before delivery are never
 * handed out; a reissue is a new, undelivered request.
 */
PG_FUNCTION_INFO_V1(state_msg_claim_resync_requests);
Datum
state_msg_claim_resync_requests(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			argtypes[] = {INT8OID, TIMESTAMPTZOID};
	Datum		args[2];
	int32		max_requests;

	sm_guard_schema();
	if (PG_ARGISNULL(0) || PG_GETARG_INT32(0) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_requests must be zero or more")));
	max_requests = PG_GETARG_INT32(0);
	InitMaterializedSRF(fcinfo, 0);

	args[0] = Int64GetDatum(max_requests);
	args[1] = TimestampTzGetDatum(sm_engine_now());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	sm_run_kept(&claim_plan, claim_sql, 2, argtypes, args, NULL,
				SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum		values[4];
		bool		nulls[4];

		for (int col = 0; col < 4; col++)
			values[col] = SPI_getbinval(SPI_tuptable->vals[i],
										SPI_tuptable->tupdesc, col + 1,
										&nulls[col]);
		/* the tuplestore copies the values out of SPI's memory */
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values,
							 nulls);
	}
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	return (Datum) 0;
}

/*
 * state_msg.pending_resync(client_id): has the client an outstanding
 * request (the rule of state_msg.has_open_request())?  False for a client
 * the site does not know.  Delivered or not does not matter: a client that
 * asks is owed its resync until a completion is processed.
 */
PG_FUNCTION_INFO_V1(state_msg_pending_resync);
Datum
state_msg_pending_resync(PG_FUNCTION_ARGS)
{
	Oid			argtypes[] = {TEXTOID};
	Datum		args[1];
	bool		pending = false;

	sm_guard_schema();
	args[0] = CStringGetTextDatum(sm_normalize_client_id(
														 text_to_cstring(PG_GETARG_TEXT_PP(0))));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	sm_run_kept(&pending_plan, pending_sql, 1, argtypes, args, NULL,
				SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0],
									  SPI_tuptable->tupdesc, 1, &isnull);

		pending = !isnull && DatumGetBool(d);
	}
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	PG_RETURN_BOOL(pending);
}
