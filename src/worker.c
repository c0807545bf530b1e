/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background worker that drains the queue and runs the check cycle.
 *
 * Loaded with shared_preload_libraries = 'state_msg', as pg_cron's launcher
 * is: a launcher (launcher.c), started once recovery has finished and
 * restarted after a crash, starts one dynamic worker per database named in
 * state_msg.databases.  This file holds the shared state, the settings,
 * the wake-up at commit and the worker itself.
 *
 * A worker serves its database while the extension is installed there at
 * this library's release: it calls state_msg.process_queue_batch(NULL) in a
 * transaction of its own while that returns more than zero, runs
 * state_msg.run_resync_check() every state_msg.resync_check_interval and
 * state_msg.sample_backlog() every minute (each where it exists), and
 * sleeps state_msg.worker_naptime between rounds unless woken by
 * sm_worker_wake() at the commit of an enqueueing transaction.  Where the
 * extension is absent or at another release it waits quietly, looking
 * again every nap, and logs only when it starts or stops serving.
 *
 * DROP DATABASE (and ALTER DATABASE RENAME or SET TABLESPACE, and CREATE
 * DATABASE from it as a template) waits only about five seconds for other
 * sessions to leave the database and never ends a background worker unless
 * WITH (FORCE).  So the worker holds no lock between its transactions and
 * leaves whenever someone wants the database to itself: before every
 * transaction and at least once a second while it sleeps, it tries a
 * conditional lock on the database object of the mode connections take,
 * which every such command's lock conflicts with, and exits when it cannot
 * get it.  A DROP DATABASE also reaches it at once through the object
 * access hook, which wakes it, or ends it if it is inside a transaction
 * (whose work then rolls back: nothing is lost).  The launcher starts it
 * again after a nap, if the database still exists.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_database.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "state_msg.h"
#include "worker.h"

/* How often a worker samples the backlog (state_msg.sample_backlog()) */
#define SAMPLE_INTERVAL_USECS	(60 * USECS_PER_SEC)

/* Longest sleep between two looks at the database lock */
#define LOCK_LOOK_MS			1000


/* Longest pause after failed rounds (the pause doubles from one nap) */
#define MAX_ERROR_PAUSE_USECS	(5 * 60 * USECS_PER_SEC)






/* Settings */
char	   *sm_databases = NULL;
double		sm_worker_naptime = 10.0 / 60.0;	/* minutes */
static double sm_resync_check_interval = 15;	/* minutes; 0: never */

WorkerShared *sm_worker_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static object_access_hook_type prev_object_access_hook = NULL;

/* sm_worker_wake(): a wake-up is due at this transaction's commit */
static bool wake_at_commit = false;
static bool wake_callback_registered = false;

/* In a worker: its slot */
static int	my_slot = -1;


/* Size of the shared state: a slot per possible background worker */
static Size
worker_shmem_size(void)
{
	return add_size(offsetof(WorkerShared, slots),
					mul_size(max_worker_processes, sizeof(WorkerSlot)));
}

/* Ask for the shared state (PG15: only from shmem_request_hook) */
static void
worker_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(worker_shmem_size());
}

