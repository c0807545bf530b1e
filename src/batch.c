/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  The one processing path: every entry point feeds messages to a batch.
 *
 * A batch validates each message as it is added (setting bad ones aside),
 * sorts the good ones by client with a tuplesort (so memory stays bounded
 * however large the statement), and then processes them in chunks:
 *
 *	1. lock the chunk's clients in client_id order, creating new ones, and
 *	   read their serial state and missing ranges;
 *	2. run serial tracking over each client's messages in arrival order;
 *	3. keep, per (client, topic), the newest message;
 *	4. write back clients, missing ranges, current state and resync requests
 *	   with one set-based statement each.
 *
 * Because every batch locks clients in ascending client_id order, and a
 * client's rows in the other tables are only written while its row lock is
 * held, concurrent batches never deadlock on one another.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/tupdesc.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/queryenvironment.h"
#include "utils/tuplesort.h"
#include "utils/tuplestore.h"

#include "state_msg.h"

/* Messages processed per chunk: bounds memory, amortizes statements */
#define CHUNK_MESSAGES 32768

/* Warnings for quarantined rows per batch before they are summarized */
#define MAX_REJECT_WARNINGS 10

const char *const verdict_names[VERDICT_COUNT] = {
	"in_order", "gap", "late_fill", "duplicate", "serial_reset",
	"unserialized", "rejected"
};

/* Columns of the sorted work rows: the message, its client id normalized */
enum
{
	WORK_CLIENT_ID,
	WORK_ROW_NUMBER,
	WORK_SERIAL_NUMBER,
	WORK_TOPIC_TYPE,
	WORK_TOPIC_ID,
	WORK_TOPIC_ID_TYPE,
	WORK_STATE_ID,
	WORK_CRITICALITY,
	WORK_MESSAGE_TIME,
	WORK_USER_PARAMS,
	WORK_SOURCE,
	WORK_NATTS
};

struct MessageBatch
{
	MemoryContext context;		/* everything the batch keeps */
	MemoryContext row_context;	/* reset for every message added */
	MemoryContext chunk_context;	/* reset for every chunk */
	TupleDesc	work_desc;
	TupleTableSlot *put_slot;
	TupleTableSlot *get_slot;
	Tuplesortstate *sort;
	TimestampTz now;
	int64		rows;
	int64		rejected;
	int64		verdicts[VERDICT_COUNT];
	Verdict		last_verdict;
	/* the chunk being gathered */
	StateMessage *messages;		/* in context, grown up to CHUNK_MESSAGES */
	int			nmessages;
	int			maxmessages;
};

/* Statements kept across calls for the life of the backend */
static SPIPlanPtr lock_clients_plan;
static SPIPlanPtr load_ranges_plan;
static SPIPlanPtr update_clients_plan;
static SPIPlanPtr delete_ranges_plan;
static SPIPlanPtr insert_ranges_plan;
static SPIPlanPtr insert_states_plan;
static SPIPlanPtr upsert_states_plan;
static SPIPlanPtr complete_requests_plan;
static SPIPlanPtr insert_reset_requests_plan;
static SPIPlanPtr reject_plan;

static const char *lock_clients_sql =
"INSERT INTO state_msg.clients AS c (client_id)"
" SELECT id FROM pg_catalog.unnest($1::pg_catalog.text[]) AS id"
" ON CONFLICT (client_id) DO UPDATE SET client_id = excluded.client_id"
" RETURNING c.client_id, c.next_serial_number, c.serial_epoch,"
" c.last_message_time, c.messages_processed";

static const char *load_ranges_sql =
"SELECT client_id, first_serial, last_serial, detected_at"
" FROM state_msg.missing_ranges"
" WHERE client_id = ANY ($1::pg_catalog.text[])"
" ORDER BY client_id, first_serial";

static const char *update_clients_sql =
"UPDATE state_msg.clients c SET"
" next_serial_number = u.next_serial_number,"
" serial_epoch = u.serial_epoch,"
" last_message_time = u.last_message_time,"
" last_processed_time = pg_catalog.now(),"
" messages_processed = c.messages_processed + u.processed,"
" missing_serials = c.missing_serials + u.missing,"
" late_fills = c.late_fills + u.late_fills,"
" duplicates = c.duplicates + u.duplicates,"
" serial_resets = c.serial_resets + u.resets,"
" unserialized_messages = c.unserialized_messages + u.unserialized,"
" last_resync_client_completed_time = COALESCE(u.resync_completed_at,"
"   c.last_resync_client_completed_time),"
" last_resync_issued_time = CASE WHEN u.reset_request"
"   THEN pg_catalog.now() ELSE c.last_resync_issued_time END,"
" resync_requests_issued = c.resync_requests_issued"
"   + CASE WHEN u.reset_request THEN 1 ELSE 0 END"
" FROM sm_client_updates u WHERE c.client_id = u.client_id";

