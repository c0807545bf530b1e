-- Backlog-aware resync: under state_msg.processing = queued, the check
-- cycle holds back a request for a client whose old enough missing serials
-- wait in the queue, and a reissue for a client whose 700/2 waits there;
-- it counts them per queue (backlog.held_back_resyncs, resync_held_back)
-- and in stats; backlog_aware_resync = off issues as ConfigMgr does.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

-- A, B and C each miss serial 2 (processed at once); B and C are asked
SELECT state_msg.ingest(c, s, 500, 'u' || s, 1, '2026-11-10 10:00+00')
FROM unnest(ARRAY['A', 'B', 'C']) c, generate_series(1, 3, 2) s;
SET state_msg.clock_offset = '2d';
SELECT state_msg.request_resync(c) > 0 AS asked FROM unnest(ARRAY['B', 'C']) c;

-- Now queued: A's lost serial 2 arrives late and waits; so does B's answer
-- (its cache renumbered, and 700/2), in the high queue
SET state_msg.processing = queued;
SELECT state_msg.ingest('A', 2, 500, 'u2', 1, '2026-11-10 10:00+00');
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('B', 4, 500, 'u1', 1, '2026-11-10 10:00+00'),
	   ('B', 5, 500, 'u3', 1, '2026-11-10 10:00+00'),
	   ('B', 6, 700, 'resync', 2, '2026-11-12 10:00+00');
SELECT queue, waiting FROM state_msg.backlog;

-- Five days on: A's range is old, B's and C's requests are three days old.
-- A's missing serial waits (low), B's answer waits (high): both held back;
-- C's request is reissued.
SET state_msg.clock_offset = '7201min';
SELECT client_id, action FROM state_msg.resync_candidates ORDER BY 1;
SELECT * FROM state_msg.resync_held_back_clients(
	state_msg.engine_now() - state_msg.min_resync_period(),
	state_msg.engine_now() - state_msg.min_missing_message_age()) ORDER BY 1;
-- Pacing counts only what is not held back: A is the longest overdue, but
-- held back, so the one request goes to C
BEGIN;
SET LOCAL state_msg.max_resync_requests_per_cycle = 1;
SELECT * FROM state_msg.run_resync_check();
SELECT client_id, reason FROM state_msg.resync_requests ORDER BY request_id DESC LIMIT 1;
ROLLBACK;
SELECT * FROM state_msg.run_resync_check();
SELECT queue, held_back_resyncs FROM state_msg.backlog;
SELECT queue, clients FROM state_msg.resync_held_back ORDER BY queue;
SELECT resyncs_issued, resyncs_reissued, resyncs_held_back FROM state_msg.stats;

-- Off: ConfigMgr's documented behaviour, whatever waits
BEGIN;
SET LOCAL state_msg.backlog_aware_resync = off;
SELECT * FROM state_msg.run_resync_check();
SELECT queue, held_back_resyncs FROM state_msg.backlog;
ROLLBACK;

-- Once drained, A's gap is filled and B's request completed: nothing due,
-- nothing held back
SELECT state_msg.process_queue_batch() AS processed;
SELECT client_id, next_serial_number,
	   last_resync_client_completed_time IS NOT NULL AS completed
FROM state_msg.clients ORDER BY 1;
SELECT count(*) FROM state_msg.missing_ranges WHERE client_id IN ('A', 'B');
SELECT * FROM state_msg.run_resync_check();
SELECT queue, held_back_resyncs FROM state_msg.backlog;

RESET state_msg.processing;
RESET state_msg.clock_offset;
