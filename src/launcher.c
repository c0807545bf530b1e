/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher of the background workers: one worker per database
 *	  named in state_msg.databases (see worker.c).
 *
 * Started once recovery has finished and restarted after a crash, it is
 * connected to no database (like PostgreSQL's logical replication
 * launcher, it reads only the shared catalog pg_database, to see which of
 * the named databases exist).  It keeps a slot in shared memory per named
 * database, starts that database's worker (again after a nap when it
 * exited, at once when work was queued meanwhile), and ends the workers of
 * databases no longer named.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "state_msg.h"
#include "worker.h"

/* The launcher's own view of each slot's worker */
typedef struct LauncherEntry
{
	BackgroundWorkerHandle *handle; /* NULL while none was started */
	TimestampTz next_start;		/* earliest (re)start */
	TimestampTz last_start;
	bool		stopping;		/* no longer named: terminated, not
								 * restarted */
	int			logged_problem; /* 0, or what was logged about the database */
} LauncherEntry;

/* Problems the launcher logs once per database */
#define PROBLEM_MISSING			1
#define PROBLEM_NO_CONNECTIONS	2
#define PROBLEM_NO_WORKER_SLOT	3


/* Log one of a database's problems once, until it changes */
static void
launcher_log_problem(LauncherEntry *entry, const char *dbname, int problem)
{
	if (entry->logged_problem == problem)
		return;
	entry->logged_problem = problem;
	switch (problem)
	{
		case PROBLEM_MISSING:
			ereport(LOG,
					(errmsg("state_msg: database \"%s\" named in state_msg.databases does not exist",
							dbname)));
			break;
		case PROBLEM_NO_CONNECTIONS:
			ereport(LOG,
					(errmsg("state_msg: database \"%s\" does not allow connections, not serving it",
							dbname)));
			break;
		case PROBLEM_NO_WORKER_SLOT:
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("state_msg: no background worker slot free for database \"%s\"",
							dbname),
					 errhint("Raise max_worker_processes.")));
			break;
	}
}

/*
 * Match the slots to state_msg.databases: take a slot for each newly named
 * database, end the workers of those no longer named and free their slots
 * once they have stopped.
 */
static void
launcher_reconcile(LauncherEntry *entries)
{
	List	   *names = NIL;
	ListCell   *lc;

	if (!sm_parse_databases(sm_databases, &names))
		names = NIL;			/* cannot happen: the check hook parsed it */

	for (int i = 0; i < sm_worker_shared->nslots; i++)
	{
		WorkerSlot *slot = &sm_worker_shared->slots[i];
		LauncherEntry *entry = &entries[i];
		bool		named = false;

		if (!slot->in_use)
			continue;
		foreach(lc, names)
		{
			if (strcmp(slot->dbname, (char *) lfirst(lc)) == 0)
				named = true;
		}
		if (named)
		{
			entry->stopping = false;
			continue;
		}
		if (entry->handle != NULL)
		{
			pid_t		pid;

			if (GetBackgroundWorkerPid(entry->handle, &pid) != BGWH_STOPPED)
			{
				if (!entry->stopping)
					TerminateBackgroundWorker(entry->handle);
				entry->stopping = true;
				continue;
			}
			pfree(entry->handle);
		}
		SpinLockAcquire(&sm_worker_shared->mutex);
		memset(slot, 0, sizeof(WorkerSlot));
		SpinLockRelease(&sm_worker_shared->mutex);
		memset(entry, 0, sizeof(LauncherEntry));
	}

	foreach(lc, names)
	{
		char	   *name = (char *) lfirst(lc);
		int			free_slot = -1;
		bool		present = false;

		for (int i = 0; i < sm_worker_shared->nslots; i++)
		{
			WorkerSlot *slot = &sm_worker_shared->slots[i];

			if (slot->in_use && strcmp(slot->dbname, name) == 0)
				present = true;
			else if (!slot->in_use && slot->pid == 0 && free_slot < 0 &&
					 entries[i].handle == NULL)
				free_slot = i;
		}
		if (present)
			continue;
		if (free_slot < 0)
		{
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("state_msg: more databases named in state_msg.databases than max_worker_processes, \"%s\" is not served",
							name)));
			continue;
		}
		SpinLockAcquire(&sm_worker_shared->mutex);
		memset(&sm_worker_shared->slots[free_slot], 0, sizeof(WorkerSlot));
		sm_worker_shared->slots[free_slot].in_use = true;
		strlcpy(sm_worker_shared->slots[free_slot].dbname, name, NAMEDATALEN);
		SpinLockRelease(&sm_worker_shared->mutex);
		memset(&entries[free_slot], 0, sizeof(LauncherEntry));
	}
	list_free(names);
}

/*
 * Look the database up in pg_database (a shared catalog, readable without
 * a database): its oid and whether it allows connections.
 */
