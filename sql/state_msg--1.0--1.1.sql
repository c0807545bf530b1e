/* state_msg--1.0--1.1.sql: release 1.1 (hardening, release groundwork) */

\echo Use "ALTER EXTENSION state_msg UPDATE TO '1.1'" to load this file. \quit

/*
 * There is no separate 1.1 install script: CREATE EXTENSION runs the 1.0
 * script and then this one, so a fresh install and an upgraded one are the
 * same by construction.  Sections below are grouped by concern.
 */

-- ---------------------------------------------------------------------
-- Security (first): the schema every later statement names
-- ---------------------------------------------------------------------

/*
 * Refuse a schema someone else could redirect.  A schema "state_msg" that
 * existed before CREATE EXTENSION keeps its owner; an owner who is neither
 * the installing role nor a superuser could rename it and put a look-alike
 * in its place, and the engine's statements, which run with the extension
 * owner's rights, would run that look-alike's triggers.  The same check
 * refuses ALTER EXTENSION UPDATE of a 1.0 installed in such a schema, or
 * of one whose schema is no longer named state_msg.  It runs first: every
 * later statement of this script names objects through the name state_msg,
 * and one that met a look-alike (an UPDATE of a look-alike clients table
 * with a trigger) would run its owner's code with superuser rights.  The
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
AS 'MODULE_PATHNAME', 'state_msg_forget_client_rows'
LANGUAGE C
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION state_msg.forget_client_rows() FROM PUBLIC;
COMMENT ON FUNCTION state_msg.forget_client_rows() IS
	'Trigger: deleting clients rows deletes the rest of those clients'' rows (internal)';

CREATE TRIGGER forget_client_rows
	AFTER DELETE ON state_msg.clients
	REFERENCING OLD TABLE AS forgotten
	FOR EACH STATEMENT EXECUTE FUNCTION state_msg.forget_client_rows();
COMMENT ON TRIGGER forget_client_rows ON state_msg.clients IS
	'Deleting clients rows deletes the rest of those clients'' rows';
-- Observability: a comment on every object (issue 6)
-- ---------------------------------------------------------------------

/*
 * One sentence per object, in the README's terms, so that \d+, \dT+, \df+
 * and \dv+ explain the schema.  Objects added by other sections of this
 * script carry their own comments; sql/comments.sql lists every member
 * of the extension that lacks one.
 */

COMMENT ON TYPE state_msg.verdict IS
	'What ingestion made of one message: in_order, gap, late_fill, duplicate, serial_reset, unserialized or rejected';
COMMENT ON TYPE state_msg.resync_reason IS
	'Why a resync request was issued: missing (the check cycle found an old missing range), reissue (not completed within min_resync_period), serial_reset (a reinstalled client) or manual (request_resync())';

COMMENT ON TABLE state_msg.clients IS
	'One row per client: serial tracking, counters (which stop at the largest bigint) and resync times; ConfigMgr''s SR_ClientMessageStats';
COMMENT ON COLUMN state_msg.clients.client_id IS
	'The client''s id, normalized (GUID: and the upper-case GUID; other ids as given, less surrounding white space)';
COMMENT ON COLUMN state_msg.clients.next_serial_number IS
	'The serial expected next from the client; NULL until its first message with a serial';
COMMENT ON COLUMN state_msg.clients.serial_epoch IS
	'The client''s serial epoch: 0, then one more at each serial reset; current state compares (epoch, serial)';
COMMENT ON COLUMN state_msg.clients.serial_epoch_started IS
	'Effective time of the serial reset that began the current epoch (NULL in epoch 0); messages with an earlier effective time are stale, resync answers excepted';
COMMENT ON COLUMN state_msg.clients.last_message_time IS
	'The newest effective time of a serialized message of the client; a serial reset needs a later one';
COMMENT ON COLUMN state_msg.clients.last_processed_time IS
	'When (engine clock) the client''s last batch was processed';
COMMENT ON COLUMN state_msg.clients.messages_processed IS
	'Messages processed for the client, whatever their verdict (rejected rows are not)';
COMMENT ON COLUMN state_msg.clients.missing_serials IS
	'Serials recorded missing by gaps, counted when each gap opened';
COMMENT ON COLUMN state_msg.clients.late_fills IS
	'Messages that arrived late and filled part of a missing range';
COMMENT ON COLUMN state_msg.clients.duplicates IS
	'Messages counted as duplicates: a serial below next, outside every missing range, that is no serial reset; stale messages included';
COMMENT ON COLUMN state_msg.clients.serial_resets IS
	'Serial resets (reinstalls) detected: each began a new serial epoch and issued a resync request';
COMMENT ON COLUMN state_msg.clients.unserialized_messages IS
	'Messages without a serial (fallback status point relays, some server topics), applied by effective time';
COMMENT ON COLUMN state_msg.clients.last_resync_issued_time IS
	'When the client''s latest resync request was issued; ConfigMgr''s LastResyncIssuedTime';
COMMENT ON COLUMN state_msg.clients.last_resync_client_completed_time IS
	'When (engine clock) the client''s latest resync-complete message (700/2) was processed; ConfigMgr''s LastResyncClientCompletedTime';
COMMENT ON COLUMN state_msg.clients.resync_requests_issued IS
	'Resync requests issued to the client, reissues and resets included';

COMMENT ON TABLE state_msg.client_state IS
	'The current state: the newest message per (client, topic type, topic id), by (epoch, serial) when both have a serial, else by effective time';
COMMENT ON COLUMN state_msg.client_state.client_id IS
	'The client (clients.client_id)';
COMMENT ON COLUMN state_msg.client_state.topic_type IS
	'What kind of topic: 500 update detection, 402 CI enforcement, 700 resync, ...';
COMMENT ON COLUMN state_msg.client_state.topic_id IS
	'The topic: an update GUID, a deployment or assignment id, a package id, ...';
COMMENT ON COLUMN state_msg.client_state.topic_id_type IS
	'The topic id''s type, as the client sent it';
COMMENT ON COLUMN state_msg.client_state.state_id IS
	'The topic''s current state (0 usually means unknown)';
COMMENT ON COLUMN state_msg.client_state.criticality IS
	'The message''s criticality, as the client sent it (usually 0)';
COMMENT ON COLUMN state_msg.client_state.serial_number IS
	'The message''s serial; NULL for a message without one';
COMMENT ON COLUMN state_msg.client_state.serial_epoch IS
	'The client''s serial epoch the message belongs to';
COMMENT ON COLUMN state_msg.client_state.message_time IS
	'The client''s time of the state change, as sent (not bounded by state_msg.max_clock_skew)';
COMMENT ON COLUMN state_msg.client_state.processed_at IS
	'When (engine clock) the message was processed';
COMMENT ON COLUMN state_msg.client_state.user_params IS
	'The message''s user parameters (at most 5)';
COMMENT ON COLUMN state_msg.client_state.source IS
	'Who relayed the message: mp (management point) or fsp (fallback status point)';

COMMENT ON TABLE state_msg.missing_ranges IS
	'Ranges of serials a client sent that never arrived; ConfigMgr''s SR_MissingMessageRanges, ideally empty';
COMMENT ON COLUMN state_msg.missing_ranges.client_id IS
	'The client (clients.client_id)';
COMMENT ON COLUMN state_msg.missing_ranges.first_serial IS
	'The first missing serial of the range';
COMMENT ON COLUMN state_msg.missing_ranges.last_serial IS
	'The last missing serial of the range (inclusive)';
COMMENT ON COLUMN state_msg.missing_ranges.detected_at IS
	'When (engine clock) the gap was detected; the check cycle requests a resync once it is min_missing_message_age old';

COMMENT ON TABLE state_msg.resync_requests IS
	'Every resync request issued, with its reason and when a resync-complete message completed it';
COMMENT ON COLUMN state_msg.resync_requests.request_id IS
	'The request''s id (request_resync() returns it)';
COMMENT ON COLUMN state_msg.resync_requests.client_id IS
	'The client asked to resync (clients.client_id)';
COMMENT ON COLUMN state_msg.resync_requests.reason IS
	'Why the request was issued: missing, reissue, serial_reset or manual';
COMMENT ON COLUMN state_msg.resync_requests.issued_at IS
	'When the request was issued (the engine clock, or the check cycle''s as_of), never before the client''s last completion';
COMMENT ON COLUMN state_msg.resync_requests.completed_at IS
	'When (engine clock) the resync-complete message (700/2) that completed the request was processed; NULL while outstanding';

COMMENT ON TABLE state_msg.rejected_messages IS
	'Bad inbox rows and ingest() calls set aside under state_msg.on_bad_message = quarantine, as given, with the reason';
COMMENT ON COLUMN state_msg.rejected_messages.rejected_id IS
	'The rejected row''s id, in order of rejection';
COMMENT ON COLUMN state_msg.rejected_messages.rejected_at IS
	'When (engine clock) the row was rejected';
COMMENT ON COLUMN state_msg.rejected_messages.reason IS
	'Why the row is bad: the validation error''s message';
COMMENT ON COLUMN state_msg.rejected_messages.sqlstate IS
	'The validation error''s SQLSTATE (22004 NULL, 22023 empty or invalid, 22001 too long, 22003 out of range, 22008 infinite time, 2202E parameter array)';
COMMENT ON COLUMN state_msg.rejected_messages.row_number IS
	'The row''s position in its statement, from 1';
COMMENT ON COLUMN state_msg.rejected_messages.client_id IS
	'The client id as given (not normalized)';
COMMENT ON COLUMN state_msg.rejected_messages.serial_number IS
	'The serial as given';
COMMENT ON COLUMN state_msg.rejected_messages.topic_type IS
	'The topic type as given';
COMMENT ON COLUMN state_msg.rejected_messages.topic_id IS
	'The topic id as given';
COMMENT ON COLUMN state_msg.rejected_messages.topic_id_type IS
	'The topic id type as given';
COMMENT ON COLUMN state_msg.rejected_messages.state_id IS
	'The state id as given';
COMMENT ON COLUMN state_msg.rejected_messages.criticality IS
	'The criticality as given';
COMMENT ON COLUMN state_msg.rejected_messages.message_time IS
	'The message time as given';
COMMENT ON COLUMN state_msg.rejected_messages.user_params IS
	'The user parameters as given';
COMMENT ON COLUMN state_msg.rejected_messages.source IS
	'The source as given';

COMMENT ON ACCESS METHOD state_msg_inbox IS
	'Table access method of state_msg.inbox: it keeps no rows, so the inbox stores nothing and refuses indexes';
COMMENT ON FUNCTION state_msg.inbox_am_handler(internal) IS
	'Handler of the state_msg_inbox table access method (internal)';

COMMENT ON TABLE state_msg.inbox IS
	'The insert target for state messages (INSERT, INSERT ... SELECT, COPY): each statement''s rows are processed as one batch and discarded, so it holds no rows';
COMMENT ON COLUMN state_msg.inbox.client_id IS
	'The client''s id, required, at most 256 bytes; normalized on processing';
COMMENT ON COLUMN state_msg.inbox.serial_number IS
	'The client''s serial, 0 to 2^48; NULL for a message without one (fallback status point relays, some server topics)';
COMMENT ON COLUMN state_msg.inbox.topic_type IS
	'What kind of topic, required, at least 0 (500 update detection, 402 CI enforcement, 700 resync, ...)';
COMMENT ON COLUMN state_msg.inbox.topic_id IS
	'The topic, required, not blank, at most 512 bytes';
COMMENT ON COLUMN state_msg.inbox.topic_id_type IS
	'The topic id''s type, at least 0 (default 0)';
COMMENT ON COLUMN state_msg.inbox.state_id IS
	'The topic''s new state, required, at least 0';
COMMENT ON COLUMN state_msg.inbox.criticality IS
	'The criticality, at least 0 (default 0)';
COMMENT ON COLUMN state_msg.inbox.message_time IS
	'The client''s time of the state change, required and finite';
COMMENT ON COLUMN state_msg.inbox.user_params IS
	'Up to 5 user parameters of up to 4096 characters each';
COMMENT ON COLUMN state_msg.inbox.source IS
	'Who relayed the message: mp (management point, the default) or fsp (fallback status point)';

COMMENT ON FUNCTION state_msg.inbox_process() IS
	'Trigger function of state_msg.inbox: processes a statement''s rows from its transition table as one batch, with the owner''s rights';
COMMENT ON TRIGGER inbox_process ON state_msg.inbox IS
	'Processes the rows of each INSERT or COPY into the inbox, once per statement, from the transition table new_messages';

COMMENT ON FUNCTION state_msg.ingest(text, bigint, integer, text, integer,
	timestamptz, integer, integer, text[], text) IS
	'Process one message, as one inbox row would be, and return its verdict';
COMMENT ON FUNCTION state_msg.normalize_client_id(text) IS
	'The client id normalization: GUID spellings become GUID: and the upper-case GUID, other ids lose surrounding white space';
COMMENT ON FUNCTION state_msg.min_missing_message_age() IS
	'The setting state_msg.min_missing_message_age as an interval';
COMMENT ON FUNCTION state_msg.min_resync_period() IS
	'The setting state_msg.min_resync_period as an interval';
COMMENT ON FUNCTION state_msg.has_open_request(state_msg.clients) IS
	'Has the client an outstanding resync request: one issued and no completion processed since (used by the views and the check cycle)';
COMMENT ON FUNCTION state_msg.resync_due(state_msg.clients, timestamptz, timestamptz) IS
	'The check cycle''s test for one client: an outstanding request issued before reissue_before, or else a missing range detected before missing_before (internal)';
COMMENT ON FUNCTION state_msg.run_resync_check(timestamptz) IS
	'The resync check cycle as if run at as_of: requests a resync for old missing ranges, reissues requests outstanding past min_resync_period; returns the counts';
COMMENT ON FUNCTION state_msg.request_resync(text, state_msg.resync_reason) IS
	'Issue one resync request to a known client by hand and return its id';
COMMENT ON FUNCTION state_msg.engine_now() IS
	'The engine clock: the server''s clock plus state_msg.clock_offset, the source of every time the engine records';

COMMENT ON VIEW state_msg.sr_clientmessagestats IS
	'ConfigMgr''s SR_ClientMessageStats: one row per client, its column names folded to lower case, times in UTC';
COMMENT ON COLUMN state_msg.sr_clientmessagestats.clientid IS
	'The client''s id (clients.client_id)';
COMMENT ON COLUMN state_msg.sr_clientmessagestats.nextserialnumber IS
	'The serial expected next (clients.next_serial_number)';
COMMENT ON COLUMN state_msg.sr_clientmessagestats.lastmessagetime IS
	'The newest effective time of a serialized message, UTC (clients.last_message_time)';
COMMENT ON COLUMN state_msg.sr_clientmessagestats.lastprocessedtime IS
	'When the client''s last batch was processed, UTC (clients.last_processed_time)';
COMMENT ON COLUMN state_msg.sr_clientmessagestats.lastresyncissuedtime IS
	'When the latest resync request was issued, UTC (clients.last_resync_issued_time)';
COMMENT ON COLUMN state_msg.sr_clientmessagestats.lastresyncclientcompletedtime IS
	'When the latest resync-complete message was processed, UTC (clients.last_resync_client_completed_time)';

COMMENT ON VIEW state_msg.resync_outstanding IS
	'One row: the counts of the two monitoring queries and of requests due for reissue';
COMMENT ON COLUMN state_msg.resync_outstanding.issued_not_completed IS
	'Clients whose latest request was issued after their latest completion (monitoring query 1; clients that never completed one are not counted)';
COMMENT ON COLUMN state_msg.resync_outstanding.never_completed IS
	'Clients issued a request that never completed one (monitoring query 2)';
COMMENT ON COLUMN state_msg.resync_outstanding.due_for_reissue IS
	'Clients with an outstanding request issued at least min_resync_period ago (the three-day rule, as of now)';

