-- Security (hardening item 1): the engine's statements run with the
-- extension owner's rights and name its objects as text, so nobody but a
-- superuser may own (and so rename) the extension's schema, and the engine
-- fails closed when the name state_msg does not lead to its own schema.
-- Attack 1: a non-superuser creates schema state_msg before CREATE
-- EXTENSION: the install (and an update of a 1.0 installed there) is
-- refused.  Attack 2: the schema is renamed and a look-alike with a trigger
-- put in its place: every entry point refuses, and the trap never runs.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
DROP EXTENSION state_msg;
DROP SCHEMA IF EXISTS state_msg;
DROP TABLE IF EXISTS public.sm_trap_log;
DROP ROLE IF EXISTS sm_admin, sm_mallory, sm_relay;
RESET client_min_messages;
SET timezone = 'UTC';

-- A superuser of known name installs (it appears in the hints), an ordinary
-- role may create schemas, a relay writes
CREATE ROLE sm_admin SUPERUSER;
CREATE ROLE sm_mallory;
CREATE ROLE sm_relay IN ROLE state_msg_writer;
DO $$ BEGIN
	EXECUTE format('GRANT CREATE ON DATABASE %I TO sm_mallory', current_database());
END $$;
SET ROLE sm_admin;
-- A trap records anything that reaches a look-alike
CREATE TABLE public.sm_trap_log (fired_as text, what text);
GRANT INSERT ON public.sm_trap_log TO PUBLIC;

-- Attack 1: the schema exists before the extension, owned by sm_mallory
SET ROLE sm_mallory;
CREATE SCHEMA state_msg;
SET ROLE sm_admin;
CREATE EXTENSION state_msg;
-- nothing is left: no extension, nothing in the schema
SELECT count(*) AS extensions FROM pg_extension WHERE extname = 'state_msg';
SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'state_msg'::regnamespace) AS relations,
	   (SELECT count(*) FROM pg_proc WHERE pronamespace = 'state_msg'::regnamespace) AS functions,
	   (SELECT count(*) FROM pg_type WHERE typnamespace = 'state_msg'::regnamespace) AS types,
	   (SELECT count(*) FROM pg_am WHERE amname = 'state_msg_inbox') AS access_methods;

-- Release 1.0 did install there.  The engine now refuses to run in such an
-- install, and the update to 1.1 is refused the same way as the install.
CREATE EXTENSION state_msg VERSION '1.0';
SELECT state_msg.ingest('A', 1, 500, 'u', 2, '2026-11-10 10:00+00');
ALTER EXTENSION state_msg UPDATE TO '1.1';
SELECT extversion FROM pg_extension WHERE extname = 'state_msg';
-- and so is the update after she renamed the schema and put a look-alike
-- in its place, whose trap counts its calls in a sequence (which no
-- rollback undoes, as no rollback would undo a program it ran); its tables
-- made by a superuser here, as she could by hand: the update reaches
-- nothing of hers
CREATE SEQUENCE public.sm_trap_calls;
GRANT USAGE ON SEQUENCE public.sm_trap_calls TO PUBLIC;
SET ROLE sm_mallory;
ALTER SCHEMA state_msg RENAME TO state_msg_old;
CREATE SCHEMA state_msg;
SET ROLE sm_admin;
CREATE TABLE state_msg.clients (LIKE state_msg_old.clients INCLUDING ALL);
CREATE TABLE state_msg.client_state (LIKE state_msg_old.client_state INCLUDING ALL);
ALTER TABLE state_msg.clients OWNER TO sm_mallory;
ALTER TABLE state_msg.client_state OWNER TO sm_mallory;
SET ROLE sm_mallory;
CREATE FUNCTION state_msg.trap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_catalog.nextval('public.sm_trap_calls');
	RETURN NULL;
END $$;
CREATE TRIGGER trap BEFORE INSERT OR UPDATE OR DELETE ON state_msg.clients
	FOR EACH STATEMENT EXECUTE FUNCTION state_msg.trap();
