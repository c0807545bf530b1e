/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  The engine's counters (state_msg.stats).
 *
 * Callers count events with sm_stats_add() as they happen.  The counts are
 * kept per backend, per (sub)transaction level, and take effect only when
 * the transaction commits: a batch that rolls back, or whose subtransaction
 * (a PL/pgSQL EXCEPTION block, a savepoint) rolls back, counts nothing.  A
 * prepared transaction's counts take effect when it is prepared.
 *
 * Loaded by shared_preload_libraries, the library keeps the counters in
 * shared memory, as pg_stat_statements does (PG15's shmem_request_hook and
 * shmem_startup_hook, each chaining the previous one): one entry per
 * database, so that the counters of one database are those of every
 * session and worker that works in it; a commit adds its counts to its
 * database's entry under the entry's spinlock.  Entries live until the
 * server restarts; when more databases count than there are entries, the
 * entry published to least recently is dropped.  Without the preload the
 * counters are this backend's own: what its committed transactions counted
 * since it loaded the library or since its last state_msg.stats_reset().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "state_msg.h"

/* Databases whose counters shared memory holds at once */
#define SM_STATS_MAX_DATABASES 256

/* Columns of state_msg.stats_read() */
#define SM_STATS_COLUMNS 17

/* The processed counters follow the verdicts' order */
StaticAssertDecl(SM_STAT_PROCESSED_UNSERIALIZED - SM_STAT_PROCESSED_IN_ORDER ==
				 VERDICT_UNSERIALIZED - VERDICT_IN_ORDER,
				 "processed counters out of step with the verdicts");

/* One database's counters in shared memory */
typedef struct SmStatsEntry
{
	Oid			dbid;			/* hash key */
	slock_t		mutex;			/* protects the fields below */
	int64		counts[SM_STAT_COUNT];
	TimestampTz stats_reset;	/* counting since */
	TimestampTz last_publish;	/* to choose an entry to drop */
} SmStatsEntry;

/* The shared state besides the entries */
typedef struct SmStatsShared
{
	LWLock	   *lock;			/* the hash table's shape: shared to add to
								 * or read an entry, exclusive to insert or
								 * drop one */
	TimestampTz counting_since; /* since when a database without an entry
								 * has counted nothing: the server's start,
								 * or the last time an entry was dropped */
} SmStatsShared;

/* Counts of one (sub)transaction level not yet committed */
typedef struct PendingCounts
{
	int			nest_level;
	int64		counts[SM_STAT_COUNT];
	struct PendingCounts *parent;	/* an outer level's, or NULL */
} PendingCounts;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static SmStatsShared *stats_shared = NULL;
static HTAB *stats_hash = NULL;

/* This backend's counts, innermost level first (TopTransactionContext) */
static PendingCounts *pending = NULL;
static bool callbacks_registered = false;

/* Without the preload: this backend's committed counts */
static int64 local_counts[SM_STAT_COUNT];
static TimestampTz local_reset = 0;

static void stats_shmem_request(void);
static void stats_shmem_startup(void);
static void stats_xact_callback(XactEvent event, void *arg);
static void stats_subxact_callback(SubXactEvent event,
								   SubTransactionId mySubid,
								   SubTransactionId parentSubid, void *arg);

/*
 * Called from _PG_init: with the library in shared_preload_libraries,
 * ask for the counters' shared memory; otherwise they stay per backend
 */
void
sm_stats_init(void)
{
	local_reset = GetCurrentTimestamp();
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = stats_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = stats_shmem_startup;
}

/* The shared memory the counters need */
static Size
stats_memsize(void)
{
	return add_size(MAXALIGN(sizeof(SmStatsShared)),
					hash_estimate_size(SM_STATS_MAX_DATABASES,
									   sizeof(SmStatsEntry)));
}

/* Reserve the counters' shared memory and their lock */
static void
stats_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(stats_memsize());
	RequestNamedLWLockTranche("state_msg_stats", 1);
}

/*
 * Attach to the counters' shared memory, creating it at the server's start
 * (and again after a crash restart: the counters then start at zero)
 */
static void
stats_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	stats_shared = ShmemInitStruct("state_msg stats", sizeof(SmStatsShared),
								   &found);
	if (!found)
	{
		stats_shared->lock = &(GetNamedLWLockTranche("state_msg_stats"))->lock;
		stats_shared->counting_since = GetCurrentTimestamp();
	}
	info.keysize = sizeof(Oid);
	info.entrysize = sizeof(SmStatsEntry);
	stats_hash = ShmemInitHash("state_msg stats hash",
							   SM_STATS_MAX_DATABASES, SM_STATS_MAX_DATABASES,
							   &info, HASH_ELEM | HASH_BLOBS);
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Count n events of one kind, in this (sub)transaction: they take effect
 * at its commit
 */