static bool
launcher_find_database(const char *dbname, Oid *dboid, bool *allowconn)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (strcmp(NameStr(db->datname), dbname) == 0)
		{
			*dboid = db->oid;
			*allowconn = db->datallowconn;
			found = true;
			break;
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* Start the worker for slot i, if its database is there to serve */
static void
launcher_start_worker(LauncherEntry *entries, int i, TimestampTz now)
{
	WorkerSlot *slot = &sm_worker_shared->slots[i];
	LauncherEntry *entry = &entries[i];
	BackgroundWorker worker;
	Oid			dboid = InvalidOid;
	bool		allowconn = false;
	bool		found;
	bool		busy = false;
	bool		registered;
	MemoryContext oldcontext = CurrentMemoryContext;

	entry->next_start = now + sm_worker_duration_usecs(sm_worker_naptime);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	found = launcher_find_database(slot->dbname, &dboid, &allowconn);
	CommitTransactionCommand();
	MemoryContextSwitchTo(oldcontext);

	if (!found)
	{
		launcher_log_problem(entry, slot->dbname, PROBLEM_MISSING);
		return;
	}
	if (!allowconn)
	{
		launcher_log_problem(entry, slot->dbname, PROBLEM_NO_CONNECTIONS);
		return;
	}
	SpinLockAcquire(&sm_worker_shared->mutex);
	if (slot->dboid != dboid)
	{
		/* another database of that name: start afresh */
		slot->dboid = dboid;
		slot->logged = SERVE_UNKNOWN;
		slot->last_check = 0;
		slot->last_sample = 0;
	}
	slot->wake_pending = false;
	SpinLockRelease(&sm_worker_shared->mutex);

	/* Dropped or renamed just now: look again soon */
	busy = sm_database_wanted_elsewhere(dboid);
	if (busy)
	{
		entry->next_start = now + MIN_RESTART_USECS;
		return;
	}

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "state_msg");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "sm_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "state_msg worker for database %s",
			 slot->dbname);
	snprintf(worker.bgw_type, BGW_MAXLEN, "state_msg worker");
	worker.bgw_main_arg = Int32GetDatum(i);
	strlcpy(worker.bgw_extra, slot->dbname, BGW_EXTRALEN);
	worker.bgw_notify_pid = MyProcPid;

	oldcontext = MemoryContextSwitchTo(TopMemoryContext);
	registered = RegisterDynamicBackgroundWorker(&worker, &entry->handle);
	MemoryContextSwitchTo(oldcontext);
	if (!registered)
	{
		entry->handle = NULL;
		launcher_log_problem(entry, slot->dbname, PROBLEM_NO_WORKER_SLOT);
		return;
	}
	entry->logged_problem = 0;
	entry->last_start = now;
}

/*
 * Workers left by a launcher that ended (its handles died with it): end
 * them and wait, up to a while, until they have left their slots, so that
 * no database is served twice.
 */
static void
launcher_end_orphans(void)
{
	TimestampTz give_up = GetCurrentTimestamp() + 30 * USECS_PER_SEC;

	for (;;)
	{
		bool		left = false;

		SpinLockAcquire(&sm_worker_shared->mutex);
		for (int i = 0; i < sm_worker_shared->nslots; i++)
		{
			if (sm_worker_shared->slots[i].pid != 0)
			{
				kill(sm_worker_shared->slots[i].pid, SIGTERM);
				left = true;
			}
		}
		SpinLockRelease(&sm_worker_shared->mutex);
		if (!left || GetCurrentTimestamp() > give_up)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	SpinLockAcquire(&sm_worker_shared->mutex);
	for (int i = 0; i < sm_worker_shared->nslots; i++)
		memset(&sm_worker_shared->slots[i], 0, sizeof(WorkerSlot));
	SpinLockRelease(&sm_worker_shared->mutex);
}

/* The launcher's main loop: keep one worker running per named database */
void
sm_launcher_main(Datum arg)
{
	LauncherEntry *entries;
	MemoryContext loop_context;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* No database: pg_database is shared */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("state_msg launcher");

	if (sm_worker_shared == NULL)
		elog(ERROR, "state_msg: shared memory not initialized");

	launcher_end_orphans();
	SpinLockAcquire(&sm_worker_shared->mutex);
	sm_worker_shared->launcher_pid = MyProcPid;
	sm_worker_shared->launcher_latch = MyLatch;
	SpinLockRelease(&sm_worker_shared->mutex);

	entries = MemoryContextAllocZero(TopMemoryContext,
									 sizeof(LauncherEntry) * sm_worker_shared->nslots);
	loop_context = AllocSetContextCreate(TopMemoryContext,
										 "state_msg launcher loop",
										 ALLOCSET_DEFAULT_SIZES);

	ereport(LOG, (errmsg("state_msg: launcher started")));

	for (;;)
	{
		TimestampTz now;
		TimestampTz next_event;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			/* look at every database again now, under the new settings */
			for (int i = 0; i < sm_worker_shared->nslots; i++)
				entries[i].next_start = 0;
		}

		MemoryContextSwitchTo(loop_context);
		launcher_reconcile(entries);

		now = GetCurrentTimestamp();
		next_event = now + sm_worker_duration_usecs(sm_worker_naptime);
		for (int i = 0; i < sm_worker_shared->nslots; i++)
		{
			WorkerSlot *slot = &sm_worker_shared->slots[i];
			LauncherEntry *entry = &entries[i];
			bool		wake;

			if (!slot->in_use || entry->stopping)
				continue;
			if (entry->handle != NULL)
			{
				pid_t		pid;

				if (GetBackgroundWorkerPid(entry->handle, &pid) != BGWH_STOPPED)
					continue;
				/* stopped: start again after a nap (sooner if woken) */
				pfree(entry->handle);
				entry->handle = NULL;
				entry->next_start = now + sm_worker_duration_usecs(sm_worker_naptime);
			}
			SpinLockAcquire(&sm_worker_shared->mutex);
			wake = slot->wake_pending;
			SpinLockRelease(&sm_worker_shared->mutex);
			if (now >= entry->next_start ||
				(wake && now >= entry->last_start + MIN_RESTART_USECS))
				launcher_start_worker(entries, i, now);
			if (entry->handle == NULL)
			{
				TimestampTz when = entry->next_start;

				if (wake)
					when = Min(when, entry->last_start + MIN_RESTART_USECS);
				next_event = Min(next_event, when);
			}
		}
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(loop_context);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sm_ms_until(now, next_event, 60 * 1000),
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
