-- Live summaries: topic_state_summary and update_compliance are exact after
-- every kind of write to client_state (new clients, newer and older
-- messages, folds of unserialized ones, forget, renormalize, TRUNCATE), a
-- rolled-back batch leaves no trace, and the counts stay exact across
-- compaction, live_summaries off (stale: counted from client_state) and
-- the rebuild; and after random batches they equal a GROUP BY of client_state.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;

-- Rows where the summary and a count of client_state differ (none if exact)
CREATE FUNCTION pg_temp.differences() RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM (
		(SELECT topic_type, topic_id, state_id, clients FROM state_msg.topic_state_summary
		 EXCEPT ALL
		 SELECT topic_type, topic_id, state_id, count(*) FROM state_msg.client_state GROUP BY 1, 2, 3)
		UNION ALL
		(SELECT topic_type, topic_id, state_id, count(*) FROM state_msg.client_state GROUP BY 1, 2, 3
		 EXCEPT ALL
		 SELECT topic_type, topic_id, state_id, clients FROM state_msg.topic_state_summary)) d
$$;
-- update_compliance computed the slow way, from client_state and clients
CREATE FUNCTION pg_temp.compliance_differences() RETURNS bigint LANGUAGE sql AS $$
	WITH total AS (SELECT count(*) AS n FROM state_msg.clients),
	u AS (
		SELECT topic_id,
			   count(*) FILTER (WHERE topic_type = 500 AND state_id = 2) AS required,
			   count(*) FILTER (WHERE topic_type = 500 AND state_id = 3) AS installed,
			   count(*) FILTER (WHERE topic_type = 500 AND state_id = 1) AS not_required,
			   count(*) FILTER (WHERE topic_type = 402 AND state_id IN (6, 11, 14)) AS failed
		FROM state_msg.client_state WHERE topic_type IN (402, 500)
		GROUP BY topic_id HAVING bool_or(topic_type = 500)),
	expected AS (
		SELECT topic_id, required, installed, not_required,
			   total.n - required - installed - not_required AS unknown,
			   round((installed + not_required) * 100.0 / nullif(total.n, 0), 2) AS pct, failed
		FROM u, total)
	SELECT count(*) FROM (
		(SELECT * FROM expected EXCEPT ALL SELECT * FROM state_msg.update_compliance)
		UNION ALL
		(SELECT * FROM state_msg.update_compliance EXCEPT ALL SELECT * FROM expected)) d
$$;

-- New clients: +1 per state
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('GUID:A', 1, 500, 'u1', 2, '2026-11-01 10:00+00'),
	   ('GUID:A', 2, 500, 'u2', 2, '2026-11-01 10:01+00'),
	   ('GUID:A', 3, 402, 'u1', 11, '2026-11-01 10:02+00'),
	   ('GUID:B', 1, 500, 'u1', 3, '2026-11-01 10:00+00'),
	   ('GUID:B', 2, 500, 'u2', 1, '2026-11-01 10:00+00'),
	   ('GUID:C', 1, 402, 'u2', 6, '2026-11-01 10:00+00');
SELECT * FROM state_msg.topic_state_summary ORDER BY topic_type, topic_id, state_id;
-- C sent no 500 message: unknown for both updates; 33.33 = 1 of 3 clients
SELECT * FROM state_msg.update_compliance ORDER BY topic_id;
SELECT pg_temp.differences(), pg_temp.compliance_differences();

-- Newer states replace (-1 old, +1 new); A's u1 goes 2 -> 3, B's u2 stays 1
-- (no delta row at all for a state replaced by the same state id)
SELECT count(*) AS delta_rows_before FROM state_msg.state_counts;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('GUID:A', 4, 500, 'u1', 3, '2026-11-01 11:00+00'),
	   ('GUID:B', 3, 500, 'u2', 1, '2026-11-01 11:00+00');
SELECT topic_type, topic_id, state_id, clients FROM state_msg.state_counts
ORDER BY topic_type, topic_id, state_id, clients;
SELECT * FROM state_msg.update_compliance ORDER BY topic_id;