COMMENT ON VIEW state_msg.resync_reissue_due IS
	'The clients whose outstanding request the next check cycle will reissue (the three-day rule, as of now)';
COMMENT ON COLUMN state_msg.resync_reissue_due.client_id IS
	'The client (clients.client_id)';
COMMENT ON COLUMN state_msg.resync_reissue_due.last_resync_issued_time IS
	'When the outstanding request was issued';
COMMENT ON COLUMN state_msg.resync_reissue_due.last_resync_client_completed_time IS
	'When the client''s latest resync-complete message was processed, if ever (before the issue)';
COMMENT ON COLUMN state_msg.resync_reissue_due.waited IS
	'How long the request has waited, as of now';
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
AS 'MODULE_PATHNAME', 'state_msg_renormalize_client_ids'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

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

-- ---------------------------------------------------------------------
-- Inbox hardening (items 5, 6, 15): no CREATE INDEX CONCURRENTLY
-- ---------------------------------------------------------------------

/*
 * CREATE INDEX CONCURRENTLY commits an index's catalog entry before building
 * it; on the inbox the build is refused, and the invalid index left behind
 * breaks every later rewrite of the table.  This event trigger refuses the
 * command before it creates anything.  It fires in every
 * session_replication_role, and only for CREATE INDEX.
 */
CREATE FUNCTION state_msg.inbox_index_guard()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'state_msg_inbox_index_guard'
LANGUAGE C;
REVOKE ALL ON FUNCTION state_msg.inbox_index_guard() FROM PUBLIC;
COMMENT ON FUNCTION state_msg.inbox_index_guard() IS
	'Event trigger function: refuses CREATE INDEX CONCURRENTLY on a table using the state_msg_inbox access method, before the command creates anything';

CREATE EVENT TRIGGER state_msg_inbox_index_guard ON ddl_command_start
	WHEN TAG IN ('CREATE INDEX')
	EXECUTE FUNCTION state_msg.inbox_index_guard();
ALTER EVENT TRIGGER state_msg_inbox_index_guard ENABLE ALWAYS;
COMMENT ON EVENT TRIGGER state_msg_inbox_index_guard IS
	'Refuses CREATE INDEX CONCURRENTLY on state_msg.inbox (and any table using its access method) before it leaves an invalid index behind';

-- ---------------------------------------------------------------------
-- Security: the extension's schema, the check cycle in C, as_of bounds
-- ---------------------------------------------------------------------

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

-- ---------------------------------------------------------------------
-- Operations (release 1.1 ops task): the operator role, retention,
-- resubmitting quarantined rows, forgetting clients, resync candidates
-- ---------------------------------------------------------------------

/*
 * The operator: what a scheduler (pg_cron) or an administrator needs to run
 * the engine's maintenance.  Roles are global, so it may already exist from
 * another database.  It is a member of state_msg_reader, so it reads what
 * readers read (the views that show what to act on, rejected_messages to
 * choose rows to resubmit) and whatever later releases grant readers.
 */
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles
				   WHERE rolname OPERATOR(pg_catalog.=) 'state_msg_operator') THEN
		CREATE ROLE state_msg_operator NOLOGIN;
	END IF;
END
$$;
GRANT state_msg_reader TO state_msg_operator;

-- Retention: apply keep_completed_requests and keep_rejected_messages.
CREATE FUNCTION state_msg.purge(
	OUT completed_requests bigint,
	OUT rejected_messages bigint)
AS 'MODULE_PATHNAME', 'state_msg_purge'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION state_msg.purge() FROM PUBLIC;
COMMENT ON FUNCTION state_msg.purge() IS
	'Delete completed resync requests completed more than state_msg.keep_completed_requests ago and rejected rows rejected more than state_msg.keep_rejected_messages ago (engine clock); outstanding requests are kept; returns the counts';

-- Resubmit quarantined rows through the batch path.
CREATE FUNCTION state_msg.retry_rejected(
	rejected_ids bigint[],
	OUT resubmitted bigint,
	OUT in_order bigint,
	OUT gap bigint,
	OUT late_fill bigint,
	OUT duplicate bigint,
	OUT serial_reset bigint,
	OUT unserialized bigint,
	OUT rejected bigint)
AS 'MODULE_PATHNAME', 'state_msg_retry_rejected'
LANGUAGE C VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION state_msg.retry_rejected(bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION state_msg.retry_rejected(bigint[]) IS
	'Process the given rejected_messages rows again, as one batch in rejected_id order: rows that now pass are processed and deleted, rows that still fail stay with a fresh reason, sqlstate and rejected_at; unknown ids are ignored; returns the rows resubmitted and the count of each verdict';

-- Forget clients and everything the engine keeps of them.
CREATE FUNCTION state_msg.forget_clients(client_ids text[])
RETURNS bigint
AS 'MODULE_PATHNAME', 'state_msg_forget_clients'
LANGUAGE C VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION state_msg.forget_clients(text[]) FROM PUBLIC;
COMMENT ON FUNCTION state_msg.forget_clients(text[]) IS
	'Delete the given clients (ids normalized; unknown ids ignored) with their states, missing ranges and requests, locking them in client_id order; returns how many were forgotten';

/*
 * The clients the next check cycle, run at the engine clock, would act on,
 * and why: the same test as the cycle's, state_msg.resync_due().
 */
CREATE VIEW state_msg.resync_candidates AS
WITH clock AS (SELECT state_msg.engine_now() AS now)
SELECT c.client_id,
	   CASE WHEN state_msg.has_open_request(c) THEN 'reissue' ELSE 'request' END
		   AS action,
	   CASE WHEN state_msg.has_open_request(c)
	   THEN 'outstanding request not completed within min_resync_period'
	   ELSE 'missing range older than min_missing_message_age'
	   END AS reason,
	   c.last_resync_issued_time,
	   m.oldest_missing_detected_at,
	   CASE WHEN state_msg.has_open_request(c)
	   THEN c.last_resync_issued_time OPERATOR(pg_catalog.+) state_msg.min_resync_period()
	   ELSE m.oldest_missing_detected_at OPERATOR(pg_catalog.+) state_msg.min_missing_message_age()
	   END AS due_at
FROM state_msg.clients c
CROSS JOIN clock
LEFT JOIN LATERAL (
	SELECT pg_catalog.min(r.detected_at) AS oldest_missing_detected_at
	FROM state_msg.missing_ranges r
	WHERE r.client_id OPERATOR(pg_catalog.=) c.client_id) AS m ON true
WHERE state_msg.resync_due(c,
		clock.now OPERATOR(pg_catalog.-) state_msg.min_resync_period(),
		clock.now OPERATOR(pg_catalog.-) state_msg.min_missing_message_age());
REVOKE ALL ON state_msg.resync_candidates FROM PUBLIC;
COMMENT ON VIEW state_msg.resync_candidates IS
	'The clients the next check cycle (as of the engine clock) would send a request to, and why; the cycle''s own test, resync_due()';
COMMENT ON COLUMN state_msg.resync_candidates.client_id IS
	'The client (clients.client_id)';
COMMENT ON COLUMN state_msg.resync_candidates.action IS
	'reissue (an outstanding request waited min_resync_period) or request (a missing range is min_missing_message_age old)';
COMMENT ON COLUMN state_msg.resync_candidates.reason IS
	'Why, in words';
COMMENT ON COLUMN state_msg.resync_candidates.last_resync_issued_time IS
	'When the client''s latest request was issued (clients.last_resync_issued_time)';
COMMENT ON COLUMN state_msg.resync_candidates.oldest_missing_detected_at IS
	'When the client''s oldest stored missing range was detected, if it has one';
COMMENT ON COLUMN state_msg.resync_candidates.due_at IS
	'When the action became due: the outstanding request''s issue plus min_resync_period, or the oldest missing range''s detection plus min_missing_message_age';

-- The view calls resync_due() with the reader's rights (it reads missing_ranges)
GRANT EXECUTE ON FUNCTION state_msg.resync_due(state_msg.clients, timestamptz, timestamptz)
	TO state_msg_reader;
GRANT SELECT ON state_msg.resync_candidates TO state_msg_reader;

GRANT USAGE ON SCHEMA state_msg TO state_msg_operator;
GRANT EXECUTE ON FUNCTION state_msg.run_resync_check(timestamptz),
	state_msg.request_resync(text, state_msg.resync_reason),
	state_msg.purge(),
	state_msg.retry_rejected(bigint[]),
	state_msg.forget_clients(text[]),
	state_msg.engine_now()
	TO state_msg_operator;

-- ---------------------------------------------------------------------
-- columns: message fields of XML reports
-- ---------------------------------------------------------------------

/*
 * What a message carries besides the 1.0 fields (domain.md sections 1 and
 * 2): the topic's user and SID, the typed state details, the report's
 * priority, and the client's NetBIOS name and version from the report
 * header.  All optional (NULL for none).  The inbox's trigger finds them by
 * name and reads an absent one as NULL, so rows and tables without them
 * still work; ingest() takes them as trailing arguments (below).  New
 * columns of existing tables: NULL in the rows 1.0 stored, no rewrite.
 */
ALTER TABLE state_msg.inbox
	ADD COLUMN user_name text,
	ADD COLUMN user_sid text,
	ADD COLUMN state_details_type integer,
	ADD COLUMN state_details text,
	ADD COLUMN priority integer,
	ADD COLUMN netbios_name text,
	ADD COLUMN client_version text;
ALTER TABLE state_msg.client_state
	ADD COLUMN user_name text,
	ADD COLUMN user_sid text,
	ADD COLUMN state_details_type integer,
	ADD COLUMN state_details text,
	ADD COLUMN priority integer;
ALTER TABLE state_msg.clients
	ADD COLUMN netbios_name text,
	ADD COLUMN client_version text;
ALTER TABLE state_msg.rejected_messages
	ADD COLUMN user_name text,
	ADD COLUMN user_sid text,
	ADD COLUMN state_details_type integer,
	ADD COLUMN state_details text,
	ADD COLUMN priority integer,
	ADD COLUMN netbios_name text,
	ADD COLUMN client_version text;

COMMENT ON COLUMN state_msg.inbox.user_name IS
	'The topic''s user (the Topic element''s User attribute), at most 512 bytes; NULL for none';
COMMENT ON COLUMN state_msg.inbox.user_sid IS
	'The user''s SID (UserSID), at most 256 bytes; NULL for none';
COMMENT ON COLUMN state_msg.inbox.state_details_type IS
	'The Type of the state details; NULL for none';
COMMENT ON COLUMN state_msg.inbox.state_details IS
	'The state details (StateDetails), at most state_msg.max_state_details_size bytes; NULL for none';
COMMENT ON COLUMN state_msg.inbox.priority IS
	'The report''s priority, at least 0; NULL for none';
COMMENT ON COLUMN state_msg.inbox.netbios_name IS
	'The client''s NetBIOS name from the report header, at most 256 bytes; the latest non-NULL one is kept in clients';
COMMENT ON COLUMN state_msg.inbox.client_version IS
	'The client''s version from the report header, at most 256 bytes; the latest non-NULL one is kept in clients';

COMMENT ON COLUMN state_msg.client_state.user_name IS
	'The current state''s message''s user, as sent; NULL for none';
COMMENT ON COLUMN state_msg.client_state.user_sid IS
	'The current state''s message''s user SID, as sent; NULL for none';
COMMENT ON COLUMN state_msg.client_state.state_details_type IS
	'The Type of the current state''s message''s state details; NULL for none';
COMMENT ON COLUMN state_msg.client_state.state_details IS
	'The current state''s message''s state details, as sent (stored in TOAST when large); NULL for none';
COMMENT ON COLUMN state_msg.client_state.priority IS
	'The priority of the report that carried the current state''s message; NULL for none';

COMMENT ON COLUMN state_msg.clients.netbios_name IS
	'The client''s NetBIOS name: the latest non-NULL one its messages carried, in arrival order; NULL until one did';
COMMENT ON COLUMN state_msg.clients.client_version IS
	'The client''s version: the latest non-NULL one its messages carried, in arrival order; NULL until one did';

COMMENT ON COLUMN state_msg.rejected_messages.user_name IS
	'The user as given';
COMMENT ON COLUMN state_msg.rejected_messages.user_sid IS
	'The user SID as given';
COMMENT ON COLUMN state_msg.rejected_messages.state_details_type IS
	'The state details'' type as given';
COMMENT ON COLUMN state_msg.rejected_messages.state_details IS
	'The state details as given';
COMMENT ON COLUMN state_msg.rejected_messages.priority IS
	'The priority as given';
COMMENT ON COLUMN state_msg.rejected_messages.netbios_name IS
	'The NetBIOS name as given';
COMMENT ON COLUMN state_msg.rejected_messages.client_version IS
	'The client version as given';

/*
 * ingest() takes the new fields as trailing arguments, DEFAULT NULL, so that
 * every 1.0 call (positional or named) means what it meant.  A function's
 * arguments cannot be changed in place: the 1.0 function is dropped and
 * created again, with the same grants and rights.  That fails where user
 * objects depend on it (a SQL function with a BEGIN ATOMIC body calling it):
 * refused first with a message naming them.  Grants of EXECUTE a user made
 * on the 1.0 function to other roles are not carried over (a grant made
 * by this script would count as the extension's own, and pg_dump would then
 * not keep it): a warning lists them, to be granted again.
 */
DO $$
DECLARE
	old_ingest pg_catalog.oid := pg_catalog.to_regprocedure(
		'state_msg.ingest(text, bigint, integer, text, integer, timestamptz, integer, integer, text[], text)');
	dependents text;
	grants text;
BEGIN
	SELECT pg_catalog.string_agg(pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid),
								 ', ' ORDER BY 1)
	INTO dependents
	FROM pg_catalog.pg_depend d
	WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
	  AND d.refobjid OPERATOR(pg_catalog.=) old_ingest
	  AND d.deptype OPERATOR(pg_catalog.=) 'n';
	IF dependents IS NOT NULL THEN
		RAISE EXCEPTION 'cannot update state_msg.ingest() while other objects depend on it'
			USING ERRCODE = 'dependent_objects_still_exist',
				  DETAIL = pg_catalog.format('Release 1.1 adds arguments to it, which drops and creates it again; depending on it: %s.', dependents),
				  HINT = 'Drop those objects, update the extension, then create them again.';
	END IF;

	SELECT pg_catalog.string_agg(pg_catalog.format('GRANT EXECUTE ON FUNCTION state_msg.ingest TO %s;',
							 CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
							 ELSE pg_catalog.quote_ident(r.rolname) END),
								 ' ' ORDER BY 1)
	INTO grants
	FROM pg_catalog.pg_proc p,
		 LATERAL pg_catalog.aclexplode(p.proacl) a
		 LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) a.grantee
	WHERE p.oid OPERATOR(pg_catalog.=) old_ingest
	  AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
	  AND (r.rolname IS NULL OR r.rolname OPERATOR(pg_catalog.<>) 'state_msg_writer');
	IF grants IS NOT NULL THEN
		RAISE WARNING 'grants on state_msg.ingest() are not carried over to its 1.1 arguments'
			USING DETAIL = 'The function is created again with the extension''s own grants only.',
				  HINT = pg_catalog.format('Grant them again once the update is done: %s', grants);
	END IF;
END
$$;

DROP FUNCTION state_msg.ingest(text, bigint, integer, text, integer,
	timestamptz, integer, integer, text[], text);

CREATE FUNCTION state_msg.ingest(
	client_id text,
	serial_number bigint,
	topic_type integer,
	topic_id text,
	state_id integer,
	message_time timestamptz,
	topic_id_type integer DEFAULT 0,
	criticality integer DEFAULT 0,
	user_params text[] DEFAULT NULL,
	source text DEFAULT 'mp',
	user_name text DEFAULT NULL,
	user_sid text DEFAULT NULL,
	state_details_type integer DEFAULT NULL,
	state_details text DEFAULT NULL,
	priority integer DEFAULT NULL,
	netbios_name text DEFAULT NULL,
	client_version text DEFAULT NULL)
