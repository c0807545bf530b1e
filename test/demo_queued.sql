-- The demo's queued run: see demo.sh.  Run as a superuser in the database
-- "site" (processing = queued) while the background worker does not serve
-- it yet.  psql variables (with defaults): clients (2500), past_waves (12:
-- the waves that pile up before the worker starts, a minute apart on the
-- engine clock), live_every (15: the seconds between the later waves, which
-- arrive as it drains), sample_every (3: the seconds between samples).
\pset footer off
\set ON_ERROR_STOP 1
\if :{?clients} \else \set clients 2500 \endif
\if :{?past_waves} \else \set past_waves 12 \endif
\if :{?live_every} \else \set live_every 15 \endif
\if :{?sample_every} \else \set sample_every 3 \endif
SET timezone = 'UTC';
SELECT set_config('demo.past_waves', :'past_waves', false),
	   set_config('demo.live_every', :'live_every', false),
	   set_config('demo.sample_every', :'sample_every', false) \g /dev/null

-- A Patch Tuesday compressed into waves of uploads (one a minute of engine
-- clock), as the fleet simulator's patch-tuesday scenario has it: each
-- client scans in one of the first 12 waves (501 running, completed) and
-- reports detection for 20 updates (500: half required, a tenth installed,
-- the rest not required), then walks each required update through
-- enforcement, one step a wave (402: downloading, downloaded, pending
-- install, installing, then installed with 500 installed, or 8% failed).
-- One client in ten also answers a resync request in wave 6 (its cache
-- renumbered, then 700/2: the high queue), and a fallback status
-- point relays four client deployment messages for 300 new machines, without
-- serials (the fsp queue, throttled).
CREATE SCHEMA demo;
CREATE TABLE demo.burst AS
WITH cl AS (
	SELECT c, 'GUID:' || upper(md5('patch-tuesday' || c)::uuid::text) AS client_id,
		   c % 12 AS scan_wave, 1 + abs(hashint4(c)) % 10000 AS first_serial
	FROM generate_series(1, :clients) c),
cu AS (
	SELECT cl.*, u, upper(md5('update' || u)::uuid::text) AS guid,
		   abs(hashint4(c * 100 + u)) % 100 AS x
	FROM cl, generate_series(1, 20) u),
msgs AS (
	SELECT c, scan_wave AS wave, 0 AS ord, 501 AS topic_type,
		   '1D6A1C51-5F3E-4B4C-9A0E-3C5F2D1B0A99' AS topic_id, 2 AS state_id
	FROM cl
	UNION ALL
	SELECT c, scan_wave, 1, 501, '1D6A1C51-5F3E-4B4C-9A0E-3C5F2D1B0A99', 3 FROM cl
	UNION ALL
	SELECT c, scan_wave, 1 + u, 500, guid,
		   CASE WHEN x < 50 THEN 2 WHEN x < 60 THEN 3 ELSE 1 END
	FROM cu
	UNION ALL
	SELECT c, scan_wave + k, 100 * k + u, 402, 'ScopeId_P01/SUM_' || guid,
		   (ARRAY[12, 13, 7, 8, CASE WHEN x % 25 < 2 THEN 11 ELSE 10 END])[k]
	FROM cu, generate_series(1, 5) k WHERE x < 50
	UNION ALL
	SELECT c, scan_wave + 5, 600 + u, 500, guid, 3 FROM cu WHERE x < 50 AND x % 25 >= 2),
timed AS (
	-- seconds of engine clock after the first wave
	SELECT m.*, cl.client_id, cl.first_serial,
		   m.wave * 60 - 50 + m.ord % 40 AS at
	FROM msgs m JOIN cl USING (c)),
answers AS (
	-- the cache in wave 6: the latest message per topic, original times
	SELECT DISTINCT ON (c, topic_type, topic_id)
		   c, 6 AS wave, 1000 + ord AS ord, topic_type, topic_id, state_id,
		   client_id, first_serial, at
	FROM timed WHERE c % 10 = 3 AND wave <= 6
	ORDER BY c, topic_type, topic_id, wave DESC, ord DESC),
everything AS (
	SELECT * FROM timed
	UNION ALL SELECT * FROM answers
	UNION ALL
	SELECT c, 6, 2000, 700, 'StateMessageResync', 2, client_id, first_serial, 6 * 60 - 5
	FROM cl WHERE c % 10 = 3)
SELECT wave, client_id, topic_type, topic_id, state_id, at,
	   first_serial - 1 + row_number() OVER (PARTITION BY c ORDER BY wave, ord) AS serial_number
FROM everything;
CREATE INDEX ON demo.burst (wave);

CREATE TABLE demo.relayed AS
SELECT (c % 8) AS wave, 'GUID:' || upper(md5('new machine' || c)::uuid::text) AS client_id,
	   st AS state_id, (c % 8) * 60 - 40 + i * 5 AS at
FROM generate_series(1, 300) c, unnest(ARRAY[100, 400, 500, 700]) WITH ORDINALITY s(st, i);

-- The engine clock of wave 0: the last of the past waves comes half a
-- minute before now (delivering them takes a few seconds)
CREATE TABLE demo.t0 AS
SELECT now() - (:past_waves - 1) * interval '1 minute' - interval '30 s' AS t0;

