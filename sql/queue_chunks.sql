-- The queue's storage (enqueue.c): a statement's messages of one queue and
-- shard are written together as chunks, in arrival order, each small
-- enough to stay in line; a drain that takes part of a chunk leaves the
-- rest, in order; a resync answer whose 700/2 comes after its client's
-- first messages were written (more than 8,192 messages before it) has
-- them moved to the high queue and counted as answers; a message larger
-- than a chunk is a chunk of its own; and a partition whose dead chunks
-- outnumber its live ones three times has its live chunks moved to the
-- current generation, so that TRUNCATE can give its space back.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';
SET state_msg.processing = queued;

-- queue_counts' chunks and messages per partition are the chunks' own
\set counts_exact 'SELECT bool_and(coalesce(c.chunks, 0) = coalesce(q.chunks, 0) AND coalesce(c.messages, 0) = coalesce(q.messages, 0)) AS counts_exact FROM generate_series(0, 2) g LEFT JOIN (SELECT generation, sum(chunks) AS chunks, sum(messages) AS messages FROM state_msg.queue_counts GROUP BY 1) c ON c.generation = g LEFT JOIN (SELECT generation, count(*) AS chunks, sum(cardinality(messages)) AS messages FROM state_msg.queue_chunks GROUP BY 1) q ON q.generation = g'

-- 1. Three clients' 100 messages each, interleaved, in one statement
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'K' || c, s, 500, 'u' || s, s % 4,
	   timestamptz '2026-11-10 10:00+00' + s * interval '1 minute'
FROM generate_series(1, 3) c, generate_series(1, 100) s ORDER BY s, c;
-- Per client (shard): several chunks, each in line, its positions rising,
-- first_row its first; and the chunks follow one another
SELECT m.client_id, count(DISTINCT c.ctid) > 1 AS several_chunks,
	   bool_and(pg_column_size(c.*) < 8160) AS in_line,
	   bool_and(c.row_numbers = ARRAY(SELECT x FROM unnest(c.row_numbers) x ORDER BY x)) AS rising,
	   bool_and(c.first_row = c.row_numbers[1]) AS first_row_first,
	   count(*) AS messages
FROM state_msg.queue_chunks c, unnest(c.messages) m
GROUP BY m.client_id ORDER BY 1;
SELECT bool_and(last_row < next_first) AS chunks_in_order
FROM (SELECT c.row_numbers[cardinality(c.row_numbers)] AS last_row,
			 lead(c.first_row) OVER (PARTITION BY c.queue, c.shard, c.upload_id
									 ORDER BY c.first_row) AS next_first
	  FROM state_msg.queue_chunks c) s
WHERE next_first IS NOT NULL;
-- The view shows them one row each, in order
SELECT client_id, count(*), min(serial_number), max(serial_number),
	   bool_and(serial_number = row_number / 3 + 1) AS positions
FROM (SELECT client_id, serial_number, row_number - 1 AS row_number FROM state_msg.queue) q
GROUP BY 1 ORDER BY 1;

-- 2. A batch of 7 takes the first 7 of one client's first chunk and
-- rewrites the chunk with the rest
SELECT state_msg.process_queue_batch(7);
SELECT count(*) AS clients_started, sum(messages_processed) AS processed,
	   max(next_serial_number) AS next
FROM state_msg.clients;
SELECT min(q.serial_number) AS first_waiting, count(*) AS waiting
FROM state_msg.queue q JOIN state_msg.clients c USING (client_id);
SELECT sum(waiting) AS waiting FROM state_msg.backlog;
:counts_exact;
CALL state_msg.process_queue();
SELECT client_id, next_serial_number, messages_processed, late_fills, duplicates, missing_serials
FROM state_msg.clients ORDER BY 1;
SELECT count(*) AS chunks_left FROM state_msg.queue_chunks;

-- 3. A resync answer straddling the writer's flush of 8,192 messages: A's
-- serials 1-5 (5 of topic 800, high by itself) and one relayed message come
-- first, then 9,000 messages of 900 other clients, then A's 700/2 (serial
-- 6) and serial 7: all count as the answer's, all but the relayed one high
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time, source)
SELECT client_id, serial_number, topic_type, topic_id, state_id,
	   timestamptz '2026-11-10 11:00+00', source
FROM (SELECT 1 AS part, s AS ord, 'A' AS client_id, s AS serial_number,
			 CASE WHEN s = 5 THEN 800 ELSE 500 END AS topic_type,
			 'u' || s AS topic_id, 2 AS state_id, 'mp' AS source
	  FROM generate_series(1, 5) s
	  UNION ALL SELECT 1, 6, 'A', NULL, 1300, 'h', 1, 'fsp'
	  UNION ALL SELECT 2, f * 10 + s, 'F' || f, s, 500, 'u', 2, 'mp'
	  FROM generate_series(1, 900) f, generate_series(1, 10) s
	  UNION ALL SELECT 3, 1, 'A', 6, 700, 'r', 2, 'mp'
	  UNION ALL SELECT 3, 2, 'A', 7, 500, 'u7', 2, 'mp') m