static const char *delete_ranges_sql =
"DELETE FROM state_msg.missing_ranges"
" WHERE client_id = ANY ($1::pg_catalog.text[])";

static const char *insert_ranges_sql =
"INSERT INTO state_msg.missing_ranges"
" (client_id, first_serial, last_serial, detected_at)"
" SELECT * FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
" pg_catalog.unnest($2::pg_catalog.int8[]), pg_catalog.unnest($3::pg_catalog.int8[]),"
" pg_catalog.unnest($4::pg_catalog.timestamptz[]))";

/*
 * The newest message wins: by (epoch, serial) when both messages have a
 * serial, else by message time.  choose_newest() applies the same rule.
 */
static const char *upsert_states_sql =
"INSERT INTO state_msg.client_state AS s"
" (client_id, topic_type, topic_id, topic_id_type, state_id, criticality,"
" serial_number, serial_epoch, message_time, processed_at, user_params, source)"
" SELECT client_id, topic_type, topic_id, topic_id_type, state_id, criticality,"
" serial_number, serial_epoch, message_time, pg_catalog.now(), user_params, source"
" FROM sm_states"
" ON CONFLICT (client_id, topic_type, topic_id) DO UPDATE SET"
" topic_id_type = excluded.topic_id_type, state_id = excluded.state_id,"
" criticality = excluded.criticality, serial_number = excluded.serial_number,"
" serial_epoch = excluded.serial_epoch, message_time = excluded.message_time,"
" processed_at = excluded.processed_at, user_params = excluded.user_params,"
" source = excluded.source"
" WHERE CASE WHEN s.serial_number IS NULL OR excluded.serial_number IS NULL"
"   THEN excluded.message_time >= s.message_time"
"   ELSE (excluded.serial_epoch, excluded.serial_number)"
"      > (s.serial_epoch, s.serial_number) END";

/* A new client has no state yet: its newest messages are plain inserts */
static const char *insert_states_sql =
"INSERT INTO state_msg.client_state"
" (client_id, topic_type, topic_id, topic_id_type, state_id, criticality,"
" serial_number, serial_epoch, message_time, processed_at, user_params, source)"
" SELECT client_id, topic_type, topic_id, topic_id_type, state_id, criticality,"
" serial_number, serial_epoch, message_time, pg_catalog.now(), user_params, source"
" FROM sm_states";

static const char *complete_requests_sql =
"UPDATE state_msg.resync_requests SET completed_at = $2"
" WHERE client_id = ANY ($1::pg_catalog.text[]) AND completed_at IS NULL";

static const char *insert_reset_requests_sql =
"INSERT INTO state_msg.resync_requests (client_id, reason, issued_at, completed_at)"
" SELECT id, 'serial_reset', pg_catalog.now(),"
" CASE WHEN done THEN $3 END"
" FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
" pg_catalog.unnest($2::pg_catalog.bool[])) AS r(id, done)";

static const char *reject_sql =
"INSERT INTO state_msg.rejected_messages (reason, sqlstate, row_number,"
" client_id, serial_number, topic_type, topic_id, topic_id_type, state_id,"
" criticality, message_time, user_params, source)"
" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

/* Prepare sql once per backend and keep the plan */
static SPIPlanPtr
keep_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	return *plan;
}

/* Run a kept statement with parameters; it must succeed */
static void
run_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes,
		 Datum *values, const char *nulls, int expected)
{
	int			rc;

	keep_plan(plan, sql, nargs, argtypes);
	rc = SPI_execute_plan(*plan, values, nulls, false, 0);
	if (rc != expected)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s",
			 sql, SPI_result_code_string(rc));
}

/*
 * Run a kept statement that reads its rows from a tuplestore, visible to it
 * as the relation enr_name for the duration of the call.
 */
static void
run_plan_with_rows(SPIPlanPtr *plan, const char *sql, const char *enr_name,
				   TupleDesc desc, Tuplestorestate *rows, int expected)
{
	EphemeralNamedRelation enr = palloc0(sizeof(EphemeralNamedRelationData));
	int			rc;

	enr->md.name = (char *) enr_name;
	enr->md.reliddesc = InvalidOid;
	enr->md.tupdesc = desc;
	enr->md.enrtype = ENR_NAMED_TUPLESTORE;
	enr->md.enrtuples = tuplestore_tuple_count(rows);
	enr->reldata = rows;
	rc = SPI_register_relation(enr);
	if (rc != SPI_OK_REL_REGISTER)
		elog(ERROR, "SPI_register_relation failed: %s",
			 SPI_result_code_string(rc));

	run_plan(plan, sql, 0, NULL, NULL, NULL, expected);

	rc = SPI_unregister_relation(enr_name);
	if (rc != SPI_OK_REL_UNREGISTER)
		elog(ERROR, "SPI_unregister_relation failed: %s",
			 SPI_result_code_string(rc));
}

