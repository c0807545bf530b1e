-- The inbox's trigger finds its columns by name: after columns are added,
-- dropped or re-added, INSERT and COPY keep working, and columns the inbox
-- does not know are ignored.  Only a missing column or a column of another
-- type is refused, naming the column.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

CREATE VIEW c AS
SELECT client_id, next_serial_number, messages_processed FROM state_msg.clients
ORDER BY client_id;

-- An added column is ignored, whatever it holds
ALTER TABLE state_msg.inbox ADD COLUMN note text;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time, note)
VALUES ('C1', 1, 500, 'u', 2, '2026-11-10 10:00+00', 'ignored');
COPY state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time, note) FROM stdin;
C1	2	500	u	2	2026-11-10 10:01+00	ignored
\.
SELECT * FROM c;

-- Dropped again: a dropped attribute stays in the table, and is skipped
ALTER TABLE state_msg.inbox DROP COLUMN note;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('C1', 3, 500, 'u', 2, '2026-11-10 10:02+00');
INSERT INTO state_msg.inbox VALUES ('C1', 4, 500, 'u', 0, 2, 0, '2026-11-10 10:03+00', '{p}', 'fsp');
COPY state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time) FROM stdin;
C1	5	500	u	2	2026-11-10 10:04+00
\.
-- (without a column list, a field for every column, the 1.1 ones too)
COPY state_msg.inbox FROM stdin;
C1	6	500	u	0	2	0	2026-11-10 10:05+00	{p}	mp	\N	\N	\N	\N	\N	\N	\N
\.
SELECT * FROM c;
SELECT serial_number, user_params, source FROM state_msg.client_state WHERE client_id = 'C1';

-- A column dropped and re-added moves to the end; it is still found
BEGIN;
ALTER TABLE state_msg.inbox DROP COLUMN source;
ALTER TABLE state_msg.inbox ADD COLUMN source text DEFAULT 'fsp';
ALTER TABLE state_msg.inbox ADD COLUMN extra int;
INSERT INTO state_msg.inbox VALUES ('C2', 1, 500, 'u', 0, 2, 0, '2026-11-10 10:00+00', NULL,
	NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'mp', 42);
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('C2', 2, 500, 'v', 2, '2026-11-10 10:01+00');
SELECT topic_id, source FROM state_msg.client_state WHERE client_id = 'C2' ORDER BY topic_id;
ROLLBACK;

-- A column the inbox needs that is missing, or of another type, is refused
BEGIN;
ALTER TABLE state_msg.inbox DROP COLUMN state_id;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, message_time)
VALUES ('C1', 7, 500, 'u', '2026-11-10 10:06+00');
ROLLBACK;
BEGIN;
ALTER TABLE state_msg.inbox RENAME COLUMN topic_id TO topic;
COPY state_msg.inbox (client_id, serial_number, topic_type, topic, state_id, message_time) FROM stdin;
C1	7	500	u	2	2026-11-10 10:06+00
\.
ROLLBACK;
BEGIN;
ALTER TABLE state_msg.inbox ALTER COLUMN serial_number TYPE numeric;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('C1', 7, 500, 'u', 2, '2026-11-10 10:06+00');
ROLLBACK;
-- the same for another table given the trigger
CREATE TABLE short_inbox (client_id text, serial_number bigint, topic_type int,
	topic_id text, state_id int, message_time timestamptz);
CREATE TRIGGER process AFTER INSERT ON short_inbox REFERENCING NEW TABLE AS new_messages
	FOR EACH STATEMENT EXECUTE FUNCTION state_msg.inbox_process();
INSERT INTO short_inbox VALUES ('C1', 7, 500, 'u', 2, '2026-11-10 10:06+00');
DROP TABLE short_inbox;

-- Nothing was lost or half applied on the way
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('C1', 7, 500, 'u', 2, '2026-11-10 10:06+00');
SELECT * FROM c;
SELECT count(*) AS rejected FROM state_msg.rejected_messages;
DROP VIEW c;
