/*-------------------------------------------------------------------------
 *
 * inbox.c
 *	  The SQL entry points: the inbox's statement trigger and ingest().
 *
 * Both hand their messages to a batch (batch.c).  The trigger fires once
 * per INSERT or COPY into state_msg.inbox and reads the statement's rows
 * from its transition table, so bulk loads keep their multi-row paths.  It
 * finds the inbox's columns by name, so that ALTER TABLE on the inbox
 * (adding, dropping or re-adding columns) does not stop it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "state_msg.h"

/*
 * The columns the trigger reads, in InboxColumn order.  They are found in
 * the table by name, each with exactly this type; columns the inbox does not
 * know are ignored.  An optional column (those added in release 1.1) may be
 * absent and then reads as NULL.
 */
typedef struct InboxColumnDef
{
	const char *name;
	Oid			type;
	bool		optional;
} InboxColumnDef;

static const InboxColumnDef inbox_columns[] = {
	{"client_id", TEXTOID, false},
	{"serial_number", INT8OID, false},
	{"topic_type", INT4OID, false},
	{"topic_id", TEXTOID, false},
	{"topic_id_type", INT4OID, false},
	{"state_id", INT4OID, false},
	{"criticality", INT4OID, false},
	{"message_time", TIMESTAMPTZOID, false},
	{"user_params", TEXTARRAYOID, false},
	{"source", TEXTOID, false},
	{"user_name", TEXTOID, true},
	{"user_sid", TEXTOID, true},
	{"state_details_type", INT4OID, true},
	{"state_details", TEXTOID, true},
	{"priority", INT4OID, true},
	{"netbios_name", TEXTOID, true},
	{"client_version", TEXTOID, true}
};

StaticAssertDecl(lengthof(inbox_columns) == INBOX_NATTS,
				 "one definition per inbox column");

#define INBOX_COLUMNS_DETAIL \
	"state_msg.inbox_process() reads client_id text, serial_number bigint, topic_type integer, topic_id text, topic_id_type integer, state_id integer, criticality integer, message_time timestamptz, user_params text[] and source text, and if present user_name text, user_sid text, state_details_type integer, state_details text, priority integer, netbios_name text and client_version text, by name; columns it does not know are ignored."

/*
 * Find each inbox column in a table by name, skipping dropped attributes, so
 * that the inbox still works after columns are added, dropped or re-added.
 * Sets attnos[col] to the column's attribute index (0-based), or -1 for an
 * absent optional column; refuses a missing required column or a wrong type,
 * naming the column.
 */
void
sm_inbox_map_columns(TupleDesc desc, const char *relname, int *attnos)
{
	for (int col = 0; col < INBOX_NATTS; col++)
		attnos[col] = -1;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		for (int col = 0; col < INBOX_NATTS; col++)
		{
			if (strcmp(NameStr(att->attname), inbox_columns[col].name) != 0)
				continue;
			if (att->atttypid != inbox_columns[col].type)
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("column \"%s\" of table \"%s\" has type %s, not %s",
								inbox_columns[col].name, relname,
								format_type_be(att->atttypid),
								format_type_be(inbox_columns[col].type)),
						 errdetail(INBOX_COLUMNS_DETAIL)));
			attnos[col] = i;
			break;
		}
	}

	for (int col = 0; col < INBOX_NATTS; col++)
		if (attnos[col] < 0 && !inbox_columns[col].optional)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("table \"%s\" has no column \"%s\"",
							relname, inbox_columns[col].name),
					 errdetail(INBOX_COLUMNS_DETAIL)));
}

PG_FUNCTION_INFO_V1(state_msg_inbox_process);

