/*-------------------------------------------------------------------------
 *
 * inbox_am.c
 *	  Table access method for the state_msg inbox: stores nothing.
 *
 * Rows inserted into an inbox table are handed to the executor as usual, so
 * an AFTER INSERT ... FOR EACH STATEMENT trigger with a transition table sees
 * every one of them, but the access method itself keeps none.  Scans find
 * nothing, the relation's files stay empty, and there is never anything to
 * update, delete, lock, vacuum or freeze.
 *
 * Because nothing is kept, a row is accepted only when that trigger will
 * process it (see inbox_check_insert): never by a table without an enabled
 * processing trigger, in a session_replication_role it does not fire in, or
 * from a logical replication worker, which fires no statement triggers.
 *
 * Values are never toasted here: there is no TOAST table, nothing is kept.
 * The transition table holds each value as the executor produced it: in
 * line, or a TOAST pointer into the table an INSERT ... SELECT read it from,
 * which the batch keeps as a pointer while it runs (see batch.c).
 *
 * Inserted slots get no TID.  Hence row-level AFTER triggers see no NEW row
 * and foreign keys of the table are not checked; and indexes are refused,
 * since every entry would carry that same invalid TID (CREATE INDEX
 * CONCURRENTLY already by an event trigger, before it creates anything).
 *
 * IDENTIFICATION
 *	  src/inbox_am.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/multixact.h"
#include "access/relscan.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_trigger.h"
#include "catalog/storage.h"
#include "catalog/storage_xlog.h"
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "commands/vacuum.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "replication/logicalworker.h"
#include "storage/procarray.h"
#include "storage/smgr.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "state_msg.h"

PG_FUNCTION_INFO_V1(state_msg_inbox_am_handler);
PG_FUNCTION_INFO_V1(state_msg_inbox_index_guard);

/*
 * What an insert must know about its table, kept in rd_amcache: whether a
 * trigger that processes its rows fires in each session_replication_role.
 * Built from the relcache's trigger list, so any change to the table's
 * triggers (which sends a relcache invalidation, freeing rd_amcache) rebuilds
 * it; a change to any function (CREATE OR REPLACE of the trigger function)
 * bumps proc_generation and rebuilds it too.
 */
typedef struct InboxInsertGuard
{
	uint64		proc_generation;	/* proc_generation when built */
	bool		fires_on_origin;	/* in roles origin and local */
	bool		fires_on_replica;	/* in role replica */
	bool		has_trigger;	/* a processing trigger exists, even disabled */
	NameData	trigger_name;	/* one of them, for messages */
} InboxInsertGuard;

/* Bumped by every invalidation of pg_proc; stale guards are rebuilt */
static uint64 proc_generation = 0;
static bool proc_callback_registered = false;

static void inbox_no_modify(Relation rel) pg_attribute_noreturn();
static void inbox_refuse_index(const char *relname) pg_attribute_noreturn();
static void inbox_refuse_unprocessed(Relation rel,
									 InboxInsertGuard *guard) pg_attribute_noreturn();

/*
 * Report that rows of an inbox table cannot be updated or deleted.  Scans
 * never return a row, so the executor should never get this far.
 */
static void
inbox_no_modify(Relation rel)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("cannot update or delete rows of table \"%s\"",
					RelationGetRelationName(rel)),
			 errdetail("Rows written to it are processed and discarded at once.")));
}

/*
 * Create the (always empty) main fork, plus an init fork for an unlogged
 * relation so that it is reset correctly after a crash.  As in heap, the init
 * fork is WAL-logged and synced at once, whatever wal_level is.
 */
static void
inbox_create_storage(const RelFileNode *rnode, char persistence)
{
	SMgrRelation srel;

	srel = RelationCreateStorage(*rnode, persistence, true);

	if (persistence == RELPERSISTENCE_UNLOGGED)
	{
		smgrcreate(srel, INIT_FORKNUM, false);
		log_smgrcreate(rnode, INIT_FORKNUM);
		smgrimmedsync(srel, INIT_FORKNUM);
	}

	smgrclose(srel);
}

/* ------------------------------------------------------------------------
 * Slot related callbacks
 * ------------------------------------------------------------------------
 */

/*
 * Inserted rows arrive in, and are left in, plain virtual slots.
 */
