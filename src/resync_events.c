/*-------------------------------------------------------------------------
 *
 * resync_events.c
 *	  Resync requests and completions met while a batch processes a client.
 *
 * A serial reset issues a request at once; a resync-complete message (topic
 * type 700, state id 2) completes every open request of the client.  Both
 * are dated by the engine clock, in arrival order, under the one rule that
 * an event is never dated at or before the event it follows
 * (sm_resync_event_time()): the monitoring queries compare the two times.
 * store.c writes the result back.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "state_msg.h"

/* A serial reset issues a request (reason serial_reset) */
void
sm_resync_reset_issued(ClientTrack *track, TimestampTz now)
{
	ResetRequest *request;

	if (track->nreset_requests == track->maxreset_requests)
	{
		track->maxreset_requests = Max(4, track->maxreset_requests * 2);
		track->reset_requests = track->reset_requests == NULL ?
			palloc(track->maxreset_requests * sizeof(ResetRequest)) :
			repalloc(track->reset_requests,
					 track->maxreset_requests * sizeof(ResetRequest));
	}
	request = &track->reset_requests[track->nreset_requests++];
	request->issued_at = sm_resync_event_time(now, track->has_last_completed,
											  track->last_completed);
	request->completed = false;
	Assert(!track->has_last_completed ||
		   request->issued_at > track->last_completed);
	track->last_issued = request->issued_at;
	track->has_last_issued = true;
	sm_count(&track->counts.resync_requests_issued, 1);
	sm_stats_add(SM_STAT_RESYNCS_ISSUED, 1);
}

/*
 * A resync completion: every request still open is completed, those
 * stored before this batch and those this batch's resets issued.
 */
void
sm_resync_completed(ClientTrack *track, TimestampTz now)
{
	TimestampTz completed_at = sm_resync_event_time(now, track->has_last_issued,
													track->last_issued);

	if (!track->completes_stored)
	{
		track->completes_stored = true;
		track->stored_completed_at = completed_at;
	}
	for (int i = 0; i < track->nreset_requests; i++)
	{
		ResetRequest *request = &track->reset_requests[i];

		if (!request->completed)
		{
			request->completed = true;
			request->completed_at = completed_at;
		}
	}
	Assert(!track->has_last_issued || completed_at > track->last_issued);
	track->last_completed = completed_at;
	track->has_last_completed = true;
	sm_stats_add(SM_STAT_RESYNCS_COMPLETED, 1);
}
