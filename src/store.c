/*-------------------------------------------------------------------------
 *
 * store.c
 *	  Reading and writing the engine's tables for a batch.
 *
 * Every statement here is prepared once per backend and kept.  Bulk rows
 * reach their statement either as arrays or as a tuplestore registered as
 * an ephemeral named relation, so each chunk of a batch costs one
 * set-based statement per table, whatever its size.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/tupdesc.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/queryenvironment.h"
#include "utils/tuplestore.h"

#include "state_msg.h"

/* Columns of sm_states rows (STATE_COLUMNS) */
#define SM_STATE_NATTS 17

/*
 * The columns of state_msg.clients a batch reads and writes back, in this
 * order (enum ClientColumn).
 */
#define CLIENT_COLUMNS \
"client_id, next_serial_number, serial_epoch, serial_epoch_started," \
" last_message_time, messages_processed, missing_serials, late_fills," \
" duplicates, serial_resets, unserialized_messages, clock_skewed_messages," \
" resync_requests_issued, last_resync_issued_time," \
" last_resync_client_completed_time"

typedef enum ClientColumn
{
	CC_CLIENT_ID,
	CC_NEXT_SERIAL_NUMBER,
	CC_SERIAL_EPOCH,
	CC_SERIAL_EPOCH_STARTED,
	CC_LAST_MESSAGE_TIME,
	CC_MESSAGES_PROCESSED,
	CC_MISSING_SERIALS,
	CC_LATE_FILLS,
	CC_DUPLICATES,
	CC_SERIAL_RESETS,
	CC_UNSERIALIZED_MESSAGES,
	CC_CLOCK_SKEWED_MESSAGES,
	CC_RESYNC_REQUESTS_ISSUED,
	CC_LAST_RESYNC_ISSUED_TIME,
	CC_LAST_RESYNC_COMPLETED_TIME,
	CC_LAST_PROCESSED_TIME,		/* written, not read, as the rest */
	CC_NETBIOS_NAME,
	CC_CLIENT_VERSION,
	CC_NATTS
} ClientColumn;

/* Statements kept across calls for the life of the backend */
static SPIPlanPtr create_clients_plan;
static SPIPlanPtr lock_clients_plan;
static SPIPlanPtr lock_clients_serializable_plan;
static SPIPlanPtr load_ranges_plan;
static SPIPlanPtr update_clients_plan;
static SPIPlanPtr delete_ranges_plan;
static SPIPlanPtr insert_ranges_plan;
static SPIPlanPtr insert_states_plan;
static SPIPlanPtr upsert_states_plan;
static SPIPlanPtr replace_states_plan;
static SPIPlanPtr load_states_plan;
static SPIPlanPtr complete_requests_plan;
static SPIPlanPtr insert_reset_requests_plan;
static SPIPlanPtr reject_plan;

/*
 * Lock the chunk's clients, in client_id order, without writing a row
 * version: first create the new ones (a row this transaction inserted is
 * locked by it; a concurrent creator of the same client waits for it, as it
 * would for the row lock), then lock and read all of them with FOR UPDATE,
 * in order.  The one row version a client gets per batch is the update that
 * writes it back.  The ids come sorted in the "C" order the key uses.
 */
static const char *create_clients_sql =
"INSERT INTO state_msg.clients (client_id)"
" SELECT id FROM pg_catalog.unnest($1::pg_catalog.text[]) AS id"
" ON CONFLICT (client_id) DO NOTHING";

static const char *lock_clients_sql =
"SELECT " CLIENT_COLUMNS " FROM state_msg.clients"
" WHERE client_id OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[])"
" ORDER BY client_id FOR UPDATE";

/*
 * Under SERIALIZABLE, the clients are locked (created) and read in one
 * pass in input (client_id) order by an upsert instead, whose no-op update
 * is what makes ON CONFLICT return an existing row.  Its conflict check
 * reads the key with a dirty snapshot, so it takes no predicate lock;
 * FOR UPDATE's read takes one on the index pages of the clients' keys and,
 * a few rows to a page, on their heap pages, which every other batch's
 * write-back of its own clients on those pages then conflicts with.  It
 * costs a second row version per client and batch.
 */
static const char *lock_clients_serializable_sql =
"INSERT INTO state_msg.clients AS c (client_id)"
" SELECT id FROM pg_catalog.unnest($1::pg_catalog.text[]) AS id"
" ON CONFLICT (client_id) DO UPDATE SET client_id = excluded.client_id"
" RETURNING " CLIENT_COLUMNS;

/*
 * The stored missing ranges that hold some (client_id, serial) pairs: per
 * pair, one probe of the primary key for the last range beginning at or
 * before the serial, kept if it reaches the serial.  In first_serial order
 * per client, a range once per pair that meets it.
 */
static const char *load_ranges_sql =
"SELECT r.client_id, r.first_serial, r.last_serial, r.detected_at"
" FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
" pg_catalog.unnest($2::pg_catalog.int8[])) AS p(client_id, serial)"
" CROSS JOIN LATERAL (SELECT m.client_id, m.first_serial, m.last_serial,"
"   m.detected_at FROM state_msg.missing_ranges m"
"   WHERE m.client_id OPERATOR(pg_catalog.=) p.client_id COLLATE pg_catalog.\"C\""
"   AND m.first_serial OPERATOR(pg_catalog.<=) p.serial"
"   ORDER BY m.first_serial DESC LIMIT 1) AS r"
" WHERE r.last_serial OPERATOR(pg_catalog.>=) p.serial"
" ORDER BY r.client_id, r.first_serial";

/*
 * Write the clients back.  Every row exists (the batch locked or created
 * it), so this "upsert" always updates: written so that the primary key,
 * not a join the planner chooses from a cached plan, finds each client.
 * Every value is the client's new one, computed in C under its row lock,
 * but the NetBIOS name and client version, which keep the stored value
 * where the chunk had none (NULL): they are not read.
 */
