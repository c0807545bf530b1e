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
-- Security: the extension's schema, the check cycle in C, as_of bounds
-- ---------------------------------------------------------------------

/*
 * Refuse a schema someone else could redirect.  A schema "state_msg" that
 * existed before CREATE EXTENSION keeps its owner; an owner who is neither
 * the installing role nor a superuser could rename it and put a look-alike
 * in its place, and the engine's statements, which run with the extension
 * owner's rights, would run that look-alike's triggers.  The same check
 * refuses ALTER EXTENSION UPDATE of a 1.0 installed in such a schema.  The
 * whole command is one transaction: an error here undoes all of it.
 */
DO $$
DECLARE
	ext_schema pg_catalog.oid;
	ext_schema_name pg_catalog.name;
	owner_name pg_catalog.name;
	owner_is_super boolean;
	owner_is_me boolean;
	named pg_catalog.oid;
BEGIN
	SELECT n.oid, n.nspname, r.rolname, r.rolsuper,
		   n.nspowner OPERATOR(pg_catalog.=) (SELECT u.oid FROM pg_catalog.pg_roles u
											   WHERE u.rolname OPERATOR(pg_catalog.=) CURRENT_USER)
	INTO ext_schema, ext_schema_name, owner_name, owner_is_super, owner_is_me
	FROM pg_catalog.pg_extension e
	JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
	JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
	WHERE e.extname OPERATOR(pg_catalog.=) 'state_msg';

	SELECT n.oid INTO named FROM pg_catalog.pg_namespace n
	WHERE n.nspname OPERATOR(pg_catalog.=) 'state_msg';
	IF named IS NULL OR named OPERATOR(pg_catalog.<>) ext_schema THEN
		RAISE EXCEPTION 'the schema of extension "state_msg" is named "%", not "state_msg"',
			ext_schema_name
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Rename it back to state_msg (and any other schema of that name away) before updating.';
	END IF;

	IF NOT (owner_is_me OR owner_is_super) THEN
		RAISE EXCEPTION 'schema "state_msg" is owned by role "%", which is neither the installing role nor a superuser',
			owner_name
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'Its owner could rename it and redirect statements that run with the extension owner''s rights.',
				  HINT = pg_catalog.format('Make a superuser own it (ALTER SCHEMA state_msg OWNER TO %I;), or drop it, then try again.',
									   CURRENT_USER);
	END IF;
END
$$;

-- The rule that dates a resync event after the event it follows, for SQL
CREATE FUNCTION state_msg.resync_event_time(now timestamptz, after timestamptz)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'state_msg_resync_event_time'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
REVOKE ALL ON FUNCTION state_msg.resync_event_time(timestamptz, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION state_msg.resync_event_time(timestamptz, timestamptz) IS
'The time of a resync event (issue or completion) at "now" that follows an event at "after" (NULL: none): "now", or a microsecond after "after" if that is not earlier';

/*
 * The check cycle and requests by hand, now in C (src/resync.c): each
 * checks the extension's schema before it reaches a table by name, acts at
 * the engine clock, and bounds as_of.  Same signatures, same privileges.
 */
CREATE OR REPLACE FUNCTION state_msg.run_resync_check(
	as_of timestamptz DEFAULT state_msg.engine_now(),
	OUT issued bigint,
	OUT reissued bigint)
AS 'MODULE_PATHNAME', 'state_msg_run_resync_check'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION state_msg.run_resync_check(timestamptz) IS
'The resync check cycle, as if run at as_of (default: the engine clock); as_of later than the engine clock is for superusers; returns the requests issued and reissued';

CREATE OR REPLACE FUNCTION state_msg.request_resync(
	client_id text,
	reason state_msg.resync_reason DEFAULT 'manual')
RETURNS bigint
AS 'MODULE_PATHNAME', 'state_msg_request_resync'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION state_msg.request_resync(text, state_msg.resync_reason) IS
'Issue one resync request for a known client, dated by the engine clock; returns its request_id';

-- The two views that look at "now" read the engine clock, once per query
CREATE OR REPLACE VIEW state_msg.resync_outstanding AS
WITH clock AS (SELECT state_msg.engine_now() AS now)
SELECT pg_catalog.count(*) FILTER (
		   WHERE c.last_resync_issued_time
				 OPERATOR(pg_catalog.>) c.last_resync_client_completed_time)
		   AS issued_not_completed,
	   pg_catalog.count(*) FILTER (WHERE c.last_resync_issued_time IS NOT NULL
									 AND c.last_resync_client_completed_time IS NULL)
		   AS never_completed,
	   pg_catalog.count(*) FILTER (
		   WHERE state_msg.has_open_request(c)
			 AND c.last_resync_issued_time OPERATOR(pg_catalog.<=)
				 (clock.now OPERATOR(pg_catalog.-) state_msg.min_resync_period()))
		   AS due_for_reissue
FROM state_msg.clients c, clock;

CREATE OR REPLACE VIEW state_msg.resync_reissue_due AS
WITH clock AS (SELECT state_msg.engine_now() AS now)
SELECT c.client_id,
	   c.last_resync_issued_time,
	   c.last_resync_client_completed_time,
	   clock.now OPERATOR(pg_catalog.-) c.last_resync_issued_time AS waited
FROM state_msg.clients c, clock
WHERE state_msg.has_open_request(c)
  AND c.last_resync_issued_time OPERATOR(pg_catalog.<=)
	  (clock.now OPERATOR(pg_catalog.-) state_msg.min_resync_period());
