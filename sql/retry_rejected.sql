-- Resubmitting quarantined rows (release 1.1): retry_rejected() processes
-- the rows asked for as one batch in rejected_id order; those that now pass
-- are processed and deleted, those that still fail stay with a fresh
-- reason, and unknown ids are ignored.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

-- R1 sends serials 1 to 5; 2, 3 and 4 are bad and quarantined
SET client_min_messages = error;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time, source)
VALUES ('R1', 1, 500, 'u', 1, '2026-11-10 10:01+00', 'mp'),
	   ('R1', 2, 500, 'u', -2, '2026-11-10 10:02+00', 'mp'),
	   ('R1', 3, 500, 'v', -3, '2026-11-10 10:03+00', 'mp'),
	   ('R1', 4, 500, 'w', 4, '2026-11-10 10:04+00', 'relay'),
	   ('R1', 5, 500, 'x', 5, '2026-11-10 10:05+00', 'mp'),
	   ('  ', 1, 500, 'u', 1, '2026-11-10 10:05+00', 'mp');
RESET client_min_messages;
SELECT rejected_id, row_number, client_id, serial_number, state_id, source, sqlstate, reason
FROM state_msg.rejected_messages ORDER BY 1;
SELECT client_id, first_serial, last_serial FROM state_msg.missing_ranges;

-- Retrying unchanged rows: all still fail, with a fresh rejected_at
UPDATE state_msg.rejected_messages SET rejected_at = '2000-01-01';
SELECT * FROM state_msg.retry_rejected(ARRAY(SELECT rejected_id FROM state_msg.rejected_messages));
SELECT rejected_id, rejected_at > '2001-01-01' AS fresh, reason FROM state_msg.rejected_messages ORDER BY 1;

-- The relay is fixed: serial 2 and 4 are corrected by hand, 3 is made bad
-- differently; 99 is unknown.  on_bad_message = error does not apply.
UPDATE state_msg.rejected_messages SET state_id = 2 WHERE serial_number = 2;
UPDATE state_msg.rejected_messages SET source = 'mp' WHERE serial_number = 4;
UPDATE state_msg.rejected_messages SET state_id = 3, topic_id = NULL WHERE serial_number = 3;
SET state_msg.on_bad_message = error;
SELECT * FROM state_msg.retry_rejected(
	ARRAY[99::bigint] || ARRAY(SELECT rejected_id FROM state_msg.rejected_messages
							   WHERE serial_number IN (2, 3, 4) ORDER BY serial_number DESC));
RESET state_msg.on_bad_message;
SELECT rejected_id, serial_number, sqlstate, reason FROM state_msg.rejected_messages ORDER BY 1;
-- 2 and 4 filled part of the gap; 3 remains missing
SELECT client_id, first_serial, last_serial FROM state_msg.missing_ranges;
SELECT topic_id, state_id, serial_number FROM state_msg.client_state ORDER BY 1;
SELECT client_id, messages_processed, late_fills FROM state_msg.clients;

-- Fixed at last: serial 3 fills the gap
UPDATE state_msg.rejected_messages SET topic_id = 'v' WHERE serial_number = 3;
SELECT * FROM state_msg.retry_rejected(ARRAY(SELECT rejected_id FROM state_msg.rejected_messages WHERE serial_number = 3));
SELECT count(*) FROM state_msg.missing_ranges;
SELECT rejected_id, client_id FROM state_msg.rejected_messages ORDER BY 1;

-- Empty and NULL arrays
SELECT * FROM state_msg.retry_rejected('{}');
SELECT * FROM state_msg.retry_rejected(NULL);