static const char *update_clients_sql =
"INSERT INTO state_msg.clients AS c (" CLIENT_COLUMNS ", last_processed_time,"
" netbios_name, client_version)"
" SELECT " CLIENT_COLUMNS ", last_processed_time, netbios_name, client_version"
" FROM sm_client_updates"
" ON CONFLICT (client_id) DO UPDATE SET"
" netbios_name = COALESCE(excluded.netbios_name, c.netbios_name),"
" client_version = COALESCE(excluded.client_version, c.client_version),"
" next_serial_number = excluded.next_serial_number,"
" serial_epoch = excluded.serial_epoch,"
" serial_epoch_started = excluded.serial_epoch_started,"
" last_message_time = excluded.last_message_time,"
" messages_processed = excluded.messages_processed,"
" missing_serials = excluded.missing_serials,"
" late_fills = excluded.late_fills,"
" duplicates = excluded.duplicates,"
" serial_resets = excluded.serial_resets,"
" unserialized_messages = excluded.unserialized_messages,"
" clock_skewed_messages = excluded.clock_skewed_messages,"
" resync_requests_issued = excluded.resync_requests_issued,"
" last_resync_issued_time = excluded.last_resync_issued_time,"
" last_resync_client_completed_time = excluded.last_resync_client_completed_time,"
" last_processed_time = excluded.last_processed_time";

/*
 * Delete the stored ranges of some clients whose first_serial lies in a key
 * interval [lo, hi] (one row, those below a resync answer, or all of a
 * reset client's): a primary key range scan per interval.
 */
static const char *delete_ranges_sql =
"DELETE FROM state_msg.missing_ranges m"
" USING ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
" pg_catalog.unnest($2::pg_catalog.int8[]),"
" pg_catalog.unnest($3::pg_catalog.int8[])) AS d(client_id, lo, hi)"
" WHERE m.client_id OPERATOR(pg_catalog.=) d.client_id COLLATE pg_catalog.\"C\""
" AND m.first_serial OPERATOR(pg_catalog.>=) d.lo AND m.first_serial OPERATOR(pg_catalog.<=) d.hi";

static const char *insert_ranges_sql =
"INSERT INTO state_msg.missing_ranges"
" (client_id, first_serial, last_serial, detected_at)"
" SELECT * FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
" pg_catalog.unnest($2::pg_catalog.int8[]), pg_catalog.unnest($3::pg_catalog.int8[]),"
" pg_catalog.unnest($4::pg_catalog.timestamptz[]))";

/*
 * The chunk's new states, from sm_states: plain inserts for topics with no
 * state yet; an upsert keeping the newer of each message and the stored
 * state (the newest-state rule of current_state.c, through
 * state_msg.is_newer_state()); and an upsert replacing what the fold
 * decided against the stored rows.
 */
#define STATE_COLUMNS \
" client_id, topic_type, topic_id, topic_id_type, state_id, criticality," \
" serial_number, serial_epoch, message_time, processed_at, user_params, source," \
" user_name, user_sid, state_details_type, state_details, priority"
#define INSERT_STATES \
"INSERT INTO state_msg.client_state AS s (" STATE_COLUMNS ")" \
" SELECT" STATE_COLUMNS " FROM sm_states"
#define ON_CONFLICT_REPLACE_STATE \
" ON CONFLICT (client_id, topic_type, topic_id) DO UPDATE SET" \
" topic_id_type = excluded.topic_id_type, state_id = excluded.state_id," \
" criticality = excluded.criticality, serial_number = excluded.serial_number," \
" serial_epoch = excluded.serial_epoch, message_time = excluded.message_time," \
" processed_at = excluded.processed_at, user_params = excluded.user_params," \
" source = excluded.source, user_name = excluded.user_name," \
" user_sid = excluded.user_sid," \
" state_details_type = excluded.state_details_type," \
" state_details = excluded.state_details, priority = excluded.priority"

static const char *insert_states_sql = INSERT_STATES;

static const char *upsert_states_sql = INSERT_STATES ON_CONFLICT_REPLACE_STATE
" WHERE state_msg.is_newer_state(excluded.serial_number, excluded.serial_epoch,"
"   excluded.message_time, excluded.processed_at, s.serial_number,"
"   s.serial_epoch, s.message_time, s.processed_at)";

static const char *replace_states_sql = INSERT_STATES ON_CONFLICT_REPLACE_STATE;

/*
 * The current state of some (client, topic type, topic id) keys: one probe
 * of the primary key per key.  The LATERAL subquery keeps it a probe per
 * key whatever the planner thinks of the table's size, so that under
 * SERIALIZABLE a batch locks the rows it reads and their index pages, not
 * every row of its clients (or the table).
 */
static const char *load_states_sql =
"SELECT s.client_id, s.topic_type, s.topic_id, s.serial_number,"
" s.serial_epoch, s.message_time, s.processed_at"
" FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
" pg_catalog.unnest($2::pg_catalog.int4[]),"
" pg_catalog.unnest($3::pg_catalog.text[])) AS k(client_id, topic_type, topic_id)"
" CROSS JOIN LATERAL (SELECT c.client_id, c.topic_type, c.topic_id,"
"   c.serial_number, c.serial_epoch, c.message_time, c.processed_at"
"   FROM state_msg.client_state c"
"   WHERE c.client_id OPERATOR(pg_catalog.=) k.client_id COLLATE pg_catalog.\"C\""
"   AND c.topic_type OPERATOR(pg_catalog.=) k.topic_type"
"   AND c.topic_id OPERATOR(pg_catalog.=) k.topic_id COLLATE pg_catalog.\"C\" LIMIT 1) AS s";

/*
 * Complete the stored open requests of some clients, each at its time.  The
 * requests are found by their clients' keys ($1) whatever the join: a hash
 * join would otherwise read every open request, and under SERIALIZABLE lock
 * them all.
 */