static const TupleTableSlotOps *
inbox_slot_callbacks(Relation rel)
{
	return &TTSOpsVirtual;
}

/* ------------------------------------------------------------------------
 * Sequential, parallel and sample scans
 * ------------------------------------------------------------------------
 */

/*
 * Start a scan; the descriptor only remembers what scan_end must release.
 */
static TableScanDesc
inbox_scan_begin(Relation rel, Snapshot snapshot,
				 int nkeys, struct ScanKeyData *key,
				 ParallelTableScanDesc pscan, uint32 flags)
{
	TableScanDesc scan = palloc0(sizeof(TableScanDescData));

	scan->rs_rd = rel;
	scan->rs_snapshot = snapshot;
	scan->rs_nkeys = nkeys;
	scan->rs_key = key;
	scan->rs_flags = flags;
	scan->rs_parallel = pscan;

	return scan;
}

/*
 * End a scan, unregistering the snapshot if the scan owns it (parallel
 * workers' scans do).
 */
static void
inbox_scan_end(TableScanDesc scan)
{
	if (scan->rs_flags & SO_TEMP_SNAPSHOT)
		UnregisterSnapshot(scan->rs_snapshot);

	pfree(scan);
}

/*
 * Restart a scan: there is no position to reset.
 */
static void
inbox_scan_rescan(TableScanDesc scan, struct ScanKeyData *key,
				  bool set_params, bool allow_strat, bool allow_sync,
				  bool allow_pagemode)
{
}

/*
 * Return the next row: there never is one.
 */
static bool
inbox_scan_getnextslot(TableScanDesc scan, ScanDirection direction,
					   TupleTableSlot *slot)
{
	ExecClearTuple(slot);
	return false;
}

/*
 * Pick the next block for TABLESAMPLE: there are none.
 */
static bool
inbox_scan_sample_next_block(TableScanDesc scan,
							 struct SampleScanState *scanstate)
{
	return false;
}

/*
 * Return the next sampled row: there never is one.
 */
static bool
inbox_scan_sample_next_tuple(TableScanDesc scan,
							 struct SampleScanState *scanstate,
							 TupleTableSlot *slot)
{
	ExecClearTuple(slot);
	return false;
}

/* ------------------------------------------------------------------------
 * Index scans
 *
 * The table can have no index (see inbox_index_build_range_scan), so these
 * are never called; they behave as for an index whose entries all point
 * nowhere.
 * ------------------------------------------------------------------------
 */

/*
 * Prepare to fetch rows by TID for an index scan.
 */
static IndexFetchTableData *
inbox_index_fetch_begin(Relation rel)
{
	IndexFetchTableData *scan = palloc0(sizeof(IndexFetchTableData));

	scan->rel = rel;

	return scan;
}

/*
 * Forget per-row state between index fetches: there is none.
 */
static void
inbox_index_fetch_reset(IndexFetchTableData *scan)
{
}

/*
 * Release the index fetch state.
 */
static void
inbox_index_fetch_end(IndexFetchTableData *scan)
{
	pfree(scan);
}

/*
 * Fetch the row an index entry points to.  None exists, so report the entry
 * dead to everyone; the index AM may then remove it.
 */
static bool
inbox_index_fetch_tuple(IndexFetchTableData *scan, ItemPointer tid,
						Snapshot snapshot, TupleTableSlot *slot,
						bool *call_again, bool *all_dead)
{
	*call_again = false;
	if (all_dead)
		*all_dead = true;

	return false;
}

/*
 * Decide which index entries can be deleted: all of them, since none points
 * to a row.  No row was ever visible, so there is no conflict horizon.
 */
static TransactionId
inbox_index_delete_tuples(Relation rel, TM_IndexDeleteOp *delstate)
{
	for (int i = 0; i < delstate->ndeltids; i++)
		delstate->status[delstate->deltids[i].id].knowndeletable = true;

	return InvalidTransactionId;
}

/* ------------------------------------------------------------------------
 * Non-modifying operations on individual rows
 * ------------------------------------------------------------------------
 */

/*
 * Fetch a row by TID (TID scans, triggers): none exists.
 */
static bool
inbox_tuple_fetch_row_version(Relation rel, ItemPointer tid,
							  Snapshot snapshot, TupleTableSlot *slot)
{
	return false;
}

