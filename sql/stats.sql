-- The engine's counters (state_msg.stats) without the library preloaded:
-- they are this backend's own (shared is false), count only what commits
-- (a rolled-back transaction, savepoint or EXCEPTION block counts
-- nothing), count processed messages by verdict, rejected rows, batches,
-- resyncs issued, reissued and completed, and stats_reset() (operator
-- only) zeroes them.  test/t/013_prometheus.pl covers the shared counters.
SET client_min_messages = warning;
DROP VIEW IF EXISTS sm_counters;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
DROP ROLE IF EXISTS sm_stats_reader, sm_stats_operator;
RESET client_min_messages;
SET timezone = 'UTC';

CREATE ROLE sm_stats_reader IN ROLE state_msg_reader;
CREATE ROLE sm_stats_operator IN ROLE state_msg_operator;

-- The counters without the processing time (not reproducible) as a view
CREATE VIEW sm_counters AS
SELECT processed, processed_in_order AS in_order, processed_gap AS gap,
	   processed_late_fill AS late_fill, processed_duplicate AS duplicate,
	   processed_serial_reset AS reset, processed_unserialized AS unser,
	   rejected, batches, resyncs_issued AS issued,
	   resyncs_reissued AS reissued, resyncs_completed AS completed,
	   resyncs_held_back AS held_back, enqueued, shared
FROM state_msg.stats;

SELECT state_msg.stats_reset();
SELECT * FROM sm_counters;
SELECT stats_reset > now() - interval '1 minute' AS just_reset,
	   processing_time = 0 AS no_time
FROM state_msg.stats;

-- One message of each verdict, each its own batch
SELECT state_msg.ingest('A', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00');
SELECT state_msg.ingest('A', 3, 500, 'u1', 2, '2026-11-10 10:01:00+00');
SELECT state_msg.ingest('A', 2, 500, 'u1', 2, '2026-11-10 10:02:00+00');
SELECT state_msg.ingest('A', 2, 500, 'u1', 2, '2026-11-10 10:02:00+00');
SELECT state_msg.ingest('A', NULL, 500, 'u2', 2, '2026-11-10 10:03:00+00');
SELECT * FROM sm_counters;
SELECT processing_time > 0 AS timed FROM state_msg.stats;

-- A rolled-back transaction counts nothing
BEGIN;
SELECT state_msg.ingest('A', 4, 500, 'u1', 2, '2026-11-10 10:04:00+00');
SELECT processed FROM sm_counters;		-- not yet: counted at commit
ROLLBACK;
SELECT * FROM sm_counters;

-- Nor does a rolled-back savepoint; a released one counts at commit
BEGIN;
SAVEPOINT a;
SELECT state_msg.ingest('A', 4, 500, 'u1', 2, '2026-11-10 10:04:00+00');
ROLLBACK TO a;
SAVEPOINT b;
SAVEPOINT c;
SELECT state_msg.ingest('A', 4, 500, 'u1', 2, '2026-11-10 10:04:00+00');
RELEASE c;
SELECT state_msg.ingest('A', 5, 500, 'u1', 2, '2026-11-10 10:05:00+00');
RELEASE b;
COMMIT;
SELECT * FROM sm_counters;

-- Nor a batch whose error a PL/pgSQL EXCEPTION block catches
DO $$
BEGIN
	PERFORM state_msg.ingest('A', 6, 500, 'u1', 2, '2026-11-10 10:06:00+00');
	RAISE EXCEPTION 'undo the batch';
EXCEPTION WHEN raise_exception THEN
	NULL;
END
$$;
SELECT * FROM sm_counters;

-- An INSERT of several rows is one batch; its bad row is rejected
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
							 state_id, message_time)
VALUES ('B', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00'),
	   ('B', 2, 500, 'u1', 3, '2026-11-10 10:01:00+00'),
	   (NULL, 3, 500, 'u1', 3, '2026-11-10 10:01:00+00');
-- a rejected row of a rolled-back transaction is not counted
BEGIN;
SELECT state_msg.ingest(NULL, 1, 500, 'u1', 2, '2026-11-10 10:00:00+00');
ROLLBACK;
SELECT * FROM sm_counters;

-- Resyncs: by hand, by a serial reset, completed by a 700/2, by the check
-- cycle, and reissued by it
SELECT state_msg.request_resync('A') > 0 AS requested;
SELECT state_msg.ingest('A', 1, 500, 'u1', 2, '2026-11-20 10:00:00+00');
SELECT state_msg.ingest('A', 2, 700, 'r', 2, '2026-11-20 10:01:00+00');
SELECT state_msg.ingest('C', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00');
SELECT state_msg.ingest('C', 3, 500, 'u1', 2, '2026-11-10 10:01:00+00');
SELECT * FROM state_msg.run_resync_check(now() + interval '2 days');
SELECT * FROM state_msg.run_resync_check(now() + interval '6 days');
SELECT * FROM sm_counters;

-- The counters are this backend's: a new session starts at zero
\c
SELECT * FROM sm_counters;
SELECT processing_time = 0 AS no_time FROM state_msg.stats;
SELECT state_msg.ingest('D', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00');
SELECT processed, batches, shared FROM state_msg.stats;

-- A reader reads them, only an operator resets them
SET ROLE sm_stats_reader;
SELECT processed FROM state_msg.stats;
SELECT state_msg.stats_reset();
RESET ROLE;
SET ROLE sm_stats_operator;
SELECT state_msg.stats_reset();
SELECT processed, batches FROM state_msg.stats;
RESET ROLE;

-- A reset is not undone by a rollback
SELECT state_msg.ingest('D', 2, 500, 'u1', 2, '2026-11-10 10:01:00+00');
BEGIN;
SELECT state_msg.stats_reset();
ROLLBACK;
SELECT processed FROM state_msg.stats;

DROP VIEW sm_counters;
DROP ROLE sm_stats_reader, sm_stats_operator;
