-- Counters never overflow and no input wedges a client: counters stop at
-- the largest bigint.  A client alternating serial 0 (a reset each time)
-- and 2^48 (a gap) adds about 2^48 missing serials per pair.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

-- Within one statement: 2^15 + 2 pairs overflow a 64-bit sum
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'O', CASE WHEN i % 2 = 0 THEN 0 ELSE 281474976710656 END, 500, 't', 1,
	   '2026-01-01 00:00+00'::timestamptz + i * interval '1 second'
FROM generate_series(0, 65539) i;
SELECT missing_serials, serial_resets, serial_epoch, next_serial_number, messages_processed
FROM state_msg.clients WHERE client_id = 'O';

-- Across statements: the client keeps being processed
SELECT state_msg.ingest('O', 0, 500, 't', 2, '2026-01-02 00:00+00');
SELECT state_msg.ingest('O', 281474976710656, 500, 't', 3, '2026-01-02 00:00:01+00');
SELECT missing_serials, serial_resets FROM state_msg.clients WHERE client_id = 'O';
SELECT state_id FROM state_msg.client_state WHERE client_id = 'O';

-- Every counter saturates, not only missing_serials
UPDATE state_msg.clients
SET messages_processed = 9223372036854775807, late_fills = 9223372036854775807,
	duplicates = 9223372036854775807, serial_resets = 9223372036854775807,
	unserialized_messages = 9223372036854775807,
	clock_skewed_messages = 9223372036854775807,
	resync_requests_issued = 9223372036854775807
WHERE client_id = 'O';
SELECT state_msg.ingest('O', 0, 500, 't', 4, '2026-01-03 00:00+00');	-- a reset
SELECT state_msg.ingest('O', 0, 500, 't', 4, '2026-01-03 00:00+00');	-- a duplicate
SELECT state_msg.ingest('O', 5, 500, 't', 5, '2026-01-03 00:01+00');	-- a gap
SELECT state_msg.ingest('O', 2, 500, 't', 5, '2026-01-03 00:02+00');	-- a late fill
SELECT state_msg.ingest('O', NULL, 500, 'u', 4, '2099-01-03 00:00+00');
SELECT messages_processed, late_fills, duplicates, serial_resets, unserialized_messages,
	   clock_skewed_messages, resync_requests_issued
FROM state_msg.clients WHERE client_id = 'O';
