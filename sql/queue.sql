-- Queued processing: under state_msg.processing = queued every entry point
-- validates (quarantine and on_bad_message = error as in immediate mode)
-- and enqueues; ingest() says queued; the queue a message joins (700/2
-- takes its client's statement to high, high_priority_topic_types, fsp);
-- process_queue() then gives exactly what immediate processing gives; the
-- fsp throttle holds within an interval; backlog, backlog_sources and
-- sample_backlog() are exact; rotation and TRUNCATE leave nothing behind.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
DROP ROLE IF EXISTS sm_q_user;
RESET client_min_messages;
SET timezone = 'UTC';

-- The setting is the superuser's (ALTER DATABASE ... SET), not a session's
CREATE ROLE sm_q_user IN ROLE state_msg_writer;
SET ROLE sm_q_user;
SET state_msg.processing = queued;
RESET ROLE;
SHOW state_msg.processing;
SET state_msg.processing = sometimes;
SET state_msg.high_priority_topic_types = '800, x';

SET state_msg.processing = queued;

-- Every entry point enqueues; bad rows are quarantined as ever
SELECT state_msg.ingest('Q1', 1, 500, 'u1', 2, '2026-11-10 10:00+00');
SELECT state_msg.ingest('Q1', 2, 500, '', 2, '2026-11-10 10:00+00');
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time, source)
VALUES ('q2', 1, 500, 'u1', 2, '2026-11-10 10:01+00', 'mp'),
	   ('Q2', 2, 800, 'd', 100, '2026-11-10 10:02+00', 'mp'),
	   ('Q3', 7, 500, 'u1', 3, '2026-11-10 10:03+00', 'fsp'),
	   (NULL, 1, 500, 'u1', 3, '2026-11-10 10:03+00', 'mp'),
	   ('Q4', 10, 500, 'u1', 2, '2026-11-10 09:00+00', 'mp'),
	   ('Q4', 11, 800, 'd', 400, '2026-11-10 09:00+00', 'mp'),
	   ('Q4', 12, 700, 'r', 2, '2026-11-10 09:00+00', 'mp'),
	   ('Q5', 1, 501, 's', 3, '2026-11-10 10:05+00', 'mp');
-- on_bad_message = error fails the statement: nothing of it is queued
SET state_msg.on_bad_message = error;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('Q6', 1, 500, 'u1', 2, '2026-11-10 10:00+00'), ('Q6', 2, 500, '', 2, '2026-11-10 10:00+00');
RESET state_msg.on_bad_message;
SELECT client_id, reason FROM state_msg.rejected_messages ORDER BY rejected_id;

-- Nothing is processed yet; the queue holds the good rows, normalized, in
-- their queues: 700/2 takes Q4's whole statement to high, 800 is high,
-- fsp rows go to fsp whatever they are
SELECT count(*) AS clients FROM state_msg.clients;
SELECT queue, upload_id - min(upload_id) OVER () AS upload, row_number, client_id,
	   serial_number, topic_type, source, shard BETWEEN 0 AND 63 AS shard_ok
FROM state_msg.queue ORDER BY upload_id, row_number;
SELECT queue, waiting, oldest_age IS NOT NULL AS has_age, held_back_resyncs, status
FROM state_msg.backlog;
SELECT * FROM state_msg.backlog_sources;

-- The high priority list is a setting
SET state_msg.high_priority_topic_types = '501';
SELECT state_msg.ingest('Q7', 1, 501, 's', 2, '2026-11-10 10:00+00'),
	   state_msg.ingest('Q7', 2, 800, 'd', 100, '2026-11-10 10:00+00');
RESET state_msg.high_priority_topic_types;
SELECT queue, client_id, topic_type FROM state_msg.queue WHERE client_id = 'Q7'
ORDER BY upload_id;

-- An XML report is enqueued as one statement: its counts show no verdict
SELECT * FROM state_msg.ingest_report(
	'<Report><ReportHeader><Identification><Machine><ClientInstalled>1</ClientInstalled>'
	|| '<ClientType>1</ClientType><ClientID>GUID:R1</ClientID>'
	|| '<ClientVersion>5.00.9122.1000</ClientVersion><NetBIOSName>WKS-0042</NetBIOSName>'
	|| '<CodePage>437</CodePage><SystemDefaultLCID>1033</SystemDefaultLCID>'
	|| '</Machine></Identification><ReportDetails><ReportContent>State Message Data</ReportContent>'
	|| '<ReportType>Full</ReportType><Date>20261110183000.000000+000</Date><Version>1.0</Version>'
	|| '<Format>1.0</Format></ReportDetails></ReportHeader><ReportBody>'
	|| '<StateMessage MessageTime="20261110181502.120000+000" SerialNumber="1">'
	|| '<Topic ID="u9" Type="500" IDType="3" User="" UserSID=""/><State ID="2" Criticality="0"/></StateMessage>'
	|| '</ReportBody></Report>');
