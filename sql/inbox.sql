-- The inbox: an insert target that keeps nothing.  Every way of writing to
-- it reaches the engine once per statement; every other command either does
-- nothing or says why it cannot.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

SELECT amname, amtype FROM pg_am WHERE amname = 'state_msg_inbox';
SELECT a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam
WHERE c.oid = 'state_msg.inbox'::regclass;

-- INSERT ... RETURNING shows what was written; nothing stays
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('I1', 1, 500, 'u', 2, '2026-11-10 10:00+00')
RETURNING client_id, serial_number, source;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'I1', g, 500, 'u' || g % 3, 2, '2026-11-10 10:00+00'::timestamptz + g * interval '1 min'
FROM generate_series(2, 1000) g;
-- an empty statement is fine
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'I1', g, 500, 'u', 2, now() FROM generate_series(1, 0) g;
-- a transaction that rolls back leaves nothing
BEGIN;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('I1', 1001, 500, 'u', 3, '2026-11-11 10:00+00');
ROLLBACK;
SELECT next_serial_number, messages_processed FROM state_msg.clients;
SELECT count(*) FROM state_msg.client_state;

SELECT count(*) FROM state_msg.inbox;
SELECT pg_relation_size('state_msg.inbox');
SELECT * FROM state_msg.inbox TABLESAMPLE SYSTEM (100);
UPDATE state_msg.inbox SET state_id = 1;
DELETE FROM state_msg.inbox;
SELECT * FROM state_msg.inbox FOR UPDATE;
COPY state_msg.inbox TO stdout;
VACUUM state_msg.inbox;
ANALYZE state_msg.inbox;
TRUNCATE state_msg.inbox;
CREATE INDEX ON state_msg.inbox (client_id);

-- The trigger refuses a table that does not have the inbox's columns...
CREATE TABLE wrong (client_id int, serial_number int, topic_type int, topic_id int,
	topic_id_type int, state_id int, criticality int, message_time int,
	user_params int, source int);
CREATE TRIGGER process AFTER INSERT ON wrong REFERENCING NEW TABLE AS new_messages
	FOR EACH STATEMENT EXECUTE FUNCTION state_msg.inbox_process();
INSERT INTO wrong VALUES (1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
DROP TABLE wrong;
-- ...including the inbox itself once altered
BEGIN;
ALTER TABLE state_msg.inbox ALTER COLUMN serial_number TYPE numeric;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('I1', 1001, 500, 'u', 3, '2026-11-11 10:00+00');
ROLLBACK;
-- An inbox table cannot take rows as a partition: they would be lost
CREATE TABLE routed (LIKE state_msg.inbox) PARTITION BY LIST (source);
CREATE TABLE routed_mp (LIKE state_msg.inbox) USING state_msg_inbox;
ALTER TABLE routed ATTACH PARTITION routed_mp FOR VALUES IN ('mp');
INSERT INTO routed (client_id, serial_number, topic_type, topic_id, state_id, message_time, source)
VALUES ('I1', 1001, 500, 'u', 3, '2026-11-11 10:00+00', 'mp');
DROP TABLE routed;

-- It still works after all that
SELECT state_msg.ingest('I1', 1001, 500, 'u', 3, '2026-11-11 10:00+00');
