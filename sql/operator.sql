-- The operator role (release 1.1): state_msg_operator may run the check
-- cycle, request resyncs, purge, resubmit quarantined rows, forget clients
-- and read what readers read; writers and readers may do none of that.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
DROP ROLE IF EXISTS sm_ops, sm_relay2, sm_dashboard2;
RESET client_min_messages;
SET timezone = 'UTC';

CREATE ROLE sm_ops IN ROLE state_msg_operator;
CREATE ROLE sm_relay2 IN ROLE state_msg_writer;
CREATE ROLE sm_dashboard2 IN ROLE state_msg_reader;

SELECT state_msg.ingest('O1', s, 500, 'u', 1, now()) FROM unnest(ARRAY[1, 3]) s;
SELECT state_msg.ingest('O2', 1, 500, 'u', -1, now());

-- The operator's functions, and who may execute them
SELECT p.oid::regprocedure AS function,
	   has_function_privilege('sm_ops', p.oid, 'EXECUTE') AS operator,
	   has_function_privilege('sm_relay2', p.oid, 'EXECUTE') AS writer,
	   has_function_privilege('sm_dashboard2', p.oid, 'EXECUTE') AS reader
FROM pg_proc p
WHERE p.pronamespace = 'state_msg'::regnamespace
  AND p.proname IN ('run_resync_check', 'request_resync', 'purge',
					'retry_rejected', 'forget_clients', 'engine_now', 'resync_due',
					'retry_rejected_reports', 'ingest_report')
ORDER BY 1::text;

-- The operator runs each
SET ROLE sm_ops;
SELECT * FROM state_msg.run_resync_check();
SELECT state_msg.request_resync('O1') > 0 AS requested;
SELECT * FROM state_msg.purge();
SELECT * FROM state_msg.retry_rejected(ARRAY(SELECT rejected_id FROM state_msg.rejected_messages));
SELECT * FROM state_msg.retry_rejected_reports(ARRAY(SELECT rejected_id FROM state_msg.rejected_reports));
SELECT client_id, action FROM state_msg.resync_candidates;
SELECT state_msg.forget_clients(ARRAY['O1', 'O2']);
SELECT state_msg.engine_now() IS NOT NULL AS clock;
SELECT client_id FROM state_msg.clients ORDER BY 1;
-- and writes nothing directly
DELETE FROM state_msg.rejected_messages;
-- nor moves the engine clock or the retention
SET state_msg.keep_rejected_messages = 0;
RESET ROLE;

-- A writer and a reader can run none of them
SET ROLE sm_relay2;
SELECT * FROM state_msg.run_resync_check();
SELECT state_msg.request_resync('O1');
SELECT * FROM state_msg.purge();
SELECT * FROM state_msg.retry_rejected('{1}');
SELECT state_msg.forget_clients(ARRAY['O1']);
SELECT count(*) FROM state_msg.resync_candidates;
RESET ROLE;
SET ROLE sm_dashboard2;
SELECT * FROM state_msg.run_resync_check();
SELECT state_msg.request_resync('O1');
SELECT * FROM state_msg.purge();
SELECT * FROM state_msg.retry_rejected('{1}');
SELECT state_msg.forget_clients(ARRAY['O1']);
-- the reader may read the candidates
SELECT count(*) FROM state_msg.resync_candidates;
RESET ROLE;

DROP ROLE sm_ops, sm_relay2, sm_dashboard2;
