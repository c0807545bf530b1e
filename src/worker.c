/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background worker that drains the queue.
 *
 * Placeholder until the worker lands: nothing to wake.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "state_msg.h"

/* Tell the worker serving this database that work was queued (none yet) */
void
sm_worker_wake(void)
{
}
