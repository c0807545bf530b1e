-- An index on the inbox is refused.  CREATE INDEX CONCURRENTLY is refused
-- before it creates anything (it used to leave an invalid index behind that
-- broke every later rewrite of the table), in every
-- session_replication_role; other tables are not affected.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

-- in a new session that has not loaded the extension's library yet
\c -
CREATE INDEX CONCURRENTLY ON state_msg.inbox (client_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS inbox_client ON state_msg.inbox (client_id);
SET session_replication_role = replica;
CREATE UNIQUE INDEX CONCURRENTLY ON state_msg.inbox (client_id, serial_number);
RESET session_replication_role;
CREATE INDEX ON state_msg.inbox (client_id);
ALTER TABLE state_msg.inbox ADD PRIMARY KEY (client_id, serial_number);
SELECT count(*) AS indexes FROM pg_index WHERE indrelid = 'state_msg.inbox'::regclass;
SELECT count(*) AS index_relations FROM pg_class WHERE relname LIKE 'inbox%' AND relkind = 'i';

-- Rewrites of the table still work
ALTER TABLE state_msg.inbox ADD COLUMN note text;
ALTER TABLE state_msg.inbox ALTER COLUMN note TYPE integer USING length(note);
VACUUM FULL state_msg.inbox;
ALTER TABLE state_msg.inbox DROP COLUMN note;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('X1', 1, 500, 'u', 2, '2026-11-10 10:00+00');
SELECT client_id, next_serial_number FROM state_msg.clients;

-- Another table using the access method is guarded too
CREATE TABLE other_inbox (LIKE state_msg.inbox) USING state_msg_inbox;
CREATE INDEX CONCURRENTLY ON other_inbox (client_id);
SELECT count(*) AS indexes FROM pg_index WHERE indrelid = 'other_inbox'::regclass;
DROP TABLE other_inbox;

-- Indexes elsewhere are not affected, also for a role without privileges
-- on the extension
CREATE ROLE inbox_index_owner;
CREATE SCHEMA inbox_index AUTHORIZATION inbox_index_owner;
SET ROLE inbox_index_owner;
CREATE TABLE inbox_index.t (a int);
CREATE INDEX CONCURRENTLY t_a ON inbox_index.t (a);
CREATE INDEX t_a2 ON inbox_index.t (a);
CREATE INDEX CONCURRENTLY ON inbox_index.missing (a);
RESET ROLE;
SELECT indexrelid::regclass, indisvalid FROM pg_index
WHERE indrelid = 'inbox_index.t'::regclass ORDER BY 1;
DROP SCHEMA inbox_index CASCADE;
DROP ROLE inbox_index_owner;

-- The event trigger is the extension's, and fires in every role
SELECT evtname, evtevent, evtenabled, evttags FROM pg_event_trigger;
SELECT pg_describe_object(classid, objid, 0) FROM pg_depend
WHERE refclassid = 'pg_extension'::regclass AND classid = 'pg_event_trigger'::regclass;
