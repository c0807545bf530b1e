-- Privileges (rule 10): state_msg_writer may insert into the inbox and call
-- ingest() and nothing else; state_msg_reader may read tables and views;
-- PUBLIC gets nothing; owner-rights functions pin their search_path.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
DROP ROLE IF EXISTS sm_relay, sm_dashboard, sm_nobody;
RESET client_min_messages;
SET timezone = 'UTC';

CREATE ROLE sm_relay IN ROLE state_msg_writer;
CREATE ROLE sm_dashboard IN ROLE state_msg_reader;
CREATE ROLE sm_nobody;

-- Nothing in the schema is granted to PUBLIC
SELECT c.relname, EXISTS (SELECT FROM aclexplode(c.relacl) a WHERE a.grantee = 0)
		AS public_has_rights
FROM pg_class c
WHERE c.relnamespace = 'state_msg'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'S')
ORDER BY 1;
SELECT p.proname FROM pg_proc p
WHERE p.pronamespace = 'state_msg'::regnamespace
  AND has_function_privilege('sm_nobody', p.oid, 'EXECUTE')
ORDER BY 1;

-- Every SECURITY DEFINER function has a fixed search_path
SELECT p.proname, p.proconfig FROM pg_proc p
WHERE p.pronamespace = 'state_msg'::regnamespace AND p.prosecdef ORDER BY 1;

-- The writer writes through the inbox and ingest(), nothing else
SET ROLE sm_relay;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('W1', 1, 500, 'u', 2, '2026-11-10 10:00:00+00');
COPY state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time) FROM stdin;
W1	2	500	u	3	2026-11-10 10:01:00+00
\.
SELECT state_msg.ingest('W1', 3, 500, 'u', 1, '2026-11-10 10:02:00+00');
SELECT * FROM state_msg.clients;
UPDATE state_msg.clients SET next_serial_number = 1;
INSERT INTO state_msg.client_state VALUES ('W1', 1, 'x', 0, 0, 0, 1, 0, now(), now(), NULL, 'mp');
SELECT state_msg.run_resync_check();
SELECT state_msg.request_resync('W1');
RESET ROLE;

-- The reader reads, and writes nothing
SET ROLE sm_dashboard;
SELECT client_id, next_serial_number, messages_processed FROM state_msg.clients;
SELECT clientid, lastmessagetime FROM state_msg.sr_clientmessagestats;
SELECT * FROM state_msg.resync_outstanding;
SELECT count(*) FROM state_msg.resync_reissue_due;
SELECT count(*) FROM state_msg.missing_ranges;
SELECT count(*) FROM state_msg.resync_requests;
SELECT count(*) FROM state_msg.rejected_messages;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('W1', 4, 500, 'u', 2, '2026-11-10 10:03:00+00');
SELECT state_msg.ingest('W1', 4, 500, 'u', 1, '2026-11-10 10:03:00+00');
DELETE FROM state_msg.clients;
RESET ROLE;

-- Others get nothing
SET ROLE sm_nobody;
SELECT count(*) FROM state_msg.clients;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('W1', 4, 500, 'u', 2, '2026-11-10 10:03:00+00');
RESET ROLE;

-- A hostile search_path cannot redirect the engine
CREATE SCHEMA evil;
CREATE TABLE evil.clients (client_id text);
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '2000-01-01'::timestamptz $$;
SET search_path = evil, pg_catalog, public;
SELECT state_msg.ingest('W1', 4, 500, 'u', 1, '2026-11-10 10:03:00+00');
RESET search_path;
SELECT count(*) FROM evil.clients;
SELECT next_serial_number, last_processed_time > '2001-01-01' AS real_clock FROM state_msg.clients;
DROP SCHEMA evil CASCADE;

-- XML reports (issue 7): the writer may call ingest_report() (both), the
-- reader may read rejected_reports; neither may resubmit; others nothing
SET ROLE sm_relay;
SELECT messages, in_order FROM state_msg.ingest_report('<Report><ReportHeader><Identification><Machine><ClientID>W2</ClientID></Machine></Identification></ReportHeader><ReportBody><StateMessage MessageTime="20261110100000.000000+000" SerialNumber="1"><Topic ID="u" Type="500"/><State ID="2"/></StateMessage></ReportBody></Report>');
SELECT messages FROM state_msg.ingest_report(convert_to('<Report/>', 'UTF8'));
SELECT count(*) FROM state_msg.rejected_reports;
SELECT * FROM state_msg.retry_rejected_reports('{1}');
RESET ROLE;
SET ROLE sm_dashboard;
SELECT count(*) FROM state_msg.rejected_reports;
SELECT messages FROM state_msg.ingest_report('<Report/>');
SELECT * FROM state_msg.retry_rejected_reports('{1}');
RESET ROLE;
SET ROLE sm_nobody;
SELECT messages FROM state_msg.ingest_report(convert_to('<Report/>', 'UTF8'));
SELECT count(*) FROM state_msg.rejected_reports;
RESET ROLE;

DROP ROLE sm_relay, sm_dashboard, sm_nobody;