/*
 * Check a TID for a TID scan: none can point to a row.
 */
static bool
inbox_tuple_tid_valid(TableScanDesc scan, ItemPointer tid)
{
	return false;
}

/*
 * Follow the update chain from a TID: there is none, so leave it unchanged.
 */
static void
inbox_tuple_get_latest_tid(TableScanDesc scan, ItemPointer tid)
{
}

/*
 * Check a row's visibility: a row of this table is never visible.
 */
static bool
inbox_tuple_satisfies_snapshot(Relation rel, TupleTableSlot *slot,
							   Snapshot snapshot)
{
	return false;
}

/* ------------------------------------------------------------------------
 * Manipulation of rows
 * ------------------------------------------------------------------------
 */

/*
 * Refuse rows routed to an inbox table that is a partition: its statement
 * trigger fires only for inserts naming it, so they would be discarded
 * unprocessed.
 */
static void
inbox_check_not_partition(Relation rel)
{
	if (rel->rd_rel->relispartition)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot insert into table \"%s\" as a partition",
						RelationGetRelationName(rel)),
				 errdetail("Rows routed to it would be discarded without being processed."),
				 errhint("Detach it and insert into it directly.")));
}

/*
 * Note that some function changed: every guard must be rebuilt, since the
 * change may have been to a trigger's function.
 */
static void
inbox_proc_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	proc_generation++;
}

/*
 * Build a table's insert guard from its triggers.  A trigger processes the
 * rows if it is an AFTER INSERT ... FOR EACH STATEMENT trigger with a NEW
 * TABLE, no WHEN condition, executing state_msg_inbox_process(); tgenabled
 * then decides the roles it fires in, as in commands/trigger.c.  Also checks
 * the table's columns once, so that a COPY into an unusable table fails on
 * its first rows rather than after reading all of them.
 */
static InboxInsertGuard *
inbox_build_guard(Relation rel)
{
	TriggerDesc *trigdesc = rel->trigdesc;
	InboxInsertGuard guard;

	if (!proc_callback_registered)
	{
		CacheRegisterSyscacheCallback(PROCOID, inbox_proc_changed, (Datum) 0);
		proc_callback_registered = true;
	}

	memset(&guard, 0, sizeof(guard));
	guard.proc_generation = proc_generation;
	for (int i = 0; trigdesc != NULL && i < trigdesc->numtriggers; i++)
	{
		Trigger    *trigger = &trigdesc->triggers[i];

		if (!TRIGGER_FOR_AFTER(trigger->tgtype) ||
			!TRIGGER_FOR_INSERT(trigger->tgtype) ||
			TRIGGER_FOR_ROW(trigger->tgtype) ||
			trigger->tgnewtable == NULL ||
			trigger->tgqual != NULL ||
			!sm_inbox_is_process_function(trigger->tgfoid))
			continue;

		if (!guard.has_trigger)
			namestrcpy(&guard.trigger_name, trigger->tgname);
		guard.has_trigger = true;
		if (trigger->tgenabled == TRIGGER_FIRES_ON_ORIGIN ||
			trigger->tgenabled == TRIGGER_FIRES_ALWAYS)
			guard.fires_on_origin = true;
		if (trigger->tgenabled == TRIGGER_FIRES_ON_REPLICA ||
			trigger->tgenabled == TRIGGER_FIRES_ALWAYS)
			guard.fires_on_replica = true;
	}

	if (guard.has_trigger)
	{
		int			attnos[INBOX_NATTS];

		sm_inbox_map_columns(RelationGetDescr(rel), RelationGetRelationName(rel),
						  attnos);
	}

	if (rel->rd_amcache == NULL)
		rel->rd_amcache = MemoryContextAlloc(CacheMemoryContext,
											 sizeof(InboxInsertGuard));
	memcpy(rel->rd_amcache, &guard, sizeof(guard));

	return (InboxInsertGuard *) rel->rd_amcache;
}

/*
 * How many trigger functions are executing (pg_trigger_depth()).  Zero in a
 * logical replication worker means the worker itself is writing.
 */
static int
trigger_depth(void)
{
	LOCAL_FCINFO(fcinfo, 0);

	InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
	return DatumGetInt32(pg_trigger_depth(fcinfo));
}