SELECT queue, client_id, netbios_name, client_version FROM state_msg.queue
WHERE client_id = 'GUID:R1';

-- Draining: high first, then low, then fsp.  One message: from the high
-- queue (which shard first depends on the drainer; Q4's upload comes
-- whole, 3 messages)
CALL state_msg.process_queue(1);
SELECT count(*) IN (1, 3) AS one_or_an_upload,
	   bool_and(client_id IN ('Q2', 'Q4', 'Q7') AND (topic_type IN (501, 800) OR client_id = 'Q4')) AS all_high
FROM state_msg.client_state;
SELECT queue, count(*) FROM state_msg.queue WHERE queue <> 'high' GROUP BY 1 ORDER BY 1;
CALL state_msg.process_queue();
SELECT count(*) AS left_in_queue FROM state_msg.queue;
SELECT client_id, topic_type, topic_id, state_id, serial_number, source
FROM state_msg.client_state ORDER BY 1, 2, 3;
SELECT client_id, next_serial_number, messages_processed FROM state_msg.clients ORDER BY 1;
SELECT queue, waiting, oldest_age, drain_eta, status FROM state_msg.backlog;
SELECT queue, sum(arrived) AS arrived, sum(processed) AS processed,
	   sum(resync_answers) AS answers
FROM state_msg.queue_flow GROUP BY queue ORDER BY queue;

-- Wrong calls
SELECT state_msg.process_queue_batch(-1);
CALL state_msg.process_queue(-1);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT state_msg.process_queue_batch();
ROLLBACK;
BEGIN;
CALL state_msg.process_queue();
ROLLBACK;

-- Queued then drained equals immediate: the same messages for clients
-- I* (immediate, three statements) and Z* (queued: two statements drained
-- together, then the third, a resync answer of client 6, which joins the
-- high queue and would overtake the first two if they still waited)
SET state_msg.processing = immediate;
CREATE TEMP TABLE feed AS
SELECT s AS stmt, c AS client, n AS serial,
	   CASE WHEN n % 7 = 0 THEN 501 ELSE 500 END AS topic_type,
	   'u' || (n % 3) AS topic_id, (n * c) % 4 AS state_id,
	   '2026-11-10 10:00+00'::timestamptz + make_interval(mins => n) AS t
FROM generate_series(1, 6) c, generate_series(1, 30) n,
	 LATERAL (SELECT (n - 1) / 10 + 1 AS s) st
WHERE (c + n) % 5 <> 0;			-- some gaps
-- client 6 resyncs in statement 3: its serials renumbered from 100, then 700/2
INSERT INTO feed SELECT 3, 6, 100 + n, 500, 'u' || n, 1, '2026-11-10 12:00+00' FROM generate_series(0, 2) n;
INSERT INTO feed VALUES (3, 6, 103, 700, 'r', 2, '2026-11-10 12:00+00');
CREATE FUNCTION pg_temp.feed_statement(prefix text, s int) RETURNS void LANGUAGE sql AS $$
	INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
	SELECT prefix || client, serial, topic_type, topic_id, state_id, t
	FROM feed WHERE stmt = s ORDER BY client, serial;
$$;
SELECT pg_temp.feed_statement('I', s) FROM generate_series(1, 3) s;
SET state_msg.processing = queued;
SELECT pg_temp.feed_statement('Z', s) FROM generate_series(1, 2) s;
SELECT queue, count(*) FROM state_msg.queue GROUP BY 1 ORDER BY 1;
CALL state_msg.process_queue();
SELECT pg_temp.feed_statement('Z', 3);
SELECT queue, count(*) FROM state_msg.queue GROUP BY 1 ORDER BY 1;
CALL state_msg.process_queue();
-- no differences
SELECT count(*) AS state_differences FROM (
	(SELECT substr(client_id, 2), topic_type, topic_id, state_id, serial_number, serial_epoch, message_time
	 FROM state_msg.client_state WHERE client_id LIKE 'I%'
	 EXCEPT ALL
	 SELECT substr(client_id, 2), topic_type, topic_id, state_id, serial_number, serial_epoch, message_time
	 FROM state_msg.client_state WHERE client_id LIKE 'Z%')
	UNION ALL
	(SELECT substr(client_id, 2), topic_type, topic_id, state_id, serial_number, serial_epoch, message_time
	 FROM state_msg.client_state WHERE client_id LIKE 'Z%'
	 EXCEPT ALL
	 SELECT substr(client_id, 2), topic_type, topic_id, state_id, serial_number, serial_epoch, message_time
	 FROM state_msg.client_state WHERE client_id LIKE 'I%')) d;
