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
-- Forgetting clients: a client's rows go together
-- ---------------------------------------------------------------------

/*
 * Deleting clients rows (by state_msg.forget_clients() or by hand) deletes
 * the rest of what the engine keeps of those clients: a client the engine
 * meets again after that starts afresh, as a new one.  A statement trigger:
 * one set-based delete per statement, and nothing at all on the insert and
 * update paths.  (TRUNCATE fires no delete trigger: truncate the tables
 * together.)
 */
CREATE FUNCTION state_msg.forget_client_rows()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM state_msg.client_state s USING forgotten f
	WHERE s.client_id OPERATOR(pg_catalog.=) f.client_id;
	DELETE FROM state_msg.missing_ranges m USING forgotten f
	WHERE m.client_id OPERATOR(pg_catalog.=) f.client_id;
	DELETE FROM state_msg.resync_requests r USING forgotten f
	WHERE r.client_id OPERATOR(pg_catalog.=) f.client_id;
	RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION state_msg.forget_client_rows() FROM PUBLIC;
COMMENT ON FUNCTION state_msg.forget_client_rows() IS
	'Trigger: deleting clients rows deletes the rest of those clients'' rows (internal)';

CREATE TRIGGER forget_client_rows
	AFTER DELETE ON state_msg.clients
	REFERENCING OLD TABLE AS forgotten
	FOR EACH STATEMENT EXECUTE FUNCTION state_msg.forget_client_rows();