/*
 * Refuse a row that no trigger would process (see inbox_check_insert).
 */
static void
inbox_refuse_unprocessed(Relation rel, InboxInsertGuard *guard)
{
	char	   *relname = RelationGetRelationName(rel);
	char	   *qualname;

	qualname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
										  relname);
	if (!guard->has_trigger)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot insert into table \"%s\" without a trigger to process its rows",
						relname),
				 errdetail("The table keeps no rows: only an AFTER INSERT ... FOR EACH STATEMENT trigger with a NEW TABLE that executes state_msg.inbox_process() processes them, and it has none."),
				 errhint("Create one with CREATE TRIGGER inbox_process AFTER INSERT ON %s REFERENCING NEW TABLE AS new_messages FOR EACH STATEMENT EXECUTE FUNCTION state_msg.inbox_process().",
						 qualname)));
	if (!guard->fires_on_origin && !guard->fires_on_replica)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot insert into table \"%s\" while trigger \"%s\" is disabled",
						relname, NameStr(guard->trigger_name)),
				 errdetail("The table keeps no rows: they would be discarded without being processed."),
				 errhint("Enable it with ALTER TABLE %s ENABLE TRIGGER %s.",
						 qualname,
						 quote_identifier(NameStr(guard->trigger_name)))));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot insert into table \"%s\" while session_replication_role is %s",
					relname,
					GetConfigOption("session_replication_role", false, false)),
			 errdetail("Trigger \"%s\", which processes its rows, does not fire in this role, and the table keeps no rows.",
					   NameStr(guard->trigger_name)),
			 errhint("Let it fire in every role with ALTER TABLE %s ENABLE ALWAYS TRIGGER %s.",
					 qualname,
					 quote_identifier(NameStr(guard->trigger_name)))));
}

/*
 * Accept rows into an inbox table only if they will be processed: the table
 * keeps none, so a row whose processing trigger does not fire would be lost
 * without a word.  Refuses rows routed to a partition, rows written by a
 * logical replication worker itself (the apply worker fires no statement
 * triggers; its initial copy is refused too, so that a subscription does not
 * load the existing rows and then fail on every change; rows a trigger
 * inserts from within a worker are statements of their own and fine), and
 * rows of a table whose processing triggers are missing, disabled, or do not
 * fire in the current session_replication_role.  Called for every row or
 * batch of rows, so the trigger search is cached (inbox_build_guard).
 */
static inline void
inbox_check_insert(Relation rel)
{
	InboxInsertGuard *guard = (InboxInsertGuard *) rel->rd_amcache;
	bool		fires;

	inbox_check_not_partition(rel);

	if (unlikely(IsLogicalWorker()) && trigger_depth() == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot replicate into table \"%s\"",
						RelationGetRelationName(rel)),
				 errdetail("The table keeps no rows, and changes applied by logical replication fire no statement triggers, so they would be discarded without being processed."),
				 errhint("Replicate into an ordinary table and insert its rows into the inbox from there.")));

	if (unlikely(guard == NULL || guard->proc_generation != proc_generation))
		guard = inbox_build_guard(rel);

	if (SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA)
		fires = guard->fires_on_replica;
	else
		fires = guard->fires_on_origin;
	if (unlikely(!fires))
		inbox_refuse_unprocessed(rel, guard);
}

/*
 * Insert a row: keep nothing.  The slot is left intact for RETURNING and for
 * AFTER triggers' transition tables; it gets the table's OID but no TID.
 */
static void
inbox_tuple_insert(Relation rel, TupleTableSlot *slot, CommandId cid,
				   int options, struct BulkInsertStateData *bistate)
{
	inbox_check_insert(rel);
	slot->tts_tableOid = RelationGetRelid(rel);
	ItemPointerSetInvalid(&slot->tts_tid);
}

/*
 * Insert a row for INSERT ... ON CONFLICT: keep nothing, as above.
 */
static void
inbox_tuple_insert_speculative(Relation rel, TupleTableSlot *slot,
							   CommandId cid, int options,
							   struct BulkInsertStateData *bistate,
							   uint32 specToken)
{
	inbox_check_insert(rel);
	slot->tts_tableOid = RelationGetRelid(rel);
	ItemPointerSetInvalid(&slot->tts_tid);
}

