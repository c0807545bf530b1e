-- Message fields of release 1.1 (user, user SID, state details and their
-- type, priority, NetBIOS name, client version) are kept end to end: from
-- the inbox (with or without those columns) and ingest(), through one batch
-- of many rows, into client_state (the newest state's row, whole),
-- clients (the latest non-NULL NetBIOS name and version, in arrival order)
-- and rejected_messages; their limits are refused, quarantined and retried;
-- a 1 MB state details value is kept byte for byte (compared by md5, never
-- shown).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

-- The setting: bytes, 1 MB, for superusers
SELECT name, setting, unit, context FROM pg_settings
WHERE name = 'state_msg.max_state_details_size';

CREATE VIEW st AS
SELECT client_id, topic_id, state_id, serial_number, user_name, user_sid,
	   state_details_type, state_details, priority
FROM state_msg.client_state ORDER BY client_id, topic_type, topic_id;
CREATE VIEW cl AS
SELECT client_id, netbios_name, client_version, messages_processed
FROM state_msg.clients ORDER BY client_id;

-- 1. Through the inbox, every field
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time, user_name, user_sid, state_details_type,
	state_details, priority, netbios_name, client_version)
VALUES ('W1', 1, 500, 'u1', 2, '2026-11-10 10:00+00', 'CONTOSO\alice',
		'S-1-5-21-1004336348-1177238915-682003330-1001', 1,
		'<![CDATA[<detail a="1"/>]]>', 5, 'WKS-0001', '5.00.9122.1000');
SELECT * FROM st;
SELECT * FROM cl;

-- Rows without the new columns: the state's are NULL, the client keeps its
-- name and version; a positional 1.0-shaped row as well
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time)
VALUES ('W1', 2, 500, 'u2', 3, '2026-11-10 10:01+00');
INSERT INTO state_msg.inbox VALUES
	('W1', 3, 500, 'u3', 0, 1, 0, '2026-11-10 10:02+00', '{p}', 'mp');
SELECT * FROM st;
SELECT * FROM cl;

-- An inbox whose user dropped the new columns still works
BEGIN;
ALTER TABLE state_msg.inbox DROP COLUMN user_name, DROP COLUMN user_sid,
	DROP COLUMN state_details_type, DROP COLUMN state_details,
	DROP COLUMN priority, DROP COLUMN netbios_name, DROP COLUMN client_version;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time)
VALUES ('W1', 4, 500, 'u4', 2, '2026-11-10 10:03+00');
COPY state_msg.inbox FROM stdin;
W1	5	500	u5	0	2	0	2026-11-10 10:04+00	\N	mp
\.
SELECT * FROM st WHERE topic_id IN ('u4', 'u5');
SELECT * FROM cl;
ROLLBACK;

-- 2. Through ingest(): the 1.0 arguments alone (the state's fields are
-- NULL: a newer state replaces the row whole), then every field by name
SELECT state_msg.ingest('W1', 6, 500, 'u1', 3, '2026-11-10 10:05+00');
SELECT * FROM st WHERE topic_id = 'u1';
SELECT state_msg.ingest('W1', 7, 500, 'u1', 2, '2026-11-10 10:06+00', 0, 0,
	NULL, 'mp', user_name => 'CONTOSO\bob', user_sid => 'S-1-5-18',
	state_details_type => 2, state_details => 'd7', priority => 10,
	netbios_name => 'WKS-0001B', client_version => '5.00.9128.1000');
SELECT * FROM st WHERE topic_id = 'u1';
SELECT * FROM cl;

-- 3. One batch of many rows: the newest state of each topic carries its own
-- fields whatever the arrival order; a late message does not replace them.
-- W2's serials 3 and 2 arrive in that order; W3's topic sees an unserialized
-- (relayed) message newer by time than its serialized ones (the fold)
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time, source, user_name, state_details_type,
	state_details, priority)
