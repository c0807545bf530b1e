-- Client ids (hardening items 13 and 14): which characters count as white
-- space around an id and as a blank id, in a UTF8 database and in a
-- single-byte one; that messages quote at most 64 characters of an id,
-- however long; and that ALTER EXTENSION UPDATE from 1.0 renames stored ids
-- whose spelling the 1.1 rule changes, or lists them in
-- state_msg.client_id_conflicts when it cannot.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
DROP DATABASE IF EXISTS sm_ids_utf8;
DROP DATABASE IF EXISTS sm_ids_latin1;
DROP DATABASE IF EXISTS sm_ids_upgrade;
RESET client_min_messages;
SELECT current_database() AS regress_db \gset

-- Databases of known encodings, whatever the cluster's default
CREATE DATABASE sm_ids_utf8 TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C';
CREATE DATABASE sm_ids_latin1 TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C';
CREATE DATABASE sm_ids_upgrade TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C';

\c sm_ids_utf8
SET client_min_messages = warning;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';
\set VERBOSITY default

-- Show text with every character but printable ASCII (and the letters é and
-- €, used below) as <U+XXXX>
CREATE FUNCTION pg_temp.show(s text) RETURNS text LANGUAGE sql AS $$
	SELECT coalesce(string_agg(CASE WHEN ascii(c) BETWEEN 32 AND 126 OR c IN ('é', '€') THEN c
							   ELSE '<U+' || upper(lpad(to_hex(ascii(c)), 4, '0')) || '>' END,
							   '' ORDER BY n), '')
	FROM regexp_split_to_table(s, '') WITH ORDINALITY AS t(c, n)
	WHERE c <> ''
$$;

-- Run a statement; report its SQLSTATE, message and detail instead of failing
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	state text;
	msg text;
	detail text;
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
		detail = PG_EXCEPTION_DETAIL;
	RETURN state || ' ' || msg || ' / ' || pg_temp.show(detail);
END
$$;

-- White space: each of these alone is blank (normalizes to '')
SELECT to_hex(cp) AS code_point,
	   state_msg.normalize_client_id(chr(cp)) AS alone,
	   state_msg.normalize_client_id(chr(cp) || 'WKS-1' || chr(cp)) AS around,
	   pg_temp.show(state_msg.normalize_client_id('WKS' || chr(cp) || '1')) AS inside
FROM unnest(ARRAY[x'09', x'0a', x'0b', x'0c', x'0d', x'20', x'85', x'a0',
				  x'1680', x'180e', x'2000', x'2001', x'2002', x'2003', x'2004',
				  x'2005', x'2006', x'2007', x'2008', x'2009', x'200a', x'200b',
				  x'200c', x'200d', x'200e', x'200f', x'2028', x'2029', x'202a',
				  x'202b', x'202c', x'202d', x'202e', x'202f', x'205f', x'2060',
				  x'2066', x'2067', x'2068', x'2069', x'3000', x'feff']::int[]) AS cp;

-- ... and these are not: soft hyphen, combining grapheme joiner, invisible
-- times, Hangul filler, a letter
SELECT to_hex(cp) AS code_point,
	   pg_temp.show(state_msg.normalize_client_id(chr(cp) || 'WKS-1' || chr(cp))) AS around
FROM unnest(ARRAY[x'ad', x'34f', x'2062', x'3164', x'e9']::int[]) AS cp;

-- GUIDs led or followed by a byte order mark, direction marks, isolates or
-- no-break spaces are normalized; other ids are stripped, inside kept
SELECT pg_temp.show(id) AS given, pg_temp.show(state_msg.normalize_client_id(id)) AS normalized
FROM (VALUES (U&'\FEFFGUID:6b0c9a51-3d1e-4f7a-9c21-0a1b2c3d4e5f'),
			 (U&'\200E6b0c9a51-3d1e-4f7a-9c21-0a1b2c3d4e5f\200F'),
			 (U&'\2066{6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F}\2069'),
			 (U&'\00A0 GUID:\3000\200B6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F \00A0'),
			 (U&'guid:\00A0{6b0c9a51-3d1e-4f7a-9c21-0a1b2c3d4e5f}'),
			 (U&'GUID:6B0C9A51\00A0-3D1E-4F7A-9C21-0A1B2C3D4E5F'),
			 (U&'\00A0WKS-0042\00A0'),
			 (U&'\FEFF\200E WKS 0042\3000' || E'\r\n'),
			 (U&'WKS\00A00042'),
			 (U&'GUID:\00A0'),
			 (U&'\00A0\200B\3000\FEFF ' || E'\t')) AS t(id);

