-- Forgetting clients: deleting a clients row deletes the client's states,
-- missing ranges and requests with it, so the engine meets the client again
-- as a new one (1.0 failed its next batch on the state rows left behind).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

SELECT state_msg.ingest('F1', 1, 500, 't', 1, '2026-11-10 10:00+00');
SELECT state_msg.ingest('F1', 5, 500, 't', 2, '2026-11-10 10:05+00');
SELECT state_msg.ingest('F1', 1, 500, 't', 3, '2026-11-10 10:10+00');	-- reset
SELECT state_msg.ingest('F2', 1, 500, 't', 1, '2026-11-10 10:00+00');
SELECT state_msg.ingest('F1', 3, 500, 't', 4, '2026-11-10 10:15+00');	-- gap
SELECT (SELECT count(*) FROM state_msg.client_state) AS states,
	   (SELECT count(*) FROM state_msg.missing_ranges) AS ranges,
	   (SELECT count(*) FROM state_msg.resync_requests) AS requests;

DELETE FROM state_msg.clients WHERE client_id = 'F1';
SELECT client_id, count(*) FROM state_msg.client_state GROUP BY 1;
SELECT (SELECT count(*) FROM state_msg.missing_ranges) AS ranges,
	   (SELECT count(*) FROM state_msg.resync_requests) AS requests;

-- the next batch meets F1 as a new client
SELECT state_msg.ingest('F1', 7, 500, 't', 5, '2026-11-10 10:20+00');
SELECT client_id, next_serial_number, serial_epoch, messages_processed
FROM state_msg.clients ORDER BY 1;
SELECT client_id, state_id, serial_number FROM state_msg.client_state ORDER BY 1;