/* A text[] of the given C strings */
static Datum
text_array(char **strings, int n)
{
	Datum	   *elems = palloc(n * sizeof(Datum));

	for (int i = 0; i < n; i++)
		elems[i] = CStringGetTextDatum(strings[i]);
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false,
										   TYPALIGN_INT));
}

/* Start a batch: connect to SPI and set up the sort */
MessageBatch *
batch_begin(void)
{
	MemoryContext context = AllocSetContextCreate(CurrentMemoryContext,
												  "state_msg batch",
												  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(context);
	MessageBatch *batch = palloc0(sizeof(MessageBatch));
	TupleDesc	desc = CreateTemplateTupleDesc(WORK_NATTS);
	AttrNumber	sort_columns[] = {WORK_CLIENT_ID + 1, WORK_ROW_NUMBER + 1};
	Oid			sort_operators[] = {TextLessOperator, Int8LessOperator};
	Oid			sort_collations[] = {C_COLLATION_OID, InvalidOid};
	bool		nulls_first[] = {false, false};

	batch->context = context;
	batch->row_context = AllocSetContextCreate(context, "state_msg row",
											   ALLOCSET_DEFAULT_SIZES);
	batch->chunk_context = AllocSetContextCreate(context, "state_msg chunk",
												 ALLOCSET_DEFAULT_SIZES);
	batch->now = GetCurrentTransactionStartTimestamp();
	batch->last_verdict = VERDICT_REJECTED;

	TupleDescInitEntry(desc, WORK_CLIENT_ID + 1, "client_id", TEXTOID, -1, 0);
	TupleDescInitEntry(desc, WORK_ROW_NUMBER + 1, "row_number", INT8OID, -1, 0);
	TupleDescInitEntry(desc, WORK_SERIAL_NUMBER + 1, "serial_number", INT8OID, -1, 0);
	TupleDescInitEntry(desc, WORK_TOPIC_TYPE + 1, "topic_type", INT4OID, -1, 0);
	TupleDescInitEntry(desc, WORK_TOPIC_ID + 1, "topic_id", TEXTOID, -1, 0);
	TupleDescInitEntry(desc, WORK_TOPIC_ID_TYPE + 1, "topic_id_type", INT4OID, -1, 0);
	TupleDescInitEntry(desc, WORK_STATE_ID + 1, "state_id", INT4OID, -1, 0);
	TupleDescInitEntry(desc, WORK_CRITICALITY + 1, "criticality", INT4OID, -1, 0);
	TupleDescInitEntry(desc, WORK_MESSAGE_TIME + 1, "message_time", TIMESTAMPTZOID, -1, 0);
	TupleDescInitEntry(desc, WORK_USER_PARAMS + 1, "user_params", TEXTARRAYOID, -1, 0);
	TupleDescInitEntry(desc, WORK_SOURCE + 1, "source", TEXTOID, -1, 0);
	batch->work_desc = desc;
	batch->put_slot = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
	batch->get_slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	batch->sort = tuplesort_begin_heap(desc, 2, sort_columns, sort_operators,
									   sort_collations, nulls_first,
									   work_mem, NULL, TUPLESORT_NONE);
	batch->maxmessages = 64;
	batch->messages = palloc(batch->maxmessages * sizeof(StateMessage));

	MemoryContextSwitchTo(old);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	return batch;
}

/*
 * Set a bad row aside: store it in state_msg.rejected_messages with its
 * reason, and warn (the first few times in a batch).  Under
 * on_bad_message = error, fail the statement instead.
 */
static void
quarantine(MessageBatch *batch, Datum *values, bool *isnull,
		   int sqlstate, const char *reason)
{
	static Oid	argtypes[] = {TEXTOID, TEXTOID, INT8OID, TEXTOID, INT8OID,
		INT4OID, TEXTOID, INT4OID, INT4OID, INT4OID, TIMESTAMPTZOID,
	TEXTARRAYOID, TEXTOID};
	Datum		args[13];
	char		nulls[13];
	char	   *client = isnull[INBOX_CLIENT_ID] ? NULL :
		TextDatumGetCString(values[INBOX_CLIENT_ID]);

	if (sm_on_bad_message == BAD_MESSAGE_ERROR)
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg("invalid state message: %s", reason),
				 client ?
				 errdetail("Row %lld of the statement, client_id \"%s\".",
						   (long long) batch->rows, client) :
				 errdetail("Row %lld of the statement.", (long long) batch->rows),
				 errhint("Set state_msg.on_bad_message to \"quarantine\" to set bad rows aside and process the rest.")));

	batch->rejected++;
	batch->verdicts[VERDICT_REJECTED]++;
	if (batch->rejected <= MAX_REJECT_WARNINGS)
		ereport(WARNING,
				(errcode(sqlstate),
				 errmsg("state message rejected: %s", reason),
				 errdetail("Row %lld of the statement was stored in state_msg.rejected_messages.",
						   (long long) batch->rows)));

	args[0] = CStringGetTextDatum(reason);
	args[1] = CStringGetTextDatum(unpack_sql_state(sqlstate));
	args[2] = Int64GetDatum(batch->rows);
	nulls[0] = nulls[1] = nulls[2] = ' ';
	for (int i = 0; i < INBOX_NATTS; i++)
	{
		args[3 + i] = values[i];
		nulls[3 + i] = isnull[i] ? 'n' : ' ';
	}
	run_plan(&reject_plan, reject_sql, 13, argtypes, args, nulls,
			 SPI_OK_INSERT);
}