-- Ingesting: ids that are only such characters are rejected as empty
-- (22023), under quarantine and under error; the rejected row keeps the id
-- as given
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES (U&'\00A0', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00'),
	   (U&'\200B', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00'),
	   (U&'\3000', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00'),
	   (U&'\FEFF\200E \00A0', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00'),
	   (U&'GUID:\2060', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00');
SELECT row_number, sqlstate, reason, pg_temp.show(client_id) AS client_id
FROM state_msg.rejected_messages ORDER BY rejected_id;
SET state_msg.on_bad_message = 'error';
SELECT pg_temp.try($$SELECT state_msg.ingest(U&'\00A0', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00')$$);
SELECT pg_temp.try($$SELECT state_msg.ingest(U&'\200B', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00')$$);
SELECT pg_temp.try($$SELECT state_msg.ingest(U&'\3000', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00')$$);
RESET state_msg.on_bad_message;
SELECT count(*) AS clients FROM state_msg.clients;

-- One client however its GUID is dressed, serials continuing
SELECT state_msg.ingest(U&'\FEFFGUID:6b0c9a51-3d1e-4f7a-9c21-0a1b2c3d4e5f', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00');
SELECT state_msg.ingest(U&'\200E6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F', 2, 500, 'u1', 3, '2026-11-10 10:01:00+00');
SELECT state_msg.ingest('GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F', 3, 500, 'u1', 3, '2026-11-10 10:02:00+00');
-- One client with no-break spaces around its id; inner spaces make others
SELECT state_msg.ingest(U&'\00A0WKS-0042\00A0', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00');
SELECT state_msg.ingest('WKS-0042', 2, 500, 'u1', 2, '2026-11-10 10:01:00+00');
SELECT state_msg.ingest('WKS 0042', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00');
SELECT state_msg.ingest(U&'WKS\00A00042', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00');
SELECT pg_temp.show(client_id) AS client_id, next_serial_number, messages_processed
FROM state_msg.clients ORDER BY client_id;

-- Topic ids are kept as given, but one that is only white space is blank
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('WKS-0042', 3, 500, U&'\00A0', 2, '2026-11-10 10:02:00+00'),
	   ('WKS-0042', 4, 500, U&'\200B\3000 ', 2, '2026-11-10 10:03:00+00'),
	   ('WKS-0042', 5, 500, U&'\00A0u2\200B', 2, '2026-11-10 10:04:00+00');
SELECT row_number, sqlstate, reason, pg_temp.show(topic_id) AS topic_id
FROM state_msg.rejected_messages WHERE client_id = 'WKS-0042' ORDER BY rejected_id;
SELECT pg_temp.show(topic_id) AS topic_id, serial_number
FROM state_msg.client_state WHERE client_id = 'WKS-0042' ORDER BY serial_number;

-- Messages quote at most 64 characters of a client id, then "...": a 10 MB
-- id under error, through ingest() and through the inbox
SET state_msg.on_bad_message = 'error';
DO $$
DECLARE
	msg text;
	detail text;
BEGIN
	PERFORM state_msg.ingest(repeat('x', 10000000), 1, 500, 'u1', 2, '2026-11-10 10:00:00+00');
EXCEPTION WHEN string_data_right_truncation THEN
	GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
	RAISE NOTICE 'message % characters: %', length(msg), msg;
	RAISE NOTICE 'detail % characters: %', length(detail), detail;
END
$$;
SELECT pg_temp.try($$INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
	VALUES ('GOOD', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00'),
		   (repeat('é', 5000000), 1, 500, 'u1', 2, '2026-11-10 10:00:00+00')$$);
-- cut on a character boundary, "..." only when something was cut
SELECT pg_temp.try($$SELECT state_msg.ingest(repeat('é', 63) || '€€', 1, 500, 'u1', -2, '2026-11-10 10:00:00+00')$$);
SELECT pg_temp.try($$SELECT state_msg.ingest(repeat('é', 63) || '€', 1, 500, 'u1', -2, '2026-11-10 10:00:00+00')$$);
SELECT pg_temp.try($$SELECT state_msg.ingest('BAD', 1, 500, 'u1', -2, '2026-11-10 10:00:00+00')$$);
SELECT pg_temp.try($$SELECT state_msg.ingest(NULL, 1, 500, 'u1', 2, '2026-11-10 10:00:00+00')$$);
-- a stored id (toasted) as input: only its start is read for the message
CREATE TEMP TABLE big_ids AS SELECT repeat(md5(g::text), 400000) AS id FROM generate_series(1, 2) g;
SELECT pg_temp.try($$SELECT state_msg.ingest(id, 1, 500, 'u1', 2, '2026-11-10 10:00:00+00') FROM big_ids$$);
RESET state_msg.on_bad_message;

-- Under quarantine the warning quotes nothing of the row; the rejected row
-- keeps the whole id
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES (repeat('x', 10000000), 1, 500, 'u1', 2, '2026-11-10 10:00:00+00');
SELECT row_number, sqlstate, reason, length(client_id) AS client_id_length
FROM state_msg.rejected_messages WHERE length(client_id) > 256 ORDER BY rejected_id;
SELECT count(*) AS clients FROM state_msg.clients WHERE length(client_id) > 256;

-- In a database whose encoding is not UTF8, only ASCII white space counts:
-- a no-break space (byte A0 in LATIN1) is kept, even alone
\c sm_ids_latin1
SET client_min_messages = warning;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET client_encoding = 'UTF8';
SELECT getdatabaseencoding();
SELECT encode(convert_to(state_msg.normalize_client_id(id), 'LATIN1'), 'hex') AS normalized
FROM (VALUES (U&'\00A0'), (U&'\00A0WKS-1\00A0'), (E' \tWKS-1\r\n'),
			 (U&'\00A0GUID:6b0c9a51-3d1e-4f7a-9c21-0a1b2c3d4e5f'),
			 (' GUID: 6b0c9a51-3d1e-4f7a-9c21-0a1b2c3d4e5f ')) AS t(id);
SELECT state_msg.ingest(U&'\00A0', 1, 500, 'u1', 2, '2026-11-10 10:00:00+00');
SELECT state_msg.ingest(U&'\00A0', 1, 500, ' ', 2, '2026-11-10 10:00:00+00');
SELECT encode(convert_to(client_id, 'LATIN1'), 'hex') AS client_id FROM state_msg.clients;
-- long ids are cut at 64 characters here too
SET state_msg.on_bad_message = 'error';
SELECT state_msg.ingest(repeat('é', 1000), 1, 500, 'u1', 2, '2026-11-10 10:00:00+00');
RESET state_msg.on_bad_message;

-- Upgrade from 1.0: ids stored with white space around them (possible
-- under 1.0's ASCII-only rule) are renamed in the four tables when nothing
-- else has or takes their new spelling; the others are listed
\c sm_ids_upgrade
SET client_min_messages = warning;
CREATE EXTENSION state_msg VERSION '1.0';
RESET client_min_messages;
SET timezone = 'UTC';
CREATE FUNCTION pg_temp.show(s text) RETURNS text LANGUAGE sql AS $$
	SELECT coalesce(string_agg(CASE WHEN ascii(c) BETWEEN 32 AND 126 OR c IN ('é', '€') THEN c
							   ELSE '<U+' || upper(lpad(to_hex(ascii(c)), 4, '0')) || '>' END,
							   '' ORDER BY n), '')
	FROM regexp_split_to_table(s, '') WITH ORDINALITY AS t(c, n)
	WHERE c <> ''
$$;
CREATE TEMP TABLE ids (id text);
INSERT INTO ids VALUES
	(U&'\00A0WKS-1'),			-- renamable
	(U&'\FEFFGUID:6b0c9a51-3d1e-4f7a-9c21-0a1b2c3d4e5f'),	-- renamable
	(U&'\00A0'),				-- blank
	(U&'WKS-2\3000'),			-- collision: WKS-2 exists
	('WKS-2'),
	(U&'\200BWKS-3'),			-- collision: both become WKS-3
	(U&'WKS-3\200B'),
	(U&'WKS\00A04');			-- inner white space: unchanged
INSERT INTO state_msg.clients (client_id, next_serial_number, messages_processed)
SELECT id, 10, 9 FROM ids;
INSERT INTO state_msg.client_state (client_id, topic_type, topic_id, topic_id_type, state_id, criticality, serial_number, serial_epoch, message_time, processed_at, source)
SELECT id, 500, 'u1', 0, 2, 0, 9, 0, '2026-11-10 10:00:00+00', '2026-11-10 10:00:00+00', 'mp' FROM ids;
INSERT INTO state_msg.missing_ranges (client_id, first_serial, last_serial, detected_at)
SELECT id, 3, 4, '2026-11-10 10:00:00+00' FROM ids;
INSERT INTO state_msg.resync_requests (client_id, reason, issued_at)
SELECT id, 'manual', '2026-11-10 10:00:00+00' FROM ids;
INSERT INTO state_msg.rejected_messages (reason, sqlstate, row_number, client_id)
VALUES ('state_id must not be negative', '22003', 1, U&'\00A0WKS-1');

ALTER EXTENSION state_msg UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'state_msg';

-- Every table but rejected_messages has the same ids, renamed or not
SELECT pg_temp.show(c.client_id) AS client_id,
	   (SELECT count(*) FROM state_msg.client_state s WHERE s.client_id = c.client_id) AS states,
	   (SELECT count(*) FROM state_msg.missing_ranges m WHERE m.client_id = c.client_id) AS ranges,
	   (SELECT count(*) FROM state_msg.resync_requests r WHERE r.client_id = c.client_id) AS requests
FROM state_msg.clients c ORDER BY c.client_id COLLATE "C";
SELECT pg_temp.show(client_id) AS rejected_client_id FROM state_msg.rejected_messages;
SELECT pg_temp.show(client_id) AS client_id, pg_temp.show(normalized_client_id) AS normalized_client_id, reason
FROM state_msg.client_id_conflicts ORDER BY client_id COLLATE "C";

-- A renamed client goes on where it was
SELECT state_msg.ingest(U&'WKS-1\00A0', 10, 500, 'u1', 3, '2026-11-10 11:00:00+00');
SELECT client_id, next_serial_number, messages_processed FROM state_msg.clients WHERE client_id = 'WKS-1';

-- Merging, as the README says: keep the old spelling of WKS-2 (delete the
-- other's rows), drop one WKS-3 and the blank client; then rename
BEGIN;
DELETE FROM state_msg.clients WHERE client_id = 'WKS-2';
DELETE FROM state_msg.client_state WHERE client_id = 'WKS-2';
DELETE FROM state_msg.missing_ranges WHERE client_id = 'WKS-2';
DELETE FROM state_msg.resync_requests WHERE client_id = 'WKS-2';
DELETE FROM state_msg.clients WHERE client_id IN (U&'WKS-3\200B', U&'\00A0');
DELETE FROM state_msg.client_state WHERE client_id IN (U&'WKS-3\200B', U&'\00A0');
DELETE FROM state_msg.missing_ranges WHERE client_id IN (U&'WKS-3\200B', U&'\00A0');
DELETE FROM state_msg.resync_requests WHERE client_id IN (U&'WKS-3\200B', U&'\00A0');
SELECT pg_temp.show(client_id) AS client_id, pg_temp.show(normalized_client_id) AS normalized_client_id, reason
FROM state_msg.client_id_conflicts ORDER BY client_id COLLATE "C";
SELECT state_msg.renormalize_client_ids();
COMMIT;
SELECT count(*) AS conflicts FROM state_msg.client_id_conflicts;
SELECT pg_temp.show(client_id) AS client_id,
	   (SELECT count(*) FROM state_msg.client_state s WHERE s.client_id = c.client_id) AS states
FROM state_msg.clients c ORDER BY client_id COLLATE "C";

-- A fresh install has nothing to rename
\c :regress_db
SELECT count(*) AS conflicts FROM state_msg.client_id_conflicts;
DROP DATABASE sm_ids_utf8;
DROP DATABASE sm_ids_latin1;
DROP DATABASE sm_ids_upgrade;
