-- Current state (rule 3): per (client, topic type, topic id) the message with
-- the higher serial wins; late and duplicate messages never overwrite newer
-- state; messages without a serial are ordered by message time.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

SELECT state_msg.ingest('C1', 1, 500, 'upd-1', 2, '2026-11-10 10:01:00+00', user_params => '{200}');
SELECT state_msg.ingest('C1', 3, 500, 'upd-1', 3, '2026-11-10 10:03:00+00');
-- serial 2 arrives late: it fills the gap but is older than serial 3
SELECT state_msg.ingest('C1', 2, 500, 'upd-1', 1, '2026-11-10 10:02:00+00');
SELECT state_id, serial_number, message_time FROM state_msg.client_state
WHERE client_id = 'C1' AND topic_id = 'upd-1';

-- A late message for a topic with no newer message is the current state
SELECT state_msg.ingest('C1', 6, 500, 'upd-2', 2, '2026-11-10 10:06:00+00');
SELECT state_msg.ingest('C1', 4, 500, 'upd-3', 3, '2026-11-10 10:04:00+00');
SELECT topic_id, state_id, serial_number FROM state_msg.client_state
WHERE client_id = 'C1' ORDER BY topic_id;

-- The same topic id under another topic type is another topic
SELECT state_msg.ingest('C1', 7, 402, 'upd-1', 10, '2026-11-10 10:07:00+00');
SELECT topic_type, topic_id, state_id FROM state_msg.client_state
WHERE client_id = 'C1' AND topic_id = 'upd-1' ORDER BY topic_type;

-- In one statement the highest serial wins whatever the arrival order
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time, user_params)
VALUES ('C2', 12, 500, 'upd-1', 3, '2026-11-10 11:12:00+00', '{a,b}'),
	   ('C2', 10, 500, 'upd-1', 1, '2026-11-10 11:10:00+00', NULL),
	   ('C2', 11, 500, 'upd-1', 2, '2026-11-10 11:11:00+00', '{c}');
SELECT state_id, serial_number, user_params FROM state_msg.client_state WHERE client_id = 'C2';

-- A duplicate with a different (bogus) state changes nothing
SELECT state_msg.ingest('C2', 12, 500, 'upd-1', 0, '2026-11-10 11:12:00+00');
SELECT state_id, serial_number FROM state_msg.client_state WHERE client_id = 'C2';

-- Relayed messages (no serial) are applied by message time
SELECT state_msg.ingest('C3', NULL, 800, 'dep-1', 100, '2026-11-10 12:00:00+00', source => 'fsp');
SELECT state_msg.ingest('C3', NULL, 800, 'dep-1', 400, '2026-11-10 12:30:00+00', source => 'fsp');
SELECT state_msg.ingest('C3', NULL, 800, 'dep-1', 101, '2026-11-10 12:10:00+00', source => 'fsp');
SELECT state_id, serial_number, message_time, source FROM state_msg.client_state WHERE client_id = 'C3';

-- A serialized message and a relayed one for the same topic compare by time
SELECT state_msg.ingest('C3', 1, 800, 'dep-1', 700, '2026-11-10 12:20:00+00');
SELECT state_msg.ingest('C3', 2, 800, 'dep-1', 700, '2026-11-10 12:40:00+00');
SELECT state_id, serial_number, message_time, source FROM state_msg.client_state WHERE client_id = 'C3';

-- With and without serials mixed, "newer" is not a total order (a client's
-- clock may run behind its serials), so a statement folds its messages into
-- the stored state in arrival order: the same as one message at a time.
SELECT state_msg.ingest(c, 5, 500, 'u', 5, '2026-11-10 10:00+00')
FROM (VALUES ('D1'), ('D2')) AS t(c);
SELECT state_msg.ingest('D1', 6, 500, 'u', 6, '2026-11-10 09:00+00');
SELECT state_msg.ingest('D1', NULL, 500, 'u', 99, '2026-11-10 09:30+00', source => 'fsp');
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time, source)
VALUES ('D2', 6, 500, 'u', 6, '2026-11-10 09:00+00', 'mp'),
	   ('D2', NULL, 500, 'u', 99, '2026-11-10 09:30+00', 'fsp');
SELECT client_id, state_id, serial_number, message_time FROM state_msg.client_state
WHERE client_id IN ('D1', 'D2') ORDER BY client_id;