/*
 * Add one inbox row to the batch.  A bad row is dealt with at once and
 * VERDICT_REJECTED returned; a good one waits for batch_finish().
 */
Verdict
batch_add(MessageBatch *batch, Datum *values, bool *isnull)
{
	MemoryContext old = MemoryContextSwitchTo(batch->row_context);
	TupleTableSlot *slot = batch->put_slot;
	StateMessage msg;
	int			sqlstate;
	char	   *reason;

	CHECK_FOR_INTERRUPTS();
	MemoryContextReset(batch->row_context);
	batch->rows++;

	if (!message_check(values, isnull, batch->rows, &msg, &sqlstate, &reason))
	{
		quarantine(batch, values, isnull, sqlstate, reason);
		MemoryContextSwitchTo(old);
		batch->last_verdict = VERDICT_REJECTED;
		return VERDICT_REJECTED;
	}

	ExecClearTuple(slot);
	memset(slot->tts_isnull, false, WORK_NATTS * sizeof(bool));
	slot->tts_values[WORK_CLIENT_ID] = CStringGetTextDatum(msg.client_id);
	slot->tts_values[WORK_ROW_NUMBER] = Int64GetDatum(msg.row_number);
	slot->tts_values[WORK_SERIAL_NUMBER] = Int64GetDatum(msg.serial_number);
	slot->tts_isnull[WORK_SERIAL_NUMBER] = !msg.has_serial;
	slot->tts_values[WORK_TOPIC_TYPE] = Int32GetDatum(msg.topic_type);
	slot->tts_values[WORK_TOPIC_ID] = CStringGetTextDatum(msg.topic_id);
	slot->tts_values[WORK_TOPIC_ID_TYPE] = Int32GetDatum(msg.topic_id_type);
	slot->tts_values[WORK_STATE_ID] = Int32GetDatum(msg.state_id);
	slot->tts_values[WORK_CRITICALITY] = Int32GetDatum(msg.criticality);
	slot->tts_values[WORK_MESSAGE_TIME] = TimestampTzGetDatum(msg.message_time);
	slot->tts_values[WORK_USER_PARAMS] = msg.user_params;
	slot->tts_isnull[WORK_USER_PARAMS] = (msg.user_params == (Datum) 0);
	slot->tts_values[WORK_SOURCE] = CStringGetTextDatum(msg.source);
	ExecStoreVirtualTuple(slot);
	tuplesort_puttupleslot(batch->sort, slot);

	MemoryContextSwitchTo(old);
	return VERDICT_REJECTED;	/* not processed yet */
}

/* Copy the sorted work row in get_slot into a StateMessage */
static void
message_from_slot(TupleTableSlot *slot, StateMessage *msg)
{
	Datum	   *v;
	bool	   *n;

	slot_getallattrs(slot);
	v = slot->tts_values;
	n = slot->tts_isnull;
	msg->client_id = TextDatumGetCString(v[WORK_CLIENT_ID]);
	msg->row_number = DatumGetInt64(v[WORK_ROW_NUMBER]);
	msg->has_serial = !n[WORK_SERIAL_NUMBER];
	msg->serial_number = msg->has_serial ? DatumGetInt64(v[WORK_SERIAL_NUMBER]) : 0;
	msg->topic_type = DatumGetInt32(v[WORK_TOPIC_TYPE]);
	msg->topic_id = TextDatumGetCString(v[WORK_TOPIC_ID]);
	msg->topic_id_type = DatumGetInt32(v[WORK_TOPIC_ID_TYPE]);
	msg->state_id = DatumGetInt32(v[WORK_STATE_ID]);
	msg->criticality = DatumGetInt32(v[WORK_CRITICALITY]);
	msg->message_time = DatumGetTimestampTz(v[WORK_MESSAGE_TIME]);
	msg->user_params = n[WORK_USER_PARAMS] ? (Datum) 0 :
		PointerGetDatum(PG_DETOAST_DATUM_COPY(v[WORK_USER_PARAMS]));
	msg->source = TextDatumGetCString(v[WORK_SOURCE]);
	msg->verdict = VERDICT_REJECTED;
	msg->serial_epoch = 0;
}