VALUES ('W2', 1, 500, 't', 1, '2026-11-10 11:01+00', 'mp', 'one', 1, 'd1', 0),
	   ('W2', 3, 500, 't', 3, '2026-11-10 11:03+00', 'mp', 'three', 1, 'd3', 5),
	   ('W2', 2, 500, 't', 2, '2026-11-10 11:02+00', 'mp', 'two', 1, 'd2', 5),
	   ('W2', 4, 402, 't', 10, '2026-11-10 11:04+00', 'mp', NULL, NULL, NULL, NULL),
	   ('W3', 1, 500, 't', 1, '2026-11-10 11:01+00', 'mp', 'serial 1', 0, 's1', 1),
	   ('W3', NULL, 500, 't', 2, '2026-11-10 11:05+00', 'fsp', 'relayed', 0, 'r', NULL),
	   ('W3', 2, 500, 't', 3, '2026-11-10 11:02+00', 'mp', 'serial 2', 0, 's2', 1);
SELECT * FROM st WHERE client_id IN ('W2', 'W3');
-- and in a later statement: serial 5 replaces the row whole, late serial 4
-- (a gap filled) does not replace it
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time, user_name, state_details)
VALUES ('W2', 6, 500, 't', 1, '2026-11-10 11:06+00', NULL, NULL);
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time, user_name, state_details)
VALUES ('W2', 5, 500, 't', 0, '2026-11-10 11:05+00', 'late', 'd5');
SELECT * FROM st WHERE client_id = 'W2';
SELECT client_id, first_serial, last_serial FROM state_msg.missing_ranges;

-- 4. NetBIOS name and client version: the latest non-NULL in arrival order
-- (not serial order), whatever the message's verdict (the duplicate of
-- serial 2 counts); a batch without any keeps the stored ones
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time, netbios_name, client_version)
VALUES ('W4', 4, 500, 'a', 1, '2026-11-10 12:04+00', 'NAME-A', '1'),
	   ('W4', 3, 500, 'b', 1, '2026-11-10 12:03+00', NULL, '2'),
	   ('W4', 2, 500, 'c', 1, '2026-11-10 12:02+00', 'NAME-B', NULL),
	   ('W4', 1, 500, 'd', 1, '2026-11-10 12:01+00', NULL, NULL),
	   ('W5', 1, 500, 'a', 1, '2026-11-10 12:01+00', 'ONLY', NULL);
SELECT * FROM cl WHERE client_id IN ('W4', 'W5');
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time, netbios_name, client_version)
VALUES ('W4', 5, 500, 'a', 2, '2026-11-10 12:05+00', NULL, NULL),
	   ('W5', 2, 500, 'a', 2, '2026-11-10 12:02+00', NULL, '5.00.1'),
	   ('W5', 2, 500, 'a', 2, '2026-11-10 12:02+00', 'DUP-NAME', NULL);
SELECT * FROM cl WHERE client_id IN ('W4', 'W5');
SELECT client_id, duplicates FROM state_msg.clients WHERE client_id = 'W5';
-- A client split across chunks (20 messages, chunks of 1): the stored value
-- of an earlier chunk is kept where a later chunk has none
SET state_msg.batch_chunk_size = 1;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time, netbios_name, client_version)
SELECT 'W6', s, 500, 'x' || s, 1, '2026-11-10 12:00+00'::timestamptz + s * interval '1 min',
	   CASE WHEN s = 2 THEN 'EARLY' END, CASE WHEN s IN (3, 11) THEN 'v' || s END
FROM generate_series(1, 20) s;
RESET state_msg.batch_chunk_size;
SELECT * FROM cl WHERE client_id = 'W6';

-- 5. Limits: refused naming the field, with its SQLSTATE; lengths in bytes
-- (257 two-byte characters are 514 bytes); the value is never echoed
SET state_msg.max_state_details_size = '1kB';
SET state_msg.on_bad_message = error;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time, user_name)
VALUES ('W7', 1, 500, 'a', 1, '2026-11-10 13:00+00', repeat('é', 257));
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time, state_details)
VALUES ('W7', 1, 500, 'a', 1, '2026-11-10 13:00+00', repeat('x', 1025));
SELECT state_msg.ingest('W7', 1, 500, 'a', 1, '2026-11-10 13:00+00',
	priority => -1);
-- at the limits, accepted
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time, user_name, user_sid, state_details, priority,
	netbios_name, client_version)
VALUES ('W7', 1, 500, 'a', 1, '2026-11-10 13:00+00', repeat('é', 256),
		repeat('s', 256), repeat('x', 1024), 0, repeat('n', 256), repeat('v', 256));
