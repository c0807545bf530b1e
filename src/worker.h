/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  What the background worker (worker.c) and its launcher (launcher.c)
 *	  share: the slots in shared memory and a few helpers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STATE_MSG_WORKER_H
#define STATE_MSG_WORKER_H

#include "nodes/pg_list.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

/* Shortest time between two starts of one database's worker */
#define MIN_RESTART_USECS		USECS_PER_SEC

/* What a worker last logged about its database, so it logs changes only */
typedef enum ServeState
{
	SERVE_UNKNOWN,
	SERVE_SERVING,
	SERVE_ABSENT,				/* extension not installed */
	SERVE_OTHER_RELEASE			/* installed at another release */
} ServeState;

/* One served database; slot i belongs to the launcher's entry i */
typedef struct WorkerSlot
{
	bool		in_use;			/* named in state_msg.databases */
	char		dbname[NAMEDATALEN];
	Oid			dboid;			/* InvalidOid until known */
	pid_t		pid;			/* the worker's, 0 while none runs */
	Latch	   *latch;			/* the worker's, NULL while none runs */
	bool		in_xact;		/* the worker is in (or entering) a
								 * transaction */
	bool		wake_pending;	/* work was queued while no worker ran */
	ServeState	logged;
	TimestampTz last_check;		/* last run of the check cycle, 0 for none */
	TimestampTz last_sample;	/* last backlog sample, 0 for none */
} WorkerSlot;

typedef struct WorkerShared
{
	slock_t		mutex;			/* protects everything below */
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	int			nslots;
	WorkerSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} WorkerShared;

/* The slots, in shared memory (worker.c) */
extern WorkerShared *sm_worker_shared;

/* Settings (worker.c defines them) */
extern char *sm_databases;
extern double sm_worker_naptime;

/* Helpers both use (worker.c) */
extern bool sm_parse_databases(const char *value, List **names);
extern int64 sm_worker_duration_usecs(double minutes);
extern long sm_ms_until(TimestampTz now, TimestampTz when, long limit);
extern bool sm_database_wanted_elsewhere(Oid dboid);

PGDLLEXPORT void sm_launcher_main(Datum arg);
PGDLLEXPORT void sm_worker_main(Datum arg);

#endif							/* STATE_MSG_WORKER_H */
