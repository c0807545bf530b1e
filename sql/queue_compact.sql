-- Compaction of the queue's counts and flow folds only the keys that need
-- it: a (minute, queue, topic type) already folded into one row is left
-- alone by later compactions (not deleted and written again each drain
-- batch, which under sustained load left dead rows faster than autovacuum
-- took them), and the sums stay exact.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';
SET state_msg.processing = queued;

-- One message of topic type 777, drained: its flow folds into one row
SELECT state_msg.ingest('QC1', 1, 777, 'u1', 2, '2026-11-10 10:00+00');
CALL state_msg.process_queue();
SELECT queue, topic_type, count(*) AS rows, sum(arrived) AS arrived,
	   sum(processed) AS processed
FROM state_msg.queue_flow GROUP BY 1, 2 ORDER BY 1, 2;
CREATE TEMP TABLE folded AS
SELECT minute, queue, topic_type, xmin::text AS was_xmin, ctid AS was_ctid
FROM state_msg.queue_flow WHERE topic_type = 777;

-- More traffic of other topic types, enqueued and drained in several
-- statements and batches: each batch compacts
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'QC' || c, s, 500, 'u' || s, 1, timestamptz '2026-11-10 10:00+00' + s * interval '1 minute'
FROM generate_series(2, 21) c, generate_series(1, 5) s;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'QC' || c, s, 501, 'u' || s, 1, timestamptz '2026-11-10 10:00+00' + s * interval '1 minute'
FROM generate_series(2, 21) c, generate_series(6, 8) s;
CALL state_msg.process_queue();
SELECT state_msg.ingest('QC1', 2, 500, 'u2', 2, '2026-11-10 10:05+00');
CALL state_msg.process_queue();

-- The 777 row was not touched (same version, same place)
SELECT count(*) AS untouched
FROM state_msg.queue_flow f JOIN folded o USING (minute, queue, topic_type)
WHERE f.xmin::text = o.was_xmin AND f.ctid = o.was_ctid;
-- one row per key, exact sums; nothing waits, no count row left
SELECT queue, topic_type, count(*) AS rows, sum(arrived) AS arrived,
	   sum(processed) AS processed
FROM state_msg.queue_flow GROUP BY 1, 2 ORDER BY 1, 2;
SELECT count(*) AS count_rows FROM state_msg.queue_counts;
SELECT queue, waiting FROM state_msg.backlog;
