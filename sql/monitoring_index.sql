-- The two monitoring queries of the user's source document, unchanged, read
-- only the clients ever issued a resync request, through the partial index
-- clients_resync_issued (its predicate is the view's own expression), so
-- they stay fast however many clients the site has.  The plans are shown
-- with sequential scans off, since on a small table a scan is cheaper.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

SELECT count(state_msg.ingest(c, s, 500, 'u' || s, 2,
							  '2026-11-10 10:00:00+00'::timestamptz + s * interval '1 min'))
FROM (VALUES ('A'), ('B'), ('C')) AS t(c), generate_series(1, 3) s
WHERE NOT (c = 'A' AND s = 2);
SELECT * FROM state_msg.run_resync_check(now() + interval '2 days');
SELECT state_msg.request_resync('B') > 0 AS issued;
SELECT state_msg.ingest('B', 4, 700, 'resync', 2, now());
VACUUM ANALYZE state_msg.clients;

SET search_path = state_msg, public;
SET enable_seqscan = off;
EXPLAIN (COSTS OFF)
select count(*) from SR_ClientMessageStats where LastResyncIssuedTime is not null
  and (LastResyncIssuedTime > LastResyncClientCompletedTime);
EXPLAIN (COSTS OFF)
select count(*) from SR_ClientMessageStats where LastResyncIssuedTime is not null
  and LastResyncClientCompletedTime is null;
-- and their answers: A waits (issued, never completed), B completed
select count(*) from SR_ClientMessageStats where LastResyncIssuedTime is not null
  and (LastResyncIssuedTime > LastResyncClientCompletedTime);
select count(*) from SR_ClientMessageStats where LastResyncIssuedTime is not null
  and LastResyncClientCompletedTime is null;
RESET enable_seqscan;
RESET search_path;

-- The check cycle's candidates (and resync_candidates, resync_reissue_due,
-- resync_outstanding) come from the open requests (clients_open_request)
-- and the missing ranges by detection time, not from every client.
SET enable_seqscan = off;
EXPLAIN (COSTS OFF)
SELECT * FROM state_msg.resync_due_clients(now(), now());
EXPLAIN (COSTS OFF)
SELECT * FROM state_msg.resync_reissue_due;
EXPLAIN (COSTS OFF)
SELECT * FROM state_msg.resync_outstanding;
RESET enable_seqscan;