SELECT client_id, octet_length(user_name) AS user_name_bytes,
	   octet_length(user_sid) AS sid_bytes,
	   octet_length(state_details) AS details_bytes, priority
FROM state_msg.client_state WHERE client_id = 'W7';
SELECT client_id, octet_length(netbios_name), octet_length(client_version)
FROM state_msg.clients WHERE client_id = 'W7';
-- quarantined, each as given
RESET state_msg.on_bad_message;
SET client_min_messages = error;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time, user_name, user_sid, state_details_type,
	state_details, priority, netbios_name, client_version)
VALUES ('W8', 1, 500, 'a', 1, '2026-11-10 13:01+00', 'fine', 'S-1', 7, 'ok', 1, 'W8-NAME', '1.0'),
	   ('W8', 2, 500, 'b', 1, '2026-11-10 13:02+00', repeat('u', 513), NULL, NULL, NULL, NULL, NULL, NULL),
	   ('W8', 3, 500, 'c', 1, '2026-11-10 13:03+00', NULL, NULL, 7, repeat('d', 1025), NULL, NULL, NULL),
	   ('W8', 4, 500, 'd', 1, '2026-11-10 13:04+00', NULL, NULL, NULL, NULL, -5, NULL, NULL),
	   ('W8', 5, 500, 'e', 1, '2026-11-10 13:05+00', NULL, NULL, NULL, NULL, NULL, NULL, repeat('v', 257)),
	   ('W8', 6, 500, 'f', 1, '2026-11-10 13:06+00', NULL, repeat('s', 257), NULL, NULL, NULL, NULL, NULL),
	   ('W8', 7, 500, 'g', 1, '2026-11-10 13:07+00', NULL, NULL, NULL, NULL, NULL, repeat('n', 257), NULL);
RESET client_min_messages;
SELECT row_number, serial_number, sqlstate, reason, octet_length(user_name) AS user_name,
	   octet_length(user_sid) AS user_sid, state_details_type,
	   octet_length(state_details) AS state_details, priority,
	   octet_length(netbios_name) AS netbios_name,
	   octet_length(client_version) AS client_version
FROM state_msg.rejected_messages ORDER BY rejected_id;
-- retried: those fixed (or no longer over the limit) pass, with every field
RESET state_msg.max_state_details_size;
UPDATE state_msg.rejected_messages SET user_name = 'fixed' WHERE serial_number = 2;
UPDATE state_msg.rejected_messages SET priority = 0 WHERE serial_number = 4;
UPDATE state_msg.rejected_messages SET client_version = '2.0' WHERE serial_number = 5;
SELECT * FROM state_msg.retry_rejected(ARRAY(SELECT rejected_id FROM state_msg.rejected_messages));
SELECT serial_number, reason FROM state_msg.rejected_messages ORDER BY rejected_id;
SELECT topic_id, serial_number, user_name, user_sid, state_details_type,
	   octet_length(state_details) AS details_bytes, priority
FROM state_msg.client_state WHERE client_id = 'W8' ORDER BY topic_id;
SELECT * FROM cl WHERE client_id = 'W8';

-- 6. State details of 1 MB (max_state_details_size exactly), incompressible,
-- kept byte for byte: through the inbox from a table that keeps them in
-- TOAST (the batch gets TOAST pointers), through the inbox as values,
-- through ingest(), and through a batch of many (in chunks, as
-- batch_chunk_memory bounds them); quarantined at one byte more and retried
CREATE TEMP TABLE big (k int, d text);
ALTER TABLE big ALTER COLUMN d SET STORAGE EXTERNAL;
INSERT INTO big
SELECT k, string_agg(md5(k || ':' || i), '' ORDER BY i)
FROM generate_series(1, 12) k, generate_series(1, 32768) i GROUP BY k;
SELECT count(*), min(octet_length(d)), max(octet_length(d)),
	   count(DISTINCT md5(d)) AS different FROM big;
-- a TOAST pointer from the source table, then a value in line
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time, state_details_type, state_details)
SELECT 'B1', 1, 500, 'big', 1, '2026-11-10 14:00+00', 1, d FROM big WHERE k = 1;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time, state_details_type, state_details)
VALUES ('B1', 2, 500, 'big2', 1, '2026-11-10 14:01+00', 1,
		(SELECT d || '' FROM big WHERE k = 2));
