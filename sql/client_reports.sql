-- Per-client reports (issue 7): client_compliance counts, per client, the
-- updates required (500/2) and installed (500/3) and the CI enforcements
-- (402) whose current state is a failure (is_enforcement_failure(): 6, 11,
-- 14), listing every client; a query for one client probes the primary
-- keys.  unknown_clients(silent_for) lists the clients whose last message
-- was processed at least silent_for ago by the engine clock, and clients
-- without one.  Readers may use both; others may not.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
DROP ROLE IF EXISTS sm_reports_reader, sm_reports_writer;
RESET client_min_messages;

CREATE ROLE sm_reports_reader IN ROLE state_msg_reader;
CREATE ROLE sm_reports_writer IN ROLE state_msg_writer;

-- The failure set, once
SELECT s AS state_id, state_msg.is_enforcement_failure(s) AS failure, n.state_name
FROM generate_series(0, 15) s
LEFT JOIN state_msg.state_names n ON n.topic_type = 402 AND n.state_id = s
ORDER BY 1;
SELECT state_msg.is_enforcement_failure(NULL);
-- it is inlined: the planner sees the set itself
EXPLAIN (COSTS OFF)
SELECT * FROM state_msg.client_state WHERE state_msg.is_enforcement_failure(state_id);

-- Three clients: C1 misses two updates, has one, and failed two
-- enforcements (a download, a general failure) and is installing a third;
-- C2 has everything, its one failed enforcement superseded by a success;
-- C3 sent only other topics; C4 is listed with zeros by hand below
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('C1', 1, 500, 'u1', 2, '2026-11-10 10:00+00'),
	   ('C1', 2, 500, 'u2', 2, '2026-11-10 10:00+00'),
	   ('C1', 3, 500, 'u3', 3, '2026-11-10 10:00+00'),
	   ('C1', 4, 500, 'u4', 1, '2026-11-10 10:00+00'),
	   ('C1', 5, 500, 'u5', 0, '2026-11-10 10:00+00'),
	   ('C1', 6, 402, 'u1', 14, '2026-11-10 10:00+00'),
	   ('C1', 7, 402, 'u2', 6, '2026-11-10 10:00+00'),
	   ('C1', 8, 402, 'u4', 8, '2026-11-10 10:00+00'),
	   ('C1', 9, 301, 'a1', 6, '2026-11-10 10:00+00'),
	   ('C2', 1, 500, 'u1', 3, '2026-11-10 10:00+00'),
	   ('C2', 2, 500, 'u2', 3, '2026-11-10 10:00+00'),
	   ('C2', 3, 402, 'u2', 11, '2026-11-10 10:00+00'),
	   ('C2', 4, 402, 'u2', 10, '2026-11-10 10:05+00'),
	   ('C3', 1, 800, 'deploy', 400, '2026-11-10 10:00+00');
INSERT INTO state_msg.clients (client_id, netbios_name) VALUES ('C4', 'WKS-0004');

SELECT * FROM state_msg.client_compliance ORDER BY client_id;
SELECT * FROM state_msg.client_compliance WHERE client_id = 'C1';
SELECT * FROM state_msg.client_compliance WHERE client_id = 'nobody';

-- One client: the primary key of clients, then of client_state, and no
-- other scan (the index, or the table of a sequential scan, each scan
-- node reads)
CREATE FUNCTION pg_temp.scans(query text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
	line text;
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
		IF line ~ '(Seq Scan on|using|Index Scan on) ' THEN
			RETURN NEXT substring(line FROM '(?:Seq Scan on|using|Index Scan on) (\S+)');
		END IF;
	END LOOP;
END
$$;
SELECT DISTINCT pg_temp.scans($$SELECT * FROM state_msg.client_compliance
								WHERE client_id = 'C1'$$) AS scans
ORDER BY 1;

-- Silent clients, by the engine clock: C1's last batch is processed with
-- the engine clock 10 days back, C2's 8 days back, C3's now; C4 never had
-- one (a row inserted by hand).  What counts is the last batch's time.
SET state_msg.clock_offset = '-10d';
SELECT state_msg.ingest('C1', 10, 500, 'u1', 2, '2026-11-10 10:00+00');
SET state_msg.clock_offset = '-8d';
SELECT state_msg.ingest('C2', 5, 500, 'u1', 3, '2026-11-10 10:00+00');
RESET state_msg.clock_offset;
-- a message, even a duplicate, is news from the client
SELECT state_msg.ingest('C3', 1, 800, 'deploy', 400, '2026-11-10 10:00+00');
-- a rejected one is not: it never reaches the client's row
SET client_min_messages = error;
SELECT state_msg.ingest('C1', 11, 500, 'u1', -1, '2026-11-10 10:00+00');
RESET client_min_messages;

CREATE TEMP VIEW silent AS
SELECT client_id, netbios_name,
	   last_processed_time IS NULL AS never,
	   silent IS NOT NULL AND silent >= interval '7 days' AS over_7_days,
	   pg_catalog.round(extract(epoch FROM silent) / 86400) AS days
FROM state_msg.unknown_clients();
SELECT * FROM silent;
SELECT client_id, round(extract(epoch FROM silent) / 86400) AS days
FROM state_msg.unknown_clients('9 days');
SELECT client_id, round(extract(epoch FROM silent) / 86400) AS days
FROM state_msg.unknown_clients(silent_for => '0');
-- silent is the engine clock minus last_processed_time
SELECT bool_and(u.last_processed_time = c.last_processed_time
				AND u.silent BETWEEN now() - c.last_processed_time
								 AND state_msg.engine_now() - c.last_processed_time)
FROM state_msg.unknown_clients('0') u JOIN state_msg.clients c USING (client_id);
-- moving the engine clock moves the judgement
SET state_msg.clock_offset = '2d';
SELECT client_id FROM state_msg.unknown_clients();
RESET state_msg.clock_offset;

-- Bad arguments
SELECT * FROM state_msg.unknown_clients(NULL);
SELECT * FROM state_msg.unknown_clients('-1 day');
SELECT * FROM state_msg.unknown_clients('1 day -25 hours');

-- Readers may use both; writers neither
SET ROLE sm_reports_reader;
SELECT client_id, required, installed, failed FROM state_msg.client_compliance
WHERE client_id = 'C2';
SELECT count(*) FROM state_msg.unknown_clients();
RESET ROLE;
SET ROLE sm_reports_writer;
SELECT * FROM state_msg.client_compliance;
SELECT * FROM state_msg.unknown_clients();
SELECT state_msg.is_enforcement_failure(6);
RESET ROLE;

DROP ROLE sm_reports_reader, sm_reports_writer;