/* Create or attach to the shared state */
static void
worker_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	sm_worker_shared = ShmemInitStruct("state_msg worker", worker_shmem_size(),
									&found);
	if (!found)
	{
		memset(sm_worker_shared, 0, worker_shmem_size());
		SpinLockInit(&sm_worker_shared->mutex);
		sm_worker_shared->nslots = max_worker_processes;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* The setting's list of database names, or false if it does not parse */
bool
sm_parse_databases(const char *value, List **names)
{
	char	   *copy = pstrdup(value ? value : "");
	ListCell   *lc;

	if (!SplitGUCList(copy, ',', names))
		return false;
	foreach(lc, *names)
	{
		if (strlen((char *) lfirst(lc)) >= NAMEDATALEN || *(char *) lfirst(lc) == '\0')
			return false;
	}
	return true;
}

/* Reject a state_msg.databases that is not a list of database names */
static bool
check_databases(char **newval, void **extra, GucSource source)
{
	List	   *names = NIL;

	if (!sm_parse_databases(*newval, &names))
	{
		GUC_check_errdetail("List syntax is invalid, or a name is empty or longer than %d bytes.",
							NAMEDATALEN - 1);
		return false;
	}
	list_free(names);
	return true;
}

/* A duration setting in minutes as microseconds, at least one millisecond */
int64
sm_worker_duration_usecs(double minutes)
{
	int64		usecs = sm_duration_usecs(minutes);

	return Max(usecs, 1000);
}

/* Milliseconds from now until a time, for WaitLatch: 0 .. limit */
long
sm_ms_until(TimestampTz now, TimestampTz when, long limit)
{
	if (when <= now)
		return 0;
	if ((when - now) / 1000 >= limit)
		return limit;
	return (long) ((when - now + 999) / 1000);
}

/*
 * Whether a command wants the database to itself: DROP DATABASE, ALTER
 * DATABASE RENAME or SET TABLESPACE, CREATE DATABASE with it as template,
 * each holding or waiting for a lock on the database object that conflicts
 * with the RowExclusiveLock a new connection takes.  Tries that lock
 * without waiting, as a session lock, so it works between transactions.
 */
bool
sm_database_wanted_elsewhere(Oid dboid)
{
	LOCKTAG		tag;

	SET_LOCKTAG_OBJECT(tag, InvalidOid, DatabaseRelationId, dboid, 0);
	if (LockAcquire(&tag, RowExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		return true;
	LockRelease(&tag, RowExclusiveLock, true);
	return false;
}

/*
 * DROP DATABASE of a served database: wake its worker, which then sees the
 * lock and leaves, or end it if it is in a transaction (which rolls back),
 * so that dropdb's wait for other sessions finds none.  Runs in the
 * dropping session, which already holds the database's lock.
 */
static void
worker_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					 int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);

	if (access != OAT_DROP || classId != DatabaseRelationId || sm_worker_shared == NULL)
		return;

	for (int i = 0; i < sm_worker_shared->nslots; i++)
	{
		WorkerSlot *slot = &sm_worker_shared->slots[i];
		pid_t		pid = 0;
		Latch	   *latch = NULL;
		bool		in_xact = false;

		SpinLockAcquire(&sm_worker_shared->mutex);
		if (slot->dboid == objectId && slot->pid != 0)
		{
			pid = slot->pid;
			latch = slot->latch;
			in_xact = slot->in_xact;
		}
		SpinLockRelease(&sm_worker_shared->mutex);

		if (pid == 0)
			continue;
		if (in_xact)
			kill(pid, SIGTERM);
		else
			SetLatch(latch);
	}
}

/*
 * At the commit of a transaction that called sm_worker_wake(), wake the
 * worker serving this database, or the launcher if none runs now (it then
 * starts one).  A no-op otherwise: an aborted transaction queued nothing.
 */
static void
worker_xact_callback(XactEvent event, void *arg)
{
	Latch	   *latch = NULL;

	if (!wake_at_commit)
		return;
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;
	wake_at_commit = false;
	if (event != XACT_EVENT_COMMIT || sm_worker_shared == NULL)
		return;

	SpinLockAcquire(&sm_worker_shared->mutex);
	for (int i = 0; i < sm_worker_shared->nslots; i++)
	{
		WorkerSlot *slot = &sm_worker_shared->slots[i];

		if (!slot->in_use || slot->dboid != MyDatabaseId)
			continue;
		if (slot->latch != NULL)
			latch = slot->latch;
		else
		{
			slot->wake_pending = true;
			latch = sm_worker_shared->launcher_latch;
		}
		break;
	}
	SpinLockRelease(&sm_worker_shared->mutex);

	if (latch != NULL)
		SetLatch(latch);
}

/*
 * Tell the worker serving this database that work was queued: it is woken
 * when this transaction commits (once, however often this is called).
 * Without the preload there is no worker and this does nothing.
 */
void
sm_worker_wake(void)
{
	if (sm_worker_shared == NULL)
		return;
	if (!wake_callback_registered)
	{
		RegisterXactCallback(worker_xact_callback, NULL);
		wake_callback_registered = true;
	}
	wake_at_commit = true;
}

/*
 * Define the worker's settings and, when loaded by shared_preload_libraries,
 * its shared memory, hooks and launcher.  Called from _PG_init.
 */
void
sm_worker_init(void)
{
	BackgroundWorker worker;

	DefineCustomStringVariable("state_msg.databases",
							   "Databases the background worker serves (comma-separated names).",
							   "Needs shared_preload_libraries = 'state_msg'.  Names are taken as written (double-quote one holding a comma).",
							   &sm_databases,
							   "",
							   PGC_SIGHUP, GUC_LIST_INPUT,
							   check_databases, NULL, NULL);

	DefineCustomRealVariable("state_msg.worker_naptime",
							 "How long the background worker sleeps when it finds no work, unless woken by new work.",
							 "Also the pause before a stopped worker is started again.",
							 &sm_worker_naptime,
							 10.0 / 60.0, 0.01 / 60.0, 24 * 60,
							 PGC_SIGHUP, GUC_UNIT_MIN,
							 NULL, NULL, NULL);

	DefineCustomRealVariable("state_msg.resync_check_interval",
							 "How often the background worker runs the resync check cycle; 0 never.",
							 "The worker runs state_msg.run_resync_check() in each database it serves.",
							 &sm_resync_check_interval,
							 15, 0, 100.0 * 365.25 * 24 * 60,
							 PGC_SIGHUP, GUC_UNIT_MIN,
							 NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = worker_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = worker_shmem_startup;
	prev_object_access_hook = object_access_hook;
	object_access_hook = worker_object_access;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "state_msg");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "sm_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "state_msg launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "state_msg launcher");
	RegisterBackgroundWorker(&worker);
}