-- A gap, then the late fill: older than the stored state of its topic, so
-- the conditional upsert keeps the stored state, and no delta is written
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('GUID:B', 6, 500, 'u1', 2, '2026-11-01 12:00+00');
SELECT count(*) AS delta_rows FROM state_msg.state_counts;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('GUID:B', 5, 500, 'u1', 0, '2026-11-01 11:30+00');
SELECT count(*) AS delta_rows_unchanged FROM state_msg.state_counts;
SELECT state_id FROM state_msg.client_state WHERE client_id = 'GUID:B' AND topic_id = 'u1' AND topic_type = 500;
SELECT pg_temp.differences(), pg_temp.compliance_differences();

-- Unserialized messages among serialized ones for a topic: folded into the
-- stored state (the replacing upsert)
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('GUID:C', NULL, 402, 'u2', 10, '2026-11-01 13:00+00'),
	   ('GUID:C', 2, 402, 'u2', 14, '2026-11-01 12:59+00'),
	   ('GUID:C', NULL, 500, 'u2', 0, '2026-11-01 13:00+00');
SELECT * FROM state_msg.topic_state_summary WHERE topic_id = 'u2' ORDER BY topic_type, state_id;
SELECT pg_temp.differences(), pg_temp.compliance_differences();

-- A rolled-back batch (and a rolled-back subtransaction) leaves no trace
BEGIN;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('GUID:D', 1, 500, 'u1', 2, '2026-11-01 14:00+00'),
	   ('GUID:A', 5, 500, 'u1', 2, '2026-11-01 14:00+00');
SELECT clients FROM state_msg.topic_state_summary WHERE topic_type = 500 AND topic_id = 'u1' AND state_id = 2;
ROLLBACK;
BEGIN;
SAVEPOINT s;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('GUID:A', 5, 500, 'u1', 2, '2026-11-01 14:00+00');
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT * FROM state_msg.update_compliance WHERE topic_id = 'u1';
SELECT pg_temp.differences(), pg_temp.compliance_differences();

-- Forget: -1 for each state of the forgotten clients
SELECT state_msg.forget_clients('{GUID:B}');
SELECT * FROM state_msg.update_compliance ORDER BY topic_id;
SELECT pg_temp.differences(), pg_temp.compliance_differences();

-- Compaction folds the deltas into one row per key (keys summing to 0 go)
SELECT count(*) > 0 AS has_zero_sum_keys FROM (
	SELECT 1 FROM state_msg.state_counts GROUP BY topic_type, topic_id, state_id
	HAVING sum(clients) = 0) z;
SELECT state_msg.compact_state_counts() > 0 AS folded;
SELECT topic_type, topic_id, state_id, clients FROM state_msg.state_counts
ORDER BY topic_type, topic_id, state_id;
SELECT pg_temp.differences(), pg_temp.compliance_differences();
-- not under a transaction snapshot
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT state_msg.compact_state_counts();
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT state_msg.rebuild_state_counts();
ROLLBACK;

-- Renormalize renames client ids: the counts do not change.  (An id stored
-- by 1.0 with a no-break space around it, written by hand and counted by a
-- rebuild.)
INSERT INTO state_msg.clients (client_id, messages_processed) VALUES ('GUID:E' || chr(160), 1);
INSERT INTO state_msg.client_state (client_id, topic_type, topic_id, topic_id_type, state_id,
	criticality, serial_number, serial_epoch, message_time, processed_at, source)
VALUES ('GUID:E' || chr(160), 500, 'u1', 0, 1, 0, 1, 0, '2026-11-01 10:00+00', '2026-11-01 10:00+00', 'mp');
SELECT state_msg.rebuild_state_counts();
SELECT state_msg.renormalize_client_ids();
SELECT * FROM state_msg.update_compliance WHERE topic_id = 'u1';
SELECT pg_temp.differences(), pg_temp.compliance_differences();

