-- The inbox keeps no rows, so it accepts rows only when its processing
-- trigger will fire for them.  Every way of switching the trigger off
-- (session_replication_role = replica, DISABLE TRIGGER, dropping or
-- replacing it) makes INSERT and COPY fail with a clear error instead of
-- discarding the rows; switching it back on, or ENABLE ALWAYS, brings
-- processing back.  Each accepted message advances client G's serial.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

CREATE VIEW g AS
SELECT next_serial_number, messages_processed FROM state_msg.clients
WHERE client_id = 'G';

INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('G', 1, 500, 'u', 2, '2026-11-10 10:00+00');
SELECT * FROM g;

-- session_replication_role = replica, as restore and migration tools set it
SET session_replication_role = replica;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('G', 2, 500, 'u', 2, '2026-11-10 10:01+00');
COPY state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time) FROM stdin;
G	2	500	u	2	2026-11-10 10:01+00
\.
-- a statement without rows has nothing to lose
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'G', 2, 500, 'u', 2, now() WHERE false;
SELECT * FROM g;
-- role local fires the trigger like origin
SET session_replication_role = local;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('G', 2, 500, 'u', 2, '2026-11-10 10:01+00');
RESET session_replication_role;
SELECT * FROM g;

-- DISABLE TRIGGER ALL (pg_restore --disable-triggers), then ENABLE
ALTER TABLE state_msg.inbox DISABLE TRIGGER ALL;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('G', 3, 500, 'u', 2, '2026-11-10 10:02+00');
COPY state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time) FROM stdin;
G	3	500	u	2	2026-11-10 10:02+00
\.
ALTER TABLE state_msg.inbox ENABLE TRIGGER ALL;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('G', 3, 500, 'u', 2, '2026-11-10 10:02+00');
SELECT * FROM g;

-- DISABLE TRIGGER inbox_process, then ENABLE
ALTER TABLE state_msg.inbox DISABLE TRIGGER inbox_process;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('G', 4, 500, 'u', 2, '2026-11-10 10:03+00');
ALTER TABLE state_msg.inbox ENABLE TRIGGER inbox_process;
COPY state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time) FROM stdin;
G	4	500	u	2	2026-11-10 10:03+00
\.
SELECT * FROM g;

-- ENABLE ALWAYS: rows are processed in role replica too
ALTER TABLE state_msg.inbox ENABLE ALWAYS TRIGGER inbox_process;
SET session_replication_role = replica;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('G', 5, 500, 'u', 2, '2026-11-10 10:04+00');
COPY state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time) FROM stdin;
G	6	500	u	2	2026-11-10 10:05+00
\.
RESET session_replication_role;
SELECT * FROM g;

-- ENABLE REPLICA: processed in role replica, refused in role origin
ALTER TABLE state_msg.inbox ENABLE REPLICA TRIGGER inbox_process;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('G', 7, 500, 'u', 2, '2026-11-10 10:06+00');
SET session_replication_role = replica;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('G', 7, 500, 'u', 2, '2026-11-10 10:06+00');
RESET session_replication_role;
ALTER TABLE state_msg.inbox ENABLE TRIGGER inbox_process;
SELECT * FROM g;

-- Only an AFTER INSERT statement trigger with a NEW TABLE and no WHEN that
-- runs state_msg_inbox_process() counts
BEGIN;
DROP TRIGGER inbox_process ON state_msg.inbox;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('G', 8, 500, 'u', 2, '2026-11-10 10:07+00');
ROLLBACK;
BEGIN;
DROP TRIGGER inbox_process ON state_msg.inbox;
CREATE TRIGGER never AFTER INSERT ON state_msg.inbox
	REFERENCING NEW TABLE AS new_messages
	FOR EACH STATEMENT WHEN (false) EXECUTE FUNCTION state_msg.inbox_process();
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('G', 8, 500, 'u', 2, '2026-11-10 10:07+00');
ROLLBACK;
BEGIN;
DROP TRIGGER inbox_process ON state_msg.inbox;
CREATE FUNCTION pg_temp.ignore() RETURNS trigger LANGUAGE plpgsql
AS $$BEGIN RETURN NULL; END$$;
CREATE TRIGGER other AFTER INSERT ON state_msg.inbox
	REFERENCING NEW TABLE AS new_messages
	FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.ignore();
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('G', 8, 500, 'u', 2, '2026-11-10 10:07+00');
ROLLBACK;
-- replacing the trigger's function is noticed
BEGIN;
CREATE OR REPLACE FUNCTION state_msg.inbox_process() RETURNS trigger LANGUAGE plpgsql
AS $$BEGIN RETURN NULL; END$$;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('G', 8, 500, 'u', 2, '2026-11-10 10:07+00');
ROLLBACK;
-- the same C function under another SQL name counts
BEGIN;
DROP TRIGGER inbox_process ON state_msg.inbox;
CREATE FUNCTION pg_temp.process() RETURNS trigger
AS '$libdir/state_msg', 'state_msg_inbox_process' LANGUAGE C;
CREATE TRIGGER process AFTER INSERT ON state_msg.inbox
	REFERENCING NEW TABLE AS new_messages
	FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.process();
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('G', 8, 500, 'u', 2, '2026-11-10 10:07+00');
SELECT * FROM g;
ROLLBACK;
SELECT * FROM g;

-- Other tables using the access method need such a trigger too
CREATE TABLE copy_of_inbox USING state_msg_inbox AS
SELECT * FROM (VALUES ('G', 8, 500, 'u', 2, '2026-11-10 10:07+00'::timestamptz)) v;
CREATE TABLE untriggered (LIKE state_msg.inbox INCLUDING DEFAULTS) USING state_msg_inbox;
INSERT INTO untriggered (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('G', 8, 500, 'u', 2, '2026-11-10 10:07+00');
CREATE TRIGGER process AFTER INSERT ON untriggered
	REFERENCING NEW TABLE AS new_messages
	FOR EACH STATEMENT EXECUTE FUNCTION state_msg.inbox_process();
INSERT INTO untriggered (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('G', 8, 500, 'u', 2, '2026-11-10 10:07+00');
DROP TABLE untriggered;

SELECT * FROM g;
SELECT count(*) AS rejected FROM state_msg.rejected_messages;
DROP VIEW g;