RETURNS state_msg.verdict
AS 'MODULE_PATHNAME', 'state_msg_ingest'
LANGUAGE C VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION state_msg.ingest(text, bigint, integer, text, integer,
	timestamptz, integer, integer, text[], text, text, text, integer, text,
	integer, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION state_msg.ingest(text, bigint, integer, text, integer,
	timestamptz, integer, integer, text[], text, text, text, integer, text,
	integer, text, text) TO state_msg_writer;
COMMENT ON FUNCTION state_msg.ingest(text, bigint, integer, text, integer,
	timestamptz, integer, integer, text[], text, text, text, integer, text,
	integer, text, text) IS
	'Process one message, as one inbox row would be, and return its verdict';

-- ---------------------------------------------------------------------
-- Resync requests delivered to the clients (issue 8, section 1): a
-- management point claims them, answers a client's policy check, and
-- listens on state_msg_resync
-- ---------------------------------------------------------------------

ALTER TABLE state_msg.resync_requests ADD COLUMN delivered_at timestamptz;
COMMENT ON COLUMN state_msg.resync_requests.delivered_at IS
	'When (engine clock) claim_resync_requests() handed the request to a management point; NULL while undelivered';

-- What claim_resync_requests() looks for, oldest first
CREATE INDEX resync_requests_undelivered ON state_msg.resync_requests (issued_at)
	WHERE completed_at IS NULL AND delivered_at IS NULL;
COMMENT ON INDEX state_msg.resync_requests_undelivered IS
	'The open requests not yet delivered, by issue time, for claim_resync_requests()';

CREATE FUNCTION state_msg.claim_resync_requests(max_requests integer DEFAULT 1000)
RETURNS TABLE (request_id bigint, client_id text,
			   reason state_msg.resync_reason, issued_at timestamptz)
AS 'MODULE_PATHNAME', 'state_msg_claim_resync_requests'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION state_msg.claim_resync_requests(integer) FROM PUBLIC;
COMMENT ON FUNCTION state_msg.claim_resync_requests(integer) IS
	'Hand out resync requests to a management point: one row per client (its newest open request), at most max_requests clients, oldest undelivered request first; marks all the client''s open requests delivered; concurrent callers never get the same client';

CREATE FUNCTION state_msg.pending_resync(client_id text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'state_msg_pending_resync'
LANGUAGE C STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION state_msg.pending_resync(text) FROM PUBLIC;
COMMENT ON FUNCTION state_msg.pending_resync(text) IS
	'A client''s policy check: has it an outstanding resync request (has_open_request()); false for an unknown client';

-- The management point's role ingests and delivers
GRANT EXECUTE ON FUNCTION state_msg.claim_resync_requests(integer),
	state_msg.pending_resync(text)
	TO state_msg_writer, state_msg_operator;
GRANT EXECUTE ON FUNCTION state_msg.pending_resync(text) TO state_msg_reader;

-- ---------------------------------------------------------------------
-- XML reports (issue 7, task report): ingest_report(), rejected_reports,
-- retry_rejected_reports()
-- ---------------------------------------------------------------------

/*
 * Documents rejected whole (not a well-formed report, or over
 * state_msg.max_report_size) under on_bad_message = quarantine, as
 * received, so that retry_rejected_reports() reproduces the call.
 */
CREATE TABLE state_msg.rejected_reports (
	rejected_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	rejected_at timestamptz NOT NULL,
	reason text NOT NULL,
	sqlstate text NOT NULL,
	client_id text,
	received_as text NOT NULL
		CONSTRAINT rejected_reports_received_as_check
		CHECK (received_as OPERATOR(pg_catalog.=) ANY (ARRAY['text', 'bytea'])),
	report bytea NOT NULL
);
SELECT pg_catalog.pg_extension_config_dump('state_msg.rejected_reports', '');
SELECT pg_catalog.pg_extension_config_dump(
	pg_catalog.pg_get_serial_sequence('state_msg.rejected_reports', 'rejected_id'), '');
REVOKE ALL ON state_msg.rejected_reports FROM PUBLIC;
GRANT SELECT ON state_msg.rejected_reports TO state_msg_reader;
COMMENT ON TABLE state_msg.rejected_reports IS
	'XML reports rejected whole by ingest_report() under state_msg.on_bad_message = quarantine (not a well-formed report, or over state_msg.max_report_size), as received; nothing of them was applied';
COMMENT ON COLUMN state_msg.rejected_reports.rejected_id IS
	'Identity, in order of rejection; what retry_rejected_reports() takes';
COMMENT ON COLUMN state_msg.rejected_reports.rejected_at IS
	'When the report was (last) rejected, engine clock';
COMMENT ON COLUMN state_msg.rejected_reports.reason IS
	'Why, with the line of the document where it could be told; quotes nothing of the document';
COMMENT ON COLUMN state_msg.rejected_reports.sqlstate IS
	'The SQLSTATE on_bad_message = error would have raised';
COMMENT ON COLUMN state_msg.rejected_reports.client_id IS
	'The header''s ClientID as given (not normalized), if it could be read; else NULL';
COMMENT ON COLUMN state_msg.rejected_reports.received_as IS
	'text (ingest_report(text): report holds the text''s bytes, in the database encoding) or bytea (ingest_report(bytea): the bytes as received)';
COMMENT ON COLUMN state_msg.rejected_reports.report IS
	'The document as received, byte for byte';

-- One client upload, as sent: the document as text (in the database encoding)
CREATE FUNCTION state_msg.ingest_report(
	report text,
	OUT messages bigint,
	OUT in_order bigint,
	OUT gap bigint,
	OUT late_fill bigint,
	OUT duplicate bigint,
	OUT serial_reset bigint,
	OUT unserialized bigint,
	OUT rejected bigint)
AS 'MODULE_PATHNAME', 'state_msg_ingest_report_text'
LANGUAGE C VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION state_msg.ingest_report(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION state_msg.ingest_report(text) TO state_msg_writer;
COMMENT ON FUNCTION state_msg.ingest_report(text) IS
	'Process one client XML report (an upload), handed over as text (its encoding declaration is ignored), as one batch: returns the StateMessage elements found and the count of each verdict; a document that is not a well-formed report goes to rejected_reports (or fails, per state_msg.on_bad_message)';

-- One client upload, as sent: the bytes as received (UTF-8 or UTF-16)
CREATE FUNCTION state_msg.ingest_report(
	report bytea,
	OUT messages bigint,
	OUT in_order bigint,
	OUT gap bigint,
	OUT late_fill bigint,
	OUT duplicate bigint,
	OUT serial_reset bigint,
	OUT unserialized bigint,
	OUT rejected bigint)
AS 'MODULE_PATHNAME', 'state_msg_ingest_report_bytea'
LANGUAGE C VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION state_msg.ingest_report(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION state_msg.ingest_report(bytea) TO state_msg_writer;
COMMENT ON FUNCTION state_msg.ingest_report(bytea) IS
	'Process one client XML report (an upload), the bytes as received (UTF-8 or UTF-16 LE/BE, with or without a byte order mark), as one batch: returns the StateMessage elements found and the count of each verdict; a document that is not a well-formed report goes to rejected_reports (or fails, per state_msg.on_bad_message)';

-- Resubmit rejected reports, each as the call it was.
CREATE FUNCTION state_msg.retry_rejected_reports(
	rejected_ids bigint[],
	OUT resubmitted bigint,
	OUT still_rejected bigint,
	OUT messages bigint,
	OUT in_order bigint,
	OUT gap bigint,
	OUT late_fill bigint,
	OUT duplicate bigint,
	OUT serial_reset bigint,
	OUT unserialized bigint,
	OUT rejected bigint)
AS 'MODULE_PATHNAME', 'state_msg_retry_rejected_reports'
LANGUAGE C VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION state_msg.retry_rejected_reports(bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION state_msg.retry_rejected_reports(bigint[]) TO state_msg_operator;
COMMENT ON FUNCTION state_msg.retry_rejected_reports(bigint[]) IS
	'Process the given rejected_reports rows again, in rejected_id order, each as one batch as ingest_report() would: reports that now pass are processed and deleted, those that still fail stay with a fresh reason, sqlstate and rejected_at; unknown ids are ignored; returns the reports resubmitted and still rejected, then the messages of the resubmitted ones and the count of each verdict';

-- Retention covers rejected reports too: purge() gains a count of them.
DROP FUNCTION state_msg.purge();
CREATE FUNCTION state_msg.purge(
	OUT completed_requests bigint,
	OUT rejected_messages bigint,
	OUT rejected_reports bigint)
AS 'MODULE_PATHNAME', 'state_msg_purge'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION state_msg.purge() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION state_msg.purge() TO state_msg_operator;
COMMENT ON FUNCTION state_msg.purge() IS
	'Delete completed resync requests completed more than state_msg.keep_completed_requests ago, and rejected rows and rejected reports rejected more than state_msg.keep_rejected_messages ago (engine clock); outstanding requests are kept; returns the counts';

-- ---------------------------------------------------------------------
-- State names catalog and per-client reports (issue 7, task "names")
-- ---------------------------------------------------------------------

/*
 * The names of states, as ConfigMgr's v_StateNames, which users extend and
 * correct.  What the user wrote must survive pg_dump/pg_restore and
 * extension updates, and an update must still add newly shipped names.  A
 * single config-dumped table cannot do both: pg_dump with a WHERE filter
 * dumps only the user's rows, but a user's edit of a shipped row has the
 * key of a row CREATE EXTENSION inserts again before the dump's data is
 * restored, so the restore collides (and without a filter every shipped
 * row collides).  So the catalog is two tables and a view:
 *
 * - shipped_state_names: the names a release ships.  Its scripts fill it
 *   (a later release adds or corrects names with INSERT ... ON CONFLICT
 *   (topic_type, state_id) DO UPDATE); pg_dump does not dump it, because
 *   CREATE EXTENSION fills it on restore.  Nobody else writes it.
 * - user_state_names: what users wrote, config-dumped whole: their
 *   additions and edits (deleted = false, a whole row that wins over a
 *   shipped row of the same key) and their deletions of shipped names
 *   (deleted = true, a tombstone).  Its keys never meet the shipped table's
 *   on restore, since they are different tables.
 * - state_names: the user's rows, then every shipped row the user did not
 *   touch; INSTEAD OF triggers turn INSERT, UPDATE and DELETE on it into
 *   writes of user_state_names.
 *
 * The trigger function runs with the caller's rights (not SECURITY
 * DEFINER): writing names needs INSERT, UPDATE or DELETE on the view and
 * the matching rights on user_state_names, which state_msg_operator has,
 * and it gives nobody more than that.  Its search_path is pinned and every
 * name and operator is qualified all the same.
 */
CREATE TABLE state_msg.shipped_state_names (
	topic_type integer NOT NULL,
	state_id integer NOT NULL,
	state_name text NOT NULL,
	state_description text,
	PRIMARY KEY (topic_type, state_id)
);
COMMENT ON TABLE state_msg.shipped_state_names IS
	'The state names this release ships (filled by the extension''s scripts, not dumped: CREATE EXTENSION fills it); state_names shows them unless a user changed or deleted them';
COMMENT ON COLUMN state_msg.shipped_state_names.topic_type IS
	'The topic type (500 update detection, 402 CI enforcement, ...)';
COMMENT ON COLUMN state_msg.shipped_state_names.state_id IS
	'The state id within the topic type';
COMMENT ON COLUMN state_msg.shipped_state_names.state_name IS
	'The state''s name, as ConfigMgr''s v_StateNames.StateName';
COMMENT ON COLUMN state_msg.shipped_state_names.state_description IS
	'A description, where there is more to say than the name (mostly NULL)';

CREATE TABLE state_msg.user_state_names (
	topic_type integer NOT NULL,
	state_id integer NOT NULL,
	state_name text,
	state_description text,
	deleted boolean NOT NULL DEFAULT false,
	PRIMARY KEY (topic_type, state_id),
	CHECK ((state_name IS NULL) OPERATOR(pg_catalog.=) deleted),
	CHECK (NOT deleted OR state_description IS NULL)
);
SELECT pg_catalog.pg_extension_config_dump('state_msg.user_state_names', '');
COMMENT ON TABLE state_msg.user_state_names IS
	'What users wrote to state_names (dumped by pg_dump, kept by updates): added and edited names, which win over shipped ones, and deleted shipped names (deleted = true); deleting a row here returns a name to its shipped version';
COMMENT ON COLUMN state_msg.user_state_names.topic_type IS
	'The topic type';
COMMENT ON COLUMN state_msg.user_state_names.state_id IS
	'The state id within the topic type';
COMMENT ON COLUMN state_msg.user_state_names.state_name IS
	'The name the user gave; NULL for a deleted shipped name';
COMMENT ON COLUMN state_msg.user_state_names.state_description IS
	'The description the user gave';
COMMENT ON COLUMN state_msg.user_state_names.deleted IS
	'true: the user deleted the shipped name of this key (a tombstone, which also hides names later releases ship for it)';

/*
 * The known names (state_names.csv of the domain reference): topic
 * type 401 states 5 to 7 are named differently by two public sources, so
 * their description says so; 700/2 is this project's own.
 */
INSERT INTO state_msg.shipped_state_names
	(topic_type, state_id, state_name, state_description)
VALUES
	(300, 0, 'Compliance state unknown', NULL),
	(300, 1, 'Compliant', NULL),
	(300, 2, 'Non-compliant', NULL),
	(300, 3, 'Conflict detected', NULL),
	(301, 0, 'Enforcement state unknown', NULL),
	(301, 1, 'Installing update(s)', NULL),
	(301, 2, 'Waiting for restart', NULL),
	(301, 3, 'Waiting for another installation to complete', NULL),
	(301, 4, 'Successfully installed update(s)', NULL),
	(301, 5, 'Pending system restart', NULL),
	(301, 6, 'Failed to install update(s)', NULL),
	(301, 7, 'Downloading update(s)', NULL),
	(301, 8, 'Downloaded update(s)', NULL),
	(301, 9, 'Failed to download update(s)', NULL),
	(301, 10, 'Waiting for maintenance window before installing', NULL),
	(301, 11, 'Waiting for third-party orchestration', NULL),
	(301, 12, 'Waiting for superseding update', NULL),
	(302, 0, 'Evaluation state unknown', NULL),
	(302, 1, 'Evaluation activated', NULL),
	(302, 2, 'Evaluation succeeded', NULL),
	(302, 3, 'Evaluation failed', NULL),
	(400, 0, 'Detection state unknown', NULL),
	(400, 1, 'Not required', NULL),
	(400, 2, 'Not detected', NULL),
	(400, 3, 'Detected', NULL),
	(401, 0, 'Compliance state unknown', NULL),
	(401, 1, 'Compliant', NULL),
	(401, 2, 'Non-compliant', NULL),
	(401, 3, 'Conflict detected', NULL),
	(401, 4, 'Error', NULL),
	(401, 5, 'Not applicable', 'Named differently by the public sources; edit it to match your site'),
	(401, 6, 'Not detected', 'Named differently by the public sources; edit it to match your site'),
	(401, 7, 'Enforced', 'Named differently by the public sources; edit it to match your site'),
	(402, 0, 'Enforcement state unknown', NULL),
	(402, 1, 'Enforcement started', NULL),
	(402, 2, 'Enforcement waiting for content', NULL),
	(402, 3, 'Waiting for another installation to complete', NULL),
	(402, 4, 'Waiting for maintenance window before installing', NULL),
	(402, 5, 'Restart required before installing', NULL),
	(402, 6, 'General failure', NULL),
	(402, 7, 'Pending installation', NULL),
	(402, 8, 'Installing update', NULL),
	(402, 9, 'Pending system restart', NULL),
	(402, 10, 'Successfully installed update', NULL),
	(402, 11, 'Failed to install update', NULL),
	(402, 12, 'Downloading update', NULL),
	(402, 13, 'Downloaded update', NULL),
	(402, 14, 'Failed to download update', NULL),
	(500, 0, 'Detection state unknown', NULL),
	(500, 1, 'Update is not required', NULL),
	(500, 2, 'Update is required', NULL),
	(500, 3, 'Update is installed', NULL),
	(501, 0, 'Scan state unknown', NULL),
	(501, 1, 'Scan is waiting for content', NULL),
	(501, 2, 'Scan is running', NULL),
	(501, 3, 'Scan completed', NULL),
	(501, 4, 'Scan is pending retry', NULL),
	(501, 5, 'Scan failed', NULL),
	(501, 6, 'Scan completed with errors', NULL),
	(700, 2, 'Resynchronization complete', 'state_msg''s own (not ConfigMgr''s): the resync-complete message that ends a client''s resynchronization answer'),
	(800, 100, 'Client deployment started', NULL),
	(800, 101, 'Waiting for download', NULL),
	(800, 102, 'Deployment scheduled', NULL),
	(800, 103, 'Waiting for the window before deploying', NULL),
	(800, 104, 'Deployment skipped', NULL),
	(800, 301, 'Client deployment failed: unknown failure', NULL),
	(800, 302, 'Client deployment failed: ccmsetup service could not be created', NULL),
	(800, 303, 'Client deployment failed: ccmsetup service could not be deleted', NULL),
	(800, 304, 'Client deployment failed: file-based write filter', NULL),
	(800, 305, 'Client deployment failed: native mode not supported on this operating system', NULL),
	(800, 306, 'Client deployment failed: download process failed', NULL),
	(800, 307, 'Client deployment failed: bad command line', NULL),
	(800, 308, 'Client deployment failed: WinHTTP download failed', NULL),
	(800, 309, 'Client deployment failed: BITS download failed', NULL),
	(800, 310, 'Client deployment failed: BITS installation failed', NULL),
	(800, 311, 'Client deployment failed: prerequisite not signed by Microsoft', NULL),
	(800, 312, 'Client deployment failed: disk full', NULL),
	(800, 313, 'Client deployment failed: client.msi installation error', NULL),
	(800, 314, 'Client deployment failed: ccmsetup.xml error', NULL),
	(800, 315, 'Client deployment failed: client certificate error', NULL),
	(800, 316, 'Client deployment failed: prerequisite not signed by Microsoft', NULL),
	(800, 317, 'Client deployment failed: restart required', NULL),
	(800, 318, 'Client deployment failed: management point and client versions do not match', NULL),
	(800, 319, 'Client deployment failed: operating system or service pack not supported', NULL),
	(800, 320, 'Client deployment failed: deployment not supported', NULL),
	(800, 321, 'Client deployment failed: BITS missing', NULL),
	(800, 322, 'Client deployment failed: source folder unavailable', NULL),
	(800, 323, 'Client deployment failed: App-V not supported', NULL),
	(800, 324, 'Client deployment failed: incorrect site version', NULL),
	(800, 325, 'Client deployment failed: prerequisite hash mismatch', NULL),
	(800, 326, 'Client deployment failed: MDM deregistration failed', NULL),
	(800, 327, 'Client deployment failed: MDM registration detected', NULL),
	(800, 328, 'Client deployment failed: Intune detected', NULL),
	(800, 329, 'Client deployment failed: metered network', NULL),
	(800, 400, 'Client deployment succeeded', NULL),
	(800, 401, 'Client deployment succeeded: restart required', NULL),
	(800, 402, 'Client deployment succeeded: restarted', NULL),
	(800, 500, 'Client assignment started', NULL),
	(800, 601, 'Client assignment failed: unknown failure', NULL),
	(800, 602, 'Client assignment failed: invalid site code', NULL),
	(800, 603, 'Client assignment failed: could not assign to management point', NULL),
	(800, 604, 'Client assignment failed: no default management point', NULL),
	(800, 605, 'Client assignment failed: site signing certificate', NULL),
	(800, 606, 'Client assignment failed: site code auto-discovery failed', NULL),
	(800, 607, 'Client assignment failed: client version higher than site', NULL),
	(800, 608, 'Client assignment failed: site version from directory or locator', NULL),
	(800, 609, 'Client assignment failed: client version', NULL),
	(800, 700, 'Client assignment succeeded', NULL),
	(810, 100, 'Co-management enrollment status', NULL),
	(810, 101, 'Co-management enrollment scheduled', NULL),
	(810, 102, 'Co-management enrollment canceled', NULL),
	(810, 105, 'Co-management enrollment started', NULL),
	(810, 106, 'Co-management enrollment succeeded: not provisioned', NULL),
	(810, 107, 'Co-management enrollment succeeded and provisioned', NULL),
	(810, 108, 'Co-management enrollment: no active user', NULL),
	(810, 110, 'Co-management enrollment failed', NULL),
	(1000, 1, 'Client is communicating with the management point', NULL),
	(1000, 2, 'Client failed to communicate with the management point', NULL),
	(1001, 1, 'Client retrieved certificate from local store', NULL),
	(1001, 2, 'Client failed to retrieve certificate from local store', NULL),
	(1100, 1, 'Client not ready for native mode', NULL),
	(1100, 2, 'Client ready for native mode', NULL),
	(1300, 1, 'Client health: success', NULL),
	(1300, 2, 'Client health: not successful', NULL),
	(1600, 1, 'User affinity set', NULL),
	(1600, 2, 'User affinity removed', NULL),
	(1660, 1, 'Sensor off', NULL),
	(1660, 2, 'Sensor on', NULL),
	(2001, 1, 'Endpoint protection: unmanaged', NULL),
	(2001, 2, 'Endpoint protection: waiting for install', NULL),
	(2001, 3, 'Endpoint protection: managed', NULL),
	(2001, 4, 'Endpoint protection: install failed', NULL),
	(2001, 5, 'Endpoint protection: reboot pending', NULL),
	(2001, 6, 'Endpoint protection: not supported', NULL),
	(2001, 7, 'Endpoint protection: co-managed', NULL),
	(2002, 1, 'Endpoint protection policy application succeeded', NULL),
	(2002, 2, 'Endpoint protection policy application failed', NULL),
	(2003, 1, 'Client action not applicable', NULL),
	(2003, 2, 'Client action failed', NULL),
	(2003, 3, 'Client action succeeded', NULL);

-- The catalog: the user's names, then the shipped names the user left alone
CREATE VIEW state_msg.state_names AS
SELECT u.topic_type, u.state_id, u.state_name, u.state_description
FROM state_msg.user_state_names u
WHERE NOT u.deleted
UNION ALL
SELECT s.topic_type, s.state_id, s.state_name, s.state_description
FROM state_msg.shipped_state_names s
WHERE NOT EXISTS (SELECT FROM state_msg.user_state_names u
				  WHERE u.topic_type OPERATOR(pg_catalog.=) s.topic_type
					AND u.state_id OPERATOR(pg_catalog.=) s.state_id);
COMMENT ON VIEW state_msg.state_names IS
	'The state names catalog (ConfigMgr''s v_StateNames): the shipped names, as users added, edited and deleted them; INSERT, UPDATE and DELETE write user_state_names';
COMMENT ON COLUMN state_msg.state_names.topic_type IS
	'The topic type (500 update detection, 402 CI enforcement, ...)';
COMMENT ON COLUMN state_msg.state_names.state_id IS
	'The state id within the topic type';
COMMENT ON COLUMN state_msg.state_names.state_name IS
	'The state''s name';
COMMENT ON COLUMN state_msg.state_names.state_description IS
	'A description, or NULL';

/*
 * INSERT, UPDATE and DELETE on state_names, as they would act on a table
 * with the key (topic_type, state_id) and state_name NOT NULL:
 * - INSERT of a key state_names shows already fails (23505); otherwise the
 *   row becomes the user's (replacing a tombstone of a deleted shipped name).
 * - UPDATE writes the whole new row as the user's; a key cannot change
 *   (0A000: delete the row and insert the new one).
 * - DELETE of a shipped name leaves a tombstone, of a user's own name
 *   removes it.
 * A row concurrently deleted by another transaction is not updated or
 * deleted again (the statement counts it as not affected).
 */
CREATE FUNCTION state_msg.state_names_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	touched bigint;
BEGIN
	IF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
		IF EXISTS (SELECT FROM state_msg.shipped_state_names s
				   WHERE s.topic_type OPERATOR(pg_catalog.=) OLD.topic_type
					 AND s.state_id OPERATOR(pg_catalog.=) OLD.state_id) THEN
			INSERT INTO state_msg.user_state_names AS u
				(topic_type, state_id, state_name, state_description, deleted)
			VALUES (OLD.topic_type, OLD.state_id, NULL, NULL, true)
			ON CONFLICT (topic_type, state_id) DO UPDATE
				SET state_name = NULL, state_description = NULL, deleted = true
				WHERE NOT u.deleted;
		ELSE
			DELETE FROM state_msg.user_state_names u
			WHERE u.topic_type OPERATOR(pg_catalog.=) OLD.topic_type
			  AND u.state_id OPERATOR(pg_catalog.=) OLD.state_id
			  AND NOT u.deleted;
		END IF;
		GET DIAGNOSTICS touched = ROW_COUNT;
		IF touched OPERATOR(pg_catalog.=) 0 THEN
			RETURN NULL;
		END IF;
		RETURN OLD;
	END IF;

	IF NEW.topic_type IS NULL OR NEW.state_id IS NULL OR NEW.state_name IS NULL THEN
		RAISE EXCEPTION 'null value in column "%" of view "state_names"',
			CASE WHEN NEW.topic_type IS NULL THEN 'topic_type'
				 WHEN NEW.state_id IS NULL THEN 'state_id'
				 ELSE 'state_name' END
			USING ERRCODE = 'not_null_violation';
	END IF;

	IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
		IF NEW.topic_type OPERATOR(pg_catalog.<>) OLD.topic_type
		   OR NEW.state_id OPERATOR(pg_catalog.<>) OLD.state_id THEN
			RAISE EXCEPTION 'cannot change the topic_type or state_id of a state name'
				USING ERRCODE = 'feature_not_supported',
					  HINT = 'Delete the name and insert one with the new key.';
		END IF;
		INSERT INTO state_msg.user_state_names AS u
			(topic_type, state_id, state_name, state_description, deleted)
		VALUES (NEW.topic_type, NEW.state_id, NEW.state_name, NEW.state_description, false)
		ON CONFLICT (topic_type, state_id) DO UPDATE
			SET state_name = EXCLUDED.state_name,
				state_description = EXCLUDED.state_description
			WHERE NOT u.deleted;
		GET DIAGNOSTICS touched = ROW_COUNT;
		IF touched OPERATOR(pg_catalog.=) 0 THEN
			RETURN NULL;
		END IF;
		RETURN NEW;
	END IF;

	-- INSERT: over a tombstone, or a key nobody has
	UPDATE state_msg.user_state_names u
	SET state_name = NEW.state_name, state_description = NEW.state_description,
		deleted = false
	WHERE u.topic_type OPERATOR(pg_catalog.=) NEW.topic_type
	  AND u.state_id OPERATOR(pg_catalog.=) NEW.state_id
	  AND u.deleted;
	IF NOT FOUND THEN
		IF EXISTS (SELECT FROM state_msg.user_state_names u
				   WHERE u.topic_type OPERATOR(pg_catalog.=) NEW.topic_type
					 AND u.state_id OPERATOR(pg_catalog.=) NEW.state_id)
		   OR EXISTS (SELECT FROM state_msg.shipped_state_names s
					  WHERE s.topic_type OPERATOR(pg_catalog.=) NEW.topic_type
						AND s.state_id OPERATOR(pg_catalog.=) NEW.state_id) THEN
			RAISE EXCEPTION 'state name for topic type % and state id % already exists',
				NEW.topic_type, NEW.state_id
				USING ERRCODE = 'unique_violation',
					  HINT = 'Use UPDATE to change it.';
		END IF;
		-- a concurrent insert of the same key makes this fail with 23505 too
		INSERT INTO state_msg.user_state_names
			(topic_type, state_id, state_name, state_description, deleted)
		VALUES (NEW.topic_type, NEW.state_id, NEW.state_name, NEW.state_description, false);
	END IF;
	RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION state_msg.state_names_write() FROM PUBLIC;
COMMENT ON FUNCTION state_msg.state_names_write() IS
	'Trigger function of state_names (INSTEAD OF INSERT, UPDATE, DELETE): writes the user''s additions, edits and deletions (tombstones) to user_state_names, with the caller''s rights';

CREATE TRIGGER state_names_write
	INSTEAD OF INSERT OR UPDATE OR DELETE ON state_msg.state_names
	FOR EACH ROW EXECUTE FUNCTION state_msg.state_names_write();
COMMENT ON TRIGGER state_names_write ON state_msg.state_names IS
	'Turns INSERT, UPDATE and DELETE on state_names into writes of user_state_names';

-- ConfigMgr's v_StateNames, its column names folded to lower case
CREATE VIEW state_msg.v_statenames AS
SELECT n.topic_type AS topictype,
	   n.state_id AS stateid,
	   n.state_name AS statename,
	   n.state_description AS statedescription
FROM state_msg.state_names n;
COMMENT ON VIEW state_msg.v_statenames IS
	'ConfigMgr''s v_StateNames over state_names, its column names folded to lower case, so unquoted ConfigMgr queries run unchanged (read only)';
COMMENT ON COLUMN state_msg.v_statenames.topictype IS 'TopicType (state_names.topic_type)';
COMMENT ON COLUMN state_msg.v_statenames.stateid IS 'StateID (state_names.state_id)';
COMMENT ON COLUMN state_msg.v_statenames.statename IS 'StateName (state_names.state_name)';
COMMENT ON COLUMN state_msg.v_statenames.statedescription IS 'StateDescription (state_names.state_description)';

REVOKE ALL ON state_msg.shipped_state_names, state_msg.user_state_names,
	state_msg.state_names, state_msg.v_statenames FROM PUBLIC;
GRANT SELECT ON state_msg.shipped_state_names, state_msg.user_state_names,
	state_msg.state_names, state_msg.v_statenames TO state_msg_reader;
GRANT INSERT, UPDATE, DELETE ON state_msg.state_names, state_msg.user_state_names
	TO state_msg_operator;

/*
 * The one definition of an enforcement failure: a CI enforcement (402)
 * state of 6 (general failure), 11 (failed to install) or 14 (failed to
 * download).  client_compliance.failed and update_compliance's
 * enforcement_failed both count with it.  SQL, immutable and without SET,
 * so the planner inlines it into state_id = ANY ('{6,11,14}').
 */
CREATE FUNCTION state_msg.is_enforcement_failure(state_id integer)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN state_id OPERATOR(pg_catalog.=) ANY ('{6,11,14}'::integer[]);
REVOKE ALL ON FUNCTION state_msg.is_enforcement_failure(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION state_msg.is_enforcement_failure(integer) TO state_msg_reader;
COMMENT ON FUNCTION state_msg.is_enforcement_failure(integer) IS
	'Is a CI enforcement (topic type 402) state a failure: 6 general failure, 11 failed to install, 14 failed to download';

/*
 * Per client, from its current states: updates required (500/2) and
 * installed (500/3), and CI enforcements (402) whose current state is a
 * failure.  Every client is listed, with zeros if it sent none of these.
 * A lateral subquery per client reads that client's 402 and 500 rows
 * through client_state's primary key, so a query for one client probes
 * clients' primary key and then client_state's, and reads nothing else.
 */
CREATE VIEW state_msg.client_compliance AS
SELECT c.client_id, c.netbios_name, s.required, s.installed, s.failed
FROM state_msg.clients c
CROSS JOIN LATERAL (
	SELECT pg_catalog.count(*) FILTER (
			   WHERE cs.topic_type OPERATOR(pg_catalog.=) 500
				 AND cs.state_id OPERATOR(pg_catalog.=) 2) AS required,
		   pg_catalog.count(*) FILTER (
			   WHERE cs.topic_type OPERATOR(pg_catalog.=) 500
				 AND cs.state_id OPERATOR(pg_catalog.=) 3) AS installed,
		   pg_catalog.count(*) FILTER (
			   WHERE cs.topic_type OPERATOR(pg_catalog.=) 402
				 AND state_msg.is_enforcement_failure(cs.state_id)) AS failed
	FROM state_msg.client_state cs
	WHERE cs.client_id OPERATOR(pg_catalog.=) c.client_id
	  AND cs.topic_type OPERATOR(pg_catalog.=) ANY ('{402,500}'::integer[])) AS s;
REVOKE ALL ON state_msg.client_compliance FROM PUBLIC;
GRANT SELECT ON state_msg.client_compliance TO state_msg_reader;
COMMENT ON VIEW state_msg.client_compliance IS
	'Per client (with its NetBIOS name), from its current states: updates required (500/2), installed (500/3) and failed (402 enforcements whose state is_enforcement_failure()); every client, zeros included';
COMMENT ON COLUMN state_msg.client_compliance.client_id IS
	'The client (clients.client_id)';
COMMENT ON COLUMN state_msg.client_compliance.netbios_name IS
	'The client''s NetBIOS name, the latest it reported (clients.netbios_name)';
COMMENT ON COLUMN state_msg.client_compliance.required IS
	'Updates whose current detection state (topic type 500) is 2, required';
COMMENT ON COLUMN state_msg.client_compliance.installed IS
	'Updates whose current detection state (topic type 500) is 3, installed';
COMMENT ON COLUMN state_msg.client_compliance.failed IS
	'CI enforcements (topic type 402) whose current state is a failure (6, 11 or 14; is_enforcement_failure())';

/*
 * Clients silent for at least silent_for: judged by last_processed_time,
 * the engine clock when a batch last processed a message of the client
 * (any verdict but rejected), against the engine clock now.  Both are the
 * server's clock: last_message_time is the client's own clock (and only
 * for serialized messages), so a skewed or relayed client would look
 * silent or alive wrongly.  A clients row without a processed message
 * (none the engine writes: rows inserted by hand) is listed too, with
 * NULL times.  Caller's rights: readers read clients.
 */
CREATE FUNCTION state_msg.unknown_clients(silent_for interval DEFAULT '7 days')
RETURNS TABLE (client_id text, netbios_name text, last_processed_time timestamptz,
			   silent interval)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	clock_now timestamptz := state_msg.engine_now();
BEGIN
	IF silent_for IS NULL THEN
		RAISE EXCEPTION 'silent_for must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF silent_for OPERATOR(pg_catalog.<) interval '0' THEN
		RAISE EXCEPTION 'silent_for must not be negative'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
	SELECT c.client_id::text, c.netbios_name, c.last_processed_time,
		   clock_now OPERATOR(pg_catalog.-) c.last_processed_time
	FROM state_msg.clients c
	WHERE c.last_processed_time IS NULL
	   OR c.last_processed_time OPERATOR(pg_catalog.<=) (clock_now OPERATOR(pg_catalog.-) silent_for)
	ORDER BY c.last_processed_time NULLS FIRST, c.client_id;
END
$$;
REVOKE ALL ON FUNCTION state_msg.unknown_clients(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION state_msg.unknown_clients(interval) TO state_msg_reader;
COMMENT ON FUNCTION state_msg.unknown_clients(interval) IS
	'Clients with no message processed for at least silent_for (default 7 days) by the engine clock, and clients without any: client_id, netbios_name, last_processed_time, silent (engine clock minus it); longest silent first';

-- ---------------------------------------------------------------------
-- Live summaries (issue 7, section 3; engineer summaries): count deltas
-- ---------------------------------------------------------------------

/*
 * state_counts holds, per (topic type, topic id, state id), deltas of the
 * number of clients whose current state it is: every batch inserts, in its
 * own transaction, the net change its client_state writes made (+1 for a
 * new current state, -1 for the state it replaced), and never updates a
 * row, so concurrent batches never wait for one another here.  The sum of
 * a key's rows is its exact count in every snapshot.  Compaction
 * (compact_state_counts()) folds the rows into one per key.  No index:
 * compaction keeps the table at about one row per key, read whole.
 */
CREATE TABLE state_msg.state_counts (
	topic_type integer NOT NULL,
	topic_id text COLLATE "C" NOT NULL,
	state_id integer NOT NULL,
	clients bigint NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 10000,
		autovacuum_analyze_scale_factor = 0.0, autovacuum_analyze_threshold = 10000);
COMMENT ON TABLE state_msg.state_counts IS
	'Live summaries: per (topic_type, topic_id, state_id), deltas of the number of clients in that state; the sum of a key''s rows is exact in every snapshot (while state_counts_stale is empty)';
COMMENT ON COLUMN state_msg.state_counts.topic_type IS 'The topic type';
COMMENT ON COLUMN state_msg.state_counts.topic_id IS 'The topic id';
COMMENT ON COLUMN state_msg.state_counts.state_id IS 'The state id';
COMMENT ON COLUMN state_msg.state_counts.clients IS
	'Change in the number of clients whose current state of the topic is state_id (+ new, - replaced or forgotten)';

/*
 * A row here says state_counts missed changes: a batch or a forget ran with
 * state_msg.live_summaries off.  The summary views then count client_state
 * directly until state_msg.rebuild_state_counts() rebuilds the counts.
 */
CREATE TABLE state_msg.state_counts_stale (
	marked_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	marked_by name NOT NULL DEFAULT SESSION_USER
);
COMMENT ON TABLE state_msg.state_counts_stale IS
	'Non-empty when state_counts missed changes made with state_msg.live_summaries off: the summary views then count client_state directly (exact, slow) until rebuild_state_counts()';
COMMENT ON COLUMN state_msg.state_counts_stale.marked_at IS
	'When the first change without counts was made (transaction start)';
COMMENT ON COLUMN state_msg.state_counts_stale.marked_by IS
	'The session user who made it';

SELECT pg_catalog.pg_extension_config_dump('state_msg.state_counts', '');
SELECT pg_catalog.pg_extension_config_dump('state_msg.state_counts_stale', '');

-- The counts of what 1.0 stored (writers are held off meanwhile)
LOCK TABLE state_msg.client_state IN SHARE MODE;
INSERT INTO state_msg.state_counts (topic_type, topic_id, state_id, clients)
SELECT s.topic_type, s.topic_id, s.state_id, pg_catalog.count(*)
FROM state_msg.client_state s
GROUP BY s.topic_type, s.topic_id, s.state_id;

-- Fold the deltas into one row per key; NULL if another compaction runs
CREATE FUNCTION state_msg.compact_state_counts()
RETURNS bigint
AS 'MODULE_PATHNAME', 'state_msg_compact_state_counts'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION state_msg.compact_state_counts() FROM PUBLIC;
COMMENT ON FUNCTION state_msg.compact_state_counts() IS
	'Fold the rows of state_counts into one per key (keys summing to 0 go), in one statement, unless another compaction runs (then NULL, at once); returns the rows folded; READ COMMITTED only';

-- Recount from client_state, holding writers off briefly
CREATE FUNCTION state_msg.rebuild_state_counts()
RETURNS bigint
AS 'MODULE_PATHNAME', 'state_msg_rebuild_state_counts'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION state_msg.rebuild_state_counts() FROM PUBLIC;
COMMENT ON FUNCTION state_msg.rebuild_state_counts() IS
	'Recount state_counts from client_state and clear state_counts_stale, holding writers of client_state off meanwhile; returns the number of keys; READ COMMITTED only';

/*
 * TRUNCATE of client_state (which fires no delete trigger) leaves no state
 * to count: the counts go with it, and are exact again.
 */
CREATE FUNCTION state_msg.truncate_state_counts()
RETURNS trigger
AS 'MODULE_PATHNAME', 'state_msg_truncate_state_counts'
LANGUAGE C SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION state_msg.truncate_state_counts() FROM PUBLIC;
COMMENT ON FUNCTION state_msg.truncate_state_counts() IS
	'Trigger: TRUNCATE of client_state empties state_counts and state_counts_stale (internal)';
CREATE TRIGGER truncate_state_counts
	AFTER TRUNCATE ON state_msg.client_state
	FOR EACH STATEMENT EXECUTE FUNCTION state_msg.truncate_state_counts();
COMMENT ON TRIGGER truncate_state_counts ON state_msg.client_state IS
	'TRUNCATE of client_state empties the live summaries'' counts';

GRANT EXECUTE ON FUNCTION state_msg.compact_state_counts(),
	state_msg.rebuild_state_counts()
	TO state_msg_operator;
GRANT SELECT ON state_msg.state_counts, state_msg.state_counts_stale TO state_msg_reader;

/*
 * A count of client_state per key: what the counts must sum to, and what
 * the views show while the counts are stale.  Not inlined (SET): the views
 * call it behind a one-time test of the stale mark, so it runs only then
 * (inlined, a parallel plan would start its workers even when it does not).
 */
CREATE FUNCTION state_msg.count_client_state(
	OUT topic_type integer, OUT topic_id text, OUT state_id integer,
	OUT clients bigint)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
ROWS 2000
AS $$
	SELECT s.topic_type, s.topic_id, s.state_id, pg_catalog.count(*)
	FROM state_msg.client_state s
	GROUP BY s.topic_type, s.topic_id, s.state_id
$$;
REVOKE ALL ON FUNCTION state_msg.count_client_state() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION state_msg.count_client_state() TO state_msg_reader;
COMMENT ON FUNCTION state_msg.count_client_state() IS
	'Clients per (topic_type, topic_id, state_id) of their current state, counted in client_state (reads it all)';

/*
 * The current counts: the sum of each key's deltas, or, while the counts
 * are marked stale, a count of client_state itself (exact, but it reads the
 * whole table).  Both branches test the mark in the query's one snapshot,
 * so exactly one of them runs.
 */
CREATE VIEW state_msg.current_state_counts AS
SELECT k.topic_type, k.topic_id, k.state_id,
	   pg_catalog.sum(k.clients)::pg_catalog.int8 AS clients
FROM state_msg.state_counts k
WHERE NOT EXISTS (SELECT FROM state_msg.state_counts_stale)
GROUP BY k.topic_type, k.topic_id, k.state_id
HAVING pg_catalog.sum(k.clients) OPERATOR(pg_catalog.<>) 0
UNION ALL
SELECT s.topic_type, s.topic_id, s.state_id, s.clients
FROM state_msg.count_client_state() s
WHERE EXISTS (SELECT FROM state_msg.state_counts_stale);
COMMENT ON VIEW state_msg.current_state_counts IS
	'Clients per (topic_type, topic_id, state_id) of their current state: the sum of state_counts, or while state_counts_stale is not empty a count of client_state';
COMMENT ON COLUMN state_msg.current_state_counts.topic_type IS 'The topic type';
COMMENT ON COLUMN state_msg.current_state_counts.topic_id IS 'The topic id';
COMMENT ON COLUMN state_msg.current_state_counts.state_id IS 'The state id';
COMMENT ON COLUMN state_msg.current_state_counts.clients IS
	'Clients whose current state of the topic is state_id (never 0)';

-- Per topic, clients per state, with the state's name
CREATE VIEW state_msg.topic_state_summary AS
SELECT c.topic_type, c.topic_id, c.state_id, n.state_name, c.clients
FROM state_msg.current_state_counts c
LEFT JOIN state_msg.state_names n
	   ON n.topic_type OPERATOR(pg_catalog.=) c.topic_type
	  AND n.state_id OPERATOR(pg_catalog.=) c.state_id;
COMMENT ON VIEW state_msg.topic_state_summary IS
	'Per topic type and topic id, the clients in each state (current state), with the state''s name; exact at every moment (live summaries)';
COMMENT ON COLUMN state_msg.topic_state_summary.topic_type IS 'The topic type';
COMMENT ON COLUMN state_msg.topic_state_summary.topic_id IS 'The topic id';
COMMENT ON COLUMN state_msg.topic_state_summary.state_id IS 'The state id';
COMMENT ON COLUMN state_msg.topic_state_summary.state_name IS
	'The state''s name (state_names), NULL if it has none';
COMMENT ON COLUMN state_msg.topic_state_summary.clients IS
	'Clients whose current state of the topic is this one';

/*
 * The number of clients the site knows (rows of clients), for
 * update_compliance: a plain scan (or an index-only one), without parallel
 * workers, whose start-up costs more than the count of 150,000 rows on a
 * busy server.  Not inlined (SET).
 */
CREATE FUNCTION state_msg.known_clients()
RETURNS bigint
LANGUAGE sql STABLE
SET max_parallel_workers_per_gather = 0
AS $$
	SELECT pg_catalog.count(*) FROM state_msg.clients
$$;
REVOKE ALL ON FUNCTION state_msg.known_clients() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION state_msg.known_clients() TO state_msg_reader;
COMMENT ON FUNCTION state_msg.known_clients() IS
	'The number of clients the site knows (rows of clients), counted without parallel workers; update_compliance''s all clients';

/*
 * Per update (a topic id of topic type 500), ConfigMgr's compliance
 * figures: every clients row counts, so a client the site knows without a
 * 500 state for the update is unknown, as is state 0 (and any other state
 * id); enforcement_failed counts the clients whose current CI enforcement
 * (402) state for the same topic id is_enforcement_failure().
 */
CREATE VIEW state_msg.update_compliance AS
WITH total AS MATERIALIZED (	-- once, not once per row
	SELECT state_msg.known_clients() AS clients
),
updates AS (
	SELECT k.topic_id,
		   pg_catalog.sum(k.clients) FILTER (
			   WHERE k.topic_type OPERATOR(pg_catalog.=) 500
				 AND k.state_id OPERATOR(pg_catalog.=) 2) AS required,
		   pg_catalog.sum(k.clients) FILTER (
			   WHERE k.topic_type OPERATOR(pg_catalog.=) 500
				 AND k.state_id OPERATOR(pg_catalog.=) 3) AS installed,
		   pg_catalog.sum(k.clients) FILTER (
			   WHERE k.topic_type OPERATOR(pg_catalog.=) 500
				 AND k.state_id OPERATOR(pg_catalog.=) 1) AS not_required,
		   pg_catalog.sum(k.clients) FILTER (
			   WHERE k.topic_type OPERATOR(pg_catalog.=) 402
				 AND state_msg.is_enforcement_failure(k.state_id)) AS enforcement_failed,
		   pg_catalog.bool_or(k.topic_type OPERATOR(pg_catalog.=) 500) AS is_update
	FROM state_msg.current_state_counts k
	WHERE k.topic_type OPERATOR(pg_catalog.=) ANY ('{402,500}'::integer[])
	GROUP BY k.topic_id
),
figures AS (
	SELECT u.topic_id,
		   COALESCE(u.required, 0)::pg_catalog.int8 AS required,
		   COALESCE(u.installed, 0)::pg_catalog.int8 AS installed,
		   COALESCE(u.not_required, 0)::pg_catalog.int8 AS not_required,
		   COALESCE(u.enforcement_failed, 0)::pg_catalog.int8 AS enforcement_failed,
		   t.clients
	FROM updates u CROSS JOIN total t
	WHERE u.is_update
)
SELECT f.topic_id, f.required, f.installed, f.not_required,
	   f.clients OPERATOR(pg_catalog.-) f.required OPERATOR(pg_catalog.-) f.installed
		   OPERATOR(pg_catalog.-) f.not_required AS unknown,
	   pg_catalog.round((f.installed OPERATOR(pg_catalog.+) f.not_required)::pg_catalog.numeric
						OPERATOR(pg_catalog.*) 100
						OPERATOR(pg_catalog./) NULLIF(f.clients, 0), 2) AS compliance_pct,
	   f.enforcement_failed
FROM figures f;
COMMENT ON VIEW state_msg.update_compliance IS
	'Per update (topic type 500): clients required (2), installed (3), not required (1), unknown (state 0, another state, or no 500 state though the client is known), compliance_pct and enforcement_failed; exact at every moment (live summaries)';
COMMENT ON COLUMN state_msg.update_compliance.topic_id IS 'The update (topic id of topic type 500)';
COMMENT ON COLUMN state_msg.update_compliance.required IS 'Clients whose current 500 state is 2, required';
COMMENT ON COLUMN state_msg.update_compliance.installed IS 'Clients whose current 500 state is 3, installed';
COMMENT ON COLUMN state_msg.update_compliance.not_required IS 'Clients whose current 500 state is 1, not required';
COMMENT ON COLUMN state_msg.update_compliance.unknown IS
	'Every other client of clients: state 0 (or any other), or no 500 state for the update';
COMMENT ON COLUMN state_msg.update_compliance.compliance_pct IS
	'(installed + not_required) x 100 / all clients, rounded to 2 decimals; NULL when there are no clients';
COMMENT ON COLUMN state_msg.update_compliance.enforcement_failed IS
	'Clients whose current CI enforcement (402) state for the topic id is a failure (is_enforcement_failure(): 6, 11, 14)';

REVOKE ALL ON state_msg.current_state_counts, state_msg.topic_state_summary,
	state_msg.update_compliance FROM PUBLIC;
GRANT SELECT ON state_msg.current_state_counts, state_msg.topic_state_summary,
	state_msg.update_compliance TO state_msg_reader;

-- ---------------------------------------------------------------------
-- The monitoring queries at site scale (issue 8, section 3): the clients
-- that were ever asked to resync, indexed apart
-- ---------------------------------------------------------------------

/*
 * The two monitoring queries of the user's source document filter
 * SR_ClientMessageStats on LastResyncIssuedTime IS NOT NULL, which the view
 * computes as timezone('UTC', last_resync_issued_time).  With the predicate
 * written on that (immutable) expression, both queries read only the
 * clients ever issued a request, from this index alone, instead of every
 * client (90 to 130 ms at 300,000 clients, 2 ms with it).  Batches rewrite
 * a client's row with its times unchanged, so their updates stay HOT; only
 * an issue or a completion changes an indexed column.
 */
CREATE INDEX clients_resync_issued ON state_msg.clients (client_id)
	INCLUDE (last_resync_issued_time, last_resync_client_completed_time)
	WHERE pg_catalog.timezone('UTC', last_resync_issued_time) IS NOT NULL;
COMMENT ON INDEX state_msg.clients_resync_issued IS
	'The clients ever issued a resync request, with their issue and completion times: the monitoring queries over sr_clientmessagestats read only these';

-- ---------------------------------------------------------------------
-- Resync work that follows what is outstanding, not the fleet (issue 8),
-- and pacing (issue 9): the check cycle, resync_candidates and the views
-- of outstanding requests read only the clients with an open request or a
-- missing range, through indexes, instead of every client.
-- ---------------------------------------------------------------------

/*
 * The clients with an open request (has_open_request(), spelled out: an
 * index predicate cannot call a function on the row), by issue time.  Only
 * an issue or a completion changes these columns, so batches' updates of
 * clients stay HOT.
 */
CREATE INDEX clients_open_request ON state_msg.clients (last_resync_issued_time)
	WHERE last_resync_issued_time IS NOT NULL
	  AND (last_resync_client_completed_time IS NULL
		   OR last_resync_client_completed_time
			  OPERATOR(pg_catalog.<) last_resync_issued_time);
COMMENT ON INDEX state_msg.clients_open_request IS
	'The clients with an outstanding resync request (has_open_request()), by issue time: the check cycle''s reissues and the views of outstanding requests read only these';

/*
 * Statistics on the monitoring queries' expression, so that the planner
 * knows how few clients were ever asked (without them it assumes nearly
 * all, and at 300,000 clients chose a parallel scan of
 * clients_resync_issued taking 130 to 330 ms instead of a plain one of 1 to
 * 5 ms).
 */
CREATE STATISTICS state_msg.clients_resync_issued_stats
	ON (pg_catalog.timezone('UTC', last_resync_issued_time)) FROM state_msg.clients;
COMMENT ON STATISTICS state_msg.clients_resync_issued_stats IS
	'The share of clients ever issued a resync request (timezone(''UTC'', last_resync_issued_time) IS NOT NULL, the monitoring queries'' filter), for the planner';

/*
 * The clients a check cycle with these bounds would act on, and why.  The
 * candidates come from two index scans, whose cost follows what is
 * outstanding: the open requests issued before reissue_before
 * (clients_open_request) and the clients with a missing range detected
 * before missing_before (missing_ranges' detected_at index).  Each is then
 * tested with the cycle's one rule, resync_due().  due_at is when the
 * action became due: the issue plus min_resync_period, or the oldest
 * missing range's detection plus min_missing_message_age (from the bounds,
 * so that as_of need not be passed).
 */
CREATE FUNCTION state_msg.resync_due_clients(
	reissue_before timestamptz,
	missing_before timestamptz,
	OUT client_id text,
	OUT reissue boolean,
	OUT last_resync_issued_time timestamptz,
	OUT oldest_missing_detected_at timestamptz,
	OUT overdue interval)
RETURNS SETOF record
LANGUAGE sql STABLE
AS $$
	SELECT c.client_id,
		   state_msg.has_open_request(c),
		   c.last_resync_issued_time,
		   m.oldest,
		   CASE WHEN state_msg.has_open_request(c)
		   THEN reissue_before OPERATOR(pg_catalog.-) c.last_resync_issued_time
		   ELSE missing_before OPERATOR(pg_catalog.-) m.oldest
		   END
	FROM state_msg.clients c
	LEFT JOIN LATERAL (
		SELECT pg_catalog.min(r.detected_at) AS oldest
		FROM state_msg.missing_ranges r
		WHERE r.client_id OPERATOR(pg_catalog.=) c.client_id) AS m ON true
	WHERE c.client_id OPERATOR(pg_catalog.=) ANY (ARRAY(
			SELECT o.client_id FROM state_msg.clients o
			WHERE state_msg.has_open_request(o)
			  AND o.last_resync_issued_time OPERATOR(pg_catalog.<=) reissue_before
			UNION
			SELECT r.client_id FROM state_msg.missing_ranges r
			WHERE r.detected_at OPERATOR(pg_catalog.<=) missing_before))
	  AND state_msg.resync_due(c, reissue_before, missing_before)
$$;
REVOKE ALL ON FUNCTION state_msg.resync_due_clients(timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION state_msg.resync_due_clients(timestamptz, timestamptz)
	TO state_msg_reader;
COMMENT ON FUNCTION state_msg.resync_due_clients(timestamptz, timestamptz) IS
	'The clients a check cycle with these bounds would act on (resync_due()), found through the open requests and the missing ranges rather than every client: whether it is a reissue, the last issue, the oldest missing range''s detection, and how long overdue the action is';

CREATE OR REPLACE VIEW state_msg.resync_candidates AS
WITH clock AS (SELECT state_msg.engine_now() AS now)
SELECT d.client_id COLLATE pg_catalog."C" AS client_id,
	   CASE WHEN d.reissue THEN 'reissue' ELSE 'request' END AS action,
	   CASE WHEN d.reissue
	   THEN 'outstanding request not completed within min_resync_period'
	   ELSE 'missing range older than min_missing_message_age'
	   END AS reason,
	   d.last_resync_issued_time,
	   d.oldest_missing_detected_at,
	   clock.now OPERATOR(pg_catalog.-) d.overdue AS due_at
FROM clock,
	 state_msg.resync_due_clients(
		clock.now OPERATOR(pg_catalog.-) state_msg.min_resync_period(),
		clock.now OPERATOR(pg_catalog.-) state_msg.min_missing_message_age()) AS d;

CREATE OR REPLACE VIEW state_msg.resync_outstanding AS
WITH clock AS (SELECT state_msg.engine_now() AS now)
SELECT pg_catalog.count(*) FILTER (
		   WHERE c.last_resync_issued_time
				 OPERATOR(pg_catalog.>) c.last_resync_client_completed_time)
		   AS issued_not_completed,
	   pg_catalog.count(*) FILTER (
		   WHERE c.last_resync_client_completed_time IS NULL)
		   AS never_completed,
	   pg_catalog.count(*) FILTER (
		   WHERE state_msg.has_open_request(c)
			 AND c.last_resync_issued_time OPERATOR(pg_catalog.<=)
				 (clock.now OPERATOR(pg_catalog.-) state_msg.min_resync_period()))
		   AS due_for_reissue
FROM state_msg.clients c, clock
WHERE pg_catalog.timezone('UTC', c.last_resync_issued_time) IS NOT NULL;

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

-- ---------------------------------------------------------------------
-- The engine's counters (issue 9, task S): state_msg.stats and
-- state_msg.stats_reset()
-- ---------------------------------------------------------------------

-- The counters as one row: this database's (with the library in
-- shared_preload_libraries) or this backend's (without).
CREATE FUNCTION state_msg.stats_read(
	OUT enqueued bigint,
	OUT processed bigint,
	OUT processed_in_order bigint,
	OUT processed_gap bigint,
	OUT processed_late_fill bigint,
	OUT processed_duplicate bigint,
	OUT processed_serial_reset bigint,
	OUT processed_unserialized bigint,
	OUT rejected bigint,
	OUT batches bigint,
	OUT processing_time double precision,
	OUT resyncs_issued bigint,
	OUT resyncs_reissued bigint,
	OUT resyncs_completed bigint,
	OUT resyncs_held_back bigint,
	OUT stats_reset timestamptz,
	OUT shared boolean)
RETURNS record
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'state_msg_stats_read';
REVOKE ALL ON FUNCTION state_msg.stats_read() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION state_msg.stats_read() TO state_msg_reader;
COMMENT ON FUNCTION state_msg.stats_read() IS
	'The counters of state_msg.stats as one row: this database''s with the library preloaded, this backend''s without';

CREATE VIEW state_msg.stats AS
SELECT * FROM state_msg.stats_read();
REVOKE ALL ON state_msg.stats FROM PUBLIC;
GRANT SELECT ON state_msg.stats TO state_msg_reader;
COMMENT ON VIEW state_msg.stats IS
	'The engine''s counters, one row, counted at commit (a rolled-back batch counts nothing): cluster-wide for this database when the library is in shared_preload_libraries (shared true), else this backend''s own (shared false)';
COMMENT ON COLUMN state_msg.stats.enqueued IS
	'Messages enqueued (state_msg.processing = queued)';
COMMENT ON COLUMN state_msg.stats.processed IS
	'Messages processed, all verdicts (the sum of the six processed_ columns)';
COMMENT ON COLUMN state_msg.stats.processed_in_order IS
	'Messages processed with the verdict in_order';
COMMENT ON COLUMN state_msg.stats.processed_gap IS
	'Messages processed with the verdict gap';
COMMENT ON COLUMN state_msg.stats.processed_late_fill IS
	'Messages processed with the verdict late_fill';
COMMENT ON COLUMN state_msg.stats.processed_duplicate IS
	'Messages processed with the verdict duplicate';
COMMENT ON COLUMN state_msg.stats.processed_serial_reset IS
	'Messages processed with the verdict serial_reset';
COMMENT ON COLUMN state_msg.stats.processed_unserialized IS
	'Messages processed with the verdict unserialized';
COMMENT ON COLUMN state_msg.stats.rejected IS
	'Rows and messages quarantined in state_msg.rejected_messages';
COMMENT ON COLUMN state_msg.stats.batches IS
	'Batches that processed at least one message (an entry point''s statement or call, a drain batch)';
COMMENT ON COLUMN state_msg.stats.processing_time IS
	'Time those batches took, from their start to their end, in milliseconds';
COMMENT ON COLUMN state_msg.stats.resyncs_issued IS
	'Resync requests issued: by the check cycle for missing serials, by serial resets, by request_resync()';
COMMENT ON COLUMN state_msg.stats.resyncs_reissued IS
	'Resync requests issued again by the check cycle (the three-day rule)';
COMMENT ON COLUMN state_msg.stats.resyncs_completed IS
	'Resync completions processed: 700/2 messages that were not duplicates';
COMMENT ON COLUMN state_msg.stats.resyncs_held_back IS
	'Resync requests the check cycle held back because their answer or missing serials wait in the queue';
COMMENT ON COLUMN state_msg.stats.stats_reset IS
	'Since when the counters count: the last stats_reset(), else the server''s start (shared) or the library''s load in this backend';
COMMENT ON COLUMN state_msg.stats.shared IS
	'True: the counters of every session and worker in this database (library preloaded); false: this backend''s own';

-- Zero the counters state_msg.stats shows (at once; a rollback keeps it).
CREATE FUNCTION state_msg.stats_reset()
RETURNS void
LANGUAGE C VOLATILE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'state_msg_stats_reset';
REVOKE ALL ON FUNCTION state_msg.stats_reset() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION state_msg.stats_reset() TO state_msg_operator;
COMMENT ON FUNCTION state_msg.stats_reset() IS
	'Zero the counters of state_msg.stats: this database''s with the library preloaded, this backend''s without; not undone by a rollback';
-- Queued processing, the fsp throttle and the backlog (issue 9, sections
-- 1, 2 and 4; engineer Q): the queue, process_queue(), backlog views
-- ---------------------------------------------------------------------

-- ingest() returns it under state_msg.processing = queued
ALTER TYPE state_msg.verdict ADD VALUE 'queued';

CREATE TYPE state_msg.queue_name AS ENUM ('high', 'low', 'fsp');
COMMENT ON TYPE state_msg.queue_name IS
	'The queues of queued processing, in draining order: high (resync answers, state_msg.high_priority_topic_types), low (the rest), fsp (relayed by a fallback status point, throttled)';

-- One value per enqueuing statement (or ingest() call)
CREATE SEQUENCE state_msg.queue_upload_seq;
COMMENT ON SEQUENCE state_msg.queue_upload_seq IS
	'Upload ids of state_msg.queue_chunks: one per enqueuing statement';

/*
 * A waiting message: the inbox's columns as validated (client id
 * normalized, defaults applied)
 */
CREATE TYPE state_msg.queued_message AS (
	client_id text,
	serial_number bigint,
	topic_type integer,
	topic_id text,
	topic_id_type integer,
	state_id integer,
	criticality integer,
	message_time timestamptz,
	user_params text[],
	source text,
	user_name text,
	user_sid text,
	state_details_type integer,
	state_details text,
	priority integer,
	netbios_name text,
	client_version text
);
COMMENT ON TYPE state_msg.queued_message IS
	'A message waiting in the queue: the inbox''s columns as validated (client id normalized, defaults applied)';

/*
 * The queue's storage: chunks of validated messages waiting for processing,
 * each the messages of one enqueuing statement in one queue and one shard
 * that were written together, in arrival order (up to about 7 kB, so a
 * chunk stays in line: toast_tuple_target), so that enqueuing writes one
 * heap tuple and one index entry per chunk, not per message.  Partitioned
 * by generation (PgQ's rotating tables): enqueuing writes the current
 * generation of queue_rotation, drainers delete the chunks they process
 * (or rewrite the rest of one they took in part), and a partition that
 * holds no live chunk and is not current is emptied with TRUNCATE, so
 * vacuum never needs to visit the partitions.
 */
CREATE TABLE state_msg.queue_chunks (
	generation smallint NOT NULL,
	queue state_msg.queue_name NOT NULL,
	shard smallint NOT NULL,
	upload_id bigint NOT NULL,
	first_row bigint NOT NULL,
	enqueued_at timestamptz NOT NULL,
	row_numbers bigint[] NOT NULL,
	messages state_msg.queued_message[] NOT NULL
) PARTITION BY LIST (generation);
CREATE TABLE state_msg.queue_0 PARTITION OF state_msg.queue_chunks FOR VALUES IN (0)
	WITH (autovacuum_enabled = off, toast.autovacuum_enabled = off,
		  toast_tuple_target = 8160);
CREATE TABLE state_msg.queue_1 PARTITION OF state_msg.queue_chunks FOR VALUES IN (1)
	WITH (autovacuum_enabled = off, toast.autovacuum_enabled = off,
		  toast_tuple_target = 8160);
CREATE TABLE state_msg.queue_2 PARTITION OF state_msg.queue_chunks FOR VALUES IN (2)
	WITH (autovacuum_enabled = off, toast.autovacuum_enabled = off,
		  toast_tuple_target = 8160);
CREATE INDEX queue_chunks_order ON state_msg.queue_chunks (queue, shard, upload_id, first_row);

COMMENT ON TABLE state_msg.queue_chunks IS
	'Queued processing: chunks of validated messages waiting to be processed (one statement''s messages of one queue and shard, in arrival order), partitioned by generation (queue_0 to queue_2), emptied by TRUNCATE once drained';
COMMENT ON TABLE state_msg.queue_0 IS 'Partition of state_msg.queue_chunks for generation 0';
COMMENT ON TABLE state_msg.queue_1 IS 'Partition of state_msg.queue_chunks for generation 1';
COMMENT ON TABLE state_msg.queue_2 IS 'Partition of state_msg.queue_chunks for generation 2';
COMMENT ON INDEX state_msg.queue_chunks_order IS
	'Drainers read a shard''s chunks of a queue in the order their messages were enqueued';
COMMENT ON COLUMN state_msg.queue_chunks.generation IS 'The partition: queue_rotation''s generation when written';
COMMENT ON COLUMN state_msg.queue_chunks.queue IS 'The queue the messages wait in';
COMMENT ON COLUMN state_msg.queue_chunks.shard IS
	'Hash of the normalized client id modulo 64: drainers lock a shard, so no two work on one client';
COMMENT ON COLUMN state_msg.queue_chunks.upload_id IS
	'The enqueuing statement (or ingest() call), from queue_upload_seq';
COMMENT ON COLUMN state_msg.queue_chunks.first_row IS
	'Position of the chunk''s first message in its statement: the chunks of a statement, queue and shard are drained in this order';
COMMENT ON COLUMN state_msg.queue_chunks.enqueued_at IS 'Engine clock when the messages were enqueued';
COMMENT ON COLUMN state_msg.queue_chunks.row_numbers IS
	'Position of each message in its statement, ascending';
COMMENT ON COLUMN state_msg.queue_chunks.messages IS
	'The messages, in the order of row_numbers';

-- The partitions' columns say what the parent's say
DO $$
DECLARE
	c record;
BEGIN
	FOR c IN
		SELECT p.relname, a.attname,
			   pg_catalog.col_description(a.attrelid, a.attnum) AS description
		FROM pg_catalog.pg_attribute a
		CROSS JOIN (VALUES ('queue_0'), ('queue_1'), ('queue_2')) p(relname)
		WHERE a.attrelid OPERATOR(pg_catalog.=) 'state_msg.queue_chunks'::pg_catalog.regclass
		  AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
	LOOP
		EXECUTE pg_catalog.format('COMMENT ON COLUMN state_msg.%I.%I IS %L',
								  c.relname, c.attname, c.description);
	END LOOP;
END;
$$;

-- The messages waiting, one row each
CREATE VIEW state_msg.queue AS
SELECT c.generation, c.queue, c.shard, c.upload_id, m.row_number,
	   c.enqueued_at, m.client_id, m.serial_number, m.topic_type, m.topic_id,
	   m.topic_id_type, m.state_id, m.criticality, m.message_time,
	   m.user_params, m.source, m.user_name, m.user_sid,
	   m.state_details_type, m.state_details, m.priority, m.netbios_name,
	   m.client_version
FROM state_msg.queue_chunks c,
	 LATERAL ROWS FROM (pg_catalog.unnest(c.row_numbers),
						pg_catalog.unnest(c.messages))
	 AS m(row_number, client_id, serial_number, topic_type, topic_id,
		  topic_id_type, state_id, criticality, message_time, user_params,
		  source, user_name, user_sid, state_details_type, state_details,
		  priority, netbios_name, client_version);

COMMENT ON VIEW state_msg.queue IS
	'Queued processing: the messages waiting to be processed, one row each (the chunks of queue_chunks unfolded)';
COMMENT ON COLUMN state_msg.queue.generation IS 'The partition of queue_chunks holding it';
COMMENT ON COLUMN state_msg.queue.queue IS 'The queue the message waits in';
COMMENT ON COLUMN state_msg.queue.shard IS
	'Hash of the normalized client id modulo 64: drainers lock a shard, so no two work on one client';
COMMENT ON COLUMN state_msg.queue.upload_id IS
	'The enqueuing statement (or ingest() call), from queue_upload_seq';
COMMENT ON COLUMN state_msg.queue.row_number IS 'Position of the message in its statement';
COMMENT ON COLUMN state_msg.queue.enqueued_at IS 'Engine clock when the message was enqueued';
COMMENT ON COLUMN state_msg.queue.client_id IS 'The message''s client id, normalized';
COMMENT ON COLUMN state_msg.queue.serial_number IS 'As the inbox column';
COMMENT ON COLUMN state_msg.queue.topic_type IS 'As the inbox column';
COMMENT ON COLUMN state_msg.queue.topic_id IS 'As the inbox column';
COMMENT ON COLUMN state_msg.queue.topic_id_type IS 'As the inbox column (its default applied)';
COMMENT ON COLUMN state_msg.queue.state_id IS 'As the inbox column';
COMMENT ON COLUMN state_msg.queue.criticality IS 'As the inbox column (its default applied)';
COMMENT ON COLUMN state_msg.queue.message_time IS 'As the inbox column';
COMMENT ON COLUMN state_msg.queue.user_params IS 'As the inbox column';
COMMENT ON COLUMN state_msg.queue.source IS 'As the inbox column (its default applied)';
COMMENT ON COLUMN state_msg.queue.user_name IS 'As the inbox column';
COMMENT ON COLUMN state_msg.queue.user_sid IS 'As the inbox column';
COMMENT ON COLUMN state_msg.queue.state_details_type IS 'As the inbox column';
COMMENT ON COLUMN state_msg.queue.state_details IS 'As the inbox column';
COMMENT ON COLUMN state_msg.queue.priority IS 'As the inbox column';
COMMENT ON COLUMN state_msg.queue.netbios_name IS 'As the inbox column';
COMMENT ON COLUMN state_msg.queue.client_version IS 'As the inbox column';

-- The generation enqueuing writes, and since when
CREATE TABLE state_msg.queue_rotation (
	only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
	generation smallint NOT NULL CHECK (generation BETWEEN 0 AND 2),
	since timestamptz NOT NULL
);
INSERT INTO state_msg.queue_rotation (generation, since) VALUES (0, pg_catalog.now());
COMMENT ON TABLE state_msg.queue_rotation IS
	'One row: the generation (partition of state_msg.queue) enqueuing writes, and since when; drainers move it on after state_msg.queue_rotation_interval';
COMMENT ON COLUMN state_msg.queue_rotation.only_row IS 'Always true: the table holds one row';
COMMENT ON COLUMN state_msg.queue_rotation.generation IS 'The current generation';
COMMENT ON COLUMN state_msg.queue_rotation.since IS 'Engine clock when it became current';

-- The fsp throttle's current interval
CREATE TABLE state_msg.queue_throttle (
	only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
	window_start timestamptz NOT NULL,
	released bigint NOT NULL
);
INSERT INTO state_msg.queue_throttle (window_start, released)
VALUES ('-infinity', 0);
COMMENT ON TABLE state_msg.queue_throttle IS
	'One row: the fsp throttle''s current interval (state_msg.fsp_throttle_interval) and the fsp messages released to processing in it';
COMMENT ON COLUMN state_msg.queue_throttle.only_row IS 'Always true: the table holds one row';
COMMENT ON COLUMN state_msg.queue_throttle.window_start IS
	'Engine clock when the current interval began (with the first release after the previous one ended)';
COMMENT ON COLUMN state_msg.queue_throttle.released IS
	'fsp messages released to processing in the current interval (at most state_msg.fsp_throttle_messages)';

/*
 * Counts behind state_msg.backlog, and the drainers' count of each
 * partition's live chunks: insert-only deltas, as state_counts.  Every
 * enqueue inserts +n per (queue, generation), every drain batch -n per
 * (queue, minute the messages were enqueued, generation), in the
 * transaction that writes or deletes the chunks; the sums are exact in
 * every snapshot.
 */
CREATE TABLE state_msg.queue_counts (
	queue state_msg.queue_name NOT NULL,
	enqueued_minute timestamptz NOT NULL,
	generation smallint NOT NULL,
	messages bigint NOT NULL,
	chunks bigint NOT NULL
);
COMMENT ON TABLE state_msg.queue_counts IS
	'Queued processing: per (queue, minute of enqueuing, generation), deltas of the messages and chunks waiting; the sums are exact in every snapshot; compacted by drainers';
COMMENT ON COLUMN state_msg.queue_counts.queue IS 'The queue';
COMMENT ON COLUMN state_msg.queue_counts.enqueued_minute IS
	'The minute (engine clock, UTC) the messages were enqueued in';
COMMENT ON COLUMN state_msg.queue_counts.generation IS
	'The partition of queue_chunks holding them';
COMMENT ON COLUMN state_msg.queue_counts.messages IS
	'Change in the messages waiting (+ enqueued, - processed)';
COMMENT ON COLUMN state_msg.queue_counts.chunks IS
	'Change in the chunks holding them (+ written, - deleted)';

CREATE TABLE state_msg.queue_flow (
	minute timestamptz NOT NULL,
	queue state_msg.queue_name NOT NULL,
	topic_type integer NOT NULL,
	arrived bigint NOT NULL,
	processed bigint NOT NULL,
	resync_answers bigint NOT NULL
);
COMMENT ON TABLE state_msg.queue_flow IS
	'Per (minute, queue, topic type): messages that arrived (were enqueued, or in immediate processing were processed), were processed, and were resync answers; insert-only deltas, compacted, kept 70 minutes';
COMMENT ON COLUMN state_msg.queue_flow.minute IS 'The minute (engine clock, UTC)';
COMMENT ON COLUMN state_msg.queue_flow.queue IS
	'The queue (in immediate processing: the one the message would have joined)';
COMMENT ON COLUMN state_msg.queue_flow.topic_type IS 'The topic type';
COMMENT ON COLUMN state_msg.queue_flow.arrived IS 'Messages that arrived';
COMMENT ON COLUMN state_msg.queue_flow.processed IS 'Messages processed';
COMMENT ON COLUMN state_msg.queue_flow.resync_answers IS
	'Of those arrived, messages of a client whose messages in the statement included a 700/2';

SELECT pg_catalog.pg_extension_config_dump('state_msg.queue_0', '');
SELECT pg_catalog.pg_extension_config_dump('state_msg.queue_1', '');
SELECT pg_catalog.pg_extension_config_dump('state_msg.queue_2', '');
SELECT pg_catalog.pg_extension_config_dump('state_msg.queue_counts', '');
SELECT pg_catalog.pg_extension_config_dump('state_msg.queue_upload_seq', '');

-- Topic type names, for backlog_sources
CREATE TABLE state_msg.topic_types (
	topic_type integer PRIMARY KEY,
	name text NOT NULL
);
INSERT INTO state_msg.topic_types (topic_type, name) VALUES
	(300, 'update assignment compliance'),
	(301, 'update assignment enforcement'),
	(302, 'update assignment evaluation'),
	(400, 'CI detection'),
	(401, 'CI compliance (configuration baselines)'),
	(402, 'CI enforcement'),
	(500, 'update detection'),
	(501, 'update scan'),
	(700, 'state message resync'),
	(800, 'client deployment'),
	(810, 'co-management enrollment'),
	(1000, 'client/MP communication'),
	(1001, 'client certificate retrieval'),
	(1100, 'native mode readiness'),
	(1300, 'client health'),
	(1600, 'user device affinity'),
	(2001, 'endpoint protection deployment'),
	(2002, 'endpoint protection policy'),
	(2003, 'client action');
COMMENT ON TABLE state_msg.topic_types IS
	'Names of topic types, as backlog_sources shows them';
COMMENT ON COLUMN state_msg.topic_types.topic_type IS 'The topic type';
COMMENT ON COLUMN state_msg.topic_types.name IS 'What its messages report';

-- Settings the views need, read through the library
CREATE FUNCTION state_msg.backlog_significant_messages()
RETURNS bigint
AS 'MODULE_PATHNAME', 'state_msg_backlog_significant_messages'
LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION state_msg.backlog_significant_messages() FROM PUBLIC;
COMMENT ON FUNCTION state_msg.backlog_significant_messages() IS
	'The setting state_msg.backlog_significant_messages';
CREATE FUNCTION state_msg.backlog_significant_age()
RETURNS interval
AS 'MODULE_PATHNAME', 'state_msg_backlog_significant_age'
LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION state_msg.backlog_significant_age() FROM PUBLIC;
COMMENT ON FUNCTION state_msg.backlog_significant_age() IS
	'The setting state_msg.backlog_significant_age, as an interval';
CREATE FUNCTION state_msg.backlog_history_retention()
RETURNS interval
AS 'MODULE_PATHNAME', 'state_msg_backlog_history_retention'
LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION state_msg.backlog_history_retention() FROM PUBLIC;
COMMENT ON FUNCTION state_msg.backlog_history_retention() IS
	'The setting state_msg.backlog_history_retention, as an interval';
GRANT EXECUTE ON FUNCTION state_msg.backlog_significant_messages(),
	state_msg.backlog_significant_age(), state_msg.backlog_history_retention()
	TO state_msg_reader;

/*
 * Backlog-aware resync (state_msg.backlog_aware_resync): the clients a check
 * cycle with these bounds would act on (resync_due_clients()) whose answer
 * is in fact waiting in the queue: for a reissue, the client's 700/2; for a
 * request, a message with a serial in one of its missing ranges old enough
 * to count.  With the queue's waiting messages, such a request would only
 * add a resync answer to the backlog (ConfigMgr's vicious cycle).  One scan
 * of the queue, joined to the candidates' ranges by client: it costs what
 * waits, and runs only when there are candidates.  queue is the first queue
 * (high, low, fsp) holding such a message.
 */
CREATE FUNCTION state_msg.resync_held_back_clients(
	reissue_before timestamptz,
	missing_before timestamptz,
	OUT client_id text,
	OUT queue state_msg.queue_name)
RETURNS SETOF record
LANGUAGE sql STABLE
AS $$
	WITH due AS MATERIALIZED (
		SELECT d.client_id, d.reissue
		FROM state_msg.resync_due_clients(reissue_before, missing_before) d
	),
	ranges AS MATERIALIZED (
		SELECT r.client_id, r.first_serial, r.last_serial
		FROM state_msg.missing_ranges r
		JOIN due ON due.client_id OPERATOR(pg_catalog.=) r.client_id
		WHERE NOT due.reissue
		  AND r.detected_at OPERATOR(pg_catalog.<=) missing_before
	)
	SELECT DISTINCT ON (w.client_id) w.client_id, w.queue
	FROM (
		SELECT q.client_id, q.queue
		FROM state_msg.queue q
		JOIN ranges r ON r.client_id OPERATOR(pg_catalog.=) q.client_id
		WHERE q.serial_number OPERATOR(pg_catalog.>=) r.first_serial
		  AND q.serial_number OPERATOR(pg_catalog.<=) r.last_serial
		UNION ALL
		SELECT q.client_id, q.queue
		FROM state_msg.queue q
		JOIN due ON due.client_id OPERATOR(pg_catalog.=) q.client_id
		WHERE due.reissue
		  AND q.topic_type OPERATOR(pg_catalog.=) 700
		  AND q.state_id OPERATOR(pg_catalog.=) 2
	) AS w
	ORDER BY w.client_id, w.queue
$$;
COMMENT ON FUNCTION state_msg.resync_held_back_clients(timestamptz, timestamptz) IS
	'The clients a check cycle with these bounds would act on whose answer waits in the queue (a reissue''s 700/2, or a serial of an old enough missing range), and the first queue holding it; what backlog_aware_resync holds back';

-- What the latest check cycle held back, per queue
CREATE TABLE state_msg.resync_held_back (
	queue state_msg.queue_name PRIMARY KEY,
	clients bigint NOT NULL,
	as_of timestamptz NOT NULL
);
COMMENT ON TABLE state_msg.resync_held_back IS
	'Per queue: the clients the latest check cycle held back under state_msg.backlog_aware_resync because their answer waits in that queue (backlog.held_back_resyncs)';
COMMENT ON COLUMN state_msg.resync_held_back.queue IS 'The queue the client''s waiting answer is in (the first, if several)';
COMMENT ON COLUMN state_msg.resync_held_back.clients IS 'Clients held back';
COMMENT ON COLUMN state_msg.resync_held_back.as_of IS 'The check cycle''s as_of';

/*
 * Per queue: messages waiting and the oldest one's age (to the minute: from
 * the start of the minute it was enqueued in), rates over the current
 * minute and the 4 (59) before it, divided by that window's length in
 * seconds, the ETA, the status.
 */
CREATE VIEW state_msg.backlog AS
WITH clock AS (
	SELECT c.now,
		   pg_catalog.date_trunc('minute', c.now, 'UTC') AS minute
	FROM (SELECT state_msg.engine_now() AS now) c
),
windows AS (
	SELECT k.now, k.minute,
		   k.minute OPERATOR(pg_catalog.-) '4 minutes'::interval AS from_5m,
		   k.minute OPERATOR(pg_catalog.-) '59 minutes'::interval AS from_60m,
		   pg_catalog.date_part('epoch', k.now OPERATOR(pg_catalog.-) k.minute)
			   OPERATOR(pg_catalog.+) 240 AS secs_5m,
		   pg_catalog.date_part('epoch', k.now OPERATOR(pg_catalog.-) k.minute)
			   OPERATOR(pg_catalog.+) 3540 AS secs_60m
	FROM clock k
),
queues(queue, ord) AS (
	VALUES ('high'::state_msg.queue_name, 1), ('low', 2), ('fsp', 3)
),
per_minute AS (
	SELECT c.queue, c.enqueued_minute, pg_catalog.sum(c.messages) AS messages
	FROM state_msg.queue_counts c
	GROUP BY c.queue, c.enqueued_minute
),
waiting AS (
	SELECT m.queue, pg_catalog.sum(m.messages)::pg_catalog.int8 AS waiting,
		   pg_catalog.min(m.enqueued_minute)
			   FILTER (WHERE m.messages OPERATOR(pg_catalog.>) 0) AS oldest
	FROM per_minute m
	GROUP BY m.queue
),
flow AS (
	SELECT f.queue,
		   pg_catalog.sum(f.arrived) FILTER (WHERE f.minute OPERATOR(pg_catalog.>=) w.from_5m) AS arrived_5m,
		   pg_catalog.sum(f.arrived) AS arrived_60m,
		   pg_catalog.sum(f.processed) FILTER (WHERE f.minute OPERATOR(pg_catalog.>=) w.from_5m) AS processed_5m,
		   pg_catalog.sum(f.processed) AS processed_60m
	FROM state_msg.queue_flow f CROSS JOIN windows w
	WHERE f.minute OPERATOR(pg_catalog.>=) w.from_60m
	GROUP BY f.queue
),
figures AS (
	SELECT q.ord, q.queue::pg_catalog.text AS queue,
		   COALESCE(wt.waiting, 0)::pg_catalog.int8 AS waiting,
		   CASE WHEN COALESCE(wt.waiting, 0) OPERATOR(pg_catalog.>) 0
				THEN w.now OPERATOR(pg_catalog.-) wt.oldest END AS oldest_age,
		   COALESCE(f.arrived_5m, 0)::pg_catalog.float8 OPERATOR(pg_catalog./) w.secs_5m AS arrival_rate_5m,
		   COALESCE(f.arrived_60m, 0)::pg_catalog.float8 OPERATOR(pg_catalog./) w.secs_60m AS arrival_rate_60m,
		   COALESCE(f.processed_5m, 0)::pg_catalog.float8 OPERATOR(pg_catalog./) w.secs_5m AS processing_rate_5m,
		   COALESCE(f.processed_60m, 0)::pg_catalog.float8 OPERATOR(pg_catalog./) w.secs_60m AS processing_rate_60m
	FROM queues q
	CROSS JOIN windows w
	LEFT JOIN waiting wt ON wt.queue OPERATOR(pg_catalog.=) q.queue
	LEFT JOIN flow f ON f.queue OPERATOR(pg_catalog.=) q.queue
)
SELECT g.queue, g.waiting, g.oldest_age,
	   g.arrival_rate_5m, g.arrival_rate_60m,
	   g.processing_rate_5m, g.processing_rate_60m,
	   CASE WHEN g.waiting OPERATOR(pg_catalog.>) 0
				 AND g.processing_rate_5m OPERATOR(pg_catalog.>) g.arrival_rate_5m
			THEN pg_catalog.make_interval(secs =>
				g.waiting::pg_catalog.float8 OPERATOR(pg_catalog./)
				(g.processing_rate_5m OPERATOR(pg_catalog.-) g.arrival_rate_5m))
	   END AS drain_eta,
	   COALESCE((SELECT h.clients FROM state_msg.resync_held_back h
				 WHERE h.queue::pg_catalog.text OPERATOR(pg_catalog.=) g.queue),
				0)::pg_catalog.int8 AS held_back_resyncs,
	   CASE WHEN g.waiting OPERATOR(pg_catalog.>=) state_msg.backlog_significant_messages()
				 OR g.oldest_age OPERATOR(pg_catalog.>=) state_msg.backlog_significant_age()
			THEN 'significant'
			WHEN g.waiting OPERATOR(pg_catalog.>) 0
				 AND g.arrival_rate_5m OPERATOR(pg_catalog.>) g.processing_rate_5m
			THEN 'growing'
			ELSE 'normal'
	   END AS status
FROM figures g
ORDER BY g.ord;
COMMENT ON VIEW state_msg.backlog IS
	'Queued processing: one row per queue (high, low, fsp): messages waiting, the oldest''s age, arrival and processing rates, drain ETA and status; exact, and reads only the compacted counts';
COMMENT ON COLUMN state_msg.backlog.queue IS 'The queue: high, low or fsp';
COMMENT ON COLUMN state_msg.backlog.waiting IS 'Messages waiting in the queue (exact)';
COMMENT ON COLUMN state_msg.backlog.oldest_age IS
	'Age of the oldest waiting message, to the minute: engine clock minus the start of the minute it was enqueued in; NULL when none waits';
COMMENT ON COLUMN state_msg.backlog.arrival_rate_5m IS
	'Messages per second that arrived in the current minute and the 4 before it (in immediate processing: processed), over that window''s length';
COMMENT ON COLUMN state_msg.backlog.arrival_rate_60m IS
	'As arrival_rate_5m, over the current minute and the 59 before it';
COMMENT ON COLUMN state_msg.backlog.processing_rate_5m IS
	'Messages per second processed in the current minute and the 4 before it, over that window''s length';
COMMENT ON COLUMN state_msg.backlog.processing_rate_60m IS
	'As processing_rate_5m, over the current minute and the 59 before it';
COMMENT ON COLUMN state_msg.backlog.drain_eta IS
	'waiting / (processing_rate_5m - arrival_rate_5m) when messages wait and processing outpaces arrival; NULL otherwise';
COMMENT ON COLUMN state_msg.backlog.held_back_resyncs IS
	'Clients the latest check cycle held back (state_msg.backlog_aware_resync) because their answer waits in this queue: resync_held_back';
COMMENT ON COLUMN state_msg.backlog.status IS
	'significant (waiting >= state_msg.backlog_significant_messages or oldest_age >= state_msg.backlog_significant_age), growing (messages wait and arrival_rate_5m > processing_rate_5m) or normal';

-- What generates the load
CREATE VIEW state_msg.backlog_sources AS
SELECT f.topic_type, t.name AS topic_type_name,
	   pg_catalog.sum(f.arrived)::pg_catalog.int8 AS messages_last_hour,
	   pg_catalog.sum(f.resync_answers)::pg_catalog.float8
		   OPERATOR(pg_catalog./) pg_catalog.sum(f.arrived)::pg_catalog.float8
		   AS resync_answer_share
FROM state_msg.queue_flow f
LEFT JOIN state_msg.topic_types t ON t.topic_type OPERATOR(pg_catalog.=) f.topic_type
WHERE f.minute OPERATOR(pg_catalog.>=)
	(pg_catalog.date_trunc('minute', state_msg.engine_now(), 'UTC')
		OPERATOR(pg_catalog.-) '59 minutes'::interval)
GROUP BY f.topic_type, t.name
HAVING pg_catalog.sum(f.arrived) OPERATOR(pg_catalog.>) 0
ORDER BY messages_last_hour DESC, f.topic_type;
COMMENT ON VIEW state_msg.backlog_sources IS
	'What generates the load: per topic type, messages that arrived in the current minute and the 59 before it, and the share of them that were resync answers';
COMMENT ON COLUMN state_msg.backlog_sources.topic_type IS 'The topic type';
COMMENT ON COLUMN state_msg.backlog_sources.topic_type_name IS
	'Its name from state_msg.topic_types, NULL if unknown';
COMMENT ON COLUMN state_msg.backlog_sources.messages_last_hour IS
	'Messages of the type that arrived in the current minute and the 59 before it (engine clock)';
COMMENT ON COLUMN state_msg.backlog_sources.resync_answer_share IS
	'Share (0 to 1) of them that were resync answers: messages of a client whose messages in the same statement included a 700/2';

-- Samples of backlog for dashboards
CREATE TABLE state_msg.backlog_history (
	sampled_at timestamptz NOT NULL,
	queue text NOT NULL,
	waiting bigint NOT NULL,
	oldest_age interval,
	arrival_rate_5m double precision NOT NULL,
	processing_rate_5m double precision NOT NULL,
	drain_eta interval,
	PRIMARY KEY (sampled_at, queue)
);
COMMENT ON TABLE state_msg.backlog_history IS
	'Samples of state_msg.backlog (one row per queue per sample, taken by sample_backlog()), kept for state_msg.backlog_history_retention';
COMMENT ON COLUMN state_msg.backlog_history.sampled_at IS 'Engine clock of the sample';
COMMENT ON COLUMN state_msg.backlog_history.queue IS 'The queue';
COMMENT ON COLUMN state_msg.backlog_history.waiting IS 'backlog.waiting';
COMMENT ON COLUMN state_msg.backlog_history.oldest_age IS 'backlog.oldest_age';
COMMENT ON COLUMN state_msg.backlog_history.arrival_rate_5m IS 'backlog.arrival_rate_5m';
COMMENT ON COLUMN state_msg.backlog_history.processing_rate_5m IS 'backlog.processing_rate_5m';
COMMENT ON COLUMN state_msg.backlog_history.drain_eta IS 'backlog.drain_eta';
SELECT pg_catalog.pg_extension_config_dump('state_msg.backlog_history', '');

CREATE FUNCTION state_msg.sample_backlog()
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	DELETE FROM state_msg.backlog_history
	WHERE sampled_at OPERATOR(pg_catalog.<)
		(state_msg.engine_now() OPERATOR(pg_catalog.-) state_msg.backlog_history_retention());
	WITH s AS (
		INSERT INTO state_msg.backlog_history (sampled_at, queue, waiting,
			oldest_age, arrival_rate_5m, processing_rate_5m, drain_eta)
		SELECT t.at, b.queue, b.waiting, b.oldest_age,
			   b.arrival_rate_5m, b.processing_rate_5m, b.drain_eta
		FROM (SELECT state_msg.engine_now() AS at OFFSET 0) t
		CROSS JOIN state_msg.backlog b
		RETURNING 1
	)
	SELECT pg_catalog.count(*) FROM s;
END;
REVOKE ALL ON FUNCTION state_msg.sample_backlog() FROM PUBLIC;
COMMENT ON FUNCTION state_msg.sample_backlog() IS
	'Insert one sample of state_msg.backlog (a row per queue) into backlog_history and delete samples older than state_msg.backlog_history_retention; returns the rows inserted';

-- Draining
CREATE FUNCTION state_msg.process_queue_batch(max_messages integer DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'state_msg_process_queue_batch'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION state_msg.process_queue_batch(integer) FROM PUBLIC;
COMMENT ON FUNCTION state_msg.process_queue_batch(integer) IS
	'Process one batch of queued messages (at most max_messages and state_msg.queue_batch_size; a high-queue upload is never cut) in the caller''s transaction, deleting them from the queue; returns the messages processed, 0 when none can be taken now; READ COMMITTED only';

/*
 * Not SECURITY DEFINER and without a SET clause, so that it may COMMIT
 * between batches (PostgreSQL 15 forbids it otherwise); the rights are
 * process_queue_batch()'s
 */
CREATE PROCEDURE state_msg.process_queue(max_messages bigint DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
	done bigint := 0;
	n bigint;
BEGIN
	IF max_messages OPERATOR(pg_catalog.<) 0 THEN
		RAISE EXCEPTION 'max_messages must not be negative'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	LOOP
		IF max_messages IS NULL THEN
			n := state_msg.process_queue_batch(NULL);
		ELSE
			EXIT WHEN done OPERATOR(pg_catalog.>=) max_messages;
			n := state_msg.process_queue_batch(pg_catalog.int4(
				pg_catalog.int8smaller(max_messages OPERATOR(pg_catalog.-) done, 2147483647)));
		END IF;
		COMMIT;
		EXIT WHEN n OPERATOR(pg_catalog.=) 0;
		done := done OPERATOR(pg_catalog.+) n;
	END LOOP;
END;
$$;
REVOKE ALL ON PROCEDURE state_msg.process_queue(bigint) FROM PUBLIC;
COMMENT ON PROCEDURE state_msg.process_queue(bigint) IS
	'Drain the queues by hand (without the background worker): process_queue_batch() in a loop, committing after each batch, until max_messages were processed (all when NULL) or none can be taken; call it outside a transaction block';

REVOKE ALL ON state_msg.queue, state_msg.queue_chunks, state_msg.queue_0, state_msg.queue_1,
	state_msg.queue_2, state_msg.queue_rotation, state_msg.queue_throttle,
	state_msg.queue_counts, state_msg.queue_flow, state_msg.topic_types,
	state_msg.backlog, state_msg.backlog_sources, state_msg.backlog_history,
	state_msg.queue_upload_seq, state_msg.resync_held_back FROM PUBLIC;
GRANT SELECT ON state_msg.queue, state_msg.queue_chunks, state_msg.queue_rotation,
	state_msg.queue_throttle, state_msg.queue_counts, state_msg.queue_flow,
	state_msg.topic_types, state_msg.backlog, state_msg.backlog_sources,
	state_msg.backlog_history, state_msg.resync_held_back TO state_msg_reader;
REVOKE ALL ON FUNCTION state_msg.resync_held_back_clients(timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION state_msg.resync_held_back_clients(timestamptz, timestamptz)
	TO state_msg_reader;
GRANT INSERT, UPDATE, DELETE ON state_msg.topic_types TO state_msg_operator;
GRANT EXECUTE ON FUNCTION state_msg.process_queue_batch(integer),
	state_msg.sample_backlog() TO state_msg_operator;
GRANT EXECUTE ON PROCEDURE state_msg.process_queue(bigint) TO state_msg_operator;
