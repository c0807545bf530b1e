/*-------------------------------------------------------------------------
 *
 * inbox.c
 *	  The SQL entry points: the inbox's statement trigger and ingest().
 *
 * Both hand their messages to a batch (batch.c).  The trigger fires once
 * per INSERT or COPY into state_msg.inbox and reads the statement's rows
 * from its transition table, so bulk loads keep their multi-row paths.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "state_msg.h"

/* The type of each column of state_msg.inbox, in table order */
static const Oid inbox_column_types[INBOX_NATTS] = {
	TEXTOID, INT8OID, INT4OID, TEXTOID, INT4OID, INT4OID, INT4OID,
	TIMESTAMPTZOID, TEXTARRAYOID, TEXTOID
};

/*
 * The batch reads the rows by column position and type: refuse a table
 * whose columns are not the inbox's (another table given the trigger, or
 * the inbox after an ALTER TABLE).
 */
static void
check_inbox_columns(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	bool		ok = (desc->natts == INBOX_NATTS);

	for (int i = 0; ok && i < INBOX_NATTS; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		ok = !att->attisdropped && att->atttypid == inbox_column_types[i];
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("table \"%s\" does not have the columns of state_msg.inbox",
						RelationGetRelationName(rel)),
				 errdetail("state_msg.inbox_process() reads client_id text, serial_number bigint, topic_type integer, topic_id text, topic_id_type integer, state_id integer, criticality integer, message_time timestamptz, user_params text[] and source text, in this order.")));
}

PG_FUNCTION_INFO_V1(state_msg_inbox_process);

/* AFTER INSERT ... FOR EACH STATEMENT trigger on state_msg.inbox */
Datum
state_msg_inbox_process(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	TupleTableSlot *slot;
	MessageBatch *batch;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ||
		trigdata->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("state_msg.inbox_process() must be an AFTER INSERT statement trigger with a NEW TABLE")));

	check_inbox_columns(trigdata->tg_relation);
	desc = RelationGetDescr(trigdata->tg_relation);

	slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	batch = batch_begin();
	tuplestore_rescan(trigdata->tg_newtable);
	while (tuplestore_gettupleslot(trigdata->tg_newtable, true, false, slot))
	{
		slot_getallattrs(slot);
		batch_add(batch, slot->tts_values, slot->tts_isnull);
	}
	batch_finish(batch, NULL);
	ExecDropSingleTupleTableSlot(slot);

	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(state_msg_ingest);

/*
 * ingest(client_id, serial_number, topic_type, topic_id, state_id,
 *		  message_time, topic_id_type, criticality, user_params, source)
 * processes one message and returns its verdict.
 */
Datum
state_msg_ingest(PG_FUNCTION_ARGS)
{
	/* inbox column of each argument, in argument order */
	static const InboxColumn arg_column[] = {
		INBOX_CLIENT_ID, INBOX_SERIAL_NUMBER, INBOX_TOPIC_TYPE,
		INBOX_TOPIC_ID, INBOX_STATE_ID, INBOX_MESSAGE_TIME,
		INBOX_TOPIC_ID_TYPE, INBOX_CRITICALITY, INBOX_USER_PARAMS,
		INBOX_SOURCE
	};
	Datum		values[INBOX_NATTS];
	bool		isnull[INBOX_NATTS];
	MessageBatch *batch;
	Verdict		verdict;

	StaticAssertStmt(lengthof(arg_column) == INBOX_NATTS,
					 "ingest() takes one argument per inbox column");
	for (int i = 0; i < INBOX_NATTS; i++)
	{
		values[arg_column[i]] = PG_GETARG_DATUM(i);
		isnull[arg_column[i]] = PG_ARGISNULL(i);
	}

	batch = batch_begin();
	batch_add(batch, values, isnull);
	verdict = batch_finish(batch, NULL);

	return DirectFunctionCall2(enum_in,
							   CStringGetDatum(verdict_names[verdict]),
							   ObjectIdGetDatum(get_fn_expr_rettype(fcinfo->flinfo)));
}
