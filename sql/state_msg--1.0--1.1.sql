/* state_msg--1.0--1.1.sql: release 1.1 (hardening, release groundwork) */

\echo Use "ALTER EXTENSION state_msg UPDATE TO '1.1'" to load this file. \quit

/*
 * There is no separate 1.1 install script: CREATE EXTENSION runs the 1.0
 * script and then this one, so a fresh install and an upgraded one are the
 * same by construction.  Sections below are grouped by concern.
 */

-- ---------------------------------------------------------------------
-- The engine clock
-- ---------------------------------------------------------------------

-- The engine clock: the server's clock plus state_msg.clock_offset.
CREATE FUNCTION state_msg.engine_now()
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'state_msg_engine_now'
LANGUAGE C VOLATILE PARALLEL SAFE;
REVOKE ALL ON FUNCTION state_msg.engine_now() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION state_msg.engine_now() TO state_msg_writer, state_msg_reader;

-- ---------------------------------------------------------------------
-- Rules under skewed clocks, and counters that cannot overflow
-- ---------------------------------------------------------------------

-- Epochs could in principle outgrow integer: one reset per message.
ALTER TABLE state_msg.clients ALTER COLUMN serial_epoch TYPE bigint;
ALTER TABLE state_msg.client_state ALTER COLUMN serial_epoch TYPE bigint;

ALTER TABLE state_msg.clients
	ADD COLUMN clock_skewed_messages bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN state_msg.clients.clock_skewed_messages IS
	'Messages whose time ran more than state_msg.max_clock_skew ahead of the engine clock (taken as the engine clock''s time)';

/*
 * 1.0 took a client's times as given, so one message dated far ahead could
 * have stopped its reset detection for good: bound the stored times as 1.1
 * would have (max_clock_skew's default, an hour, past the processing time).
 */
UPDATE state_msg.clients
SET last_message_time = last_processed_time
WHERE last_message_time OPERATOR(pg_catalog.>)
	  (last_processed_time OPERATOR(pg_catalog.+) interval '1 hour');
UPDATE state_msg.clients
SET serial_epoch_started = last_processed_time
WHERE serial_epoch_started OPERATOR(pg_catalog.>)
	  (last_processed_time OPERATOR(pg_catalog.+) interval '1 hour');

-- The newest-state rule (current_state.c), for the state upsert.
CREATE FUNCTION state_msg.is_newer_state(
	serial_number bigint, serial_epoch bigint,
	message_time timestamptz, processed_at timestamptz,
	current_serial_number bigint, current_serial_epoch bigint,
	current_message_time timestamptz, current_processed_at timestamptz)
