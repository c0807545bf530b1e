/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  The engine's counters (state_msg.stats).
 *
 * Placeholder until the counters in shared memory land: counts are
 * dropped.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "state_msg.h"

/* Count n events of one kind (not kept yet) */
void
sm_stats_add(SmStat which, int64 n)
{
}