SELECT count(*) AS client_differences FROM (
	SELECT substr(client_id, 2), next_serial_number, serial_epoch, last_message_time,
		   messages_processed, missing_serials, late_fills, duplicates, serial_resets
	FROM state_msg.clients WHERE client_id LIKE 'I%'
	EXCEPT
	SELECT substr(client_id, 2), next_serial_number, serial_epoch, last_message_time,
		   messages_processed, missing_serials, late_fills, duplicates, serial_resets
	FROM state_msg.clients WHERE client_id LIKE 'Z%') d;
SELECT count(*) AS range_differences FROM (
	SELECT substr(client_id, 2), first_serial, last_serial FROM state_msg.missing_ranges WHERE client_id LIKE 'I%'
	EXCEPT
	SELECT substr(client_id, 2), first_serial, last_serial FROM state_msg.missing_ranges WHERE client_id LIKE 'Z%') d;
SELECT count(*) AS clients, sum(messages_processed) AS messages FROM state_msg.clients WHERE client_id LIKE 'Z%';
-- the immediate run counts in the flow too (arrived = processed)
SELECT topic_type, topic_type_name, messages_last_hour, round(resync_answer_share::numeric, 4) AS share
FROM state_msg.backlog_sources;

-- The fsp throttle: 3 per hour
SET state_msg.fsp_throttle_messages = 3;
SET state_msg.fsp_throttle_interval = '1h';
UPDATE state_msg.queue_throttle SET window_start = '-infinity', released = 0;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time, source)
SELECT 'F' || n, 1, 800, 'd', 100, '2026-11-10 10:00+00', 'fsp' FROM generate_series(1, 8) n;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'L' || n, 1, 500, 'u', 1, '2026-11-10 10:00+00' FROM generate_series(1, 4) n;
CALL state_msg.process_queue();
SELECT queue, waiting, status FROM state_msg.backlog;
SELECT released FROM state_msg.queue_throttle;
CALL state_msg.process_queue();
SELECT count(*) AS fsp_processed FROM state_msg.clients WHERE client_id LIKE 'F%';
-- 59 minutes later: still the same interval
SET state_msg.clock_offset = '59min';
CALL state_msg.process_queue();
SELECT count(*) AS fsp_processed FROM state_msg.clients WHERE client_id LIKE 'F%';
-- an hour later: 3 more
SET state_msg.clock_offset = '61min';
CALL state_msg.process_queue();
SELECT count(*) AS fsp_processed FROM state_msg.clients WHERE client_id LIKE 'F%';
SELECT queue, waiting, oldest_age >= '1 hour' AS old, status FROM state_msg.backlog;
SET state_msg.backlog_significant_age = '2h';
SELECT queue, waiting, status FROM state_msg.backlog;
SET state_msg.backlog_significant_messages = 2;
SELECT queue, waiting, status FROM state_msg.backlog;
RESET state_msg.backlog_significant_messages;
RESET state_msg.backlog_significant_age;
-- sample_backlog() keeps a row per queue and drops old samples
SELECT state_msg.sample_backlog();
SET state_msg.clock_offset = '15d';
SELECT state_msg.sample_backlog();
SELECT count(*) AS samples, count(DISTINCT sampled_at) AS times,
	   array_agg(waiting ORDER BY queue) AS waiting
FROM state_msg.backlog_history;
SET state_msg.fsp_throttle_messages = 1000;
CALL state_msg.process_queue();
RESET state_msg.clock_offset;

-- Rotation: with an interval of 0 every batch moves the generation on and
-- empties the drained partitions; nothing is left behind
SET state_msg.queue_rotation_interval = 0;
SELECT generation AS before FROM state_msg.queue_rotation \gset
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'G' || n, 1, 500, 'u', 1, '2026-11-10 10:00+00' FROM generate_series(1, 50) n;
CALL state_msg.process_queue();
SELECT generation <> :before AS moved FROM state_msg.queue_rotation;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'G' || n, 2, 500, 'u', 2, '2026-11-10 10:01+00' FROM generate_series(1, 50) n;
CALL state_msg.process_queue();
CALL state_msg.process_queue();
SELECT count(*) AS waiting FROM state_msg.queue;
-- the partitions other than the current one were truncated
SELECT sum(pg_relation_size(format('state_msg.queue_%s', g)::regclass)) AS bytes
FROM generate_series(0, 2) g, state_msg.queue_rotation r WHERE g <> r.generation;
SELECT count(*) AS count_rows FROM state_msg.queue_counts;
SELECT count(*) AS processed_g FROM state_msg.client_state WHERE client_id ~ '^G[0-9]+$' AND state_id = 2;
RESET state_msg.queue_rotation_interval;
DROP ROLE sm_q_user;