SET ROLE sm_admin;
ALTER EXTENSION state_msg UPDATE TO '1.1';
SELECT is_called AS trap_ran FROM public.sm_trap_calls;
SET client_min_messages = warning;
DROP SCHEMA state_msg CASCADE;
RESET client_min_messages;
ALTER SCHEMA state_msg_old RENAME TO state_msg;
DROP SEQUENCE public.sm_trap_calls;
-- once a superuser owns the schema, the update and the engine work
ALTER SCHEMA state_msg OWNER TO sm_admin;
ALTER EXTENSION state_msg UPDATE TO '1.1';
SELECT extversion FROM pg_extension WHERE extname = 'state_msg';
SELECT state_msg.ingest('A', 1, 500, 'u', 2, '2026-11-10 10:00+00');

-- An update of a 1.0 whose schema was renamed, with or without a look-alike
-- in its place, is refused too
DROP EXTENSION state_msg;
CREATE EXTENSION state_msg VERSION '1.0';
ALTER SCHEMA state_msg RENAME TO state_msg_10;
ALTER EXTENSION state_msg UPDATE TO '1.1';
CREATE SCHEMA state_msg AUTHORIZATION sm_mallory;
ALTER EXTENSION state_msg UPDATE TO '1.1';
SELECT count(*) AS left_in_look_alike FROM pg_proc WHERE pronamespace = 'state_msg'::regnamespace;
DROP SCHEMA state_msg;
ALTER SCHEMA state_msg_10 RENAME TO state_msg;

-- A schema created beforehand by the installing superuser is fine (this is
-- what a pg_dump restore does; test/t/007_dump_restore.pl runs one)
DROP EXTENSION state_msg;
CREATE EXTENSION state_msg;
SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'state_msg';

-- Attack 2.  A client with a gap, so every entry point has work to do.
SELECT state_msg.ingest('A', s, 500, 'u', 2, '2026-11-10 10:00+00'::timestamptz + s * interval '1 min')
FROM unnest(ARRAY[1, 2, 5]) s;
SET state_msg.min_missing_message_age = 0;
SELECT * FROM state_msg.run_resync_check();

-- The extension's schema is renamed, and sm_mallory puts a complete
-- look-alike in its place: the engine's tables (clients with a trigger),
-- its enum type and the functions its statements call, one a trap too
-- (as a superuser here: 1.0's schema owner could do all this herself)
ALTER SCHEMA state_msg RENAME TO state_msg_real;
CREATE SCHEMA state_msg AUTHORIZATION sm_mallory;
DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['clients', 'client_state', 'missing_ranges',
							 'resync_requests', 'rejected_messages'] LOOP
		EXECUTE format('CREATE TABLE state_msg.%I (LIKE state_msg_real.%I INCLUDING ALL)', t, t);
		EXECUTE format('ALTER TABLE state_msg.%I OWNER TO sm_mallory', t);
	END LOOP;
END $$;
SET ROLE sm_mallory;
CREATE TYPE state_msg.resync_reason AS ENUM ('missing', 'reissue', 'serial_reset', 'manual');
CREATE FUNCTION state_msg.trap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.sm_trap_log VALUES (current_user, TG_OP);
	RETURN NEW;
END $$;
CREATE TRIGGER trap BEFORE INSERT OR UPDATE ON state_msg.clients
	FOR EACH ROW EXECUTE FUNCTION state_msg.trap();
CREATE FUNCTION state_msg.resync_due(c state_msg.clients, a timestamptz, b timestamptz)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.sm_trap_log VALUES (current_user, 'resync_due');
	RETURN true;
END $$;
CREATE FUNCTION state_msg.has_open_request(c state_msg.clients)
RETURNS boolean LANGUAGE sql AS 'SELECT false';
CREATE FUNCTION state_msg.resync_event_time(now timestamptz, after timestamptz)
RETURNS timestamptz LANGUAGE sql AS 'SELECT now';
SET ROLE sm_admin;
-- the name now leads to the look-alike
SELECT 'state_msg.clients'::regclass = 'state_msg_real.clients'::regclass AS same_table;

-- In a fresh session (no statement prepared yet), every entry point refuses
\c -
SET ROLE sm_relay;
INSERT INTO state_msg_real.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('A', 6, 500, 'u', 3, '2026-11-10 10:06+00');
COPY state_msg_real.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time) FROM stdin;
A	6	500	u	3	2026-11-10 10:06+00
\.
SELECT state_msg_real.ingest('A', 6, 500, 'u', 3, '2026-11-10 10:06+00');
SELECT state_msg_real.ingest('new client', 1, 500, 'u', 3, '2026-11-10 10:06+00');
RESET ROLE;
SELECT * FROM state_msg_real.run_resync_check('2026-11-01 00:00+00');
SELECT state_msg_real.request_resync('A');
-- the trap never ran, and nothing changed
SELECT * FROM public.sm_trap_log;
SELECT client_id, next_serial_number, messages_processed, resync_requests_issued
FROM state_msg_real.clients;
SELECT count(*) AS requests FROM state_msg_real.resync_requests;