void
sm_stats_add(SmStat which, int64 n)
{
	int			level;

	Assert(which >= 0 && which < SM_STAT_COUNT);
	Assert(IsTransactionState());
	if (n == 0)
		return;
	if (!callbacks_registered)
	{
		RegisterXactCallback(stats_xact_callback, NULL);
		RegisterSubXactCallback(stats_subxact_callback, NULL);
		callbacks_registered = true;
	}
	level = GetCurrentTransactionNestLevel();
	Assert(pending == NULL || pending->nest_level <= level);
	if (pending == NULL || pending->nest_level < level)
	{
		PendingCounts *frame = MemoryContextAllocZero(TopTransactionContext,
													  sizeof(PendingCounts));

		frame->nest_level = level;
		frame->parent = pending;
		pending = frame;
	}
	pending->counts[which] += n;
}

/*
 * This database's entry, inserted if missing (with the lock held
 * exclusively), dropping the entry published to least recently when the
 * table is full.  NULL if the shared memory ran out anyway.
 */
static SmStatsEntry *
stats_entry_enter(TimestampTz now)
{
	SmStatsEntry *entry;
	bool		found;

	entry = hash_search(stats_hash, &MyDatabaseId, HASH_FIND, NULL);
	if (entry != NULL)
		return entry;
	if (hash_get_num_entries(stats_hash) >= SM_STATS_MAX_DATABASES)
	{
		HASH_SEQ_STATUS scan;
		SmStatsEntry *e;
		SmStatsEntry *oldest = NULL;

		hash_seq_init(&scan, stats_hash);
		while ((e = hash_seq_search(&scan)) != NULL)
			if (oldest == NULL || e->last_publish < oldest->last_publish)
				oldest = e;
		if (oldest != NULL)
		{
			hash_search(stats_hash, &oldest->dbid, HASH_REMOVE, NULL);
			stats_shared->counting_since = now;
		}
	}
	entry = hash_search(stats_hash, &MyDatabaseId, HASH_ENTER_NULL, &found);
	if (entry != NULL && !found)
	{
		SpinLockInit(&entry->mutex);
		memset(entry->counts, 0, sizeof(entry->counts));
		entry->stats_reset = stats_shared->counting_since;
		entry->last_publish = now;
	}
	return entry;
}

/*
 * Add a committed transaction's counts to the counters: this database's
 * shared entry, or this backend's own without the preload.  Runs after the
 * commit, so it must not fail: a full table drops the counts instead.
 */
static void
stats_publish(const int64 *counts)
{
	SmStatsEntry *entry;
	TimestampTz now;

	if (stats_hash == NULL || !OidIsValid(MyDatabaseId))
	{
		for (int i = 0; i < SM_STAT_COUNT; i++)
			local_counts[i] += counts[i];
		return;
	}
	now = GetCurrentTransactionStopTimestamp();
	LWLockAcquire(stats_shared->lock, LW_SHARED);
	entry = hash_search(stats_hash, &MyDatabaseId, HASH_FIND, NULL);
	if (entry == NULL)
	{
		LWLockRelease(stats_shared->lock);
		LWLockAcquire(stats_shared->lock, LW_EXCLUSIVE);
		entry = stats_entry_enter(now);
	}
	if (entry != NULL)
	{
		SpinLockAcquire(&entry->mutex);
		for (int i = 0; i < SM_STAT_COUNT; i++)
			entry->counts[i] += counts[i];
		entry->last_publish = now;
		SpinLockRelease(&entry->mutex);
	}
	LWLockRelease(stats_shared->lock);
}

/*
 * At the top transaction's end: publish its counts if it committed (or was
 * prepared), forget them if it aborted
 */
static void
stats_xact_callback(XactEvent event, void *arg)
{
	int64		counts[SM_STAT_COUNT] = {0};

	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			if (pending == NULL)
				break;
			for (PendingCounts *p = pending; p != NULL; p = p->parent)
				for (int i = 0; i < SM_STAT_COUNT; i++)
					counts[i] += p->counts[i];
			pending = NULL;
			stats_publish(counts);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			pending = NULL;		/* freed with TopTransactionContext */
			break;
		default:
			break;
	}
}

/*
 * At a subtransaction's end: its counts move to its parent's level if it
 * committed, and are forgotten if it aborted
 */