/* ------------------------------------------------------------------------
 * The worker
 * ------------------------------------------------------------------------
 */

/* Leave the slot when the worker exits, however it exits */
static void
worker_leave_slot(int code, Datum arg)
{
	WorkerSlot *slot = &sm_worker_shared->slots[DatumGetInt32(arg)];

	SpinLockAcquire(&sm_worker_shared->mutex);
	if (slot->pid == MyProcPid)
	{
		slot->pid = 0;
		slot->latch = NULL;
		slot->in_xact = false;
	}
	SpinLockRelease(&sm_worker_shared->mutex);
}

/* Mark the worker in or out of a transaction, for the drop hook */
static void
worker_set_in_xact(bool in_xact)
{
	SpinLockAcquire(&sm_worker_shared->mutex);
	sm_worker_shared->slots[my_slot].in_xact = in_xact;
	SpinLockRelease(&sm_worker_shared->mutex);
}

/* Leave quietly if a command wants the database to itself */
static void
worker_leave_if_wanted(void)
{
	if (sm_database_wanted_elsewhere(MyDatabaseId))
	{
		ereport(DEBUG1,
				(errmsg("state_msg: worker leaves database \"%s\": another session wants it alone",
						sm_worker_shared->slots[my_slot].dbname)));
		proc_exit(0);
	}
}

/* What the database holds of the extension, read at the start of a transaction */
typedef struct ExtensionState
{
	ServeState	state;
	char		version[64];	/* when installed */
	bool		has_batch;		/* state_msg.process_queue_batch(integer) */
	bool		has_check;		/* state_msg.run_resync_check(timestamptz) */
	bool		has_sample;		/* state_msg.sample_backlog() */
} ExtensionState;

/* Read the extension's release and which of the worker's functions exist */
static void
read_extension_state(ExtensionState *ext)
{
	int			rc;

	memset(ext, 0, sizeof(*ext));
	rc = SPI_execute("SELECT e.extversion::pg_catalog.text,"
					 " pg_catalog.to_regprocedure('state_msg.process_queue_batch(integer)') IS NOT NULL,"
					 " pg_catalog.to_regprocedure('state_msg.run_resync_check(timestamp with time zone)') IS NOT NULL,"
					 " pg_catalog.to_regprocedure('state_msg.sample_backlog()') IS NOT NULL"
					 " FROM pg_catalog.pg_extension e"
					 " WHERE e.extname OPERATOR(pg_catalog.=) 'state_msg'",
					 true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "state_msg: reading pg_extension failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
	{
		ext->state = SERVE_ABSENT;
		return;
	}
	strlcpy(ext->version, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1),
			sizeof(ext->version));
	if (strcmp(ext->version, SM_RELEASE) != 0)
	{
		ext->state = SERVE_OTHER_RELEASE;
		return;
	}
	ext->state = SERVE_SERVING;
	ext->has_batch = strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2), "t") == 0;
	ext->has_check = strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3), "t") == 0;
	ext->has_sample = strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4), "t") == 0;
}

