-- Chunks are bounded in bytes as well as in messages: with
-- state_msg.batch_chunk_memory at its minimum, a statement of large messages
-- (one client among them sends ~10 MB) is processed in many chunks, the
-- large client split across them, and the outcome is the one a single chunk
-- gives.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';
SHOW state_msg.batch_chunk_memory;

-- 2,000 messages of ~5 kB for client BIG (serial 1, then 2..2000 in a
-- shuffled but fixed order: gaps that later messages fill), a few small
-- clients around it
CREATE TEMP TABLE stream AS
SELECT row_number() OVER (ORDER BY k) AS ord, client_id, serial_number, topic_id, params, t
FROM (SELECT 'BIG' AS client_id, s AS serial_number, 'u' || (s % 50) AS topic_id,
			 array_fill(repeat(chr(65 + s % 26), 1000), ARRAY[5]) AS params,
			 '2026-11-10 00:00+00'::timestamptz + s * interval '1 second' AS t,
			 CASE WHEN s = 1 THEN -1 ELSE (s * 7919) % 2003 END AS k
	  FROM generate_series(1, 2000) s
	  UNION ALL
	  SELECT 'SMALL' || (s % 3), s, 'v', NULL,
			 '2026-11-10 00:00+00'::timestamptz + s * interval '1 second', s * 11
	  FROM generate_series(1, 300) s) m;

CREATE TEMP TABLE outcome (setting text, what text, digest text);
CREATE FUNCTION pg_temp.run(memory text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	TRUNCATE state_msg.clients, state_msg.client_state, state_msg.missing_ranges,
		state_msg.resync_requests;
	PERFORM set_config('state_msg.batch_chunk_memory', memory, true);
	INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
								 state_id, message_time, user_params)
	SELECT client_id, serial_number, 500, topic_id, serial_number % 4, t, params
	FROM stream ORDER BY ord;
	INSERT INTO outcome
	SELECT memory, 'clients', md5(string_agg(format('%s %s %s %s %s %s', client_id,
			next_serial_number, messages_processed, missing_serials, late_fills,
			duplicates), '; ' ORDER BY client_id))
	FROM state_msg.clients
	UNION ALL
	SELECT memory, 'ranges', md5(coalesce(string_agg(format('%s %s-%s', client_id,
			first_serial, last_serial), '; ' ORDER BY client_id, first_serial), ''))
	FROM state_msg.missing_ranges
	UNION ALL
	SELECT memory, 'states', md5(string_agg(format('%s %s %s %s %s', client_id, topic_id,
			state_id, serial_number, user_params[1]), '; '
			ORDER BY client_id, topic_id))
	FROM state_msg.client_state;
END
$$;
SELECT pg_temp.run('1MB');
SELECT pg_temp.run('1GB');
-- the large client's first part sets its baseline: serial 1 is in it, so
-- nothing differs
SELECT a.what, a.digest = b.digest AS same_outcome
FROM outcome a JOIN outcome b USING (what)
WHERE a.setting = '1MB' AND b.setting = '1GB' ORDER BY 1;
SELECT client_id, next_serial_number, messages_processed, missing_serials > 0 AS had_gaps,
	   late_fills > 0 AS filled
FROM state_msg.clients ORDER BY client_id;
SELECT count(*) AS open_ranges FROM state_msg.missing_ranges;