RETURNS boolean
AS 'MODULE_PATHNAME', 'state_msg_is_newer_state'
LANGUAGE C STABLE PARALLEL SAFE;
REVOKE ALL ON FUNCTION state_msg.is_newer_state(bigint, bigint, timestamptz,
	timestamptz, bigint, bigint, timestamptz, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION state_msg.is_newer_state(bigint, bigint, timestamptz,
	timestamptz, bigint, bigint, timestamptz, timestamptz) IS
	'Is a proposed client_state row newer than the stored one: by (epoch, serial) when both have a serial, else by effective time (internal)';

-- ---------------------------------------------------------------------
-- Storage: room for HOT updates, and vacuum that keeps up
-- ---------------------------------------------------------------------

/*
 * Every batch updates each of its clients' rows once, and the states of
 * the topics it touches, without changing a key: with free space on the
 * page the new version is a HOT update, pruned on the page later, and the
 * tables stay the same size under steady load (test/bench/run.sh --steady).
 * clients rows are all updated by each upload cycle of a fleet, so they get
 * more room than client_state's, of which an upload touches a few.  Vacuum
 * starts after 5% of a table changed rather than 20%, so that index entries
 * of the non-HOT updates and the visibility map keep up with a busy site.
 * (Set here: an ALTER TABLE by the user on an extension table is not kept
 * by pg_dump.)
 */
ALTER TABLE state_msg.clients SET (fillfactor = 70,
	autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE state_msg.client_state SET (fillfactor = 80,
	autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE state_msg.missing_ranges SET (autovacuum_vacuum_scale_factor = 0.05);

-- ---------------------------------------------------------------------
-- Client ids: Unicode white space (hardening items 13 and 14)
-- ---------------------------------------------------------------------

/*
 * 1.1 strips Unicode white space and invisible format characters (a byte
 * order mark, direction marks, no-break spaces...) from both ends of a
 * client id, where 1.0 stripped ASCII white space only.  Ids stored by 1.0
 * with such characters around them are renamed to their 1.1 spelling, in
 * every table but rejected_messages (which keeps input as given), unless
 * the new spelling is blank or another stored id has or takes it: those are
 * left as they are and listed in state_msg.client_id_conflicts, for the
 * operator to merge (see the README).
 */

-- The library must be the 1.1 build, or nothing would be renamed.
DO $$
BEGIN
	IF pg_catalog.getdatabaseencoding() OPERATOR(pg_catalog.=) 'UTF8'
	   AND state_msg.normalize_client_id(pg_catalog.chr(160) OPERATOR(pg_catalog.||) 'x')
		   OPERATOR(pg_catalog.<>) 'x' THEN
		RAISE EXCEPTION 'this session runs a state_msg library older than 1.1'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Install the 1.1 build, then run ALTER EXTENSION state_msg UPDATE in a new session.';
	END IF;
END
$$;

-- Every stored client id whose spelling normalize_client_id() changes, and
-- whether it can be renamed.  Reads all four tables.
CREATE VIEW state_msg.client_id_conflicts AS
WITH stored AS (
	SELECT client_id FROM state_msg.clients
	UNION SELECT client_id FROM state_msg.client_state
	UNION SELECT client_id FROM state_msg.missing_ranges
	UNION SELECT client_id FROM state_msg.resync_requests
),
changed AS (
	SELECT client_id, normalized_client_id
	FROM (SELECT client_id,
				 state_msg.normalize_client_id(client_id) AS normalized_client_id
		  FROM stored) AS s
	WHERE normalized_client_id OPERATOR(pg_catalog.<>) client_id
)
SELECT c.client_id,
	   c.normalized_client_id,
	   CASE
	   WHEN c.normalized_client_id OPERATOR(pg_catalog.=) '' THEN 'blank'
	   WHEN t.client_id IS NOT NULL
			OR pg_catalog.count(*) OVER (PARTITION BY c.normalized_client_id)
			   OPERATOR(pg_catalog.>) 1 THEN 'collision'
	   ELSE 'renamable'
	   END AS reason
FROM changed c
LEFT JOIN stored t ON t.client_id OPERATOR(pg_catalog.=) c.normalized_client_id;

COMMENT ON VIEW state_msg.client_id_conflicts IS
	'Stored client ids whose spelling the client id normalization changes: blank (normalizes to nothing), collision (another stored id has or takes the same spelling: merge them), renamable (state_msg.renormalize_client_ids() renames it)';
COMMENT ON COLUMN state_msg.client_id_conflicts.client_id IS 'the id as stored';
COMMENT ON COLUMN state_msg.client_id_conflicts.normalized_client_id IS 'state_msg.normalize_client_id() of it: the id its messages now reach';
COMMENT ON COLUMN state_msg.client_id_conflicts.reason IS 'blank, collision or renamable';

-- Rename every renamable id of client_id_conflicts in the four tables;
-- returns how many ids were renamed.  Writers are held off meanwhile.
CREATE FUNCTION state_msg.renormalize_client_ids()
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	renamed bigint;
BEGIN
	LOCK TABLE state_msg.clients, state_msg.client_state,
		state_msg.missing_ranges, state_msg.resync_requests
		IN SHARE ROW EXCLUSIVE MODE;
	WITH renames AS (
		SELECT client_id AS old_id, normalized_client_id AS new_id
		FROM state_msg.client_id_conflicts
		WHERE reason OPERATOR(pg_catalog.=) 'renamable'
	),
	c AS (
		UPDATE state_msg.clients t SET client_id = r.new_id
		FROM renames r WHERE t.client_id OPERATOR(pg_catalog.=) r.old_id
	),
	s AS (
		UPDATE state_msg.client_state t SET client_id = r.new_id
		FROM renames r WHERE t.client_id OPERATOR(pg_catalog.=) r.old_id
	),
	m AS (
		UPDATE state_msg.missing_ranges t SET client_id = r.new_id
		FROM renames r WHERE t.client_id OPERATOR(pg_catalog.=) r.old_id
	),
	q AS (
		UPDATE state_msg.resync_requests t SET client_id = r.new_id
		FROM renames r WHERE t.client_id OPERATOR(pg_catalog.=) r.old_id
	)
	SELECT pg_catalog.count(*) INTO renamed FROM renames;
	RETURN renamed;
END
$$;

COMMENT ON FUNCTION state_msg.renormalize_client_ids() IS
	'Rename the stored client ids that client_id_conflicts lists as renamable to their normalized spelling, in clients, client_state, missing_ranges and resync_requests; returns the number of ids renamed';

REVOKE ALL ON FUNCTION state_msg.renormalize_client_ids() FROM PUBLIC;
GRANT SELECT ON state_msg.client_id_conflicts TO state_msg_reader;

-- Rename what can be; warn of what cannot.
DO $$
DECLARE
	unrenamed bigint;
BEGIN
	PERFORM state_msg.renormalize_client_ids();
	SELECT pg_catalog.count(*) INTO unrenamed FROM state_msg.client_id_conflicts;
	IF unrenamed OPERATOR(pg_catalog.>) 0 THEN
		RAISE WARNING '% stored client ids could not be renamed to their 1.1 spelling', unrenamed
			USING DETAIL = 'They are blank under the 1.1 rule, or another client has or takes the same spelling.',
				  HINT = 'They are listed in state_msg.client_id_conflicts; merge them as the README says.';
	END IF;
END
$$;
