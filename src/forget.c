/*-------------------------------------------------------------------------
 *
 * forget.c
 *	  Forgetting and renaming clients: the statement trigger that deletes
 *	  the rest of a deleted client's rows, and renormalize_client_ids().
 *
 * Both reach the engine's tables by name, one with the owner's rights, so
 * both call the schema guard first, as every other entry point does.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"

#include "state_msg.h"

/*
 * Delete the rows of the clients in the transition table "forgotten"; the
 * first statement is replaced by forget_counted_sql with live summaries on
 */
static const char *const forget_sql[] = {
	"DELETE FROM state_msg.client_state s USING forgotten f"
	" WHERE s.client_id OPERATOR(pg_catalog.=) f.client_id",
	"DELETE FROM state_msg.missing_ranges m USING forgotten f"
	" WHERE m.client_id OPERATOR(pg_catalog.=) f.client_id",
	"DELETE FROM state_msg.resync_requests r USING forgotten f"
	" WHERE r.client_id OPERATOR(pg_catalog.=) f.client_id",
};

/*
 * The states' delete with its count deltas (summaries.c): -1 per state
 * deleted, one row per (topic type, topic id, state id)
 */
static const char *const forget_counted_sql =
"WITH gone AS (DELETE FROM state_msg.client_state s USING forgotten f"
"  WHERE s.client_id OPERATOR(pg_catalog.=) f.client_id"
"  RETURNING s.topic_type, s.topic_id, s.state_id)"
" INSERT INTO state_msg.state_counts (topic_type, topic_id, state_id, clients)"
" SELECT topic_type, topic_id, state_id,"
" OPERATOR(pg_catalog.-) pg_catalog.count(*) FROM gone GROUP BY 1, 2, 3";

/* Rename the ids client_id_conflicts lists as renamable, in every table */
static const char *const lock_for_rename_sql =
"LOCK TABLE state_msg.clients, state_msg.client_state,"
" state_msg.missing_ranges, state_msg.resync_requests"
" IN SHARE ROW EXCLUSIVE MODE";

static const char *const rename_sql =
"WITH renames AS ("
"  SELECT client_id AS old_id, normalized_client_id AS new_id"
"  FROM state_msg.client_id_conflicts"
"  WHERE reason OPERATOR(pg_catalog.=) 'renamable'),"
" c AS (UPDATE state_msg.clients t SET client_id = r.new_id"
"  FROM renames r WHERE t.client_id OPERATOR(pg_catalog.=) r.old_id),"
" s AS (UPDATE state_msg.client_state t SET client_id = r.new_id"
"  FROM renames r WHERE t.client_id OPERATOR(pg_catalog.=) r.old_id),"
" m AS (UPDATE state_msg.missing_ranges t SET client_id = r.new_id"
"  FROM renames r WHERE t.client_id OPERATOR(pg_catalog.=) r.old_id),"
" q AS (UPDATE state_msg.resync_requests t SET client_id = r.new_id"
"  FROM renames r WHERE t.client_id OPERATOR(pg_catalog.=) r.old_id)"
" SELECT pg_catalog.count(*) FROM renames";

PG_FUNCTION_INFO_V1(state_msg_forget_client_rows);

/*
 * AFTER DELETE ... FOR EACH STATEMENT trigger on state_msg.clients, with
 * the deleted rows as transition table "forgotten": delete the rest of
 * those clients' rows, so that a client met again starts afresh.
 */
Datum
state_msg_forget_client_rows(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) ||
		trigdata->tg_oldtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("state_msg.forget_client_rows() must be an AFTER DELETE statement trigger with an OLD TABLE named forgotten")));

	sm_guard_schema();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_register_trigger_data(trigdata) != SPI_OK_TD_REGISTER)
		elog(ERROR, "SPI_register_trigger_data failed");
	if (sm_live_summaries)
	{
		if (SPI_execute(forget_counted_sql, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "SPI_execute failed for \"%s\"", forget_counted_sql);
		sm_summaries_counted(SPI_processed);
	}
	else
	{
		sm_summaries_mark_stale();
		if (SPI_execute(forget_sql[0], false, 0) != SPI_OK_DELETE)
			elog(ERROR, "SPI_execute failed for \"%s\"", forget_sql[0]);
	}
	for (size_t i = 1; i < lengthof(forget_sql); i++)
		if (SPI_execute(forget_sql[i], false, 0) != SPI_OK_DELETE)
			elog(ERROR, "SPI_execute failed for \"%s\"", forget_sql[i]);
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(state_msg_renormalize_client_ids);

/*
 * renormalize_client_ids() renames every stored client id that
 * client_id_conflicts lists as renamable to its normalized spelling, in
 * the four tables that hold client ids, holding writers off meanwhile;
 * returns how many ids it renamed.
 */
Datum
state_msg_renormalize_client_ids(PG_FUNCTION_ARGS)
{
	bool		isnull;
	int64		renamed;

	sm_guard_schema();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(lock_for_rename_sql, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "SPI_execute failed for \"%s\"", lock_for_rename_sql);
	if (SPI_execute(rename_sql, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "SPI_execute failed for \"%s\"", rename_sql);
	renamed = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	PG_RETURN_INT64(renamed);
}