static void
stats_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();

	switch (event)
	{
		case SUBXACT_EVENT_COMMIT_SUB:
			if (pending == NULL || pending->nest_level < level)
				break;
			if (pending->parent != NULL &&
				pending->parent->nest_level == level - 1)
			{
				PendingCounts *done = pending;

				for (int i = 0; i < SM_STAT_COUNT; i++)
					done->parent->counts[i] += done->counts[i];
				pending = done->parent;
				pfree(done);
			}
			else
				pending->nest_level = level - 1;
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			while (pending != NULL && pending->nest_level >= level)
			{
				PendingCounts *done = pending;

				pending = done->parent;
				pfree(done);
			}
			break;
		default:
			break;
	}
}

/*
 * state_msg.stats_read(): the counters of this database (with the preload)
 * or of this backend (without), as one row; state_msg.stats shows it
 */
PG_FUNCTION_INFO_V1(state_msg_stats_read);
Datum
state_msg_stats_read(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	int64		counts[SM_STAT_COUNT];
	TimestampTz reset;
	bool		shared = (stats_hash != NULL);
	Datum		values[SM_STATS_COLUMNS];
	bool		nulls[SM_STATS_COLUMNS] = {false};
	int			col = 0;
	int64		processed = 0;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (desc->natts != SM_STATS_COLUMNS)
		elog(ERROR, "state_msg.stats_read() must return %d columns",
			 SM_STATS_COLUMNS);
	desc = BlessTupleDesc(desc);

	if (shared)
	{
		SmStatsEntry *entry;

		LWLockAcquire(stats_shared->lock, LW_SHARED);
		entry = hash_search(stats_hash, &MyDatabaseId, HASH_FIND, NULL);
		if (entry != NULL)
		{
			SpinLockAcquire(&entry->mutex);
			memcpy(counts, entry->counts, sizeof(counts));
			reset = entry->stats_reset;
			SpinLockRelease(&entry->mutex);
		}
		else
		{
			memset(counts, 0, sizeof(counts));
			reset = stats_shared->counting_since;
		}
		LWLockRelease(stats_shared->lock);
	}
	else
	{
		memcpy(counts, local_counts, sizeof(counts));
		reset = local_reset;
	}

	for (int i = SM_STAT_PROCESSED_IN_ORDER; i <= SM_STAT_PROCESSED_UNSERIALIZED; i++)
		processed += counts[i];
	values[col++] = Int64GetDatum(counts[SM_STAT_ENQUEUED]);
	values[col++] = Int64GetDatum(processed);
	for (int i = SM_STAT_PROCESSED_IN_ORDER; i <= SM_STAT_PROCESSED_UNSERIALIZED; i++)
		values[col++] = Int64GetDatum(counts[i]);
	values[col++] = Int64GetDatum(counts[SM_STAT_REJECTED]);
	values[col++] = Int64GetDatum(counts[SM_STAT_BATCHES]);
	values[col++] = Float8GetDatum((double) counts[SM_STAT_PROCESSING_USECS] / 1000.0);
	values[col++] = Int64GetDatum(counts[SM_STAT_RESYNCS_ISSUED]);
	values[col++] = Int64GetDatum(counts[SM_STAT_RESYNCS_REISSUED]);
	values[col++] = Int64GetDatum(counts[SM_STAT_RESYNCS_COMPLETED]);
	values[col++] = Int64GetDatum(counts[SM_STAT_RESYNCS_HELD_BACK]);
	values[col++] = TimestampTzGetDatum(reset);
	values[col++] = BoolGetDatum(shared);
	Assert(col == SM_STATS_COLUMNS);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/*
 * state_msg.stats_reset(): zero the counters state_msg.stats shows (this
 * database's, or this backend's without the preload), at once and for
 * good (a rollback does not undo it)
 */
PG_FUNCTION_INFO_V1(state_msg_stats_reset);
Datum
state_msg_stats_reset(PG_FUNCTION_ARGS)
{
	TimestampTz now = GetCurrentTimestamp();

	if (stats_hash != NULL && OidIsValid(MyDatabaseId))
	{
		SmStatsEntry *entry;

		LWLockAcquire(stats_shared->lock, LW_EXCLUSIVE);
		entry = stats_entry_enter(now);
		if (entry == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of shared memory for state_msg counters")));
		SpinLockAcquire(&entry->mutex);
		memset(entry->counts, 0, sizeof(entry->counts));
		entry->stats_reset = now;
		SpinLockRelease(&entry->mutex);
		LWLockRelease(stats_shared->lock);
	}
	else
	{
		memset(local_counts, 0, sizeof(local_counts));
		local_reset = now;
	}
	PG_RETURN_VOID();
}
