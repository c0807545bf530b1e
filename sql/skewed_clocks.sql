-- Clients with skewed clocks and stragglers of an old serial epoch.  A
-- message time more than state_msg.max_clock_skew ahead of the engine clock
-- counts as the engine clock's time for ordering and reset decisions (and is
-- counted in clock_skewed_messages); no single message's time may stop a
-- client from being processed.  After a reset, a message dated before the
-- reset belongs to the old epoch and is stale, whether it is in order, fills
-- a gap or opens one, unless it is part of a resync answer.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';
SHOW state_msg.max_clock_skew;

-- (a) A reinstalled client whose first message carries a clock a year ahead.
-- That time proves nothing (it counts as the engine clock's), so the message
-- is not taken as a reset; once the clock is synchronized the next message
-- is, and the client is processed from then on (1.0 took every later
-- message, its 700/2 answer included, as stale).
SELECT state_msg.ingest('A', s, 500, 't', 1, now() - interval '2 days' + s * interval '1 minute')
FROM generate_series(1, 5) s;
SELECT state_msg.ingest('A', 1, 500, 't', 2, now() + interval '1 year');
SELECT state_msg.ingest('A', 2, 500, 't', 3, clock_timestamp());	-- the reset
-- serial 3 is lost; the client sends 4, then answers the reset's request
SELECT state_msg.ingest('A', 4, 500, 't', 4, clock_timestamp() + interval '1 second');
SELECT first_serial, last_serial FROM state_msg.missing_ranges WHERE client_id = 'A';
SELECT state_id, serial_number, serial_epoch FROM state_msg.client_state WHERE client_id = 'A';
SELECT state_msg.ingest('A', 5, 700, 'resync', 2, clock_timestamp() + interval '2 seconds');
SELECT next_serial_number, serial_epoch, serial_resets, duplicates, missing_serials,
	   clock_skewed_messages,
	   last_resync_client_completed_time > last_resync_issued_time AS completed
FROM state_msg.clients WHERE client_id = 'A';
SELECT reason, completed_at > issued_at AS completed
FROM state_msg.resync_requests WHERE client_id = 'A';
SELECT count(*) FROM state_msg.missing_ranges WHERE client_id = 'A';

-- A duplicated upload of a message whose clock ran ahead is a duplicate,
-- not a reset, however much later it arrives
SELECT state_msg.ingest('E', 1, 500, 't', 1, now() - interval '1 hour');
SELECT state_msg.ingest('E', 2, 500, 't', 2, now() + interval '1 year');
SELECT state_msg.ingest('E', 2, 500, 't', 2, now() + interval '1 year');
SELECT state_msg.ingest('E', 1, 500, 't', 1, now() + interval '1 year');

-- A 700/2 that is itself a reset completes the request the reset issues
SELECT state_msg.ingest('G', 10, 500, 't', 1, now() - interval '2 hours');
SELECT state_msg.ingest('G', 1, 700, 'resync', 2, now() - interval '1 hour');
SELECT reason, completed_at > issued_at AS completed
FROM state_msg.resync_requests WHERE client_id = 'G';

-- (b) One message dated 2099 does not stop reset detection for good: it
-- counts as the engine clock's time.  client_state keeps the client's own
-- time.
SELECT state_msg.ingest('B', 10, 500, 't', 1, now() - interval '1 hour');
SELECT state_msg.ingest('B', 11, 500, 't', 2, '2099-01-01 00:00+00');
SELECT last_message_time < '2099-01-01' AS bounded, clock_skewed_messages
FROM state_msg.clients WHERE client_id = 'B';
SELECT message_time FROM state_msg.client_state WHERE client_id = 'B';
-- the client is reinstalled: serial 1, dated by a correct clock, is a reset
SELECT state_msg.ingest('B', 1, 500, 't', 3, clock_timestamp() + interval '1 second');
SELECT state_msg.ingest('B', 2, 500, 't', 4, clock_timestamp() + interval '2 seconds');
SELECT next_serial_number, serial_epoch, serial_resets, duplicates
FROM state_msg.clients WHERE client_id = 'B';
SELECT state_id, serial_number, serial_epoch FROM state_msg.client_state WHERE client_id = 'B';

-- Relayed messages (no serial) are ordered by time: one dated 2099 does not
-- hide every later one
SELECT state_msg.ingest('F', NULL, 800, 'deploy', 100, '2099-01-01 00:00+00', source => 'fsp');
SELECT state_msg.ingest('F', NULL, 800, 'deploy', 400, clock_timestamp() + interval '1 second', source => 'fsp');
SELECT state_id FROM state_msg.client_state WHERE client_id = 'F';
-- within max_clock_skew a time is taken as given
SELECT state_msg.ingest('F', NULL, 800, 'deploy', 401, now() + interval '30 minutes', source => 'fsp');
SELECT state_msg.ingest('F', NULL, 800, 'deploy', 402, clock_timestamp() + interval '1 second', source => 'fsp');
SELECT state_id, unserialized_messages, clock_skewed_messages
FROM state_msg.client_state JOIN state_msg.clients USING (client_id)
WHERE client_id = 'F';

-- The skew bound is a superuser setting; 0 takes any time ahead as the clock's
SET state_msg.max_clock_skew = 0;
SELECT state_msg.ingest('F', NULL, 800, 'deploy', 403, clock_timestamp() + interval '1 minute', source => 'fsp');
SELECT clock_skewed_messages FROM state_msg.clients WHERE client_id = 'F';
RESET state_msg.max_clock_skew;

-- (8) An old-epoch straggler does not overwrite newer state.  After a reset,
-- new-epoch serials 1 and 3 are processed (2 missing); the old epoch's
-- serial 2, a day old, arrives late: it is stale, not a late fill.  The new
-- epoch's genuine serial 2 then fills the gap.
SELECT state_msg.ingest('S', 50, 500, 't', 1, now() - interval '3 days');
SELECT state_msg.ingest('S', 1, 500, 't', 11, clock_timestamp());	-- reset
SELECT state_msg.ingest('S', 3, 500, 't', 13, clock_timestamp());	-- gap: 2
SELECT state_msg.ingest('S', 2, 500, 't', 99, now() - interval '1 day');	-- stale
SELECT state_id, serial_number, serial_epoch FROM state_msg.client_state WHERE client_id = 'S';
SELECT first_serial, last_serial FROM state_msg.missing_ranges WHERE client_id = 'S';
SELECT state_msg.ingest('S', 2, 500, 't2', 12, clock_timestamp());	-- the real 2
SELECT topic_id, state_id, serial_number FROM state_msg.client_state
WHERE client_id = 'S' ORDER BY topic_id;
-- an in-order straggler (the old epoch's 4) is stale too
SELECT state_msg.ingest('S', 4, 500, 't', 98, now() - interval '1 day');
SELECT next_serial_number, duplicates, late_fills FROM state_msg.clients WHERE client_id = 'S';

-- A resync answer after a reset is never stale: the client's cache,
-- renumbered, keeps the original times, some from before the reset was
-- processed.  The answer is one statement ending with 700/2.
SELECT state_msg.ingest('R', 40, 500, 'a', 1, now() - interval '5 days');
SELECT state_msg.ingest('R', 6, 500, 'b', 6, clock_timestamp());	-- reset; 1..5 lost
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('R', 7, 500, 'a', 2, now() - interval '1 minute'),	-- sent before the reset
	   ('R', 8, 500, 'b', 6, now()),
	   ('R', 9, 700, 'resync', 2, clock_timestamp());
SELECT topic_id, state_id, serial_number, serial_epoch
FROM state_msg.client_state WHERE client_id = 'R' ORDER BY topic_id;
SELECT next_serial_number, duplicates, serial_resets FROM state_msg.clients WHERE client_id = 'R';
-- the same message outside an answer is stale
SELECT state_msg.ingest('R', 10, 500, 'a', 3, now() - interval '1 minute');
