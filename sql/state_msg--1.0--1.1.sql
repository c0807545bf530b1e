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
