-- Chunking: state_msg.batch_chunk_size decides how a statement's messages
-- are cut into set-based steps, never what the statement does.  The same
-- stream (gaps, late fills, duplicates, a serial reset, relayed messages, a
-- resync answer) gives the same clients, ranges, states and requests with
-- chunks of 1, 3 and the default size.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

SHOW state_msg.batch_chunk_size;

CREATE TEMP TABLE stream AS
SELECT row_number() OVER () AS ord, *
FROM (VALUES
	('A', 1, 500, 'u1', 2, '2026-11-10 10:01+00'),
	('B', 10, 500, 'u1', 1, '2026-11-10 10:10+00'),
	('A', 4, 500, 'u2', 2, '2026-11-10 10:04+00'),
	('C', NULL, 800, 'dep', 100, '2026-11-10 09:00+00'),
	('A', 2, 500, 'u1', 3, '2026-11-10 10:02+00'),
	('B', 8, 500, 'u2', 3, '2026-11-10 10:08+00'),
	('B', 12, 500, 'u1', 2, '2026-11-10 10:12+00'),
	('A', 4, 500, 'u2', 2, '2026-11-10 10:04+00'),
	('C', 5, 500, 'u1', 1, '2026-11-10 10:05+00'),
	('B', 1, 500, 'u3', 3, '2026-11-20 08:00+00'),
	('C', NULL, 800, 'dep', 400, '2026-11-10 09:30+00'),
	('A', 7, 700, 'resync', 2, '2026-11-10 10:07+00'),
	('B', 2, 500, 'u1', 3, '2026-11-20 08:01+00'),
	('C', 6, 500, 'u1', 3, '2026-11-10 10:06+00')
) AS m(client_id, serial_number, topic_type, topic_id, state_id, message_time);

CREATE TEMP TABLE outcome (chunk_size int, what text, digest text);

CREATE FUNCTION pg_temp.run(size int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	TRUNCATE state_msg.clients, state_msg.client_state, state_msg.missing_ranges,
		state_msg.resync_requests;
	PERFORM set_config('state_msg.batch_chunk_size', size::text, true);
	INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
	SELECT client_id, serial_number, topic_type, topic_id, state_id, message_time::timestamptz
	FROM stream ORDER BY ord;
	INSERT INTO outcome
	SELECT size, 'clients', string_agg(format('%s %s %s %s %s %s %s %s %s %s', client_id,
			next_serial_number, serial_epoch, last_message_time, messages_processed,
			missing_serials, late_fills, duplicates, serial_resets, unserialized_messages),
			'; ' ORDER BY client_id)
	FROM state_msg.clients
	UNION ALL
	SELECT size, 'ranges', coalesce(string_agg(format('%s %s-%s', client_id, first_serial,
			last_serial), '; ' ORDER BY client_id, first_serial), 'none')
	FROM state_msg.missing_ranges
	UNION ALL
	SELECT size, 'states', string_agg(format('%s %s %s %s %s %s', client_id, topic_type,
			topic_id, state_id, serial_number, serial_epoch),
			'; ' ORDER BY client_id, topic_type, topic_id)
	FROM state_msg.client_state
	UNION ALL
	SELECT size, 'requests', string_agg(format('%s %s %s', client_id, reason,
			completed_at IS NOT NULL), '; ' ORDER BY client_id, reason)
	FROM state_msg.resync_requests;
END
$$;

SELECT pg_temp.run(1);
SELECT pg_temp.run(3);
SELECT pg_temp.run(32768);

-- One outcome for every chunk size
SELECT what, count(DISTINCT digest) AS outcomes FROM outcome GROUP BY what ORDER BY what;

-- And it is the right one
SELECT what, digest FROM outcome WHERE chunk_size = 1 ORDER BY what;

-- A client is split only when it alone has more than 8 chunks' worth: here
-- new client B (30 messages, its serial 10 last) stays whole with chunks of 4
TRUNCATE state_msg.clients, state_msg.client_state, state_msg.missing_ranges;
SET state_msg.batch_chunk_size = 4;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
SELECT 'A', g, 500, 't', 1, '2026-01-01'::timestamptz + g * interval '1 min'
FROM generate_series(1, 3) g
UNION ALL
SELECT * FROM (SELECT 'B', g, 500, 't', 1, '2026-01-01'::timestamptz + g * interval '1 min'
			   FROM generate_series(11, 39) g ORDER BY g) AS x
UNION ALL
SELECT 'B', 10, 500, 't', 1, '2026-01-01 00:10+00';
SELECT client_id, next_serial_number, missing_serials, late_fills, duplicates
FROM state_msg.clients ORDER BY 1;
RESET state_msg.batch_chunk_size;

SET state_msg.batch_chunk_size = 0;