static const char *complete_requests_sql =
"UPDATE state_msg.resync_requests r SET completed_at = c.completed_at"
" FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
" pg_catalog.unnest($2::pg_catalog.timestamptz[])) AS c(client_id, completed_at)"
" WHERE r.client_id OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[])"
" AND r.client_id OPERATOR(pg_catalog.=) c.client_id AND r.completed_at IS NULL";

static const char *insert_reset_requests_sql =
"INSERT INTO state_msg.resync_requests (client_id, reason, issued_at, completed_at)"
" SELECT id, 'serial_reset', issued, completed"
" FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
" pg_catalog.unnest($2::pg_catalog.timestamptz[]),"
" pg_catalog.unnest($3::pg_catalog.timestamptz[])) AS r(id, issued, completed)";

/* The inbox's columns follow the first three, in InboxColumn order */
static const char *reject_sql =
"INSERT INTO state_msg.rejected_messages (rejected_at, reason, sqlstate,"
" row_number, client_id, serial_number, topic_type, topic_id, topic_id_type,"
" state_id, criticality, message_time, user_params, source, user_name,"
" user_sid, state_details_type, state_details, priority, netbios_name,"
" client_version)"
" VALUES ($21, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,"
" $15, $16, $17, $18, $19, $20)";

/*
 * Prepare sql once per backend and keep the plan.  Statements get a generic
 * plan (they are simple, and planning one for every call of a batch-sized
 * array parameter would cost more than it saves), except those that search
 * tables that may grow by orders of magnitude in a session:
 * lock_clients_sql, load_states_sql, load_ranges_sql and delete_ranges_sql
 * are planned for each call, against the tables' current size.  (A generic
 * plan made while missing_ranges is small scans it, and would go on
 * scanning it as it grows.)  So is complete_requests_sql, which runs only
 * for a chunk with resync answers: planned for its own arrays, its join of
 * the clients with their requests is a hash join when they are many.
 */
static SPIPlanPtr
keep_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes)
{
	int			options = (sql == load_states_sql || sql == load_ranges_sql ||
						   sql == lock_clients_sql ||
						   sql == delete_ranges_sql) ?
		CURSOR_OPT_CUSTOM_PLAN : CURSOR_OPT_GENERIC_PLAN;

	if (sql == complete_requests_sql)
		options = CURSOR_OPT_CUSTOM_PLAN;

	if (*plan == NULL)
	{
		MemoryContext caller = CurrentMemoryContext;
		SPIPlanPtr	p;

		p = SPI_prepare_cursor(sql, nargs, argtypes, options);
		MemoryContextSwitchTo(caller);	/* SPI leaves its own one current */
		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	return *plan;
}

/*
 * Run a statement of an owner-rights entry point other than the batch (the
 * check cycle, the administration functions), preparing it once per backend
 * and keeping the plan; the plan cache chooses custom or generic plans.
 * Parameters are of built-in types only, so a kept plan never outlives a
 * type it was prepared with (the extension may be dropped and created again
 * in one session).
 */
void
sm_run_kept(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes,
			Datum *values, const char *nulls, int expected)
{
	MemoryContext caller = CurrentMemoryContext;
	int			rc;

	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	rc = SPI_execute_plan(*plan, values, nulls, false, 0);
	if (rc != expected)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s",
			 sql, SPI_result_code_string(rc));
	MemoryContextSwitchTo(caller);
}

/* Run a kept statement with parameters; it must succeed */
static void
run_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes,
		 Datum *values, const char *nulls, int expected)
{
	MemoryContext caller = CurrentMemoryContext;
	int			rc;

	keep_plan(plan, sql, nargs, argtypes);
	rc = SPI_execute_plan(*plan, values, nulls, false, 0);
	if (rc != expected)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s",
			 sql, SPI_result_code_string(rc));

	/* SPI returns in its own procedure context; the caller's is shorter */
	MemoryContextSwitchTo(caller);
}

/*
 * Run a kept statement that reads its rows from a tuplestore, visible to it
 * as the relation enr_name for the duration of the call.  SPI keeps its
 * list of such relations in the memory context current when the first is
 * registered, so registration happens in enr_context, which must outlive
 * the SPI connection (the batch's context does).
 */