/*
 * Confirm or abort a speculative insertion: nothing was stored either way.
 */
static void
inbox_tuple_complete_speculative(Relation rel, TupleTableSlot *slot,
								 uint32 specToken, bool succeeded)
{
}

/*
 * Insert a batch of rows (COPY FROM): keep nothing, as for single rows.
 */
static void
inbox_multi_insert(Relation rel, TupleTableSlot **slots, int nslots,
				   CommandId cid, int options,
				   struct BulkInsertStateData *bistate)
{
	inbox_check_insert(rel);
	for (int i = 0; i < nslots; i++)
	{
		slots[i]->tts_tableOid = RelationGetRelid(rel);
		ItemPointerSetInvalid(&slots[i]->tts_tid);
	}
}

/*
 * Delete a row: not supported.
 */
static TM_Result
inbox_tuple_delete(Relation rel, ItemPointer tid, CommandId cid,
				   Snapshot snapshot, Snapshot crosscheck, bool wait,
				   TM_FailureData *tmfd, bool changingPart)
{
	inbox_no_modify(rel);
}

/*
 * Update a row: not supported.
 */
static TM_Result
inbox_tuple_update(Relation rel, ItemPointer otid, TupleTableSlot *slot,
				   CommandId cid, Snapshot snapshot, Snapshot crosscheck,
				   bool wait, TM_FailureData *tmfd,
				   LockTupleMode *lockmode, bool *update_indexes)
{
	inbox_no_modify(rel);
}

/*
 * Lock a row (SELECT ... FOR UPDATE and the like): not supported.
 */
static TM_Result
inbox_tuple_lock(Relation rel, ItemPointer tid, Snapshot snapshot,
				 TupleTableSlot *slot, CommandId cid, LockTupleMode mode,
				 LockWaitPolicy wait_policy, uint8 flags,
				 TM_FailureData *tmfd)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("cannot lock rows of table \"%s\"",
					RelationGetRelationName(rel)),
			 errdetail("Rows written to it are processed and discarded at once.")));
}

/* ------------------------------------------------------------------------
 * DDL related callbacks
 * ------------------------------------------------------------------------
 */

/*
 * Create storage for a new relfilenode (CREATE TABLE, TRUNCATE, rewrites).
 * The table never holds an XID or multixact, so it needs no freeze horizons;
 * VACUUM and autovacuum accept invalid ones.
 */
static void
inbox_relation_set_new_filenode(Relation rel, const RelFileNode *newrnode,
								char persistence, TransactionId *freezeXid,
								MultiXactId *minmulti)
{
	*freezeXid = InvalidTransactionId;
	*minmulti = InvalidMultiXactId;

	inbox_create_storage(newrnode, persistence);
}

/*
 * Truncate in place (TRUNCATE of a table created in the same transaction):
 * the files are always empty already.
 */
static void
inbox_relation_nontransactional_truncate(Relation rel)
{
}

/*
 * Move the relation to a new relfilenode (ALTER TABLE ... SET TABLESPACE).
 * There is no data to copy: create the new files and drop the old ones.
 */
static void
inbox_relation_copy_data(Relation rel, const RelFileNode *newrnode)
{
	inbox_create_storage(newrnode, rel->rd_rel->relpersistence);
	RelationDropStorage(rel);
}

/*
 * Copy rows for CLUSTER and VACUUM FULL: there are none.  Keep the new
 * relation free of freeze horizons, like a newly created one.
 */
static void
inbox_relation_copy_for_cluster(Relation OldTable, Relation NewTable,
								Relation OldIndex, bool use_sort,
								TransactionId OldestXmin,
								TransactionId *xid_cutoff,
								MultiXactId *multi_cutoff,
								double *num_tuples,
								double *tups_vacuumed,
								double *tups_recently_dead)
{
	*xid_cutoff = InvalidTransactionId;
	*multi_cutoff = InvalidMultiXactId;
	*num_tuples = 0;
	*tups_vacuumed = 0;
	*tups_recently_dead = 0;
}

/*
 * VACUUM: nothing to clean up.  Record the table as empty, and if a rewrite
 * (ALTER TABLE, REFRESH MATERIALIZED VIEW) gave it freeze horizons, advance
 * them as far as possible, so that it neither holds back datfrozenxid nor
 * keeps triggering anti-wraparound vacuums.  Report the vacuum to the
 * statistics system like heap does.
 */
