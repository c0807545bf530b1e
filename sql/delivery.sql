-- Resync requests reach the clients: claim_resync_requests() hands each
-- client's open requests to one management point once (the newest open
-- request per client, oldest client first), a request completed before
-- delivery is never handed out, a reissue is a new undelivered request,
-- pending_resync() answers the client's policy check, and every issue
-- sends NOTIFY state_msg_resync at commit.  Concurrent claimers and the
-- notifications (which psql prints with a process id): specs/claim_resync.spec.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

-- Three clients lose serials 2 and 3; D does not
SELECT count(*) FROM (
	SELECT state_msg.ingest(c, s, 500, 'upd-' || s, 2,
							'2026-11-10 10:00:00+00'::timestamptz + s * interval '1 min')
	FROM (VALUES ('A'), ('B'), ('C'), ('D')) AS t(c), generate_series(1, 5) s
	WHERE NOT (c IN ('A', 'B', 'C') AND s IN (2, 3))) AS ingested;

-- Nothing issued yet: nothing to claim, nothing pending
SELECT * FROM state_msg.claim_resync_requests();
SELECT state_msg.pending_resync('A'), state_msg.pending_resync('nobody');

-- The check cycle two days on issues three requests
SELECT * FROM state_msg.run_resync_check(now() + interval '2 days');
SELECT state_msg.pending_resync(' A '), state_msg.pending_resync('D');

-- A hand-made request for A: A now has two open requests
SELECT state_msg.request_resync('A') > 0 AS issued;

-- C answers before any delivery: its request is completed, never handed out
SELECT state_msg.ingest('C', 6, 700, 'resync', 2, now());
SELECT state_msg.pending_resync('C');

-- One claim of at most one client: A, whose first request is the oldest
-- with B's (client_id breaks the tie); the row is A's newest request
SELECT client_id, reason FROM state_msg.claim_resync_requests(1);
-- the next claim gets B; then nothing is left
SELECT client_id, reason FROM state_msg.claim_resync_requests();
SELECT client_id, reason FROM state_msg.claim_resync_requests();
SELECT client_id, reason, delivered_at IS NOT NULL AS delivered,
	   completed_at IS NOT NULL AS completed
FROM state_msg.resync_requests ORDER BY request_id;
-- delivered is still pending until the answer is processed
SELECT state_msg.pending_resync('A');

-- Three days on, A's and B's are reissued: new undelivered requests
SELECT * FROM state_msg.run_resync_check(now() + interval '5 days 1 minute');
SELECT client_id, reason FROM state_msg.claim_resync_requests();

-- A serial reset issues an open request
SELECT state_msg.ingest('D', 1, 500, 'upd-1', 3, now());
SELECT client_id, reason FROM state_msg.claim_resync_requests();

-- A rolled-back issue is never claimable
BEGIN;
SELECT state_msg.request_resync('D') > 0 AS issued;
ROLLBACK;
SELECT client_id FROM state_msg.claim_resync_requests();

-- Arguments
SELECT * FROM state_msg.claim_resync_requests(-1);
SELECT * FROM state_msg.claim_resync_requests(NULL);
SELECT * FROM state_msg.claim_resync_requests(0);
SELECT state_msg.pending_resync(NULL);

-- The management point (writer) claims and checks; a reader only checks
SET client_min_messages = warning;
DROP ROLE IF EXISTS sm_delivery_mp;
DROP ROLE IF EXISTS sm_delivery_viewer;
RESET client_min_messages;
CREATE ROLE sm_delivery_mp IN ROLE state_msg_writer;
CREATE ROLE sm_delivery_viewer IN ROLE state_msg_reader;
SELECT state_msg.request_resync('D') > 0 AS issued;
SET ROLE sm_delivery_mp;
SELECT state_msg.pending_resync('D');
SELECT client_id, reason FROM state_msg.claim_resync_requests();
SET ROLE sm_delivery_viewer;
SELECT state_msg.pending_resync('D');
SELECT * FROM state_msg.claim_resync_requests();
RESET ROLE;
DROP ROLE sm_delivery_mp;
DROP ROLE sm_delivery_viewer;