/* Binary search for a client among the chunk's (sorted) tracks */
static ClientTrack *
find_track(ClientTrack *tracks, int ntracks, const char *client_id)
{
	int			lo = 0;
	int			hi = ntracks - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int			cmp = strcmp(client_id, tracks[mid].client_id);

		if (cmp == 0)
			return &tracks[mid];
		if (cmp < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	elog(ERROR, "client \"%s\" is not in the chunk", client_id);
	return NULL;				/* keep compiler quiet */
}

/*
 * Lock the chunk's clients (creating new ones) in client_id order and read
 * their serial state, then their missing ranges.
 */
static void
load_clients(ClientTrack *tracks, int ntracks)
{
	Oid			argtypes[] = {TEXTARRAYOID};
	char	  **ids = palloc(ntracks * sizeof(char *));
	Datum		arg;

	for (int i = 0; i < ntracks; i++)
		ids[i] = tracks[i].client_id;
	arg = text_array(ids, ntracks);

	run_plan(&lock_clients_plan, lock_clients_sql, 1, argtypes, &arg, NULL,
			 SPI_OK_INSERT_RETURNING);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *id = TextDatumGetCString(SPI_getbinval(tuple, desc, 1, &isnull));
		ClientTrack *t = find_track(tracks, ntracks, id);
		Datum		d;

		d = SPI_getbinval(tuple, desc, 2, &isnull);
		t->has_baseline = !isnull;
		t->next_serial = isnull ? 0 : DatumGetInt64(d);
		t->serial_epoch = DatumGetInt32(SPI_getbinval(tuple, desc, 3, &isnull));
		d = SPI_getbinval(tuple, desc, 4, &isnull);
		t->has_last_message_time = !isnull;
		t->last_message_time = isnull ? 0 : DatumGetTimestampTz(d);
		t->is_new = DatumGetInt64(SPI_getbinval(tuple, desc, 5, &isnull)) == 0;
	}
	if (SPI_processed != (uint64) ntracks)
		elog(ERROR, "locked %llu clients of %d",
			 (unsigned long long) SPI_processed, ntracks);
	SPI_freetuptable(SPI_tuptable);

	run_plan(&load_ranges_plan, load_ranges_sql, 1, argtypes, &arg, NULL,
			 SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *id = TextDatumGetCString(SPI_getbinval(tuple, desc, 1, &isnull));

		serials_add_range(find_track(tracks, ntracks, id),
						  DatumGetInt64(SPI_getbinval(tuple, desc, 2, &isnull)),
						  DatumGetInt64(SPI_getbinval(tuple, desc, 3, &isnull)),
						  DatumGetTimestampTz(SPI_getbinval(tuple, desc, 4, &isnull)));
	}
	SPI_freetuptable(SPI_tuptable);
}

/* Order messages by topic, then arrival, to find each topic's newest */
static int
compare_by_topic(const void *a, const void *b)
{
	const StateMessage *ma = *(StateMessage *const *) a;
	const StateMessage *mb = *(StateMessage *const *) b;
	int			cmp;

	if (ma->topic_type != mb->topic_type)
		return ma->topic_type < mb->topic_type ? -1 : 1;
	cmp = strcmp(ma->topic_id, mb->topic_id);
	if (cmp != 0)
		return cmp;
	if (ma->row_number != mb->row_number)
		return ma->row_number < mb->row_number ? -1 : 1;
	return 0;
}

/*
 * Is candidate newer than current for the same topic?  By (epoch, serial)
 * when both carry a serial, else by message time, a tie going to the later
 * arrival.  upsert_states_sql applies the same rule against stored state.
 */
static bool
is_newer(StateMessage *candidate, StateMessage *current)
{
	if (candidate->has_serial && current->has_serial)
	{
		if (candidate->serial_epoch != current->serial_epoch)
			return candidate->serial_epoch > current->serial_epoch;
		return candidate->serial_number > current->serial_number;
	}
	return candidate->message_time >= current->message_time;
}

