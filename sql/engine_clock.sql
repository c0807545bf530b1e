-- The engine clock (hardening item 4), as the check cycle, requests by hand
-- and the monitoring views see it: the server's clock plus
-- state_msg.clock_offset, so a test can let days pass in a moment.
-- run_resync_check(as_of) acts at the engine clock by default; an as_of
-- later than it is for superusers only, and one more than a century away
-- is refused for everyone (later arithmetic would overflow).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
DROP ROLE IF EXISTS sm_operator;
RESET client_min_messages;
SET timezone = 'UTC';

-- How far the engine clock is from the server's clock plus d, in whole
-- minutes (0 when they agree: a test takes less than a minute)
CREATE FUNCTION pg_temp.off_by(t timestamptz, d interval) RETURNS bigint
LANGUAGE sql AS $$
	SELECT round(extract(epoch FROM t - (clock_timestamp() + d)) / 60)::bigint
$$;

SELECT pg_temp.off_by(state_msg.engine_now(), '0') AS off_by;
SET state_msg.clock_offset = '3d';
SELECT pg_temp.off_by(state_msg.engine_now(), '3d') AS off_by;
RESET state_msg.clock_offset;
-- the check cycle's as_of may be up to a century from the engine clock,
-- wherever that is
SET state_msg.clock_offset = '36500d';
SELECT * FROM state_msg.run_resync_check(now() + interval '150 years');
RESET state_msg.clock_offset;

-- A client with a gap detected now
SELECT state_msg.ingest('E', s, 500, 'u', 1, '2026-11-10 10:00+00') FROM unnest(ARRAY[1, 3]) s;
-- not due yet; two days of engine time later it is, and the request is
-- dated by the engine clock
SELECT * FROM state_msg.run_resync_check();
SET state_msg.clock_offset = '2d';
SELECT * FROM state_msg.run_resync_check();
SELECT reason, pg_temp.off_by(issued_at, '2d') AS off_by FROM state_msg.resync_requests;
SELECT pg_temp.off_by(last_resync_issued_time, '2d') AS off_by FROM state_msg.clients;
-- outstanding, not yet due again; three more days and the views and the
-- check cycle agree that it is
SELECT * FROM state_msg.resync_outstanding;
SET state_msg.clock_offset = '7201min';	-- 5 days and a minute
SELECT * FROM state_msg.resync_outstanding;
SELECT client_id, round(extract(epoch FROM waited) / 60) AS waited_min FROM state_msg.resync_reissue_due;
SELECT * FROM state_msg.run_resync_check();
-- a request by hand is dated by the engine clock too
SELECT state_msg.request_resync('E') > 0 AS issued;
SELECT reason, pg_temp.off_by(issued_at, '7201min') AS off_by
FROM state_msg.resync_requests ORDER BY request_id;
RESET state_msg.clock_offset;

-- as_of must be a finite time within a century of the engine clock (the
-- errors' detail gives the allowed range, which moves with the clock)
\set VERBOSITY terse
SELECT * FROM state_msg.run_resync_check(NULL);
SELECT * FROM state_msg.run_resync_check('-infinity');
SELECT * FROM state_msg.run_resync_check('294276-12-31');
SELECT * FROM state_msg.run_resync_check(state_msg.engine_now() + interval '101 years');
SELECT * FROM state_msg.run_resync_check(state_msg.engine_now() - interval '101 years');
\set VERBOSITY default

-- A superuser may act up to a century ahead; later batches of the client
-- still compute their times (the completion follows the issue)
SELECT state_msg.ingest('F', s, 500, 'u', 1, '2026-11-10 10:00+00') FROM unnest(ARRAY[1, 3]) s;
SELECT * FROM state_msg.run_resync_check(state_msg.engine_now() + interval '99 years');
SELECT state_msg.ingest('F', 4, 700, 'resync', 2, '2026-11-10 10:04+00');
SELECT state_msg.ingest('F', 5, 500, 'u', 2, '2026-11-10 10:05+00');
SELECT last_resync_client_completed_time > last_resync_issued_time AS completed_after_issue,
	   next_serial_number
FROM state_msg.clients WHERE client_id = 'F';
SELECT count(*) FILTER (WHERE completed_at > issued_at) AS completed_after_issue
FROM state_msg.resync_requests WHERE client_id = 'F';

-- Another role, granted the check cycle (and the engine clock, its
-- default), acts at the engine clock or before it, never after it
CREATE ROLE sm_operator;
GRANT USAGE ON SCHEMA state_msg TO sm_operator;
GRANT EXECUTE ON FUNCTION state_msg.run_resync_check(timestamptz),
	state_msg.engine_now() TO sm_operator;
SET ROLE sm_operator;
SELECT * FROM state_msg.run_resync_check();
SELECT * FROM state_msg.run_resync_check(now() - interval '1 day');
\set VERBOSITY terse
SELECT * FROM state_msg.run_resync_check(state_msg.engine_now() + interval '1 hour');
\set VERBOSITY default
RESET ROLE;
-- the engine clock a superuser moved ahead is the operator's limit too
SET state_msg.clock_offset = '1d';
SET ROLE sm_operator;
SELECT * FROM state_msg.run_resync_check(now() + interval '23 hours');
RESET ROLE;
RESET state_msg.clock_offset;
-- without the engine clock, only an explicit as_of works
REVOKE EXECUTE ON FUNCTION state_msg.engine_now() FROM sm_operator;
SET ROLE sm_operator;
SELECT * FROM state_msg.run_resync_check();
SELECT * FROM state_msg.run_resync_check(now());
RESET ROLE;

-- resync_event_time(): the one rule for dating a resync event
SELECT state_msg.resync_event_time('2026-11-10 10:00+00', NULL) AS no_event_before,
	   state_msg.resync_event_time('2026-11-10 10:00+00', '2026-11-10 09:00+00') AS earlier_event,
	   state_msg.resync_event_time('2026-11-10 10:00+00', '2026-11-10 10:00+00') AS same_time,
	   state_msg.resync_event_time('2026-11-10 10:00+00', '2026-11-10 11:00+00') AS later_event;

DROP OWNED BY sm_operator;
DROP ROLE sm_operator;
