-- Many missing ranges: a batch reads only the stored ranges its serials can
-- meet and writes back only the ranges that changed.  A client with
-- thousands of ranges gets late fills at the front, middle (split) and end
-- of stored ranges, whole ranges filled, a fill of a range's only serial, a
-- gap and a fill of its new range, resync answers (700/2) that drop the
-- ranges below them, and a serial reset that drops them all.  After each
-- statement, missing_ranges must equal the ranges of an expected set of
-- missing serials kept independently here; and the same statements with
-- state_msg.batch_chunk_size = 1 (a client split every 8 messages) must give
-- the same ranges and counters.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

-- The statements, one per step: a message's time is its serial in seconds
-- after 2024-01-01, unless given
CREATE TEMP TABLE steps (step int, ord int, serial bigint, topic_type int,
	state_id int, message_time timestamptz);
CREATE FUNCTION pg_temp.add_step(n int, serials bigint[], types int[] DEFAULT NULL,
	times timestamptz[] DEFAULT NULL) RETURNS void LANGUAGE sql AS $$
	INSERT INTO steps
	SELECT n, i, serials[i], coalesce(types[i], 500),
		   CASE coalesce(types[i], 500) WHEN 700 THEN 2 ELSE 1 END,
		   coalesce(times[i], '2024-01-01'::timestamptz + serials[i] * interval '1 second')
	FROM generate_subscripts(serials, 1) i
$$;
-- 1: every fourth serial of 1 .. 11997: 2999 ranges of three serials,
-- [4k + 2, 4k + 4]
INSERT INTO steps
SELECT 1, s, s, 500, 1, '2024-01-01'::timestamptz + s * interval '1 second'
FROM generate_series(1, 11997, 4) s;
-- 2: one statement, more than 8 messages: fronts (42, 302, 11994), a middle
-- (4003), ends (100, 8004), a whole range in the order middle, front, end
-- (7, 6, 8), a duplicate (5)
SELECT pg_temp.add_step(2, '{42, 4003, 8004, 7, 6, 8, 11994, 5, 100, 302}');
-- 3: the only serial of a range split in step 2
SELECT pg_temp.add_step(3, '{4002}');
-- 4, 5, 6: one message each: a middle, a front, an end
SELECT pg_temp.add_step(4, '{5003}');
SELECT pg_temp.add_step(5, '{5006}');
SELECT pg_temp.add_step(6, '{5012}');
-- 7: in order, a gap [11999, 12004], a fill of that new range, a fill of a
-- stored range shrunk in step 2
SELECT pg_temp.add_step(7, '{11998, 12005, 12001, 11995}');
-- 8: a resync answer that fills 6002 (the front of [6002, 6004]) and drops
-- every range below it
SELECT pg_temp.add_step(8, '{6002}', '{700}');
-- 9: a middle (6007), a resync answer filling 6010 (dropping [6006, 6006],
-- [6008, 6008] and [6003, 6004]), a middle (6015), and 6003, now a duplicate
SELECT pg_temp.add_step(9, '{6007, 6010, 6015, 6003}', '{500, 700, 500, 500}');
-- 10: a fill (7002), then a serial reset (serial 3, later than everything)
-- and a gap [4, 9] in the new epoch
SELECT pg_temp.add_step(10, '{7002, 3, 10}', NULL,
	'{2024-01-01 01:56:42+00, 2024-06-01 00:00+00, 2024-06-01 00:01+00}');
-- 11: the new epoch's range split
SELECT pg_temp.add_step(11, '{5}', NULL, '{2024-06-01 00:00:30+00}');

-- Ranges and counters, to compare chunk sizes
CREATE TEMP TABLE outcome (client_id text, step int, digest text);
CREATE FUNCTION pg_temp.digest(c text) RETURNS text LANGUAGE sql AS $$
	SELECT (SELECT format('%s %s %s %s %s %s %s', next_serial_number, serial_epoch,
				messages_processed, missing_serials, late_fills, duplicates, serial_resets)
			FROM state_msg.clients WHERE client_id = c)
		   || ' ' || coalesce((SELECT md5(string_agg(first_serial || '-' || last_serial, ','
											 ORDER BY first_serial))
							   FROM state_msg.missing_ranges WHERE client_id = c), 'none')
$$;
-- Run a step's messages for client c in one statement; note the outcome
CREATE FUNCTION pg_temp.run_step(c text, n int) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
								 state_id, message_time)
	SELECT c, serial, topic_type,
		   CASE topic_type WHEN 700 THEN 'resync' ELSE 't' || serial % 50 END,
		   state_id, message_time
	FROM steps WHERE step = n ORDER BY ord;
	INSERT INTO outcome VALUES (c, n, pg_temp.digest(c));
	RETURN format('step %s: %s messages', n, (SELECT count(*) FROM steps WHERE step = n));
END $$;

-- The expected missing serials of client M, kept by hand below
CREATE TEMP TABLE expect (serial bigint PRIMARY KEY);
-- When step 1 detected its gaps
CREATE TEMP TABLE built (detected_at timestamptz);
-- missing_ranges against the ranges of the expected set (its runs of
-- consecutive serials); the ranges below 11998 whose detected_at is not step
-- 1's (shrunk and split ranges keep theirs: none before the reset); and the
-- counters
CREATE FUNCTION pg_temp.check(c text) RETURNS TABLE (ranges bigint, serials numeric,
	differences bigint, not_step_1 bigint, next bigint, epoch int,
	missing_serials bigint, late_fills bigint, duplicates bigint, resets bigint)