/* The descriptor of sm_states rows: the columns of upsert_states_sql */
static TupleDesc
states_desc(void)
{
	TupleDesc	desc = CreateTemplateTupleDesc(11);

	TupleDescInitEntry(desc, 1, "client_id", TEXTOID, -1, 0);
	TupleDescInitEntry(desc, 2, "topic_type", INT4OID, -1, 0);
	TupleDescInitEntry(desc, 3, "topic_id", TEXTOID, -1, 0);
	TupleDescInitEntry(desc, 4, "topic_id_type", INT4OID, -1, 0);
	TupleDescInitEntry(desc, 5, "state_id", INT4OID, -1, 0);
	TupleDescInitEntry(desc, 6, "criticality", INT4OID, -1, 0);
	TupleDescInitEntry(desc, 7, "serial_number", INT8OID, -1, 0);
	TupleDescInitEntry(desc, 8, "serial_epoch", INT4OID, -1, 0);
	TupleDescInitEntry(desc, 9, "message_time", TIMESTAMPTZOID, -1, 0);
	TupleDescInitEntry(desc, 10, "user_params", TEXTARRAYOID, -1, 0);
	TupleDescInitEntry(desc, 11, "source", TEXTOID, -1, 0);
	return desc;
}

/* Add msg as its topic's newest state to the sm_states rows */
static void
put_state(Tuplestorestate *store, TupleDesc desc, StateMessage *msg)
{
	Datum		v[11];
	bool		n[11] = {false};

	v[0] = CStringGetTextDatum(msg->client_id);
	v[1] = Int32GetDatum(msg->topic_type);
	v[2] = CStringGetTextDatum(msg->topic_id);
	v[3] = Int32GetDatum(msg->topic_id_type);
	v[4] = Int32GetDatum(msg->state_id);
	v[5] = Int32GetDatum(msg->criticality);
	v[6] = Int64GetDatum(msg->serial_number);
	n[6] = !msg->has_serial;
	v[7] = Int32GetDatum(msg->serial_epoch);
	v[8] = TimestampTzGetDatum(msg->message_time);
	v[9] = msg->user_params;
	n[9] = (msg->user_params == (Datum) 0);
	v[10] = CStringGetTextDatum(msg->source);
	tuplestore_putvalues(store, desc, v, n);
}

/*
 * Keep the newest message of each topic among one client's processed
 * messages (duplicates excluded) and add those to the sm_states rows.
 */
static void
collect_states(StateMessage *msgs, int nmsgs, Tuplestorestate *store,
			   TupleDesc desc)
{
	StateMessage **sorted = palloc(nmsgs * sizeof(StateMessage *));
	int			n = 0;

	for (int i = 0; i < nmsgs; i++)
		if (msgs[i].verdict != VERDICT_DUPLICATE)
			sorted[n++] = &msgs[i];
	if (n > 1)
		qsort(sorted, n, sizeof(StateMessage *), compare_by_topic);

	for (int i = 0; i < n;)
	{
		StateMessage *newest = sorted[i];
		int			j = i + 1;

		while (j < n && sorted[j]->topic_type == newest->topic_type &&
			   strcmp(sorted[j]->topic_id, newest->topic_id) == 0)
		{
			if (is_newer(sorted[j], newest))
				newest = sorted[j];
			j++;
		}
		put_state(store, desc, newest);
		i = j;
	}
	pfree(sorted);
}

/* Run serial tracking over one client's messages, in arrival order */
static void
track_client(MessageBatch *batch, ClientTrack *track, StateMessage *msgs,
			 int nmsgs)
{
	for (int i = 0; i < nmsgs; i++)
	{
		StateMessage *msg = &msgs[i];

		msg->verdict = serials_apply(track, msg, batch->now);
		batch->verdicts[msg->verdict]++;
		batch->last_verdict = msg->verdict;

		if (msg->verdict != VERDICT_DUPLICATE &&
			msg->topic_type == SM_RESYNC_TOPIC_TYPE &&
			msg->state_id == SM_RESYNC_COMPLETE_STATE)
		{
			track->resync_completed = true;
			if (track->reset_request)
				track->completed_after_reset = true;
			if (msg->has_serial)
				serials_forget_below(track, msg->serial_number);
		}
	}
}

/* The descriptor of sm_client_updates rows: see update_clients_sql */
static TupleDesc
client_updates_desc(void)
{
	TupleDesc	desc = CreateTemplateTupleDesc(12);

	TupleDescInitEntry(desc, 1, "client_id", TEXTOID, -1, 0);
	TupleDescInitEntry(desc, 2, "next_serial_number", INT8OID, -1, 0);
	TupleDescInitEntry(desc, 3, "serial_epoch", INT4OID, -1, 0);
	TupleDescInitEntry(desc, 4, "last_message_time", TIMESTAMPTZOID, -1, 0);
	TupleDescInitEntry(desc, 5, "processed", INT8OID, -1, 0);
	TupleDescInitEntry(desc, 6, "missing", INT8OID, -1, 0);
	TupleDescInitEntry(desc, 7, "late_fills", INT8OID, -1, 0);
	TupleDescInitEntry(desc, 8, "duplicates", INT8OID, -1, 0);
	TupleDescInitEntry(desc, 9, "resets", INT8OID, -1, 0);
	TupleDescInitEntry(desc, 10, "unserialized", INT8OID, -1, 0);
	TupleDescInitEntry(desc, 11, "resync_completed_at", TIMESTAMPTZOID, -1, 0);
	TupleDescInitEntry(desc, 12, "reset_request", BOOLOID, -1, 0);
	return desc;
}

