-- The resync lifecycle (rules 5, 6 and 7): the check cycle issues requests
-- for old missing ranges, a resync-complete message (700/2) completes them,
-- and a request not completed within min_resync_period is reissued.  The
-- two monitoring queries of the user's source document run unchanged.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

SHOW state_msg.min_missing_message_age;
SHOW state_msg.min_resync_period;
SELECT state_msg.min_missing_message_age(), state_msg.min_resync_period();

-- Three clients: A and B lose messages, C does not
SELECT state_msg.ingest(c, s, 500, 'upd-' || s, 2, '2026-11-10 10:00:00+00'::timestamptz + s * interval '1 min')
FROM (VALUES ('A'), ('B'), ('C')) AS t(c), generate_series(1, 5) s
WHERE NOT (c IN ('A', 'B') AND s IN (2, 3));
SELECT client_id, first_serial, last_serial FROM state_msg.missing_ranges ORDER BY 1;

-- Rule 5: too young to resync (2 days by default)
SELECT * FROM state_msg.run_resync_check();
-- acting two days on, both are due
SELECT * FROM state_msg.run_resync_check(now() + interval '2 days');
SELECT client_id, reason, issued_at > now() + interval '47 hours' AS issued_as_of,
	   completed_at FROM state_msg.resync_requests ORDER BY client_id;
-- an outstanding request is not issued again before its time
SELECT * FROM state_msg.run_resync_check(now() + interval '3 days');

-- The monitoring queries, unchanged
SET search_path = state_msg, public;
select count(*) from SR_ClientMessageStats where LastResyncIssuedTime is not null
  and (LastResyncIssuedTime > LastResyncClientCompletedTime);
select count(*) from SR_ClientMessageStats where LastResyncIssuedTime is not null
  and LastResyncClientCompletedTime is null;
RESET search_path;
SELECT * FROM state_msg.resync_outstanding;

-- Rule 7: three days after the issue no completion was processed: both
-- are reissued
SELECT * FROM state_msg.run_resync_check(now() + interval '5 days');
SELECT client_id, reason, count(*) FROM state_msg.resync_requests
GROUP BY 1, 2 ORDER BY 1, 2;
SELECT client_id, resync_requests_issued FROM state_msg.clients ORDER BY 1;

-- Start again in the present, with no age limit, to follow one answer
TRUNCATE state_msg.resync_requests;
UPDATE state_msg.clients SET last_resync_issued_time = NULL;
SET state_msg.min_missing_message_age = 0;
SELECT * FROM state_msg.run_resync_check();

-- Rule 6: B answers: its cache resent with new serials, then 700/2
SELECT state_msg.ingest('B', 6, 500, 'upd-1', 3, '2026-11-10 10:01:00+00');
SELECT state_msg.ingest('B', 7, 500, 'upd-4', 3, '2026-11-10 10:04:00+00');
SELECT state_msg.ingest('B', 8, 700, 'resync', 2, '2026-11-12 08:00:00+00');
SELECT client_id,
	   last_resync_client_completed_time >= last_resync_issued_time AS completed
FROM state_msg.clients WHERE client_id IN ('A', 'B') ORDER BY 1;
SELECT client_id, completed_at IS NOT NULL AS completed
FROM state_msg.resync_requests ORDER BY client_id;
-- its gap below the answer no longer matters; A's is still there
SELECT client_id, first_serial, last_serial FROM state_msg.missing_ranges ORDER BY 1;
-- the resent messages are ordinary new messages
SELECT topic_id, state_id, serial_number FROM state_msg.client_state
WHERE client_id = 'B' AND topic_id IN ('upd-1', 'upd-4') ORDER BY 1;

SET search_path = state_msg, public;
select count(*) from SR_ClientMessageStats where LastResyncIssuedTime is not null
  and (LastResyncIssuedTime > LastResyncClientCompletedTime);
select count(*) from SR_ClientMessageStats where LastResyncIssuedTime is not null
  and LastResyncClientCompletedTime is null;
RESET search_path;

-- B is settled: no new request; A's completion is still awaited
SELECT * FROM state_msg.run_resync_check();
SELECT * FROM state_msg.run_resync_check(now() + interval '72 hours');
SELECT client_id, reason FROM state_msg.resync_requests ORDER BY request_id;