-- Renamed, with no look-alike: still refused
SET client_min_messages = warning;
DROP SCHEMA state_msg CASCADE;
RESET client_min_messages;
SELECT state_msg_real.ingest('A', 6, 500, 'u', 3, '2026-11-10 10:06+00');
-- renamed back, everything works
ALTER SCHEMA state_msg_real RENAME TO state_msg;
SET ROLE sm_relay;
SELECT state_msg.ingest('A', 6, 500, 'u', 3, '2026-11-10 10:06+00');
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('A', 7, 500, 'u', 4, '2026-11-10 10:07+00');
RESET ROLE;
SELECT state_msg.request_resync('A') > 0 AS issued;
SELECT * FROM state_msg.run_resync_check();
SELECT * FROM public.sm_trap_log;

-- A schema handed to an ordinary role later is refused at run time too
ALTER SCHEMA state_msg OWNER TO sm_mallory;
SELECT state_msg.ingest('A', 8, 500, 'u', 5, '2026-11-10 10:08+00');
SELECT * FROM state_msg.run_resync_check();
ALTER SCHEMA state_msg OWNER TO sm_admin;
SELECT state_msg.ingest('A', 8, 500, 'u', 5, '2026-11-10 10:08+00');

-- The same within one transaction that has already run the engine
BEGIN;
SELECT state_msg.ingest('A', 9, 500, 'u', 6, '2026-11-10 10:09+00');
ALTER SCHEMA state_msg RENAME TO state_msg_real;
CREATE SCHEMA state_msg AUTHORIZATION sm_mallory;
SELECT state_msg_real.ingest('A', 10, 500, 'u', 7, '2026-11-10 10:10+00');
ROLLBACK;
BEGIN;
SELECT state_msg.ingest('A', 9, 500, 'u', 6, '2026-11-10 10:09+00');
ALTER SCHEMA state_msg OWNER TO sm_mallory;
SELECT state_msg.ingest('A', 10, 500, 'u', 7, '2026-11-10 10:10+00');
ROLLBACK;

-- Relations the engine names without a schema are its own statement's
-- rows: a writer's temporary views of the same names, which would record
-- their use, are never reached (they are, when selected directly)
SET ROLE sm_relay;
CREATE FUNCTION pg_temp.sm_trap_row() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.sm_trap_log VALUES (current_user, 'temporary view');
	RETURN true;
END $$;
CREATE TEMP VIEW sm_states AS SELECT 1 AS x WHERE pg_temp.sm_trap_row();
CREATE TEMP VIEW sm_client_updates AS SELECT 1 AS x WHERE pg_temp.sm_trap_row();
SELECT state_msg.ingest('A', 9, 500, 'u', 6, '2026-11-10 10:09+00');
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('A', 10, 500, 'u', 7, '2026-11-10 10:10+00'), ('T', 1, 500, 'u', 1, '2026-11-10 10:10+00');
SELECT count(*) FROM sm_states;
RESET ROLE;
SELECT * FROM public.sm_trap_log;
SELECT client_id, next_serial_number FROM state_msg.clients ORDER BY 1;
DISCARD TEMP;

RESET ROLE;
DROP TABLE public.sm_trap_log;
DO $$ BEGIN
	EXECUTE format('REVOKE CREATE ON DATABASE %I FROM sm_mallory', current_database());
END $$;
-- leave the schema to the bootstrap superuser, as the other tests expect
DROP EXTENSION state_msg;
DROP SCHEMA state_msg;
CREATE EXTENSION state_msg;
DROP ROLE sm_admin, sm_mallory, sm_relay;