\echo '== a Patch Tuesday for' :clients 'clients, 20 updates: messages per wave'
SELECT string_agg(format('%s: %s', wave, n), ', ' ORDER BY wave) AS "wave: messages"
FROM (SELECT wave, count(*) AS n FROM (SELECT wave FROM demo.burst
									   UNION ALL SELECT wave FROM demo.relayed) a
	  GROUP BY wave) w;

-- One wave, delivered at engine time "at": its uploads in one statement (a
-- management point's batch), the relayed messages in another
CREATE FUNCTION demo.deliver(w integer, at timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
	r bigint;
BEGIN
	INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
								 topic_id_type, state_id, message_time)
	SELECT b.client_id, b.serial_number, b.topic_type, b.topic_id, 3, b.state_id,
		   deliver.at + (b.at - w * 60) * interval '1 s'
	FROM demo.burst b WHERE b.wave = w
	ORDER BY b.client_id, b.serial_number;
	GET DIAGNOSTICS n = ROW_COUNT;
	INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,
								 state_id, message_time, source)
	SELECT r.client_id, NULL, 800, 'P01-ClientDeployment', r.state_id,
		   deliver.at + (r.at - w * 60) * interval '1 s', 'fsp'
	FROM demo.relayed r WHERE r.wave = w;
	GET DIAGNOSTICS r = ROW_COUNT;
	RETURN n + r;
END $$;

\echo '== the waves that arrive before the worker serves the database, a minute'
\echo '   apart on the engine clock (state_msg.clock_offset moves it back, as the'
\echo '   fleet simulator does), each followed by a backlog sample'
DO $$
DECLARE
	w integer;
BEGIN
	FOR w IN 0 .. current_setting('demo.past_waves')::integer - 1 LOOP
		PERFORM set_config('state_msg.clock_offset',
			least(0, round(extract(epoch FROM (SELECT t0 FROM demo.t0) + w * interval '1 minute'
											 - clock_timestamp())))::text || 's',
			false);
		PERFORM demo.deliver(w, state_msg.engine_now());
		COMMIT;
		PERFORM state_msg.sample_backlog();
		COMMIT;
	END LOOP;
	PERFORM set_config('state_msg.clock_offset', '0', false);
END $$;
SELECT queue, waiting, oldest_age, status FROM state_msg.backlog;

\echo '== the worker starts serving the database (state_msg.databases, a reload)'
CREATE TABLE demo.worker_start AS SELECT state_msg.engine_now() AS at;
ALTER SYSTEM SET state_msg.databases = 'site';
SELECT pg_reload_conf() AS reloaded;

\echo '== the later waves arrive as it drains, one every' :live_every 's; a sample every' :sample_every 's'
\echo '   until the queue is empty'
\echo '   (the worker samples once a minute; the demo calls state_msg.sample_backlog() more often)'
DO $$
DECLARE
	w integer := current_setting('demo.past_waves')::integer;
	last integer := (SELECT max(wave) FROM demo.burst);
	live_every integer := current_setting('demo.live_every')::integer;
	every integer := current_setting('demo.sample_every')::integer;
	started timestamptz := clock_timestamp();
	next_wave timestamptz := clock_timestamp();
	b record;
	line text;
BEGIN
	LOOP
		IF w <= last AND clock_timestamp() >= next_wave THEN
			PERFORM demo.deliver(w, state_msg.engine_now());
			w := w + 1;
			next_wave := next_wave + live_every * interval '1 s';
		END IF;
		COMMIT;
		PERFORM state_msg.sample_backlog();
		COMMIT;
		line := to_char(clock_timestamp(), 'HH24:MI:SS');
		FOR b IN SELECT * FROM state_msg.backlog LOOP
			line := line || format('  %s %7s %-11s', b.queue, b.waiting,
								   COALESCE('eta ' || date_trunc('second', b.drain_eta), ''));
		END LOOP;
		RAISE NOTICE '%', line;
		EXIT WHEN w > last AND (SELECT sum(waiting) FROM state_msg.backlog) = 0;
		IF clock_timestamp() > started + interval '5 minutes' THEN
			RAISE NOTICE 'the demo stops waiting: the queue is not empty after 5 minutes';
			EXIT;
		END IF;
		PERFORM pg_sleep(every);
	END LOOP;
END $$;

\echo '== what the worker made of it: every message sent, processed once'
SELECT (SELECT count(*) FROM demo.burst) + (SELECT count(*) FROM demo.relayed) AS sent,
	   count(*) AS clients, sum(messages_processed) AS processed,
	   sum(missing_serials) AS serials_missed, sum(unserialized_messages) AS relayed
FROM state_msg.clients;
SELECT state_id, CASE state_id WHEN 1 THEN 'not required' WHEN 2 THEN 'required (missing)'
		WHEN 3 THEN 'installed' ELSE 'unknown' END AS state,
	   count(*) AS client_updates
FROM state_msg.client_state WHERE topic_type = 500 GROUP BY 1 ORDER BY 1;
SELECT count(*) AS samples, min(sampled_at) AS first, max(sampled_at) AS last
FROM (SELECT DISTINCT sampled_at FROM state_msg.backlog_history) s;