SELECT state_msg.ingest('B2', 1, 500, 'big', 1, '2026-11-10 14:02+00',
	state_details => (SELECT d FROM big WHERE k = 3));
SELECT s.client_id, s.topic_id, b.k, octet_length(s.state_details) AS bytes,
	   md5(s.state_details) = md5(b.d) AS same
FROM state_msg.client_state s JOIN big b ON md5(b.d) = md5(s.state_details)
WHERE s.client_id IN ('B1', 'B2') ORDER BY 1, 2;
-- a state replaced by a message whose details are that state's own (a TOAST
-- pointer into client_state, whose row the batch replaces)
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time, state_details)
SELECT 'B1', 3, 500, 'big', 2, '2026-11-10 14:03+00', state_details
FROM state_msg.client_state WHERE client_id = 'B1' AND topic_id = 'big';
SELECT state_id, md5(state_details) = (SELECT md5(d) FROM big WHERE k = 1) AS same
FROM state_msg.client_state WHERE client_id = 'B1' AND topic_id = 'big';
-- the README's relay recipe: rows moved from a table by DELETE ... RETURNING
-- (TOAST pointers of rows the statement itself deleted)
CREATE TEMP TABLE relay (client_id text, serial_number bigint, topic_type int,
	topic_id text, state_id int, message_time timestamptz, state_details text);
ALTER TABLE relay ALTER COLUMN state_details SET STORAGE EXTERNAL;
INSERT INTO relay SELECT 'B4', k, 500, 'r' || k, 1, '2026-11-10 14:04+00', d
FROM big WHERE k IN (4, 5);
WITH m AS (DELETE FROM relay RETURNING *)
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time, state_details)
SELECT * FROM m;
SELECT s.topic_id, md5(s.state_details) = md5(b.d) AS same
FROM state_msg.client_state s JOIN big b ON b.k = s.serial_number
WHERE s.client_id = 'B4' ORDER BY 1;
SELECT count(*) AS relay_left FROM relay;
-- a batch of many: 10 clients x 2 topics (20 MB, TOAST pointers into big):
-- with chunks limited to 1 MB, each client is a chunk of its own (the log
-- line of each chunk shows it), as the pointers count at their values' size
SET state_msg.batch_chunk_memory = '1MB';
SET client_min_messages = debug1;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time, state_details)
SELECT 'M' || c, t, 500, 'm' || t, 1, '2026-11-10 15:00+00',
	   d
FROM generate_series(1, 10) c, generate_series(1, 2) t
JOIN big ON big.k = t + 3;
RESET client_min_messages;
RESET state_msg.batch_chunk_memory;
SELECT count(*) AS states, count(DISTINCT client_id) AS clients,
	   bool_and(md5(s.state_details) = (SELECT md5(d) FROM big WHERE k = s.serial_number + 3)) AS all_same,
	   sum(octet_length(s.state_details)) AS bytes
FROM state_msg.client_state s WHERE client_id LIKE 'M%';
-- one byte more is refused, quarantined as given, and retried once allowed
SET client_min_messages = error;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
	state_id, message_time, state_details)
SELECT 'B3', 1, 500, 'big', 1, '2026-11-10 16:00+00', d || 'x' FROM big WHERE k = 12;
RESET client_min_messages;
SELECT sqlstate, reason, octet_length(state_details) AS bytes,
	   md5(state_details) = (SELECT md5(d || 'x') FROM big WHERE k = 12) AS same
FROM state_msg.rejected_messages WHERE client_id = 'B3';
SET state_msg.max_state_details_size = '2MB';
SELECT resubmitted, in_order, rejected
FROM state_msg.retry_rejected(ARRAY(SELECT rejected_id FROM state_msg.rejected_messages WHERE client_id = 'B3'));
RESET state_msg.max_state_details_size;
SELECT octet_length(state_details) AS bytes,
	   md5(state_details) = (SELECT md5(d || 'x') FROM big WHERE k = 12) AS same
FROM state_msg.client_state WHERE client_id = 'B3';
SELECT count(*) AS rejected_left FROM state_msg.rejected_messages WHERE client_id = 'B3';

DROP VIEW st, cl;
