-- The demo's SQL: see demo.sh.
\pset footer off
SET timezone = 'UTC';
CREATE EXTENSION state_msg;

\echo '== A burst: 2,000 clients, 6 uploads of 8 messages each, over 40 update topics'
\echo '   3% of uploads are lost, 5% arrive late, client 7 was reinstalled,'
\echo '   50 clients are relayed by a fallback status point, a few rows are bad.'
CREATE TEMP TABLE burst AS
SELECT 'GUID:' || upper(md5('client' || c)::uuid::text) AS client_id,
	   c, s AS serial_number, (s - 1) / 8 AS upload,
	   (ARRAY[500, 402, 301, 300])[1 + s % 4] AS topic_type,
	   upper(md5('update' || (c * 7 + s) % 40)::uuid::text) AS topic_id,
	   (ARRAY[1, 2, 3, 2, 3, 3])[1 + (c + s) % 6] AS state_id,
	   timestamptz '2026-11-24 08:00+00' + s * interval '15 min' + c * interval '1 s'
		   AS message_time
FROM generate_series(1, 2000) c, generate_series(1, 48) s;

-- Uploads arrive in rounds (one round per upload number); a late upload
-- comes in the last round; a lost one never comes.
CREATE TEMP TABLE fate AS
SELECT c, upload,
	   CASE WHEN abs(hashint4(c * 10 + upload)) % 100 < 3 THEN 'lost'
			WHEN abs(hashint4(c * 10 + upload)) % 100 < 8 AND upload < 5 THEN 'late'
			ELSE 'on time' END AS fate
FROM generate_series(1, 2000) c, generate_series(0, 5) upload;

\timing on
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time, user_params)
SELECT b.client_id, b.serial_number, b.topic_type, b.topic_id, b.state_id, b.message_time,
	   CASE WHEN b.topic_type = 402 THEN ARRAY['0x80240022'] END
FROM burst b JOIN fate f USING (c, upload)
WHERE f.fate = 'on time'
ORDER BY b.upload, b.c, b.serial_number;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT b.client_id, b.serial_number, b.topic_type, b.topic_id, b.state_id, b.message_time
FROM burst b JOIN fate f USING (c, upload)
WHERE f.fate = 'late'
ORDER BY b.c, b.serial_number;
\timing off

-- Client 7 is reinstalled that evening: its serials start again at 1
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT client_id, serial_number, topic_type, topic_id, 1, message_time + interval '14 hours'
FROM burst WHERE c = 7 AND serial_number <= 4;

-- A fallback status point relays client deployment messages: no serials
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time, source)
SELECT 'GUID: ' || lower(md5('client' || c)::uuid::text), NULL, 800, 'SMS00001', st,
	   timestamptz '2026-11-24 07:00+00' + st * interval '1 min', 'fsp'
FROM generate_series(1, 50) c, unnest(ARRAY[100, 400]) st;

-- Bad rows are set aside with a warning
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F', 1, 500, '', 2, now()),
	   ('', 1, 500, 'X', 2, now());

\echo
\echo '== Clients (state_msg.clients, totals)'
SELECT count(*) AS clients, sum(messages_processed) AS messages,
	   sum(missing_serials) AS serials_missed, sum(late_fills) AS late_fills,
	   sum(duplicates) AS duplicates, sum(serial_resets) AS serial_resets,
	   sum(unserialized_messages) AS relayed
FROM state_msg.clients;

\echo '== Missing ranges still open (state_msg.missing_ranges)'
SELECT count(DISTINCT client_id) AS clients, count(*) AS ranges,
	   sum(last_serial - first_serial + 1) AS serials
FROM state_msg.missing_ranges;

\echo '== Rejected messages (state_msg.rejected_messages)'
SELECT row_number, sqlstate, reason FROM state_msg.rejected_messages;

\echo '== Resync check cycle (the demo does not wait the two days of min_missing_message_age)'
SET state_msg.min_missing_message_age = 0;
SELECT * FROM state_msg.run_resync_check();
SELECT reason, count(*) FROM state_msg.resync_requests GROUP BY 1 ORDER BY 1;

\echo '== Clients answer, except one in ten (offline): each resends its cache, the'
\echo '   latest message per topic, renumbered from its next serial, then 700/2'
CREATE TEMP TABLE answering AS
SELECT c.client_id, c.next_serial_number
FROM state_msg.clients c
WHERE EXISTS (SELECT FROM state_msg.resync_requests r
			  WHERE r.client_id = c.client_id AND r.completed_at IS NULL)
  AND abs(hashtext(c.client_id)) % 10 <> 0;
-- A client's cache holds its latest message per topic since its install
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
WITH cache AS (
	SELECT s.* FROM state_msg.client_state s JOIN state_msg.clients c USING (client_id)
	WHERE s.serial_epoch = c.serial_epoch)
SELECT a.client_id,
	   a.next_serial_number + row_number() OVER (PARTITION BY a.client_id ORDER BY s.message_time) - 1,
	   s.topic_type, s.topic_id, s.state_id, s.message_time
FROM answering a JOIN cache s USING (client_id)
UNION ALL
SELECT a.client_id,
	   a.next_serial_number + (SELECT count(*) FROM cache s WHERE s.client_id = a.client_id),
	   700, 'resync', 2, timestamptz '2026-11-25 06:00+00'
FROM answering a
ORDER BY 1, 2;

\echo '== Outstanding requests (state_msg.resync_outstanding)'
SELECT * FROM state_msg.resync_outstanding;

\echo '== The source document''s two queries, unchanged'
SET search_path = state_msg, public;
select count(*) from SR_ClientMessageStats where LastResyncIssuedTime is not null
  and (LastResyncIssuedTime > LastResyncClientCompletedTime);
select count(*) from SR_ClientMessageStats where LastResyncIssuedTime is not null
  and LastResyncClientCompletedTime is null;
RESET search_path;

\echo '== Three days on, the check cycle reissues what was never completed'
SELECT * FROM state_msg.run_resync_check(now() + interval '3 days');
SELECT reason, count(*) AS requests, count(completed_at) AS completed
FROM state_msg.resync_requests GROUP BY 1 ORDER BY 1;

\echo '== SR_ClientMessageStats (a few rows)'
SELECT clientid, nextserialnumber, lastmessagetime, lastresyncissuedtime,
	   lastresyncclientcompletedtime
FROM state_msg.sr_clientmessagestats
ORDER BY lastresyncissuedtime NULLS LAST, clientid LIMIT 5;

\echo '== Update compliance from the current state (topic type 500)'
SELECT state_id, CASE state_id WHEN 1 THEN 'not required' WHEN 2 THEN 'required (missing)'
		WHEN 3 THEN 'installed' ELSE 'unknown' END AS state,
	   count(*) AS client_updates
FROM state_msg.client_state WHERE topic_type = 500 GROUP BY 1 ORDER BY 1;