/* Log that the worker starts or stops serving its database, once per change */
static void
log_serve_state(const ExtensionState *ext)
{
	WorkerSlot *slot = &sm_worker_shared->slots[my_slot];
	const char *dbname = slot->dbname;

	if (slot->logged == ext->state)
		return;
	SpinLockAcquire(&sm_worker_shared->mutex);
	slot->logged = ext->state;
	SpinLockRelease(&sm_worker_shared->mutex);

	switch (ext->state)
	{
		case SERVE_SERVING:
			ereport(LOG,
					(errmsg("state_msg: serving database \"%s\"", dbname)));
			break;
		case SERVE_ABSENT:
			ereport(LOG,
					(errmsg("state_msg: not serving database \"%s\": extension state_msg is not installed there",
							dbname),
					 errdetail("The worker looks again every state_msg.worker_naptime.")));
			break;
		case SERVE_OTHER_RELEASE:
			ereport(LOG,
					(errmsg("state_msg: not serving database \"%s\": extension state_msg is at release %s there, the library is at release %s",
							dbname, ext->version, SM_RELEASE),
					 errhint("ALTER EXTENSION state_msg UPDATE in that database.")));
			break;
		case SERVE_UNKNOWN:
			break;
	}
}

/* What a worker's transaction does */
typedef enum WorkerTask
{
	TASK_DRAIN,					/* one batch of the queue */
	TASK_CHECK,					/* the resync check cycle */
	TASK_SAMPLE					/* a backlog sample */
} WorkerTask;

/*
 * Run one task in a transaction of its own, if the extension is installed
 * at this release and has the function.  Returns what process_queue_batch
 * returned (0 for the other tasks), or -1 if the database is not served.
 * Errors propagate, the transaction still open (the caller aborts it).
 */
static int64
worker_run_task(WorkerTask task)
{
	ExtensionState ext;
	int64		result = 0;
	const char *activity;
	const char *sql = NULL;

	switch (task)
	{
		case TASK_DRAIN:
			activity = "state_msg.process_queue_batch()";
			break;
		case TASK_CHECK:
			activity = "state_msg.run_resync_check()";
			break;
		default:
			activity = "state_msg.sample_backlog()";
			break;
	}

	worker_set_in_xact(true);
	worker_leave_if_wanted();

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);

	read_extension_state(&ext);
	log_serve_state(&ext);
	if (ext.state != SERVE_SERVING)
		result = -1;
	else if (task == TASK_DRAIN && ext.has_batch)
		sql = "SELECT state_msg.process_queue_batch(NULL::pg_catalog.int4)";
	else if (task == TASK_CHECK && ext.has_check)
		sql = "SELECT issued FROM state_msg.run_resync_check()";
	else if (task == TASK_SAMPLE && ext.has_sample)
		sql = "SELECT state_msg.sample_backlog()";

	if (sql != NULL)
	{
		int			rc;

		/* a fresh snapshot for the task, after the catalog read */
		PopActiveSnapshot();
		PushActiveSnapshot(GetTransactionSnapshot());
		rc = SPI_execute(sql, false, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "state_msg: %s failed: %s", activity, SPI_result_code_string(rc));
		if (task == TASK_DRAIN && SPI_processed == 1)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull);

			result = isnull ? 0 : DatumGetInt64(d);
		}
	}

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	worker_set_in_xact(false);
	return result;
}

/*
 * Run a task, catching its error: logged, the transaction rolled back.
 * Returns worker_run_task's result, or -2 after an error.
 */
