-- Retention (release 1.1): state_msg.purge() deletes completed resync
-- requests completed more than keep_completed_requests ago and quarantined
-- rows rejected more than keep_rejected_messages ago, as of the engine
-- clock; outstanding requests stay whatever their age.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

SHOW state_msg.keep_completed_requests;
SHOW state_msg.keep_rejected_messages;
SET state_msg.keep_completed_requests = '2h';
SHOW state_msg.keep_completed_requests;
RESET state_msg.keep_completed_requests;

-- Day 0: P1 gets a request and completes it; P2 gets one that stays
-- outstanding; one bad row is quarantined
SELECT state_msg.ingest(c, 1, 500, 'u', 1, now()) FROM unnest(ARRAY['P1', 'P2']) c;
SELECT state_msg.request_resync(c) > 0 AS requested FROM unnest(ARRAY['P1', 'P2']) c;
SELECT state_msg.ingest('P1', 2, 700, 'resync', 2, now());
SELECT state_msg.ingest('P3', 1, 500, 'u', -1, now());
SELECT client_id, completed_at IS NOT NULL AS completed FROM state_msg.resync_requests ORDER BY 1;

-- Day 10: another completed request for P1, another bad row
SET state_msg.clock_offset = '10d';
SELECT state_msg.request_resync('P1') > 0 AS requested;
SELECT state_msg.ingest('P1', 3, 700, 'resync', 2, state_msg.engine_now());
SELECT state_msg.ingest('P3', 1, 500, 'u', -2, state_msg.engine_now());

-- Day 29: nothing is 30 days old
SET state_msg.clock_offset = '29d';
SELECT * FROM state_msg.purge();

-- Day 31: the day-0 completed request and the day-0 bad row go; P2's
-- outstanding request stays
SET state_msg.clock_offset = '31d';
SELECT * FROM state_msg.purge();
SELECT client_id, completed_at IS NOT NULL AS completed FROM state_msg.resync_requests ORDER BY 1;
SELECT reason FROM state_msg.rejected_messages;
-- purging again finds nothing more
SELECT * FROM state_msg.purge();

-- Day 41 with keep 0: all completed requests and bad rows go
SET state_msg.clock_offset = '41d';
SET state_msg.keep_completed_requests = 0;
SET state_msg.keep_rejected_messages = 0;
SELECT * FROM state_msg.purge();
SELECT client_id, completed_at IS NOT NULL AS completed FROM state_msg.resync_requests ORDER BY 1;
SELECT count(*) FROM state_msg.rejected_messages;
-- the clients keep their resync times
SELECT client_id, last_resync_issued_time IS NOT NULL AS issued,
	   last_resync_client_completed_time IS NOT NULL AS completed
FROM state_msg.clients ORDER BY 1;