/* AFTER INSERT ... FOR EACH STATEMENT trigger on state_msg.inbox */
Datum
state_msg_inbox_process(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	int			attnos[INBOX_NATTS];
	int			natts_read = 0;
	Datum		values[INBOX_NATTS];
	bool		isnull[INBOX_NATTS];
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

	rel = trigdata->tg_relation;
	sm_inbox_map_columns(RelationGetDescr(rel), RelationGetRelationName(rel),
					  attnos);
	for (int col = 0; col < INBOX_NATTS; col++)
		natts_read = Max(natts_read, attnos[col] + 1);

	slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
	batch = sm_batch_begin();
	tuplestore_rescan(trigdata->tg_newtable);
	while (tuplestore_gettupleslot(trigdata->tg_newtable, true, false, slot))
	{
		slot_getsomeattrs(slot, natts_read);
		for (int col = 0; col < INBOX_NATTS; col++)
		{
			if (attnos[col] < 0)
			{
				values[col] = (Datum) 0;
				isnull[col] = true;
			}
			else
			{
				values[col] = slot->tts_values[attnos[col]];
				isnull[col] = slot->tts_isnull[attnos[col]];
			}
		}
		sm_batch_add(batch, values, isnull);
	}
	sm_batch_finish(batch, NULL);
	ExecDropSingleTupleTableSlot(slot);

	return PointerGetDatum(NULL);
}

/*
 * Whether a function is state_msg_inbox_process() of this library, whatever
 * SQL name it has: the inbox's access method keeps a row only if such a
 * trigger will process it.  Compares the symbol's address, so a function of
 * another library with the same symbol name does not count.
 */
bool
sm_inbox_is_process_function(Oid funcoid)
{
	HeapTuple	tuple;
	bool		result = false;

	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcoid));
	if (!HeapTupleIsValid(tuple))
		return false;

	if (((Form_pg_proc) GETSTRUCT(tuple))->prolang == ClanguageId)
	{
		Datum		prosrc;
		Datum		probin;
		bool		srcnull;
		bool		binnull;

		prosrc = SysCacheGetAttr(PROCOID, tuple, Anum_pg_proc_prosrc, &srcnull);
		probin = SysCacheGetAttr(PROCOID, tuple, Anum_pg_proc_probin, &binnull);
		if (!srcnull && !binnull)
		{
			char	   *src = TextDatumGetCString(prosrc);

			if (strcmp(src, "state_msg_inbox_process") == 0)
				result = ((PGFunction)
						  load_external_function(TextDatumGetCString(probin),
												 src, false, NULL)
						  == state_msg_inbox_process);
		}
	}
	ReleaseSysCache(tuple);

	return result;
}

PG_FUNCTION_INFO_V1(state_msg_ingest);

/*
 * ingest(client_id, serial_number, topic_type, topic_id, state_id,
 *		  message_time, topic_id_type, criticality, user_params, source,
 *		  user_name, user_sid, state_details_type, state_details, priority,
 *		  netbios_name, client_version)
 * processes one message and returns its verdict.  Arguments the SQL
 * declaration lacks (the 1.0 one had the first ten) read as NULL.
 */
Datum
state_msg_ingest(PG_FUNCTION_ARGS)
{
	/* inbox column of each argument, in argument order */
	static const InboxColumn arg_column[] = {
		INBOX_CLIENT_ID, INBOX_SERIAL_NUMBER, INBOX_TOPIC_TYPE,
		INBOX_TOPIC_ID, INBOX_STATE_ID, INBOX_MESSAGE_TIME,
		INBOX_TOPIC_ID_TYPE, INBOX_CRITICALITY, INBOX_USER_PARAMS,
		INBOX_SOURCE, INBOX_USER_NAME, INBOX_USER_SID,
		INBOX_STATE_DETAILS_TYPE, INBOX_STATE_DETAILS, INBOX_PRIORITY,
		INBOX_NETBIOS_NAME, INBOX_CLIENT_VERSION
	};
	Datum		values[INBOX_NATTS];
	bool		isnull[INBOX_NATTS];
	MessageBatch *batch;
	Verdict		verdict;

	for (int i = 0; i < INBOX_NATTS; i++)
	{
		values[i] = (Datum) 0;
		isnull[i] = true;
	}
	StaticAssertStmt(lengthof(arg_column) == INBOX_NATTS,
					 "an argument per inbox column");
	for (int i = 0; i < Min((int) lengthof(arg_column), PG_NARGS()); i++)
	{
		values[arg_column[i]] = PG_GETARG_DATUM(i);
		isnull[arg_column[i]] = PG_ARGISNULL(i);
	}

	batch = sm_batch_begin();
	sm_batch_add(batch, values, isnull);
	verdict = sm_batch_finish(batch, NULL);

	return DirectFunctionCall2(enum_in,
							   CStringGetDatum(sm_verdict_names[verdict]),
							   ObjectIdGetDatum(get_fn_expr_rettype(fcinfo->flinfo)));
}