static void
inbox_relation_vacuum(Relation rel, struct VacuumParams *params,
					  BufferAccessStrategy bstrategy)
{
	TransactionId frozenxid = InvalidTransactionId;
	MultiXactId minmulti = InvalidMultiXactId;

	if (TransactionIdIsValid(rel->rd_rel->relfrozenxid))
		frozenxid = GetOldestNonRemovableTransactionId(rel);
	if (MultiXactIdIsValid(rel->rd_rel->relminmxid))
		minmulti = GetOldestMultiXactId();

	vac_update_relstats(rel, 0, 0, 0, rel->rd_rel->relhasindex,
						frozenxid, minmulti, NULL, NULL, false);

	pgstat_report_vacuum(RelationGetRelid(rel), rel->rd_rel->relisshared,
						 0, 0);
}

/*
 * Read a block for ANALYZE: there are none.
 */
static bool
inbox_scan_analyze_next_block(TableScanDesc scan, BlockNumber blockno,
							  BufferAccessStrategy bstrategy)
{
	return false;
}

/*
 * Return the next row of a block for ANALYZE: there never is one.
 */
static bool
inbox_scan_analyze_next_tuple(TableScanDesc scan, TransactionId OldestXmin,
							  double *liverows, double *deadrows,
							  TupleTableSlot *slot)
{
	return false;
}

/*
 * Report that an inbox table cannot have an index.
 */
static void
inbox_refuse_index(const char *relname)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("cannot create index on table \"%s\"", relname),
			 errdetail("Rows written to it are processed and discarded at once.")));
}

/*
 * Build an index: refused.  The executor would add an entry to it for every
 * inserted row, all with the same invalid TID, which btree rejects as
 * corruption; and nothing would ever remove those entries.
 */
static double
inbox_index_build_range_scan(Relation table_rel, Relation index_rel,
							 struct IndexInfo *index_info, bool allow_sync,
							 bool anyvisible, bool progress,
							 BlockNumber start_blockno,
							 BlockNumber numblocks,
							 IndexBuildCallback callback,
							 void *callback_state, TableScanDesc scan)
{
	inbox_refuse_index(RelationGetRelationName(table_rel));
}

/*
 * Find rows missing from an index (CREATE INDEX CONCURRENTLY): never
 * reached, as the event trigger refuses the command and building the index
 * would fail first.
 */
static void
inbox_index_validate_scan(Relation table_rel, Relation index_rel,
						  struct IndexInfo *index_info, Snapshot snapshot,
						  struct ValidateIndexState *state)
{
}

/* ------------------------------------------------------------------------
 * Planner related callbacks
 * ------------------------------------------------------------------------
 */

/*
 * Size of a fork in bytes: always zero.
 */
static uint64
inbox_relation_size(Relation rel, ForkNumber forkNumber)
{
	return 0;
}

/*
 * A table that stores nothing needs no TOAST table.
 */
static bool
inbox_relation_needs_toast_table(Relation rel)
{
	return false;
}

/*
 * Estimate the size for the planner: empty, and known to stay so.
 */
static void
inbox_relation_estimate_size(Relation rel, int32 *attr_widths,
							 BlockNumber *pages, double *tuples,
							 double *allvisfrac)
{
	*pages = 0;
	*tuples = 0;
	*allvisfrac = 0;
}

/* ------------------------------------------------------------------------
 * Definition of the access method
 * ------------------------------------------------------------------------
 */

/*
 * Bitmap scans and TID range scans are left out; the planner then does not
 * consider them.  Parallel scans use the generic block-based helpers, which
 * see zero blocks.
 */