static void
run_plan_with_rows(SPIPlanPtr *plan, const char *sql, const char *enr_name,
				   TupleDesc desc, Tuplestorestate *rows, int expected,
				   MemoryContext enr_context)
{
	MemoryContext caller = MemoryContextSwitchTo(enr_context);
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
	MemoryContextSwitchTo(caller);

	run_plan(plan, sql, 0, NULL, NULL, NULL, expected);

	MemoryContextSwitchTo(enr_context);
	rc = SPI_unregister_relation(enr_name);
	if (rc != SPI_OK_REL_UNREGISTER)
		elog(ERROR, "SPI_unregister_relation failed: %s",
			 SPI_result_code_string(rc));
	pfree(enr);
	MemoryContextSwitchTo(caller);
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

/* An array of n values of an 8-byte, pass-by-value type (int8, timestamptz) */
static Datum
wide_array(Datum *elems, int n, Oid elemtype)
{
	return PointerGetDatum(construct_array(elems, n, elemtype, 8,
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
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

/* Column col (enum ClientColumn) of a clients row, or *isnull */
static Datum
client_value(HeapTuple tuple, TupleDesc desc, ClientColumn col, bool *isnull)
{
	return SPI_getbinval(tuple, desc, col + 1, isnull);
}

/* A timestamptz column that may be NULL */
static void
read_time(HeapTuple tuple, TupleDesc desc, ClientColumn col,
		  TimestampTz *value, bool *present)
{
	bool		isnull;
	Datum		d = client_value(tuple, desc, col, &isnull);

	*present = !isnull;
	*value = isnull ? 0 : DatumGetTimestampTz(d);
}

/* A counter column (never NULL) */
static int64
read_counter(HeapTuple tuple, TupleDesc desc, ClientColumn col)
{
	bool		isnull;

	return DatumGetInt64(client_value(tuple, desc, col, &isnull));
}

/* Fill the track of one locked clients row */
static void
read_client(HeapTuple tuple, TupleDesc desc, ClientTrack *tracks, int ntracks)
{
	bool		isnull;
	ClientTrack *t;
	Datum		d;

	t = find_track(tracks, ntracks,
				   TextDatumGetCString(client_value(tuple, desc, CC_CLIENT_ID,
													&isnull)));
	d = client_value(tuple, desc, CC_NEXT_SERIAL_NUMBER, &isnull);
	t->has_baseline = !isnull;
	t->next_serial = isnull ? 0 : DatumGetInt64(d);
	t->serial_epoch = read_counter(tuple, desc, CC_SERIAL_EPOCH);
	read_time(tuple, desc, CC_SERIAL_EPOCH_STARTED,
			  &t->epoch_started, &t->has_epoch_started);
	read_time(tuple, desc, CC_LAST_MESSAGE_TIME,
			  &t->last_message_time, &t->has_last_message_time);
	t->counts.messages_processed = read_counter(tuple, desc, CC_MESSAGES_PROCESSED);
	t->counts.missing_serials = read_counter(tuple, desc, CC_MISSING_SERIALS);
	t->counts.late_fills = read_counter(tuple, desc, CC_LATE_FILLS);
	t->counts.duplicates = read_counter(tuple, desc, CC_DUPLICATES);
	t->counts.serial_resets = read_counter(tuple, desc, CC_SERIAL_RESETS);
	t->counts.unserialized_messages =
		read_counter(tuple, desc, CC_UNSERIALIZED_MESSAGES);
	t->counts.clock_skewed_messages =
		read_counter(tuple, desc, CC_CLOCK_SKEWED_MESSAGES);
	t->counts.resync_requests_issued =
		read_counter(tuple, desc, CC_RESYNC_REQUESTS_ISSUED);
	read_time(tuple, desc, CC_LAST_RESYNC_ISSUED_TIME,
			  &t->last_issued, &t->has_last_issued);
	read_time(tuple, desc, CC_LAST_RESYNC_COMPLETED_TIME,
			  &t->last_completed, &t->has_last_completed);
	t->is_new = (t->counts.messages_processed == 0);
}

/*
 * Read the stored missing ranges that the chunk's messages can meet: for
 * each serial sm_serials_to_probe() names, the range holding it, if any.
 * msgs holds the chunk's messages, tracks[k]'s from starts[k] to
 * starts[k + 1].  A client's other ranges stay unread however many there
 * are: what a batch reads and writes follows its messages, not the
 * client's history.
 */
static void
store_load_ranges(ClientTrack *tracks, int ntracks, StateMessage *msgs,
				  int *starts)
{
	Oid			argtypes[] = {TEXTARRAYOID, INT8ARRAYOID};
	int			nmsgs = starts[ntracks] - starts[0];
	char	  **ids = palloc(Max(nmsgs, 1) * sizeof(char *));
	int64	   *serials = palloc(Max(nmsgs, 1) * sizeof(int64));
	Datum	   *serial_datums;
	Datum		args[2];
	int			nprobes = 0;

	for (int k = 0; k < ntracks; k++)
	{
		int			n = sm_serials_to_probe(&tracks[k], &msgs[starts[k]],
										 starts[k + 1] - starts[k],
										 &serials[nprobes]);

		for (int j = 0; j < n; j++)
			ids[nprobes++] = tracks[k].client_id;
	}
	if (nprobes == 0)
		return;

	serial_datums = palloc(nprobes * sizeof(Datum));
	for (int i = 0; i < nprobes; i++)
		serial_datums[i] = Int64GetDatum(serials[i]);
	args[0] = text_array(ids, nprobes);
	args[1] = wide_array(serial_datums, nprobes, INT8OID);
	run_plan(&load_ranges_plan, load_ranges_sql, 2, argtypes, args, NULL,
			 SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *id = TextDatumGetCString(SPI_getbinval(tuple, desc, 1, &isnull));

		sm_serials_add_range(find_track(tracks, ntracks, id),
						  DatumGetInt64(SPI_getbinval(tuple, desc, 2, &isnull)),
						  DatumGetInt64(SPI_getbinval(tuple, desc, 3, &isnull)),
						  DatumGetTimestampTz(SPI_getbinval(tuple, desc, 4, &isnull)));
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Lock the chunk's clients (creating new ones) in client_id order and read
 * their serial state (under SERIALIZABLE without a predicate lock, see
 * lock_clients_serializable_sql), then the missing ranges their messages
 * (msgs, see store_load_ranges()) can meet.
 */
void
sm_store_load_clients(ClientTrack *tracks, int ntracks, StateMessage *msgs,
				   int *starts)
{
	Oid			argtypes[] = {TEXTARRAYOID};
	char	  **ids = palloc(ntracks * sizeof(char *));
	Datum		arg;

	for (int i = 0; i < ntracks; i++)
		ids[i] = tracks[i].client_id;
	arg = text_array(ids, ntracks);

	if (IsolationIsSerializable())
		run_plan(&lock_clients_serializable_plan,
				 lock_clients_serializable_sql, 1, argtypes, &arg, NULL,
				 SPI_OK_INSERT_RETURNING);
	else
	{
		run_plan(&create_clients_plan, create_clients_sql, 1, argtypes, &arg,
				 NULL, SPI_OK_INSERT);
		run_plan(&lock_clients_plan, lock_clients_sql, 1, argtypes, &arg, NULL,
				 SPI_OK_SELECT);
	}
	for (uint64 i = 0; i < SPI_processed; i++)
		read_client(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
					tracks, ntracks);
	if (SPI_processed != (uint64) ntracks)
		elog(ERROR, "locked %llu clients of %d",
			 (unsigned long long) SPI_processed, ntracks);
	SPI_freetuptable(SPI_tuptable);

	store_load_ranges(tracks, ntracks, msgs, starts);
}

/* The descriptor of sm_states rows: STATE_COLUMNS */
TupleDesc
sm_store_states_desc(void)
{
	TupleDesc	desc = CreateTemplateTupleDesc(SM_STATE_NATTS);

	TupleDescInitEntry(desc, 1, "client_id", TEXTOID, -1, 0);
	TupleDescInitEntry(desc, 2, "topic_type", INT4OID, -1, 0);
	TupleDescInitEntry(desc, 3, "topic_id", TEXTOID, -1, 0);
	TupleDescInitEntry(desc, 4, "topic_id_type", INT4OID, -1, 0);
	TupleDescInitEntry(desc, 5, "state_id", INT4OID, -1, 0);
	TupleDescInitEntry(desc, 6, "criticality", INT4OID, -1, 0);
	TupleDescInitEntry(desc, 7, "serial_number", INT8OID, -1, 0);
	TupleDescInitEntry(desc, 8, "serial_epoch", INT8OID, -1, 0);
	TupleDescInitEntry(desc, 9, "message_time", TIMESTAMPTZOID, -1, 0);
	TupleDescInitEntry(desc, 10, "processed_at", TIMESTAMPTZOID, -1, 0);
	TupleDescInitEntry(desc, 11, "user_params", TEXTARRAYOID, -1, 0);
	TupleDescInitEntry(desc, 12, "source", TEXTOID, -1, 0);
	TupleDescInitEntry(desc, 13, "user_name", TEXTOID, -1, 0);
	TupleDescInitEntry(desc, 14, "user_sid", TEXTOID, -1, 0);
	TupleDescInitEntry(desc, 15, "state_details_type", INT4OID, -1, 0);
	TupleDescInitEntry(desc, 16, "state_details", TEXTOID, -1, 0);
	TupleDescInitEntry(desc, 17, "priority", INT4OID, -1, 0);
	return desc;
}

/* Add msg, processed at now, as its topic's newest state to sm_states */
void
sm_store_put_state(Tuplestorestate *store, TupleDesc desc, StateMessage *msg,
				TimestampTz now)
{
	Datum		v[SM_STATE_NATTS];
	bool		n[SM_STATE_NATTS] = {false};

	v[0] = CStringGetTextDatum(msg->client_id);
	v[1] = Int32GetDatum(msg->topic_type);
	v[2] = CStringGetTextDatum(msg->topic_id);
	v[3] = Int32GetDatum(msg->topic_id_type);
	v[4] = Int32GetDatum(msg->state_id);
	v[5] = Int32GetDatum(msg->criticality);
	v[6] = Int64GetDatum(msg->serial_number);
	n[6] = !msg->has_serial;
	v[7] = Int64GetDatum(msg->serial_epoch);
	v[8] = TimestampTzGetDatum(msg->message_time);
	v[9] = TimestampTzGetDatum(now);
	v[10] = msg->user_params;
	n[10] = (msg->user_params == (Datum) 0);
	v[11] = CStringGetTextDatum(msg->source);
	v[12] = msg->user_name ? CStringGetTextDatum(msg->user_name) : (Datum) 0;
	n[12] = (msg->user_name == NULL);
	v[13] = msg->user_sid ? CStringGetTextDatum(msg->user_sid) : (Datum) 0;
	n[13] = (msg->user_sid == NULL);
	v[14] = Int32GetDatum(msg->state_details_type);
	n[14] = !msg->has_state_details_type;
	/* as the datum it is: a TOAST pointer is detoasted by the insert */
	v[15] = msg->state_details;
	n[15] = (msg->state_details == (Datum) 0);
	v[16] = Int32GetDatum(msg->priority);
	n[16] = !msg->has_priority;
	tuplestore_putvalues(store, desc, v, n);
}

/* The descriptor of sm_client_updates rows: enum ClientColumn */
static TupleDesc
client_updates_desc(void)
{
	TupleDesc	desc = CreateTemplateTupleDesc(CC_NATTS);
	static const struct
	{
		const char *name;
		Oid			type;
	}			columns[CC_NATTS] = {
		[CC_CLIENT_ID] = {"client_id", TEXTOID},
		[CC_NEXT_SERIAL_NUMBER] = {"next_serial_number", INT8OID},
		[CC_SERIAL_EPOCH] = {"serial_epoch", INT8OID},
		[CC_SERIAL_EPOCH_STARTED] = {"serial_epoch_started", TIMESTAMPTZOID},
		[CC_LAST_MESSAGE_TIME] = {"last_message_time", TIMESTAMPTZOID},
		[CC_MESSAGES_PROCESSED] = {"messages_processed", INT8OID},
		[CC_MISSING_SERIALS] = {"missing_serials", INT8OID},
		[CC_LATE_FILLS] = {"late_fills", INT8OID},
		[CC_DUPLICATES] = {"duplicates", INT8OID},
		[CC_SERIAL_RESETS] = {"serial_resets", INT8OID},
		[CC_UNSERIALIZED_MESSAGES] = {"unserialized_messages", INT8OID},
		[CC_CLOCK_SKEWED_MESSAGES] = {"clock_skewed_messages", INT8OID},
		[CC_RESYNC_REQUESTS_ISSUED] = {"resync_requests_issued", INT8OID},
		[CC_LAST_RESYNC_ISSUED_TIME] = {"last_resync_issued_time", TIMESTAMPTZOID},
		[CC_LAST_RESYNC_COMPLETED_TIME] = {"last_resync_client_completed_time", TIMESTAMPTZOID},
		[CC_LAST_PROCESSED_TIME] = {"last_processed_time", TIMESTAMPTZOID},
		[CC_NETBIOS_NAME] = {"netbios_name", TEXTOID},
		[CC_CLIENT_VERSION] = {"client_version", TEXTOID},
	};

	for (int i = 0; i < CC_NATTS; i++)
		TupleDescInitEntry(desc, i + 1, columns[i].name, columns[i].type, -1, 0);
	return desc;
}

/* Add a client's new row, as tracked, to the sm_client_updates rows */
static void
put_client(Tuplestorestate *store, TupleDesc desc, ClientTrack *t,
		   TimestampTz now)
{
	Datum		v[CC_NATTS];
	bool		n[CC_NATTS] = {false};

	v[CC_CLIENT_ID] = CStringGetTextDatum(t->client_id);
	v[CC_NEXT_SERIAL_NUMBER] = Int64GetDatum(t->next_serial);
	n[CC_NEXT_SERIAL_NUMBER] = !t->has_baseline;
	v[CC_SERIAL_EPOCH] = Int64GetDatum(t->serial_epoch);
	v[CC_SERIAL_EPOCH_STARTED] = TimestampTzGetDatum(t->epoch_started);
	n[CC_SERIAL_EPOCH_STARTED] = !t->has_epoch_started;
	v[CC_LAST_MESSAGE_TIME] = TimestampTzGetDatum(t->last_message_time);
	n[CC_LAST_MESSAGE_TIME] = !t->has_last_message_time;
	v[CC_MESSAGES_PROCESSED] = Int64GetDatum(t->counts.messages_processed);
	v[CC_MISSING_SERIALS] = Int64GetDatum(t->counts.missing_serials);
	v[CC_LATE_FILLS] = Int64GetDatum(t->counts.late_fills);
	v[CC_DUPLICATES] = Int64GetDatum(t->counts.duplicates);
	v[CC_SERIAL_RESETS] = Int64GetDatum(t->counts.serial_resets);
	v[CC_UNSERIALIZED_MESSAGES] = Int64GetDatum(t->counts.unserialized_messages);
	v[CC_CLOCK_SKEWED_MESSAGES] = Int64GetDatum(t->counts.clock_skewed_messages);
	v[CC_RESYNC_REQUESTS_ISSUED] = Int64GetDatum(t->counts.resync_requests_issued);
	v[CC_LAST_RESYNC_ISSUED_TIME] = TimestampTzGetDatum(t->last_issued);
	n[CC_LAST_RESYNC_ISSUED_TIME] = !t->has_last_issued;
	v[CC_LAST_RESYNC_COMPLETED_TIME] = TimestampTzGetDatum(t->last_completed);
	n[CC_LAST_RESYNC_COMPLETED_TIME] = !t->has_last_completed;
	v[CC_LAST_PROCESSED_TIME] = TimestampTzGetDatum(now);
	v[CC_NETBIOS_NAME] = t->netbios_name ?
		CStringGetTextDatum(t->netbios_name) : (Datum) 0;
	n[CC_NETBIOS_NAME] = (t->netbios_name == NULL);
	v[CC_CLIENT_VERSION] = t->client_version ?
		CStringGetTextDatum(t->client_version) : (Datum) 0;
	n[CC_CLIENT_VERSION] = (t->client_version == NULL);
	tuplestore_putvalues(store, desc, v, n);
}

/* Write the clients' rows back, as tracked */
static void
save_client_rows(ClientTrack *tracks, int ntracks, TimestampTz now,
				 MemoryContext batch_context)
{
	TupleDesc	desc = client_updates_desc();
	Tuplestorestate *store = tuplestore_begin_heap(false, false, work_mem);

	for (int i = 0; i < ntracks; i++)
		put_client(store, desc, &tracks[i], now);
	run_plan_with_rows(&update_clients_plan, update_clients_sql,
					   "sm_client_updates", desc, store, SPI_OK_INSERT,
					   batch_context);
	tuplestore_end(store);
}

/*
 * Write the chunk's resync events: the completion of each client's stored
 * open requests, and the requests its resets issued (completed or not).
 */
static void
save_resync_events(ClientTrack *tracks, int ntracks)
{
	int			ncompleted = 0,
				nrequests = 0;
	char	  **completed_ids = palloc(ntracks * sizeof(char *));
	Datum	   *completed_at = palloc(ntracks * sizeof(Datum));

	for (int i = 0; i < ntracks; i++)
	{
		if (tracks[i].completes_stored)
		{
			completed_ids[ncompleted] = tracks[i].client_id;
			completed_at[ncompleted++] =
				TimestampTzGetDatum(tracks[i].stored_completed_at);
		}
		nrequests += tracks[i].nreset_requests;
	}

	if (ncompleted > 0)
	{
		Oid			argtypes[] = {TEXTARRAYOID, TIMESTAMPTZARRAYOID};
		Datum		args[2];

		args[0] = text_array(completed_ids, ncompleted);
		args[1] = wide_array(completed_at, ncompleted, TIMESTAMPTZOID);
		run_plan(&complete_requests_plan, complete_requests_sql, 2, argtypes,
				 args, NULL, SPI_OK_UPDATE);
	}

	if (nrequests > 0)
	{
		Oid			argtypes[] = {TEXTARRAYOID, TIMESTAMPTZARRAYOID,
		TIMESTAMPTZARRAYOID};
		Datum		args[3];
		char	  **ids = palloc(nrequests * sizeof(char *));
		Datum	   *issued = palloc(nrequests * sizeof(Datum));
		Datum	   *completed = palloc(nrequests * sizeof(Datum));
		bool	   *completed_null = palloc(nrequests * sizeof(bool));
		int			dims[1] = {nrequests};
		int			lbs[1] = {1};
		int			k = 0;
		int64		nopen = 0;	/* requests left to deliver */

		for (int i = 0; i < ntracks; i++)
		{
			for (int r = 0; r < tracks[i].nreset_requests; r++, k++)
			{
				ResetRequest *request = &tracks[i].reset_requests[r];

				ids[k] = tracks[i].client_id;
				issued[k] = TimestampTzGetDatum(request->issued_at);
				completed[k] = TimestampTzGetDatum(request->completed_at);
				completed_null[k] = !request->completed;
				if (!request->completed)
					nopen++;
			}
		}
		args[0] = text_array(ids, nrequests);
		args[1] = wide_array(issued, nrequests, TIMESTAMPTZOID);
		args[2] = PointerGetDatum(construct_md_array(completed, completed_null,
													 1, dims, lbs,
													 TIMESTAMPTZOID, 8,
													 FLOAT8PASSBYVAL,
													 TYPALIGN_DOUBLE));
		run_plan(&insert_reset_requests_plan, insert_reset_requests_sql, 3,
				 argtypes, args, NULL, SPI_OK_INSERT);
		sm_notify_resync_issued(nopen);
	}
}

/*
 * Write back what changed in the tracks' missing ranges: one delete of the
 * stored rows that changed or went (by key intervals: one row, the rows
 * below a resync answer, or all of a reset client's), then one insert of
 * the ranges not stored.  A range that changed is deleted and inserted
 * again; unchanged ranges are not touched.
 */
static void
store_save_ranges(ClientTrack *tracks, int ntracks)
{
	Oid			argtypes[] = {TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID,
	TIMESTAMPTZARRAYOID};
	Datum		args[4];
	char	  **ids;
	Datum	   *firsts;
	Datum	   *lasts;
	Datum	   *times;
	int			ndeletes = 0,
				ninserts = 0,
				k = 0;

	for (int i = 0; i < ntracks; i++)
	{
		ClientTrack *t = &tracks[i];

		if (!t->ranges_changed)
			continue;
		ndeletes += t->drop_stored ? 1 : (t->drop_below > 0) + t->ndropped;
		for (int r = 0; r < t->nranges; r++)
			ninserts += !t->ranges[r].stored;
	}
	ids = palloc(Max(Max(ndeletes, ninserts), 1) * sizeof(char *));
	firsts = palloc(Max(Max(ndeletes, ninserts), 1) * sizeof(Datum));
	lasts = palloc(Max(Max(ndeletes, ninserts), 1) * sizeof(Datum));
	times = palloc(Max(ninserts, 1) * sizeof(Datum));

	if (ndeletes > 0)
	{
		for (int i = 0; i < ntracks; i++)
		{
			ClientTrack *t = &tracks[i];

			if (!t->ranges_changed)
				continue;
			if (t->drop_stored || t->drop_below > 0)
			{
				ids[k] = t->client_id;
				firsts[k] = Int64GetDatum(PG_INT64_MIN);
				lasts[k++] = Int64GetDatum(t->drop_stored ? PG_INT64_MAX :
										   t->drop_below - 1);
			}
			if (t->drop_stored)
				continue;
			for (int r = 0; r < t->ndropped; r++, k++)
			{
				ids[k] = t->client_id;
				firsts[k] = lasts[k] = Int64GetDatum(t->dropped[r]);
			}
		}
		Assert(k == ndeletes);
		args[0] = text_array(ids, ndeletes);
		args[1] = wide_array(firsts, ndeletes, INT8OID);
		args[2] = wide_array(lasts, ndeletes, INT8OID);
		run_plan(&delete_ranges_plan, delete_ranges_sql, 3, argtypes, args,
				 NULL, SPI_OK_DELETE);
	}

	if (ninserts > 0)
	{
		k = 0;
		for (int i = 0; i < ntracks; i++)
		{
			ClientTrack *t = &tracks[i];

			if (!t->ranges_changed)
				continue;
			for (int r = 0; r < t->nranges; r++)
			{
				MissingRange *range = &t->ranges[r];

				if (range->stored)
					continue;
				ids[k] = t->client_id;
				firsts[k] = Int64GetDatum(range->first_serial);
				lasts[k] = Int64GetDatum(range->last_serial);
				times[k++] = TimestampTzGetDatum(range->detected_at);
			}
		}
		Assert(k == ninserts);
		args[0] = text_array(ids, ninserts);
		args[1] = wide_array(firsts, ninserts, INT8OID);
		args[2] = wide_array(lasts, ninserts, INT8OID);
		args[3] = wide_array(times, ninserts, TIMESTAMPTZOID);
		run_plan(&insert_ranges_plan, insert_ranges_sql, 4, argtypes, args,
				 NULL, SPI_OK_INSERT);
	}
}

/*
 * Write the tracks back: clients, missing ranges, resync requests.  now is
 * the chunk's engine clock, the clients' last processing time.
 */
void
sm_store_save_clients(ClientTrack *tracks, int ntracks, TimestampTz now,
				   MemoryContext batch_context)
{
	save_client_rows(tracks, ntracks, now, batch_context);
	store_save_ranges(tracks, ntracks);
	save_resync_events(tracks, ntracks);
}

/*
 * Write the chunk's newest states: plain inserts for new clients (they have
 * none yet), upserts keeping the newer of each message and the stored state
 * for the others, and the states batch.c decided against the stored rows.
 */
void
sm_store_write_states(TupleDesc desc, Tuplestorestate *new_states,
				   Tuplestorestate *newer_states,
				   Tuplestorestate *decided_states,
				   MemoryContext batch_context)
{
	if (tuplestore_tuple_count(new_states) > 0)
		run_plan_with_rows(&insert_states_plan, insert_states_sql, "sm_states",
						   desc, new_states, SPI_OK_INSERT, batch_context);
	if (tuplestore_tuple_count(newer_states) > 0)
		run_plan_with_rows(&upsert_states_plan, upsert_states_sql, "sm_states",
						   desc, newer_states, SPI_OK_INSERT, batch_context);
	if (tuplestore_tuple_count(decided_states) > 0)
		run_plan_with_rows(&replace_states_plan, replace_states_sql, "sm_states",
						   desc, decided_states, SPI_OK_INSERT, batch_context);
}

/* Order states by client, then topic type and id */
int
sm_compare_topics(const StateMessage *a, const StateMessage *b)
{
	if (a->topic_type != b->topic_type)
		return a->topic_type < b->topic_type ? -1 : 1;
	return strcmp(a->topic_id, b->topic_id);
}

static int
compare_stored(const void *a, const void *b)
{
	const StateMessage *sa = (const StateMessage *) a;
	const StateMessage *sb = (const StateMessage *) b;
	int			cmp = strcmp(sa->client_id, sb->client_id);

	return cmp != 0 ? cmp : sm_compare_topics(sa, sb);
}

/*
 * Read the current state of the (locked) clients whose tracks need it, so
 * that their new messages are folded into it exactly as if they came one at
 * a time: the stored rows of the topics their messages name (the only ones
 * a fold can meet), not the client's other topics.  Each such track gets
 * its rows, as messages sorted by topic.
 */
void
sm_store_load_states(ClientTrack *tracks, int ntracks)
{
	Oid			argtypes[] = {TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID};
	Datum		args[3];
	char	  **ids;
	Datum	   *types;
	char	  **topics;
	StateMessage *stored;
	int			nstored;
	int			nkeys = 0;
	int			k = 0;

	for (int i = 0; i < ntracks; i++)
		if (tracks[i].needs_stored)
			nkeys += tracks[i].nby_topic;
	if (nkeys == 0)
		return;
	ids = palloc(nkeys * sizeof(char *));
	types = palloc(nkeys * sizeof(Datum));
	topics = palloc(nkeys * sizeof(char *));
	nkeys = 0;
	for (int i = 0; i < ntracks; i++)
	{
		ClientTrack *t = &tracks[i];

		if (!t->needs_stored)
			continue;
		/* by_topic is sorted by topic: one key per run */
		for (int j = 0; j < t->nby_topic; j++)
		{
			StateMessage *m = t->by_topic[j];

			if (j > 0 && sm_compare_topics(m, t->by_topic[j - 1]) == 0)
				continue;
			ids[nkeys] = t->client_id;
			types[nkeys] = Int32GetDatum(m->topic_type);
			topics[nkeys++] = m->topic_id;
		}
	}
	args[0] = text_array(ids, nkeys);
	args[1] = PointerGetDatum(construct_array(types, nkeys, INT4OID, 4, true,
											  TYPALIGN_INT));
	args[2] = text_array(topics, nkeys);
	run_plan(&load_states_plan, load_states_sql, 3, argtypes, args, NULL,
			 SPI_OK_SELECT);

	nstored = (int) SPI_processed;
	stored = palloc0(Max(nstored, 1) * sizeof(StateMessage));
	for (int i = 0; i < nstored; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		StateMessage *m = &stored[i];
		bool		isnull;
		Datum		d;

		m->client_id = TextDatumGetCString(SPI_getbinval(tuple, desc, 1, &isnull));
		m->topic_type = DatumGetInt32(SPI_getbinval(tuple, desc, 2, &isnull));
		m->topic_id = TextDatumGetCString(SPI_getbinval(tuple, desc, 3, &isnull));
		d = SPI_getbinval(tuple, desc, 4, &isnull);
		m->has_serial = !isnull;
		m->serial_number = isnull ? 0 : DatumGetInt64(d);
		m->serial_epoch = DatumGetInt64(SPI_getbinval(tuple, desc, 5, &isnull));
		m->message_time = DatumGetTimestampTz(SPI_getbinval(tuple, desc, 6, &isnull));
		m->effective_time = sm_effective_time(m->message_time,
											  DatumGetTimestampTz(SPI_getbinval(tuple, desc, 7, &isnull)));
		m->row_number = 0;		/* before every message of the batch */
	}
	SPI_freetuptable(SPI_tuptable);

	if (nstored > 1)
		qsort(stored, nstored, sizeof(StateMessage), compare_stored);
	for (int i = 0; i < ntracks; i++)
	{
		while (k < nstored && strcmp(stored[k].client_id, tracks[i].client_id) < 0)
			k++;
		tracks[i].stored = &stored[k];
		tracks[i].nstored = 0;
		while (k < nstored && strcmp(stored[k].client_id, tracks[i].client_id) == 0)
		{
			tracks[i].nstored++;
			k++;
		}
	}
}

/*
 * Store a bad row in state_msg.rejected_messages, as given (a large
 * state_details too: the insert detoasts and stores it)
 */
void
sm_store_rejected(Datum *values, bool *isnull, int64 row_number, int sqlstate,
			   const char *reason)
{
	static Oid	argtypes[] = {TEXTOID, TEXTOID, INT8OID,
		/* the inbox's columns, in InboxColumn order */
		TEXTOID, INT8OID, INT4OID, TEXTOID, INT4OID, INT4OID, INT4OID,
		TIMESTAMPTZOID, TEXTARRAYOID, TEXTOID,
		TEXTOID, TEXTOID, INT4OID, TEXTOID, INT4OID, TEXTOID, TEXTOID,
	TIMESTAMPTZOID};
	Datum		args[3 + INBOX_NATTS + 1];
	char		nulls[3 + INBOX_NATTS + 1];

	StaticAssertStmt(lengthof(argtypes) == 3 + INBOX_NATTS + 1,
					 "a parameter per inbox column");
	args[0] = CStringGetTextDatum(reason);
	args[1] = CStringGetTextDatum(unpack_sql_state(sqlstate));
	args[2] = Int64GetDatum(row_number);
	nulls[0] = nulls[1] = nulls[2] = ' ';
	for (int i = 0; i < INBOX_NATTS; i++)
	{
		args[3 + i] = values[i];
		nulls[3 + i] = isnull[i] ? 'n' : ' ';
	}
	args[3 + INBOX_NATTS] = TimestampTzGetDatum(sm_engine_now());
	nulls[3 + INBOX_NATTS] = ' ';
	run_plan(&reject_plan, reject_sql, lengthof(argtypes), argtypes, args,
			 nulls, SPI_OK_INSERT);
}
