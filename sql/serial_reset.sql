-- Serial reset (rule 4): a reinstalled client restarts its serials.  The
-- rule: a serial below the next expected one, outside every missing range,
-- with a message time later than every serialized message of the client so
-- far.  A duplicate upload of an early message keeps its original time and
-- is not a reset.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

SELECT state_msg.ingest('C1', s, 500, 'upd-' || (s % 3), s % 4,
						'2026-11-01 00:00:00+00'::timestamptz + s * interval '1 hour')
FROM generate_series(1, 30) s;
-- a gap that will never be filled: 31..34
SELECT state_msg.ingest('C1', 35, 500, 'upd-9', 1, '2026-11-02 11:00:00+00');

-- A duplicate upload of serial 3, original time: not a reset
SELECT state_msg.ingest('C1', 3, 500, 'upd-0', 3, '2026-11-01 03:00:00+00');

-- The client is reinstalled and starts again at 1, with new times
SELECT state_msg.ingest('C1', 1, 500, 'upd-1', 3, '2026-11-20 09:00:00+00');
SELECT state_msg.ingest('C1', 2, 500, 'upd-2', 2, '2026-11-20 09:01:00+00');
SELECT state_msg.ingest('C1', 3, 500, 'upd-0', 1, '2026-11-20 09:02:00+00');

SELECT next_serial_number, serial_epoch, messages_processed, duplicates,
	   serial_resets, resync_requests_issued,
	   last_resync_issued_time IS NOT NULL AS resync_issued
FROM state_msg.clients;

-- The old epoch's missing range can never be filled: it is gone
SELECT count(*) AS missing_ranges FROM state_msg.missing_ranges;

-- A resync was requested for the reset
SELECT reason, completed_at IS NULL AS open FROM state_msg.resync_requests;

-- State ordering survives the reset: the new epoch's low serials win over
-- the old epoch's high ones, and nothing the client sent was dropped
SELECT topic_id, state_id, serial_number, serial_epoch
FROM state_msg.client_state ORDER BY topic_id;

-- A late message of the old epoch after the reset (time older than the new
-- epoch) is a duplicate, and does not overwrite new state
SELECT state_msg.ingest('C1', 2, 500, 'upd-2', 0, '2026-11-01 02:00:00+00');
SELECT state_id, serial_epoch FROM state_msg.client_state WHERE topic_id = 'upd-2';

-- A late message of the old epoch with a serial above the new epoch's is
-- stale too: no gap, no state
SELECT state_msg.ingest('C1', 25, 500, 'upd-2', 0, '2026-11-02 01:00:00+00');
SELECT next_serial_number, duplicates FROM state_msg.clients WHERE client_id = 'C1';
SELECT count(*) AS missing_ranges FROM state_msg.missing_ranges WHERE client_id = 'C1';
SELECT state_id, serial_number, serial_epoch FROM state_msg.client_state WHERE topic_id = 'upd-2';

-- A reset inside one statement: old serials, then the restart
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('C2', 100, 500, 'u', 1, '2026-11-01 10:00:00+00'),
	   ('C2', 101, 500, 'u', 2, '2026-11-01 11:00:00+00'),
	   ('C2', 1, 500, 'u', 3, '2026-11-21 08:00:00+00'),
	   ('C2', 2, 500, 'v', 3, '2026-11-21 08:05:00+00');
SELECT next_serial_number, serial_epoch, serial_resets, missing_serials
FROM state_msg.clients WHERE client_id = 'C2';
SELECT topic_id, state_id, serial_number, serial_epoch
FROM state_msg.client_state WHERE client_id = 'C2' ORDER BY topic_id;

-- Two reinstalls in one statement, with a resync answer between them: two
-- requests, the first completed, as one message at a time would give
SELECT state_msg.ingest(c, 100, 500, 't', 1, '2026-01-01 10:00+00')
FROM unnest('{R1,R2}'::text[]) c;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('R1', 1, 500, 't', 2, '2026-01-02 10:00+00'),
	   ('R1', 2, 700, 'r', 2, '2026-01-02 10:01+00'),
	   ('R1', 1, 500, 't', 3, '2026-01-03 10:00+00');
SELECT state_msg.ingest('R2', 1, 500, 't', 2, '2026-01-02 10:00+00');
SELECT state_msg.ingest('R2', 2, 700, 'r', 2, '2026-01-02 10:01+00');
SELECT state_msg.ingest('R2', 1, 500, 't', 3, '2026-01-03 10:00+00');
SELECT client_id, serial_resets, resync_requests_issued, serial_epoch,
	   last_resync_issued_time > last_resync_client_completed_time AS outstanding
FROM state_msg.clients WHERE client_id IN ('R1', 'R2') ORDER BY 1;
SELECT client_id, reason, completed_at IS NOT NULL AS completed,
	   completed_at >= issued_at AS completed_after_issue
FROM state_msg.resync_requests WHERE client_id IN ('R1', 'R2')
ORDER BY client_id, request_id;