/*
 * Write the tracks back: clients, missing ranges, resync requests.
 * completed_at is when resync completions in this chunk were processed.
 */
static void
save_clients(ClientTrack *tracks, int ntracks, TimestampTz completed_at)
{
	TupleDesc	desc = client_updates_desc();
	Tuplestorestate *store = tuplestore_begin_heap(false, false, work_mem);
	char	  **changed = palloc(ntracks * sizeof(char *));
	char	  **completed = palloc(ntracks * sizeof(char *));
	char	  **reset = palloc(ntracks * sizeof(char *));
	Datum	   *reset_done = palloc(ntracks * sizeof(Datum));
	int			nchanged = 0,
				ncompleted = 0,
				nreset = 0,
				nranges = 0;

	for (int i = 0; i < ntracks; i++)
	{
		ClientTrack *t = &tracks[i];
		Datum		v[12];
		bool		n[12] = {false};

		v[0] = CStringGetTextDatum(t->client_id);
		v[1] = Int64GetDatum(t->next_serial);
		n[1] = !t->has_baseline;
		v[2] = Int32GetDatum(t->serial_epoch);
		v[3] = TimestampTzGetDatum(t->last_message_time);
		n[3] = !t->has_last_message_time;
		v[4] = Int64GetDatum(t->processed);
		v[5] = Int64GetDatum(t->missing);
		v[6] = Int64GetDatum(t->late_fills);
		v[7] = Int64GetDatum(t->duplicates);
		v[8] = Int64GetDatum(t->resets);
		v[9] = Int64GetDatum(t->unserialized);
		v[10] = TimestampTzGetDatum(completed_at);
		n[10] = !t->resync_completed;
		v[11] = BoolGetDatum(t->reset_request);
		tuplestore_putvalues(store, desc, v, n);

		if (t->ranges_changed)
		{
			changed[nchanged++] = t->client_id;
			nranges += t->nranges;
		}
		if (t->resync_completed)
			completed[ncompleted++] = t->client_id;
		if (t->reset_request)
		{
			reset_done[nreset] = BoolGetDatum(t->completed_after_reset);
			reset[nreset++] = t->client_id;
		}
	}
	run_plan_with_rows(&update_clients_plan, update_clients_sql,
					   "sm_client_updates", desc, store, SPI_OK_UPDATE);
	tuplestore_end(store);

	if (nchanged > 0)
	{
		Oid			argtypes[] = {TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID,
		TIMESTAMPTZARRAYOID};
		Datum		args[4];
		char	  **ids = palloc(Max(nranges, 1) * sizeof(char *));
		Datum	   *firsts = palloc(Max(nranges, 1) * sizeof(Datum));
		Datum	   *lasts = palloc(Max(nranges, 1) * sizeof(Datum));
		Datum	   *times = palloc(Max(nranges, 1) * sizeof(Datum));
		int			k = 0;

		args[0] = text_array(changed, nchanged);
		run_plan(&delete_ranges_plan, delete_ranges_sql, 1, argtypes, args,
				 NULL, SPI_OK_DELETE);

		for (int i = 0; i < ntracks; i++)
		{
			if (!tracks[i].ranges_changed)
				continue;
			for (int r = 0; r < tracks[i].nranges; r++, k++)
			{
				ids[k] = tracks[i].client_id;
				firsts[k] = Int64GetDatum(tracks[i].ranges[r].first_serial);
				lasts[k] = Int64GetDatum(tracks[i].ranges[r].last_serial);
				times[k] = TimestampTzGetDatum(tracks[i].ranges[r].detected_at);
			}
		}
		if (nranges > 0)
		{
			args[0] = text_array(ids, nranges);
			args[1] = PointerGetDatum(construct_array(firsts, nranges, INT8OID,
													  8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
			args[2] = PointerGetDatum(construct_array(lasts, nranges, INT8OID,
													  8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
			args[3] = PointerGetDatum(construct_array(times, nranges, TIMESTAMPTZOID,
													  8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
			run_plan(&insert_ranges_plan, insert_ranges_sql, 4, argtypes, args,
					 NULL, SPI_OK_INSERT);
		}
	}

	if (ncompleted > 0)
	{
		Oid			argtypes[] = {TEXTARRAYOID, TIMESTAMPTZOID};
		Datum		args[2];

		args[0] = text_array(completed, ncompleted);
		args[1] = TimestampTzGetDatum(completed_at);
		run_plan(&complete_requests_plan, complete_requests_sql, 2, argtypes,
				 args, NULL, SPI_OK_UPDATE);
	}

	if (nreset > 0)
	{
		Oid			argtypes[] = {TEXTARRAYOID, BOOLARRAYOID, TIMESTAMPTZOID};
		Datum		args[3];

		args[0] = text_array(reset, nreset);
		args[1] = PointerGetDatum(construct_array(reset_done, nreset, BOOLOID,
												  1, true, TYPALIGN_CHAR));
		args[2] = TimestampTzGetDatum(completed_at);
		run_plan(&insert_reset_requests_plan, insert_reset_requests_sql, 3,
				 argtypes, args, NULL, SPI_OK_INSERT);
	}
}

/* Process the gathered chunk: lock, track, keep newest states, write */
static void
flush_chunk(MessageBatch *batch)
{
	StateMessage *msgs = batch->messages;
	int			nmsgs = batch->nmessages;
	ClientTrack *tracks = palloc0(nmsgs * sizeof(ClientTrack));
	int		   *starts = palloc((nmsgs + 1) * sizeof(int));
	int			ntracks = 0;
	TupleDesc	desc = states_desc();
	Tuplestorestate *new_states = tuplestore_begin_heap(false, false, work_mem);
	Tuplestorestate *states = tuplestore_begin_heap(false, false, work_mem);
	TimestampTz completed_at;

	/* Messages arrive sorted by client: one track per run of a client */
	for (int i = 0; i < nmsgs; i++)
	{
		if (ntracks == 0 ||
			strcmp(msgs[i].client_id, tracks[ntracks - 1].client_id) != 0)
		{
			tracks[ntracks].client_id = msgs[i].client_id;
			starts[ntracks++] = i;
		}
	}
	starts[ntracks] = nmsgs;

	load_clients(tracks, ntracks);

	/*
	 * A resync completion is stamped with the clock once the clients are
	 * locked, not with the transaction's start: a request issued while this
	 * batch waited for the lock must not look completed before its issue.
	 */
	completed_at = GetCurrentTimestamp();

	for (int k = 0; k < ntracks; k++)
	{
		StateMessage *first = &msgs[starts[k]];
		int			n = starts[k + 1] - starts[k];

		if (!tracks[k].has_baseline)
			serials_choose_baseline(&tracks[k], first, n);
		track_client(batch, &tracks[k], first, n);
		collect_states(first, n, tracks[k].is_new ? new_states : states, desc);
	}

	save_clients(tracks, ntracks, completed_at);
	if (tuplestore_tuple_count(new_states) > 0)
		run_plan_with_rows(&insert_states_plan, insert_states_sql, "sm_states",
						   desc, new_states, SPI_OK_INSERT);
	if (tuplestore_tuple_count(states) > 0)
		run_plan_with_rows(&upsert_states_plan, upsert_states_sql, "sm_states",
						   desc, states, SPI_OK_INSERT);
	tuplestore_end(new_states);
	tuplestore_end(states);

	batch->nmessages = 0;
	MemoryContextReset(batch->chunk_context);
}

/*
 * Process every message added, close the batch and return the verdict of
 * the last message (of the only one, for ingest()).
 */
Verdict
batch_finish(MessageBatch *batch)
{
	MemoryContext old;
	Verdict		verdict = batch->last_verdict;

	tuplesort_performsort(batch->sort);
	old = MemoryContextSwitchTo(batch->chunk_context);
	while (tuplesort_gettupleslot(batch->sort, true, false, batch->get_slot,
								  NULL))
	{
		CHECK_FOR_INTERRUPTS();
		if (batch->nmessages == batch->maxmessages)
		{
			batch->maxmessages *= 2;
			batch->messages = repalloc(batch->messages,
									   batch->maxmessages * sizeof(StateMessage));
		}
		message_from_slot(batch->get_slot, &batch->messages[batch->nmessages++]);
		if (batch->nmessages == CHUNK_MESSAGES)
			flush_chunk(batch);
	}
	if (batch->nmessages > 0)
		flush_chunk(batch);
	MemoryContextSwitchTo(old);
	tuplesort_end(batch->sort);
	ExecDropSingleTupleTableSlot(batch->put_slot);
	ExecDropSingleTupleTableSlot(batch->get_slot);

	if (batch->rejected > MAX_REJECT_WARNINGS)
		ereport(WARNING,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%lld more state messages were rejected",
						(long long) (batch->rejected - MAX_REJECT_WARNINGS)),
				 errdetail("All %lld rejected rows were stored in state_msg.rejected_messages.",
						   (long long) batch->rejected)));

	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	verdict = batch->last_verdict;
	MemoryContextDelete(batch->context);
	return verdict;
}
