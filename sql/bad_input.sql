-- Bad input (rule 9): each kind of bad row, under quarantine (stored in
-- state_msg.rejected_messages with a warning, the rest of the batch goes
-- on) and under error (the statement fails with the exact reason and
-- SQLSTATE, nothing of it applied).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';
\set VERBOSITY default

SHOW state_msg.on_bad_message;

-- One batch, good rows around bad ones.  Ids are limited in bytes (so that
-- index entries fit), serials to 2^48.
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time, user_params, source, topic_id_type, criticality)
VALUES ('GOOD', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00', NULL, 'mp', 3, 0),
	   (NULL, 1, 500, 'u1', 2, '2026-11-10 10:00:00+00', NULL, 'mp', 3, 0),
	   ('   ', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00', NULL, 'mp', 3, 0),
	   ('GUID:', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00', NULL, 'mp', 3, 0),
	   (repeat('x', 257), 1, 500, 'u1', 2, '2026-11-10 10:00:00+00', NULL, 'mp', 3, 0),
	   ('BAD', -1, 500, 'u1', 2, '2026-11-10 10:00:00+00', NULL, 'mp', 3, 0),
	   ('BAD', 1, NULL, 'u1', 2, '2026-11-10 10:00:00+00', NULL, 'mp', 3, 0),
	   ('BAD', 1, -500, 'u1', 2, '2026-11-10 10:00:00+00', NULL, 'mp', 3, 0),
	   ('BAD', 1, 500, NULL, 2, '2026-11-10 10:00:00+00', NULL, 'mp', 3, 0),
	   ('BAD', 1, 500, '', 2, '2026-11-10 10:00:00+00', NULL, 'mp', 3, 0),
	   ('BAD', 1, 500, repeat('t', 513), 2, '2026-11-10 10:00:00+00', NULL, 'mp', 3, 0),
	   ('GOOD', 2, 500, 'u2', 2, '2026-11-10 10:01:00+00', '{a,b,c,d,e}', 'mp', 3, 0),
	   ('BAD', 1, 500, 'u1', NULL, '2026-11-10 10:00:00+00', NULL, 'mp', 3, 0),
	   ('BAD', 1, 500, 'u1', -2, '2026-11-10 10:00:00+00', NULL, 'mp', 3, 0),
	   ('BAD', 1, 500, 'u1', 2, NULL, NULL, 'mp', 3, 0),
	   ('BAD', 1, 500, 'u1', 2, 'infinity', NULL, 'mp', 3, 0),
	   ('BAD', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00', '{a,b,c,d,e,f}', 'mp', 3, 0),
	   ('BAD', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00', '{{a,b},{c,d}}', 'mp', 3, 0),
	   ('BAD', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00', ARRAY[repeat('p', 4097)], 'mp', 3, 0),
	   ('BAD', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00', NULL, 'smtp', 3, 0),
	   ('BAD', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00', NULL, NULL, 3, 0),
	   ('BAD', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00', NULL, 'mp', NULL, 0),
	   ('BAD', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00', NULL, 'mp', 3, -1),
	   ('BAD', 9223372036854775807, 500, 'u1', 2, '2026-11-10 10:00:00+00', NULL, 'mp', 3, 0),
	   ('BAD', 1, 500, '  ', 2, '2026-11-10 10:00:00+00', NULL, 'mp', 3, 0),
	   (repeat('é', 200), 1, 500, 'u1', 2, '2026-11-10 10:00:00+00', NULL, 'mp', 3, 0),
	   ('GOOD', 3, 500, 'u3', 2, '2026-11-10 10:02:00+00', '{"",x}', 'mp', 3, 0);

SELECT row_number, sqlstate, reason, left(client_id, 10) AS client_id
FROM state_msg.rejected_messages ORDER BY rejected_id;

-- The good rows were processed; no bad one left a trace
SELECT client_id, next_serial_number, messages_processed FROM state_msg.clients;
SELECT topic_id, user_params FROM state_msg.client_state ORDER BY topic_id;

-- ingest() returns 'rejected'
SELECT state_msg.ingest('GOOD', 4, 500, NULL, 2, '2026-11-10 10:03:00+00');

-- Under error, the statement fails and nothing of it is applied
SET state_msg.on_bad_message = 'error';
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('GOOD', 4, 500, 'u4', 2, '2026-11-10 10:03:00+00'),
	   ('GOOD', 5, 500, 'u5', 2, '2026-11-10 10:04:00+00'),
	   ('GOOD', 6, 500, 'u6', -2, '2026-11-10 10:05:00+00');
SELECT state_msg.ingest('GOOD', 4, 500, 'u4', 2, '2026-11-10 10:03:00+00', user_params => '{1,2,3,4,5,6}');
SELECT state_msg.ingest(NULL, 4, 500, 'u4', 2, '2026-11-10 10:03:00+00');
SELECT state_msg.ingest('GOOD', 4, 500, 'u4', 2, '2026-11-10 10:03:00+00', source => 'xml');
SELECT client_id, next_serial_number, messages_processed FROM state_msg.clients;
SELECT count(*) AS rejected FROM state_msg.rejected_messages;

-- Many bad rows: ten warnings, then a summary
SET state_msg.on_bad_message = 'quarantine';
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'MANY', g, 500, 'u', -1, '2026-11-10 10:00:00+00' FROM generate_series(1, 25) g;
SELECT count(*) AS rejected FROM state_msg.rejected_messages WHERE client_id = 'MANY';

-- COPY takes the same path
COPY state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time) FROM stdin;
GOOD	4	500	u4	2	2026-11-10 10:03:00+00
GOOD	5	500	\N	2	2026-11-10 10:04:00+00
GOOD	6	500	u6	2	2026-11-10 10:05:00+00
\.
SELECT next_serial_number, messages_processed FROM state_msg.clients WHERE client_id = 'GOOD';

-- Values the columns' types refuse never reach the engine
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('GOOD', 7, 5000000000, 'u', 1, now());
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('GOOD', 7, 500, 'u', 1, 'yesterday-ish');

-- The inbox keeps no rows and refuses to change any
SELECT count(*) FROM state_msg.inbox;
UPDATE state_msg.inbox SET state_id = 1;
DELETE FROM state_msg.inbox;