static const TableAmRoutine inbox_methods = {
	.type = T_TableAmRoutine,

	.slot_callbacks = inbox_slot_callbacks,

	.scan_begin = inbox_scan_begin,
	.scan_end = inbox_scan_end,
	.scan_rescan = inbox_scan_rescan,
	.scan_getnextslot = inbox_scan_getnextslot,

	.parallelscan_estimate = table_block_parallelscan_estimate,
	.parallelscan_initialize = table_block_parallelscan_initialize,
	.parallelscan_reinitialize = table_block_parallelscan_reinitialize,

	.index_fetch_begin = inbox_index_fetch_begin,
	.index_fetch_reset = inbox_index_fetch_reset,
	.index_fetch_end = inbox_index_fetch_end,
	.index_fetch_tuple = inbox_index_fetch_tuple,

	.tuple_fetch_row_version = inbox_tuple_fetch_row_version,
	.tuple_tid_valid = inbox_tuple_tid_valid,
	.tuple_get_latest_tid = inbox_tuple_get_latest_tid,
	.tuple_satisfies_snapshot = inbox_tuple_satisfies_snapshot,
	.index_delete_tuples = inbox_index_delete_tuples,

	.tuple_insert = inbox_tuple_insert,
	.tuple_insert_speculative = inbox_tuple_insert_speculative,
	.tuple_complete_speculative = inbox_tuple_complete_speculative,
	.multi_insert = inbox_multi_insert,
	.tuple_delete = inbox_tuple_delete,
	.tuple_update = inbox_tuple_update,
	.tuple_lock = inbox_tuple_lock,

	.relation_set_new_filenode = inbox_relation_set_new_filenode,
	.relation_nontransactional_truncate = inbox_relation_nontransactional_truncate,
	.relation_copy_data = inbox_relation_copy_data,
	.relation_copy_for_cluster = inbox_relation_copy_for_cluster,
	.relation_vacuum = inbox_relation_vacuum,
	.scan_analyze_next_block = inbox_scan_analyze_next_block,
	.scan_analyze_next_tuple = inbox_scan_analyze_next_tuple,
	.index_build_range_scan = inbox_index_build_range_scan,
	.index_validate_scan = inbox_index_validate_scan,

	.relation_size = inbox_relation_size,
	.relation_needs_toast_table = inbox_relation_needs_toast_table,

	.relation_estimate_size = inbox_relation_estimate_size,

	.scan_sample_next_block = inbox_scan_sample_next_block,
	.scan_sample_next_tuple = inbox_scan_sample_next_tuple,
};

/*
 * Handler of the inbox table access method.
 */
Datum
state_msg_inbox_am_handler(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(&inbox_methods);
}

/*
 * Whether a relation uses the inbox access method.
 */
static bool
is_inbox_relation(Oid relid)
{
	HeapTuple	tuple;
	Oid			amoid;
	bool		result = false;

	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		return false;
	amoid = ((Form_pg_class) GETSTRUCT(tuple))->relam;
	ReleaseSysCache(tuple);
	if (!OidIsValid(amoid))
		return false;

	tuple = SearchSysCache1(AMOID, ObjectIdGetDatum(amoid));
	if (!HeapTupleIsValid(tuple))
		return false;
	if (((Form_pg_am) GETSTRUCT(tuple))->amtype == AMTYPE_TABLE)
		result = (GetTableAmRoutine(((Form_pg_am) GETSTRUCT(tuple))->amhandler)
				  == &inbox_methods);
	ReleaseSysCache(tuple);

	return result;
}

/*
 * ddl_command_start event trigger for CREATE INDEX: refuse CREATE INDEX
 * CONCURRENTLY on an inbox table before it creates anything.  Building the
 * index fails anyway (inbox_index_build_range_scan), but CONCURRENTLY
 * commits the index's catalog entry first, and the invalid index it leaves
 * behind makes every later rewrite of the table (ALTER TABLE ... TYPE,
 * VACUUM FULL) fail to rebuild it.  A plain CREATE INDEX is left to the
 * build callback, whose error rolls everything back.
 */
Datum
state_msg_inbox_index_guard(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata = (EventTriggerData *) fcinfo->context;
	IndexStmt  *stmt;
	Oid			relid;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("state_msg.inbox_index_guard() must be called as an event trigger")));

	if (!IsA(trigdata->parsetree, IndexStmt))
		PG_RETURN_VOID();
	stmt = (IndexStmt *) trigdata->parsetree;
	if (!stmt->concurrent)
		PG_RETURN_VOID();

	/* The command itself reports a missing table, and locks it */
	relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	if (OidIsValid(relid) && is_inbox_relation(relid))
		inbox_refuse_index(get_rel_name(relid));

	PG_RETURN_VOID();
}
