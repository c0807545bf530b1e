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


-- state_msg.forget_clients(): ids normalized, unknown ids and NULLs
-- ignored, the other rows go with the clients rows
SELECT state_msg.ingest('GUID:6b0c9a51-3d1e-4f7a-9c21-0a1b2c3d4e5f', 1, 500, 't', 1, '2026-11-10 10:00+00');
SELECT state_msg.ingest('F3', s, 500, 't', 1, '2026-11-10 10:00+00') FROM unnest(ARRAY[1, 4]) s;
SELECT state_msg.request_resync('F3') > 0 AS requested;
SELECT client_id FROM state_msg.clients ORDER BY 1;
SELECT (SELECT count(*) FROM state_msg.client_state WHERE client_id <> 'F1' AND client_id <> 'F2') AS states,
	   (SELECT count(*) FROM state_msg.missing_ranges) AS ranges,
	   (SELECT count(*) FROM state_msg.resync_requests) AS requests;
SELECT state_msg.forget_clients(ARRAY[' guid: 6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F ', 'F3', 'nobody', NULL]);
SELECT client_id FROM state_msg.clients ORDER BY 1;
SELECT (SELECT count(*) FROM state_msg.client_state WHERE client_id <> 'F1' AND client_id <> 'F2') AS states,
	   (SELECT count(*) FROM state_msg.missing_ranges) AS ranges,
	   (SELECT count(*) FROM state_msg.resync_requests) AS requests;
SELECT state_msg.forget_clients('{}');
SELECT state_msg.forget_clients(NULL);