-- A duplicate of an old resync-complete does not complete a new request
SELECT state_msg.request_resync('B') > 0 AS issued;
SELECT state_msg.ingest('B', 8, 700, 'resync', 2, '2026-11-12 08:00:00+00');
SELECT count(*) AS open_for_b FROM state_msg.resync_requests
WHERE client_id = 'B' AND completed_at IS NULL;

-- The clients the next cycle reissues for, as seen now: make A's request
-- four days old
UPDATE state_msg.clients SET last_resync_issued_time = now() - interval '4 days'
WHERE client_id = 'A';
SELECT client_id, last_resync_client_completed_time, waited >= interval '4 days' AS waited_4_days
FROM state_msg.resync_reissue_due;
SELECT * FROM state_msg.resync_outstanding;

-- Manual requests name a known client
SELECT state_msg.request_resync('nobody');
SELECT state_msg.request_resync(NULL);
-- The check cycle runs at a real time
SELECT * FROM state_msg.run_resync_check(NULL);
SELECT * FROM state_msg.run_resync_check('infinity');
SELECT state_msg.request_resync('b', 'bogus');

-- A shorter reissue period, set per session
SET state_msg.min_resync_period = '1h';
SELECT state_msg.min_resync_period();
SELECT * FROM state_msg.run_resync_check(now() + interval '61 minutes');
SET state_msg.min_resync_period = 0;
SET state_msg.on_bad_message = 'ignore';
RESET state_msg.min_resync_period;
RESET state_msg.on_bad_message;

-- Issue and completion times order as the events did, even within one
-- statement or one transaction: a request issued after a completion stays
-- outstanding, for the monitoring queries compare the times.
SELECT count(*) FROM (
	SELECT state_msg.ingest('X', s, 500, 'u', 1, '2026-11-10 10:00+00'::timestamptz + s * interval '1 min')
	FROM generate_series(1, 5) s) AS t;
-- a completion, then a serial reset, in one statement
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('X', 6, 700, 'resync', 2, '2026-11-10 10:06+00'),
	   ('X', 1, 500, 'u', 3, '2026-11-21 10:00+00');
SELECT reason, completed_at IS NULL AS open FROM state_msg.resync_requests
WHERE client_id = 'X' ORDER BY request_id;
SELECT last_resync_issued_time > last_resync_client_completed_time AS outstanding
FROM state_msg.clients WHERE client_id = 'X';
-- a completion, then a request by hand, in one transaction
BEGIN;
SELECT state_msg.ingest('X', 2, 700, 'resync', 2, '2026-11-21 10:01+00');
SELECT state_msg.request_resync('X') > 0 AS issued;
COMMIT;
SELECT reason, completed_at IS NULL AS open FROM state_msg.resync_requests
WHERE client_id = 'X' ORDER BY request_id;
SELECT last_resync_issued_time > last_resync_client_completed_time AS outstanding
FROM state_msg.clients WHERE client_id = 'X';
-- a completion that leaves a later gap open, then the check cycle, in one
-- transaction: the new request is outstanding too
SELECT count(*) FROM (
	SELECT state_msg.ingest('Y', s, 500, 'u', 1, '2026-11-10 10:00+00'::timestamptz + s * interval '1 min')
	FROM unnest(ARRAY[1, 4, 7]) s) AS t;
BEGIN;
SELECT state_msg.ingest('Y', 5, 700, 'resync', 2, '2026-11-10 10:05+00');
SELECT first_serial, last_serial FROM state_msg.missing_ranges WHERE client_id = 'Y';
SELECT * FROM state_msg.run_resync_check();
COMMIT;
SELECT last_resync_issued_time > last_resync_client_completed_time AS outstanding
FROM state_msg.clients WHERE client_id = 'Y';

-- A request issued as of a later time, then answered now: the completion is
-- dated after the issue it answers, so neither monitoring query counts it
SELECT count(*) FROM (
	SELECT state_msg.ingest('N', s, 500, 'u', 1, now() - interval '10 days' + s * interval '1 min')
	FROM unnest(ARRAY[1, 5]) s) AS t;
SELECT * FROM state_msg.run_resync_check(now() + interval '3 days');
SELECT state_msg.ingest('N', 6, 700, 'r', 2, now());
SELECT last_resync_client_completed_time > last_resync_issued_time AS completed_after_issue
FROM state_msg.clients WHERE client_id = 'N';
SELECT completed_at > issued_at AS completed_after_issue
FROM state_msg.resync_requests WHERE client_id = 'N';