LANGUAGE sql AS $$
	WITH e AS (SELECT min(serial) AS f, max(serial) AS l
			   FROM (SELECT serial, serial - row_number() OVER (ORDER BY serial) AS run
					 FROM expect) x GROUP BY run),
	a AS (SELECT first_serial AS f, last_serial AS l, detected_at
		  FROM state_msg.missing_ranges WHERE client_id = c)
	SELECT (SELECT count(*) FROM a), (SELECT sum(l - f + 1) FROM a),
		   (SELECT count(*) FROM ((SELECT f, l FROM e EXCEPT SELECT f, l FROM a)
								  UNION ALL (SELECT f, l FROM a EXCEPT SELECT f, l FROM e)) d),
		   (SELECT count(*) FROM a WHERE f < 11998
			  AND detected_at <> ALL (SELECT detected_at FROM built)),
		   cl.next_serial_number, cl.serial_epoch, cl.missing_serials, cl.late_fills,
		   cl.duplicates, cl.serial_resets
	FROM state_msg.clients cl WHERE cl.client_id = c
$$;

-- 1: 2999 ranges, 8997 serials
SELECT pg_temp.run_step('M', 1);
INSERT INTO built SELECT DISTINCT detected_at FROM state_msg.missing_ranges;
INSERT INTO expect SELECT s FROM generate_series(2, 11996) s WHERE s % 4 <> 1;
SELECT * FROM pg_temp.check('M');

-- 2: 8 late fills, 1 duplicate; [6, 8] gone, [4002, 4004] split
SELECT pg_temp.run_step('M', 2);
DELETE FROM expect WHERE serial IN (42, 4003, 8004, 7, 6, 8, 11994, 100, 302);
SELECT * FROM pg_temp.check('M');
SELECT first_serial, last_serial FROM state_msg.missing_ranges
WHERE client_id = 'M' AND (first_serial BETWEEN 2 AND 12 OR first_serial BETWEEN 4000 AND 4006)
ORDER BY first_serial;

-- 3: [4002, 4002] goes
SELECT pg_temp.run_step('M', 3);
DELETE FROM expect WHERE serial = 4002;
SELECT * FROM pg_temp.check('M');

-- 4, 5, 6: [5002, 5004] splits, [5006, 5008] and [5010, 5012] shrink
SELECT pg_temp.run_step('M', 4);
DELETE FROM expect WHERE serial = 5003;
SELECT * FROM pg_temp.check('M');
SELECT pg_temp.run_step('M', 5);
DELETE FROM expect WHERE serial = 5006;
SELECT * FROM pg_temp.check('M');
SELECT pg_temp.run_step('M', 6);
DELETE FROM expect WHERE serial = 5012;
SELECT * FROM pg_temp.check('M');
SELECT first_serial, last_serial FROM state_msg.missing_ranges
WHERE client_id = 'M' AND first_serial BETWEEN 5000 AND 5014 ORDER BY first_serial;

-- 7: a new range [11999, 12004] split at 12001; [11995, 11996] shrinks
SELECT pg_temp.run_step('M', 7);
INSERT INTO expect SELECT s FROM generate_series(11999, 12004) s WHERE s <> 12001;
DELETE FROM expect WHERE serial = 11995;
SELECT * FROM pg_temp.check('M');
SELECT first_serial, last_serial FROM state_msg.missing_ranges
WHERE client_id = 'M' AND first_serial > 11990 ORDER BY first_serial;

-- 8: everything below 6002 goes, and 6002
SELECT pg_temp.run_step('M', 8);
DELETE FROM expect WHERE serial <= 6002;
SELECT * FROM pg_temp.check('M');
SELECT min(first_serial) FROM state_msg.missing_ranges WHERE client_id = 'M';

-- 9: 6007 filled, then everything below 6010 and 6010 go; 6015 filled; 6003
-- is a duplicate
SELECT pg_temp.run_step('M', 9);
DELETE FROM expect WHERE serial <= 6010 OR serial = 6015;
SELECT * FROM pg_temp.check('M');
SELECT first_serial, last_serial FROM state_msg.missing_ranges
WHERE client_id = 'M' AND first_serial < 6020 ORDER BY first_serial;

-- 10: a reset drops every range; the new epoch has [4, 9], detected now
SELECT pg_temp.run_step('M', 10);
TRUNCATE expect;
INSERT INTO expect SELECT generate_series(4, 9);
SELECT * FROM pg_temp.check('M');

-- 11: [4, 9] splits at 5
SELECT pg_temp.run_step('M', 11);
DELETE FROM expect WHERE serial = 5;
SELECT * FROM pg_temp.check('M');
SELECT first_serial, last_serial FROM state_msg.missing_ranges WHERE client_id = 'M'
ORDER BY first_serial;
SELECT count(*) FROM state_msg.missing_ranges WHERE client_id <> 'M';

-- The same statements with chunks of one message (so a client is split
-- every 8 messages): the same ranges and counters after every step
SET state_msg.batch_chunk_size = 1;
SELECT pg_temp.run_step('K', 1);
SELECT pg_temp.run_step('K', 2);
SELECT pg_temp.run_step('K', 3);
SELECT pg_temp.run_step('K', 4);
SELECT pg_temp.run_step('K', 5);
SELECT pg_temp.run_step('K', 6);
SELECT pg_temp.run_step('K', 7);
SELECT pg_temp.run_step('K', 8);
SELECT pg_temp.run_step('K', 9);
SELECT pg_temp.run_step('K', 10);
SELECT pg_temp.run_step('K', 11);
RESET state_msg.batch_chunk_size;
SELECT m.step, m.digest = k.digest AS same
FROM outcome m FULL JOIN outcome k ON k.step = m.step AND k.client_id = 'K'
WHERE m.client_id = 'M' ORDER BY m.step;
