-- What the check cycle would do, and what it did (release 1.1): the view
-- resync_candidates lists the clients the next cycle (as of the engine
-- clock) would act on, by the cycle's own test.  (The line each cycle logs
-- is checked by test/t/008_pg_cron.pl.)
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

-- Day 0: A and B lose serial 2, C does not
SELECT state_msg.ingest(c, s, 500, 'u' || s, 1, now())
FROM unnest(ARRAY['A', 'B', 'C']) c, generate_series(1, 3) s
WHERE NOT (c IN ('A', 'B') AND s = 2);
SELECT * FROM state_msg.resync_candidates;
SELECT * FROM state_msg.run_resync_check();

-- Day 2: both gaps are old enough
SET state_msg.clock_offset = '2d';
SELECT client_id, action, reason, last_resync_issued_time,
	   oldest_missing_detected_at = (SELECT min(detected_at) FROM state_msg.missing_ranges m WHERE m.client_id = v.client_id) AS oldest,
	   due_at = oldest_missing_detected_at + interval '2 days' AS due_at
FROM state_msg.resync_candidates v ORDER BY 1;
-- B fills its gap: only A is left; the cycle issues A's and skips nobody
SELECT state_msg.ingest('B', 2, 500, 'u2', 1, now());
SELECT client_id FROM state_msg.resync_candidates;
SELECT * FROM state_msg.run_resync_check();
SELECT count(*) FROM state_msg.resync_candidates;

-- A new gap for C, and A's request outstanding: two skipped
SELECT state_msg.ingest('C', 5, 500, 'u5', 1, now());
SELECT * FROM state_msg.run_resync_check();

-- Day 5: A's request waited three days: a reissue; C's gap is old enough
SET state_msg.clock_offset = '5d';
SELECT client_id, action, reason, last_resync_issued_time IS NOT NULL AS issued,
	   oldest_missing_detected_at IS NOT NULL AS has_range,
	   due_at <= state_msg.engine_now() AS due
FROM state_msg.resync_candidates ORDER BY 1;
SELECT * FROM state_msg.run_resync_check();
SELECT count(*) FROM state_msg.resync_candidates;

-- Pacing: with max_resync_requests_per_cycle, a cycle issues at most that
-- many requests, the longest overdue first; the rest wait for later cycles
-- (and count as skipped), and -1 lifts the limit.
-- S's gap is detected first (4 hours before P's), then R's, Q's and P's.
SET state_msg.clock_offset = '-4h';
SELECT state_msg.ingest('S', s, 500, 'u' || s, 1, now()) FROM generate_series(1, 3, 2) s;
SET state_msg.clock_offset = '-3h';
SELECT state_msg.ingest('R', s, 500, 'u' || s, 1, now()) FROM generate_series(1, 3, 2) s;
SET state_msg.clock_offset = '-2h';
SELECT state_msg.ingest('Q', s, 500, 'u' || s, 1, now()) FROM generate_series(1, 3, 2) s;
SET state_msg.clock_offset = '-1h';
SELECT state_msg.ingest('P', s, 500, 'u' || s, 1, now()) FROM generate_series(1, 3, 2) s;
SET state_msg.clock_offset = '3d';
SELECT client_id, action FROM state_msg.resync_candidates ORDER BY due_at, client_id;
SET state_msg.max_resync_requests_per_cycle = 2;
SELECT * FROM state_msg.run_resync_check();
SELECT client_id, reason FROM state_msg.resync_requests
WHERE client_id IN ('P', 'Q', 'R', 'S') ORDER BY request_id;
SET state_msg.max_resync_requests_per_cycle = 0;
SELECT * FROM state_msg.run_resync_check();
SET state_msg.max_resync_requests_per_cycle = -1;
SELECT * FROM state_msg.run_resync_check();
SELECT client_id, reason FROM state_msg.resync_requests
WHERE client_id IN ('P', 'Q', 'R', 'S') ORDER BY request_id;
SET state_msg.max_resync_requests_per_cycle = -2;
RESET state_msg.max_resync_requests_per_cycle;
RESET state_msg.clock_offset;
