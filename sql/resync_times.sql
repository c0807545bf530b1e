-- Issue and completion times order as the events did, on every path that
-- issues a request: an issue is never dated at or before the client's last
-- completion, a completion never at or before the issue it answers, even
-- when run_resync_check(as_of) acted ahead of the engine clock.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';
SET state_msg.min_missing_message_age = 0;

SELECT state_msg.ingest('T', 1, 500, 't', 1, now() - interval '1 day');
SELECT state_msg.ingest('T', 5, 500, 't', 1, now() - interval '23 hours');	-- gap 2..4
SELECT * FROM state_msg.run_resync_check(now() + interval '10 days');
SELECT state_msg.ingest('T', 6, 700, 'resync', 2, clock_timestamp());	-- the answer
SELECT last_resync_client_completed_time > last_resync_issued_time AS completed
FROM state_msg.clients WHERE client_id = 'T';

-- A reset now issues a request dated after that completion: outstanding
SELECT state_msg.ingest('T', 1, 500, 't', 2, clock_timestamp());
SELECT last_resync_issued_time > last_resync_client_completed_time AS outstanding
FROM state_msg.clients WHERE client_id = 'T';
SET search_path = state_msg, public;
select count(*) from SR_ClientMessageStats where LastResyncIssuedTime is not null
  and (LastResyncIssuedTime > LastResyncClientCompletedTime);
RESET search_path;
SELECT reason, completed_at IS NULL AS open FROM state_msg.resync_requests
WHERE client_id = 'T' ORDER BY request_id;
-- and it is reissued once min_resync_period has passed after its issue
SET state_msg.min_resync_period = '1h';
SELECT * FROM state_msg.run_resync_check(now() + interval '10 days 2 hours');

-- Within one statement, events order as the messages: a reset after a
-- completion stays open, one before it is completed
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('U', 10, 500, 't', 1, now() - interval '1 hour'),
	   ('U', 1, 500, 't', 2, now() - interval '50 minutes'),	-- reset
	   ('U', 2, 700, 'resync', 2, now() - interval '40 minutes'),	-- completes it
	   ('U', 1, 500, 't', 3, now() - interval '30 minutes');	-- reset again
SELECT reason, completed_at IS NOT NULL AS completed,
	   completed_at > issued_at AS after_issue
FROM state_msg.resync_requests WHERE client_id = 'U' ORDER BY request_id;
SELECT serial_resets, resync_requests_issued,
	   last_resync_issued_time > last_resync_client_completed_time AS outstanding
FROM state_msg.clients WHERE client_id = 'U';