-- live_summaries off: the batch writes no deltas and marks the counts
-- stale, once; the views count client_state meanwhile, exactly
SET state_msg.live_summaries = off;
SELECT count(*) AS delta_rows_before FROM state_msg.state_counts;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('GUID:F', 1, 500, 'u1', 3, '2026-11-01 15:00+00');
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('GUID:F', 2, 500, 'u2', 3, '2026-11-01 15:00+00');
SELECT state_msg.forget_clients('{GUID:C}');
SELECT count(*) AS delta_rows_after FROM state_msg.state_counts;
SELECT count(*) AS stale_marks FROM state_msg.state_counts_stale;
SELECT * FROM state_msg.update_compliance ORDER BY topic_id;
SELECT pg_temp.differences(), pg_temp.compliance_differences();
-- on again: deltas again, the views still count client_state (stale)
SET state_msg.live_summaries = on;
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('GUID:F', 3, 500, 'u1', 2, '2026-11-01 16:00+00');
SELECT pg_temp.differences(), pg_temp.compliance_differences();
-- the rebuild recounts and clears the mark
SELECT state_msg.rebuild_state_counts();
SELECT count(*) AS stale_marks FROM state_msg.state_counts_stale;
SELECT pg_temp.differences(), pg_temp.compliance_differences();
-- a setting for superusers (it steers owner-rights code)
SELECT context FROM pg_settings WHERE name = 'state_msg.live_summaries';

-- No clients at all, yet states (clients truncated alone): compliance_pct
-- is NULL, not a division by zero
BEGIN;
TRUNCATE state_msg.clients;
SELECT topic_id, unknown, compliance_pct FROM state_msg.update_compliance ORDER BY topic_id;
ROLLBACK;

-- TRUNCATE of client_state leaves nothing to count
TRUNCATE state_msg.client_state;
SELECT count(*) AS delta_rows FROM state_msg.state_counts;
SELECT count(*) AS summary_rows FROM state_msg.topic_state_summary;

-- Random batches: 40 clients, 12 topics, serials in and out of order, gaps,
-- duplicates, unserialized messages, some batches rolled back, some
-- clients forgotten, compactions and periods with live_summaries off; after
-- each round the views equal a count of client_state
SELECT setseed(0.7);
DO $$
DECLARE
	bad bigint;
	stale_before boolean;
BEGIN
	FOR round IN 1 .. 60 LOOP
		IF round % 20 = 7 THEN
			PERFORM set_config('state_msg.live_summaries', 'off', true);
		ELSIF round % 20 = 12 THEN
			PERFORM set_config('state_msg.live_summaries', 'on', true);
		END IF;
		BEGIN
			INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
			SELECT 'GUID:R' || (random() * 40)::int,
				   CASE WHEN random() < 0.1 THEN NULL ELSE round * 3 + (random() * 8)::int END,
				   (ARRAY[402, 500, 500])[1 + (random() * 2)::int],
				   'u' || (random() * 4)::int,
				   (random() * 14)::int,
				   timestamptz '2026-11-01 00:00+00' + (round * 60 + random() * 90) * interval '1 minute'
			FROM generate_series(1, 10 + (random() * 60)::int);
			IF random() < 0.2 THEN
				RAISE EXCEPTION 'roll back this batch';
			END IF;
		EXCEPTION WHEN raise_exception THEN
			NULL;
		END;
		IF random() < 0.1 THEN
			PERFORM state_msg.forget_clients(ARRAY['GUID:R' || (random() * 40)::int]);
		END IF;
		IF random() < 0.15 THEN
			PERFORM state_msg.compact_state_counts();
		END IF;
		bad := pg_temp.differences() + pg_temp.compliance_differences();
		IF bad <> 0 THEN
			RAISE EXCEPTION 'round %: % rows differ', round, bad;
		END IF;
		IF round % 20 = 15 THEN
			PERFORM state_msg.rebuild_state_counts();
		END IF;
	END LOOP;
	PERFORM set_config('state_msg.live_summaries', 'on', true);
	PERFORM state_msg.rebuild_state_counts();
	-- and the deltas alone, stale mark or not, are exact after the rebuild
	PERFORM state_msg.compact_state_counts();
	bad := pg_temp.differences() + pg_temp.compliance_differences();
	IF bad <> 0 THEN
		RAISE EXCEPTION 'at the end: % rows differ', bad;
	END IF;
END
$$;
SELECT count(*) > 20 AS states, pg_temp.differences(), pg_temp.compliance_differences(),
	   (SELECT count(*) FROM state_msg.state_counts_stale) AS stale_marks
FROM state_msg.client_state;
