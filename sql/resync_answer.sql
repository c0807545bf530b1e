-- Resync answers (README "Serial tracking", rules 2 and 3): which of a
-- client's messages in a statement are its resync answer (the run of
-- consecutive serials ending at its last 700/2 with a serial), that only
-- the answer is exempt from the stale rule, and that an answer whose 700/2
-- is a serial reset (a reinstalled client answering first) resets at its
-- first message, so that the answer's content is applied in the new epoch.
-- The two reproducers of the fleet simulator's findings come first.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

-- Finding 1: a reinstall answered by a resync.  Serials 100 and 102
-- arrive, 101 (u1 = 3) is lost; a resync is requested by hand; the
-- reinstalled client answers with its cache renumbered from 1 (original
-- times, older than the client's newest) and a 700/2 dated now.
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('c1', 100, 500, 'u1', 2, '2026-11-20 10:00+00');
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('c1', 102, 500, 'u2', 1, '2026-11-20 10:03+00');
SELECT state_msg.request_resync('c1') IS NOT NULL AS requested;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('c1', 1, 500, 'u1', 3, '2026-11-20 10:02+00'),
	   ('c1', 2, 500, 'u2', 1, '2026-11-20 10:03+00'),
	   ('c1', 3, 700, 'resync', 2, '2026-11-20 12:00+00');
-- one reset, at the answer's first message; the epoch starts at the
-- 700/2's time; the answer's messages are in order in the new epoch
SELECT next_serial_number, serial_epoch, serial_epoch_started, last_message_time,
	   messages_processed, missing_serials, late_fills, duplicates,
	   serial_resets, resync_requests_issued,
	   last_resync_client_completed_time > last_resync_issued_time AS in_sync
FROM state_msg.clients WHERE client_id = 'c1';
-- the states come from the answer
SELECT topic_id, state_id, serial_number, serial_epoch, message_time
FROM state_msg.client_state WHERE client_id = 'c1' ORDER BY topic_id;
-- the old epoch's range is gone; both requests are completed by the 700/2
SELECT count(*) AS missing_ranges FROM state_msg.missing_ranges WHERE client_id = 'c1';
SELECT reason, completed_at IS NOT NULL AS completed
FROM state_msg.resync_requests WHERE client_id = 'c1' ORDER BY request_id;
-- the lost serial 101 of the old epoch arrives late: stale, changes nothing
SELECT state_msg.ingest('c1', 101, 500, 'u1', 3, '2026-11-20 10:02+00');
-- the same answer uploaded again: all duplicates, no second reset
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('c1', 1, 500, 'u1', 3, '2026-11-20 10:02+00'),
	   ('c1', 2, 500, 'u2', 1, '2026-11-20 10:03+00'),
	   ('c1', 3, 700, 'resync', 2, '2026-11-20 12:00+00');
SELECT next_serial_number, serial_epoch, duplicates, serial_resets,
	   resync_requests_issued
FROM state_msg.clients WHERE client_id = 'c1';

-- Finding 2: an old upload in the statement of a resync answer.  500 and
-- 501 arrive, then the reinstalled client's reset (1: u2 at 11:05); then
-- one statement holds a late upload from before the reinstall (502 at
-- 10:30) and the answer 2, 3, 4 (700/2).  502 is not part of the answer
-- (its serial is not one less than 2's): it is stale.
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('c2', 500, 500, 'u0', 1, '2026-11-20 10:00+00'),
	   ('c2', 501, 500, 'u1', 2, '2026-11-20 10:01+00');
SELECT state_msg.ingest('c2', 1, 500, 'u2', 1, '2026-11-20 11:05+00');
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('c2', 502, 500, 'u1', 5, '2026-11-20 10:30+00'),
	   ('c2', 2, 500, 'u1', 3, '2026-11-20 11:10+00'),
	   ('c2', 3, 500, 'u2', 1, '2026-11-20 11:05+00'),
	   ('c2', 4, 700, 'resync', 2, '2026-11-20 12:00+00');
SELECT next_serial_number, serial_epoch, serial_epoch_started, messages_processed,
	   missing_serials, duplicates, serial_resets, resync_requests_issued
FROM state_msg.clients WHERE client_id = 'c2';
SELECT topic_id, state_id, serial_number, serial_epoch
FROM state_msg.client_state WHERE client_id = 'c2' ORDER BY topic_id;
SELECT count(*) AS missing_ranges FROM state_msg.missing_ranges WHERE client_id = 'c2';

-- Messages without a serial inside the run neither join it nor break it:
-- the answer is 1, 2, 3 (700/2) and the reset happens at 1.  A message
-- after the 700/2 is not part of the answer: older than the new epoch, it
-- is stale.
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('c3', 50, 500, 'u1', 1, '2026-11-20 10:00+00'),
	   ('c3', 51, 500, 'u2', 1, '2026-11-20 10:05+00');
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time, source)
VALUES ('c3', 1, 500, 'u1', 4, '2026-11-20 10:04+00', 'mp'),
	   ('c3', NULL, 800, 'dep', 1, '2026-11-20 10:30+00', 'fsp'),
	   ('c3', 2, 500, 'u2', 4, '2026-11-20 10:05+00', 'mp'),
	   ('c3', 3, 700, 'resync', 2, '2026-11-20 12:00+00', 'mp'),
	   ('c3', 4, 500, 'u3', 4, '2026-11-20 10:06+00', 'mp');
SELECT next_serial_number, serial_epoch, serial_epoch_started, duplicates,
	   serial_resets, unserialized_messages
FROM state_msg.clients WHERE client_id = 'c3';
SELECT topic_id, state_id, serial_number, serial_epoch
FROM state_msg.client_state WHERE client_id = 'c3' ORDER BY topic_id;

-- An answer that is not a reset (its 700/2 falls in a missing range) is
-- tracked message by message: late fills, and the 700/2 drops the ranges
-- below it
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('c4', 1, 500, 'u1', 1, '2026-11-20 10:00+00'),
	   ('c4', 9, 500, 'u2', 1, '2026-11-20 10:05+00');
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('c4', 3, 500, 'u1', 2, '2026-11-20 10:00+00'),
	   ('c4', 4, 500, 'u2', 2, '2026-11-20 10:05+00'),
	   ('c4', 5, 700, 'resync', 2, '2026-11-20 12:00+00');
SELECT next_serial_number, serial_epoch, late_fills, duplicates, serial_resets
FROM state_msg.clients WHERE client_id = 'c4';
SELECT first_serial, last_serial FROM state_msg.missing_ranges WHERE client_id = 'c4';
SELECT topic_id, state_id, serial_number, serial_epoch
FROM state_msg.client_state WHERE client_id = 'c4' ORDER BY topic_id;

-- Finding 1's answer sent one message per statement: an answer is only
-- recognized within a statement, so each renumbered message is judged on
-- its own (duplicates: below next, not later than the newest) and the
-- 700/2 alone is the answer, and the reset
SELECT state_msg.ingest('c5', 100, 500, 'u1', 2, '2026-11-20 10:00+00');
SELECT state_msg.ingest('c5', 102, 500, 'u2', 1, '2026-11-20 10:03+00');
SELECT state_msg.ingest('c5', 1, 500, 'u1', 3, '2026-11-20 10:02+00');
SELECT state_msg.ingest('c5', 2, 500, 'u2', 1, '2026-11-20 10:03+00');
SELECT state_msg.ingest('c5', 3, 700, 'resync', 2, '2026-11-20 12:00+00');
SELECT next_serial_number, serial_epoch, duplicates, serial_resets
FROM state_msg.clients WHERE client_id = 'c5';
SELECT topic_id, state_id, serial_number, serial_epoch
FROM state_msg.client_state WHERE client_id = 'c5' ORDER BY topic_id;

-- The same answer delivered twice within one statement (a relay that
-- duplicates an upload in its own batch): every 700/2 with a serial ends
-- an answer, and the answers are judged one after the other.  The first
-- copy is the reset and is applied (u1 = 3, epoch 1, next 4); the second
-- copy's 700/2 is not earlier than the new epoch's start, so it is judged
-- normally: all duplicates by serial, no second reset, no completion.
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('c6', 100, 500, 'u1', 2, '2026-11-20 10:00+00');
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('c6', 102, 500, 'u2', 1, '2026-11-20 10:03+00');
SELECT state_msg.request_resync('c6') IS NOT NULL AS requested;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('c6', 1, 500, 'u1', 3, '2026-11-20 10:02+00'),
	   ('c6', 2, 500, 'u2', 1, '2026-11-20 10:03+00'),
	   ('c6', 3, 700, 'resync', 2, '2026-11-20 12:00+00'),
	   ('c6', 1, 500, 'u1', 3, '2026-11-20 10:02+00'),
	   ('c6', 2, 500, 'u2', 1, '2026-11-20 10:03+00'),
	   ('c6', 3, 700, 'resync', 2, '2026-11-20 12:00+00');
SELECT next_serial_number, serial_epoch, serial_epoch_started, messages_processed,
	   missing_serials, duplicates, serial_resets, resync_requests_issued,
	   last_resync_client_completed_time > last_resync_issued_time AS in_sync
FROM state_msg.clients WHERE client_id = 'c6';
SELECT topic_id, state_id, serial_number, serial_epoch
FROM state_msg.client_state WHERE client_id = 'c6' ORDER BY topic_id;
SELECT reason, completed_at IS NOT NULL AS completed
FROM state_msg.resync_requests WHERE client_id = 'c6' ORDER BY request_id;

-- An old answer arriving after a reinstall.  The client answered a resync
-- at 11:00 (serials 7, 8, 9 with the 700/2), but that upload was held up;
-- it then was reinstalled and answered again (1, 2 with the 700/2 at
-- 12:00), which arrived first and reset.  The old answer's 700/2 is
-- earlier than the new epoch's start: the old answer is stale as a whole,
-- every message of it a duplicate, and it completes nothing; first in its
-- own statement, then together with a copy of the new answer after it.
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('c7', 5, 500, 'u1', 1, '2026-11-20 10:00+00'),
	   ('c7', 6, 500, 'u2', 1, '2026-11-20 10:10+00');
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('c7', 1, 500, 'u1', 3, '2026-11-20 11:30+00'),
	   ('c7', 2, 700, 'resync', 2, '2026-11-20 12:00+00');
SELECT next_serial_number, serial_epoch, serial_epoch_started, duplicates, serial_resets
FROM state_msg.clients WHERE client_id = 'c7';
SELECT state_msg.request_resync('c7') IS NOT NULL AS requested;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('c7', 7, 500, 'u1', 2, '2026-11-20 10:00+00'),
	   ('c7', 8, 500, 'u2', 2, '2026-11-20 10:10+00'),
	   ('c7', 9, 700, 'resync', 2, '2026-11-20 11:00+00');
SELECT next_serial_number, serial_epoch, serial_epoch_started, messages_processed,
	   missing_serials, duplicates, serial_resets, resync_requests_issued,
	   last_resync_client_completed_time > last_resync_issued_time AS in_sync
FROM state_msg.clients WHERE client_id = 'c7';
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('c7', 7, 500, 'u1', 2, '2026-11-20 10:00+00'),
	   ('c7', 8, 500, 'u2', 2, '2026-11-20 10:10+00'),
	   ('c7', 9, 700, 'resync', 2, '2026-11-20 11:00+00'),
	   ('c7', 1, 500, 'u1', 3, '2026-11-20 11:30+00'),
	   ('c7', 2, 700, 'resync', 2, '2026-11-20 12:00+00');
SELECT next_serial_number, serial_epoch, serial_epoch_started, messages_processed,
	   missing_serials, duplicates, serial_resets, resync_requests_issued,
	   last_resync_client_completed_time > last_resync_issued_time AS in_sync
FROM state_msg.clients WHERE client_id = 'c7';
SELECT topic_id, state_id, serial_number, serial_epoch
FROM state_msg.client_state WHERE client_id = 'c7' ORDER BY topic_id;
SELECT count(*) AS missing_ranges FROM state_msg.missing_ranges WHERE client_id = 'c7';
SELECT reason, completed_at IS NOT NULL AS completed
FROM state_msg.resync_requests WHERE client_id = 'c7' ORDER BY request_id;