ORDER BY part, ord;
SELECT queue, count(*) FROM state_msg.queue WHERE client_id = 'A' GROUP BY 1 ORDER BY 1;
SELECT queue, count(*) FROM state_msg.queue WHERE client_id <> 'A' GROUP BY 1 ORDER BY 1;
SELECT queue, sum(arrived) AS arrived, sum(resync_answers) AS answers
FROM state_msg.queue_flow WHERE processed = 0 AND minute >= date_trunc('minute', state_msg.engine_now())
GROUP BY queue ORDER BY queue;
SELECT queue, waiting FROM state_msg.backlog;
-- A's high messages stay in position order; no chunk holds nothing
SELECT array_agg(serial_number ORDER BY upload_id, row_number) AS a_high
FROM state_msg.queue WHERE client_id = 'A' AND queue = 'high';
SELECT count(*) AS empty_chunks FROM state_msg.queue_chunks WHERE cardinality(messages) = 0;
:counts_exact;
CALL state_msg.process_queue();
SELECT client_id, next_serial_number, messages_processed, late_fills, missing_serials
FROM state_msg.clients WHERE client_id = 'A';
SELECT count(*) AS f_clients, sum(messages_processed) AS f_processed, sum(late_fills) AS late_fills
FROM state_msg.clients WHERE client_id LIKE 'F%';

-- 4. A message larger than a chunk is a chunk of its own, and its details
-- arrive whole
SELECT state_msg.ingest('B', 1, 500, 'u', 2, '2026-11-10 12:00+00',
						state_details => repeat('<x>' || md5('b') || '</x>', 800));
SELECT state_msg.ingest('B', 2, 500, 'v', 2, '2026-11-10 12:00+00');
SELECT cardinality(messages) AS messages, length((messages[1]).state_details) AS details
FROM state_msg.queue_chunks ORDER BY upload_id;
CALL state_msg.process_queue();
SELECT topic_id, length(state_details) AS details FROM state_msg.client_state
WHERE client_id = 'B' ORDER BY 1;

-- 5. Stranded chunks: the fsp throttle holds 30 of a client's 40 relayed
-- messages while 2,000 others drain; its partition is then mostly dead
SET state_msg.fsp_throttle_messages = 10;
SET state_msg.queue_rotation_interval = '1h';
UPDATE state_msg.queue_throttle SET window_start = '-infinity', released = 0;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time, source)
SELECT 'R', NULL, 1300, 'h' || s, 1, timestamptz '2026-11-10 13:00+00' + s * interval '1 second', 'fsp'
FROM generate_series(1, 40) s;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'S' || c, s, 500, 'u', 2, timestamptz '2026-11-10 13:00+00'
FROM generate_series(1, 200) c, generate_series(1, 10) s ORDER BY s, c;
SELECT generation AS stranded FROM state_msg.queue_rotation \gset
CALL state_msg.process_queue();
SELECT queue, waiting FROM state_msg.backlog;
SELECT pg_stat_force_next_flush();
SELECT n_live_tup AS live, n_dead_tup >= 3 * n_live_tup AS mostly_dead
FROM pg_stat_user_tables WHERE relname = 'queue_' || :stranded;
-- The next batch moves the generation on and the live chunk with it; the
-- one after that truncates the stranded partition
SET state_msg.queue_rotation_interval = 0;
SELECT state_msg.process_queue_batch();
SELECT generation <> :stranded AS moved_on FROM state_msg.queue_rotation;
SELECT count(*) FILTER (WHERE c.generation = :stranded) AS left_behind,
	   count(*) FILTER (WHERE c.generation = r.generation) AS in_current,
	   sum(cardinality(c.messages)) AS messages
FROM state_msg.queue_chunks c, state_msg.queue_rotation r;
:counts_exact;
SELECT state_msg.process_queue_batch();
SELECT pg_relation_size('state_msg.queue_' || :stranded) AS stranded_size;
-- Nothing was lost: the throttle's next interval releases them, in order
UPDATE state_msg.queue_throttle SET window_start = '-infinity', released = 0;
SET state_msg.fsp_throttle_messages = 100;
CALL state_msg.process_queue();
SELECT count(*) AS r_states FROM state_msg.client_state WHERE client_id = 'R';
SELECT sum(waiting) AS waiting FROM state_msg.backlog;

-- 6. The high queue never cuts a client's resync answer, and no more: 4,000
-- clients' answers (5 messages and the 700/2) in one statement, about 60
-- clients a shard; a batch of 10 takes whole chunks and then the rest of
-- the answers it began, not the rest of the shard's upload
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'H' || c, s, CASE WHEN s = 6 THEN 700 ELSE 500 END, 'u' || s,
	   CASE WHEN s = 6 THEN 2 ELSE 1 END, timestamptz '2026-11-10 14:00+00'
FROM generate_series(1, 4000) c, generate_series(1, 6) s ORDER BY c, s;
SELECT queue, waiting FROM state_msg.backlog;
SELECT state_msg.process_queue_batch(10) AS taken \gset
SELECT :taken >= 10 AS at_least_the_limit, :taken < 200 AS not_the_shards_upload,
	   :taken % 6 = 0 AS whole_answers;
SELECT count(*) * 6 = :taken AS clients_match, bool_and(messages_processed = 6) AS each_whole
FROM state_msg.clients WHERE client_id LIKE 'H%';
SELECT count(*) AS partly_waiting FROM (
	SELECT client_id FROM state_msg.queue WHERE client_id LIKE 'H%'
	GROUP BY client_id HAVING count(*) <> 6) p;
SELECT sum(waiting) = 24000 - :taken AS waiting_exact FROM state_msg.backlog;
:counts_exact;
CALL state_msg.process_queue();
SELECT count(*) AS clients, sum(messages_processed) AS processed, sum(late_fills) AS late_fills,
	   sum(missing_serials) AS missing
FROM state_msg.clients WHERE client_id LIKE 'H%';