static int64
worker_try_task(WorkerTask task, MemoryContext loop_context)
{
	int64		result = -2;

	PG_TRY();
	{
		result = worker_run_task(task);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(loop_context);
		HOLD_INTERRUPTS();
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		worker_set_in_xact(false);
		RESUME_INTERRUPTS();
		result = -2;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(loop_context);
	return result;
}

/* A worker's main loop: serve one database */
void
sm_worker_main(Datum arg)
{
	WorkerSlot *slot;
	MemoryContext loop_context;
	char		dbname[NAMEDATALEN];
	TimestampTz next_drain = 0;
	TimestampTz paused_until = 0;
	int64		pause = 0;
	bool		serving = false;
	bool		ok;

	my_slot = DatumGetInt32(arg);
	strlcpy(dbname, MyBgworkerEntry->bgw_extra, NAMEDATALEN);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (sm_worker_shared == NULL || my_slot < 0 || my_slot >= sm_worker_shared->nslots)
		elog(ERROR, "state_msg: worker started without its shared state");
	slot = &sm_worker_shared->slots[my_slot];

	BackgroundWorkerInitializeConnection(dbname, NULL, 0);
	pgstat_report_appname("state_msg worker");

	/* Take the slot, unless the launcher gave it to another database since */
	SpinLockAcquire(&sm_worker_shared->mutex);
	ok = slot->in_use && strcmp(slot->dbname, dbname) == 0 && slot->pid == 0;
	if (ok)
	{
		slot->pid = MyProcPid;
		slot->latch = MyLatch;
		slot->dboid = MyDatabaseId;
		slot->in_xact = false;
		slot->wake_pending = false;
	}
	SpinLockRelease(&sm_worker_shared->mutex);
	if (!ok)
		proc_exit(0);
	on_shmem_exit(worker_leave_slot, Int32GetDatum(my_slot));

	loop_context = AllocSetContextCreate(TopMemoryContext,
										 "state_msg worker loop",
										 ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(loop_context);

	for (;;)
	{
		TimestampTz now;
		TimestampTz next_event;
		int64		naptime = sm_worker_duration_usecs(sm_worker_naptime);
		bool		failed = false;
		int			rc;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			naptime = sm_worker_duration_usecs(sm_worker_naptime);
			/* a round now, under the new settings */
			next_drain = Min(next_drain, paused_until);
		}
		worker_leave_if_wanted();
		MemoryContextReset(loop_context);

		now = GetCurrentTimestamp();
		if (now >= paused_until)
		{
			int64		drained = 0;

			/*
			 * A batch of the queue, when woken or after a nap; it also tells
			 * whether the database is served
			 */
			if (now >= next_drain)
			{
				int64		r = worker_try_task(TASK_DRAIN, loop_context);

				if (r == -2)
					failed = true;
				else
				{
					serving = (r != -1);
					drained = Max(r, 0);
				}
				next_drain = (drained > 0) ? now : now + naptime;
			}

			/* the check cycle, when due; again an interval later, also after an error */
			if (serving && !failed && sm_resync_check_interval > 0 &&
				(slot->last_check == 0 ||
				 now >= slot->last_check + sm_worker_duration_usecs(sm_resync_check_interval)))
			{
				int64		r = worker_try_task(TASK_CHECK, loop_context);

				slot->last_check = now;
				failed |= (r == -2);
				serving &= (r != -1);
			}

			/* a backlog sample, every minute */
			if (serving && !failed &&
				(slot->last_sample == 0 || now >= slot->last_sample + SAMPLE_INTERVAL_USECS))
			{
				int64		r = worker_try_task(TASK_SAMPLE, loop_context);

				slot->last_sample = now;
				failed |= (r == -2);
				serving &= (r != -1);
			}

			if (failed)
			{
				/* pause a nap, doubling while failures repeat */
				pause = (pause == 0) ? naptime : Min(pause * 2, MAX_ERROR_PAUSE_USECS);
				pause = Max(pause, naptime);
				paused_until = now + pause;
				next_drain = paused_until;
				ereport(LOG,
						(errmsg("state_msg: worker for database \"%s\" pauses for %lld ms after an error",
								dbname, (long long) (pause / 1000))));
			}
			else
			{
				pause = 0;
				/* straight on to the next batch while batches find work */
				if (drained > 0)
					continue;
			}
		}

		/* sleep until the next task is due, a second at most */
		next_event = Max(next_drain, paused_until);
		if (serving && sm_resync_check_interval > 0 && slot->last_check != 0)
			next_event = Min(next_event,
							 Max(slot->last_check + sm_worker_duration_usecs(sm_resync_check_interval),
								 paused_until));
		if (serving && slot->last_sample != 0)
			next_event = Min(next_event,
							 Max(slot->last_sample + SAMPLE_INTERVAL_USECS, paused_until));
		now = GetCurrentTimestamp();
		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					   sm_ms_until(now, next_event, LOCK_LOOK_MS),
					   PG_WAIT_EXTENSION);
		if (rc & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			/* woken: new work, perhaps (not during a pause) */
			next_drain = Max(now, paused_until);
		}
	}
}
