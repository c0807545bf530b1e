/* state_msg--1.0.sql: the state message engine */

\echo Use "CREATE EXTENSION state_msg" to load this file. \quit

/*
 * Every name is schema-qualified and every function that runs with the
 * owner's rights pins its search_path, so a hostile search_path cannot
 * redirect anything.  Text keys use the "C" collation: client and topic ids
 * are identifiers, not prose, and byte order makes the indexes fast.
 */

-- Roles: writers relay client reports, readers monitor.  Roles are global,
-- so they may already exist from another database.
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'state_msg_writer') THEN
		CREATE ROLE state_msg_writer NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'state_msg_reader') THEN
		CREATE ROLE state_msg_reader NOLOGIN;
	END IF;
END
$$;

CREATE TYPE state_msg.verdict AS ENUM (
	'in_order', 'gap', 'late_fill', 'duplicate', 'serial_reset',
	'unserialized', 'rejected'
);

CREATE TYPE state_msg.resync_reason AS ENUM (
	'missing', 'reissue', 'serial_reset', 'manual'
);

-- One row per client: serial tracking, counters and resync times.
CREATE TABLE state_msg.clients (
	client_id text COLLATE "C" PRIMARY KEY,
	next_serial_number bigint,
	serial_epoch integer NOT NULL DEFAULT 0,
	serial_epoch_started timestamptz,
	last_message_time timestamptz,
	last_processed_time timestamptz,
	messages_processed bigint NOT NULL DEFAULT 0,
	missing_serials bigint NOT NULL DEFAULT 0,
	late_fills bigint NOT NULL DEFAULT 0,
	duplicates bigint NOT NULL DEFAULT 0,
	serial_resets bigint NOT NULL DEFAULT 0,
	unserialized_messages bigint NOT NULL DEFAULT 0,
	last_resync_issued_time timestamptz,
	last_resync_client_completed_time timestamptz,
	resync_requests_issued bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 80);		-- updated by every batch: room for HOT updates

-- The current state: the newest message per (client, topic type, topic id).
CREATE TABLE state_msg.client_state (
	client_id text COLLATE "C" NOT NULL,
	topic_type integer NOT NULL,
	topic_id text COLLATE "C" NOT NULL,
	topic_id_type integer NOT NULL,
	state_id integer NOT NULL,
	criticality integer NOT NULL,
	serial_number bigint,
	serial_epoch integer NOT NULL,
	message_time timestamptz NOT NULL,
	processed_at timestamptz NOT NULL,
	user_params text[],
	source text NOT NULL,
	PRIMARY KEY (client_id, topic_type, topic_id)
) WITH (fillfactor = 80);

-- Serials a client sent that never arrived.  Ideally empty.
CREATE TABLE state_msg.missing_ranges (
	client_id text COLLATE "C" NOT NULL,
	first_serial bigint NOT NULL,
	last_serial bigint NOT NULL,
	detected_at timestamptz NOT NULL,
	PRIMARY KEY (client_id, first_serial),
	CHECK (first_serial <= last_serial)
);
CREATE INDEX ON state_msg.missing_ranges (detected_at);

-- Every resynchronization request issued.
CREATE TABLE state_msg.resync_requests (
	request_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	client_id text COLLATE "C" NOT NULL,
	reason state_msg.resync_reason NOT NULL,
	issued_at timestamptz NOT NULL,
	completed_at timestamptz
);
CREATE INDEX ON state_msg.resync_requests (client_id) WHERE completed_at IS NULL;

-- Bad input set aside under state_msg.on_bad_message = quarantine.
CREATE TABLE state_msg.rejected_messages (
	rejected_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	rejected_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	reason text NOT NULL,
	sqlstate text NOT NULL,
	row_number bigint NOT NULL,
	client_id text,
	serial_number bigint,
	topic_type integer,
	topic_id text,
	topic_id_type integer,
	state_id integer,
	criticality integer,
	message_time timestamptz,
	user_params text[],
	source text
);

SELECT pg_catalog.pg_extension_config_dump('state_msg.clients', '');
SELECT pg_catalog.pg_extension_config_dump('state_msg.client_state', '');
SELECT pg_catalog.pg_extension_config_dump('state_msg.missing_ranges', '');
SELECT pg_catalog.pg_extension_config_dump('state_msg.resync_requests', '');
SELECT pg_catalog.pg_extension_config_dump('state_msg.rejected_messages', '');
SELECT pg_catalog.pg_extension_config_dump(
	pg_catalog.pg_get_serial_sequence('state_msg.resync_requests', 'request_id'), '');
SELECT pg_catalog.pg_extension_config_dump(
	pg_catalog.pg_get_serial_sequence('state_msg.rejected_messages', 'rejected_id'), '');

/*
 * The inbox: an insert target that stores nothing.  Its table access method
 * discards rows; a statement trigger processes them from the transition
 * table, so multi-row INSERT and COPY stay on their batched paths.
 */
CREATE FUNCTION state_msg.inbox_am_handler(internal)
RETURNS table_am_handler
AS 'MODULE_PATHNAME', 'state_msg_inbox_am_handler'
LANGUAGE C;

CREATE ACCESS METHOD state_msg_inbox TYPE TABLE HANDLER state_msg.inbox_am_handler;

CREATE TABLE state_msg.inbox (
	client_id text,
	serial_number bigint,
	topic_type integer,
	topic_id text,
	topic_id_type integer DEFAULT 0,
	state_id integer,
	criticality integer DEFAULT 0,
	message_time timestamptz,
	user_params text[],
	source text DEFAULT 'mp'
) USING state_msg_inbox;

CREATE FUNCTION state_msg.inbox_process()
RETURNS trigger
AS 'MODULE_PATHNAME', 'state_msg_inbox_process'
LANGUAGE C
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE TRIGGER inbox_process
	AFTER INSERT ON state_msg.inbox
	REFERENCING NEW TABLE AS new_messages
	FOR EACH STATEMENT EXECUTE FUNCTION state_msg.inbox_process();

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
	source text DEFAULT 'mp')
RETURNS state_msg.verdict
AS 'MODULE_PATHNAME', 'state_msg_ingest'
LANGUAGE C VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION state_msg.normalize_client_id(text)
RETURNS text
AS 'MODULE_PATHNAME', 'state_msg_normalize_client_id'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION state_msg.min_missing_message_age()
RETURNS interval
AS 'MODULE_PATHNAME', 'state_msg_min_missing_message_age'
LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION state_msg.min_resync_period()
RETURNS interval
AS 'MODULE_PATHNAME', 'state_msg_min_resync_period'
LANGUAGE C STABLE PARALLEL SAFE;

/*
 * Has client c an outstanding resync request: one issued, and no completion
 * processed since?  (Inlined wherever it is used.)
 */
CREATE FUNCTION state_msg.has_open_request(c state_msg.clients)
RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $$
	SELECT
	c.last_resync_issued_time IS NOT NULL
	AND (c.last_resync_client_completed_time IS NULL
		 OR c.last_resync_client_completed_time
			OPERATOR(pg_catalog.<) c.last_resync_issued_time)
$$;

/*
 * Is a resync request due for client c?  An outstanding request (issued, and
 * no completion processed since) is due again once issued before
 * reissue_before; otherwise a request is due for a missing range detected
 * before missing_before.
 */
CREATE FUNCTION state_msg.resync_due(
	c state_msg.clients,
	reissue_before timestamptz,
	missing_before timestamptz)
RETURNS boolean
LANGUAGE sql STABLE
AS $$
	SELECT CASE
		WHEN state_msg.has_open_request(c)
		THEN c.last_resync_issued_time OPERATOR(pg_catalog.<=) reissue_before
		ELSE EXISTS (SELECT FROM state_msg.missing_ranges m
					 WHERE m.client_id OPERATOR(pg_catalog.=) c.client_id
					   AND m.detected_at OPERATOR(pg_catalog.<=) missing_before)
	END
$$;

/*
 * The resync check cycle, as if run at as_of.  A client with a missing range
 * older than min_missing_message_age and no outstanding request gets one
 * (reason missing); an outstanding request older than min_resync_period is
 * issued again (reason reissue), whether or not an answer waits unprocessed.
 *
 * First the candidates are locked in client_id order, like ingestion, so the
 * cycle and concurrent batches cannot deadlock.  Then the conditions are
 * checked again with a fresh snapshot: a batch that held a client's lock
 * may have completed its resync or filled its gaps meanwhile.  Clients that
 * became due in between wait for the next cycle.
 */
CREATE FUNCTION state_msg.run_resync_check(
	as_of timestamptz DEFAULT pg_catalog.now(),
	OUT issued bigint,
	OUT reissued bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	reissue_before timestamptz :=
		as_of OPERATOR(pg_catalog.-) state_msg.min_resync_period();
	missing_before timestamptz :=
		as_of OPERATOR(pg_catalog.-) state_msg.min_missing_message_age();
	locked text[];
BEGIN
	IF as_of IS NULL OR NOT pg_catalog.isfinite(as_of) THEN
		RAISE EXCEPTION 'as_of must be a finite time, not %', coalesce(as_of::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	SELECT array_agg(client_id) INTO locked
	FROM (SELECT c.client_id FROM state_msg.clients c
		  WHERE state_msg.resync_due(c, reissue_before, missing_before)
		  ORDER BY c.client_id
		  FOR UPDATE) AS candidates;

	WITH due AS (
		SELECT c.client_id,
			   -- an issue is never dated before the completion it follows
			   GREATEST(as_of, c.last_resync_client_completed_time
							   OPERATOR(pg_catalog.+) interval '1 microsecond')
			   AS issued_at,
			   state_msg.has_open_request(c) AS outstanding
		FROM state_msg.clients c
		WHERE c.client_id OPERATOR(pg_catalog.=) ANY (locked)
		  AND state_msg.resync_due(c, reissue_before, missing_before)
	),
	requests AS (
		INSERT INTO state_msg.resync_requests (client_id, reason, issued_at)
		SELECT due.client_id,
			   CASE WHEN due.outstanding THEN 'reissue' ELSE 'missing' END::state_msg.resync_reason,
			   due.issued_at
		FROM due
		RETURNING reason
	),
	marked AS (
		UPDATE state_msg.clients c
		SET last_resync_issued_time = due.issued_at,
			resync_requests_issued = c.resync_requests_issued OPERATOR(pg_catalog.+) 1
		FROM due
		WHERE c.client_id OPERATOR(pg_catalog.=) due.client_id
	)
	SELECT count(*) FILTER (WHERE reason OPERATOR(pg_catalog.=) 'missing'),
		   count(*) FILTER (WHERE reason OPERATOR(pg_catalog.=) 'reissue')
	INTO issued, reissued
	FROM requests;
END
$$;

-- Issue one request by hand (or for a reason found elsewhere); returns its id.
-- Like run_resync_check(), it runs with the owner's rights: granting EXECUTE
-- is all a scheduler or an operator role needs.
CREATE FUNCTION state_msg.request_resync(
	client_id text,
	reason state_msg.resync_reason DEFAULT 'manual')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	id text := state_msg.normalize_client_id(request_resync.client_id);
	issued_at timestamptz;
	new_request bigint;
BEGIN
	IF id IS NULL OR request_resync.reason IS NULL THEN
		RAISE EXCEPTION 'client_id and reason must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	-- the clock once the row is locked (not the transaction's start), and
	-- never before the client's last completion
	UPDATE state_msg.clients c
	SET last_resync_issued_time =
			GREATEST(pg_catalog.clock_timestamp(),
					 c.last_resync_client_completed_time
					 OPERATOR(pg_catalog.+) interval '1 microsecond'),
		resync_requests_issued = c.resync_requests_issued OPERATOR(pg_catalog.+) 1
	WHERE c.client_id OPERATOR(pg_catalog.=) id
	RETURNING c.last_resync_issued_time INTO issued_at;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'client "%" is not known', id
			USING ERRCODE = 'no_data_found',
				  HINT = 'A client becomes known with its first message.';
	END IF;
	INSERT INTO state_msg.resync_requests (client_id, reason, issued_at)
	VALUES (id, request_resync.reason, issued_at)
	RETURNING request_id INTO new_request;
	RETURN new_request;
END
$$;

-- ConfigMgr's SR_ClientMessageStats: its column names, UTC timestamps.
CREATE VIEW state_msg.sr_clientmessagestats AS
SELECT client_id AS ClientID,
	   next_serial_number AS NextSerialNumber,
	   pg_catalog.timezone('UTC', last_message_time) AS LastMessageTime,
	   pg_catalog.timezone('UTC', last_processed_time) AS LastProcessedTime,
	   pg_catalog.timezone('UTC', last_resync_issued_time) AS LastResyncIssuedTime,
	   pg_catalog.timezone('UTC', last_resync_client_completed_time) AS LastResyncClientCompletedTime
FROM state_msg.clients;

-- The two queries of the user's source document, and the three-day rule.
CREATE VIEW state_msg.resync_outstanding AS
SELECT count(*) FILTER (WHERE last_resync_issued_time > last_resync_client_completed_time)
		   AS issued_not_completed,
	   count(*) FILTER (WHERE last_resync_issued_time IS NOT NULL
						  AND last_resync_client_completed_time IS NULL)
		   AS never_completed,
	   count(*) FILTER (WHERE state_msg.has_open_request(c)
						  AND last_resync_issued_time
							  <= pg_catalog.now() - state_msg.min_resync_period())
		   AS due_for_reissue
FROM state_msg.clients c;

-- The clients whose request the next check cycle will reissue.
CREATE VIEW state_msg.resync_reissue_due AS
SELECT client_id,
	   last_resync_issued_time,
	   last_resync_client_completed_time,
	   pg_catalog.now() - last_resync_issued_time AS waited
FROM state_msg.clients c
WHERE state_msg.has_open_request(c)
  AND last_resync_issued_time <= pg_catalog.now() - state_msg.min_resync_period();

-- Privileges: nothing for PUBLIC; writers insert, readers read.
REVOKE ALL ON ALL TABLES IN SCHEMA state_msg FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA state_msg FROM PUBLIC;
GRANT USAGE ON SCHEMA state_msg TO state_msg_writer, state_msg_reader;
GRANT INSERT ON state_msg.inbox TO state_msg_writer;
GRANT EXECUTE ON FUNCTION state_msg.ingest(text, bigint, integer, text, integer,
	timestamptz, integer, integer, text[], text) TO state_msg_writer;
GRANT EXECUTE ON FUNCTION state_msg.has_open_request(state_msg.clients)
	TO state_msg_reader;
GRANT EXECUTE ON FUNCTION state_msg.normalize_client_id(text),
	state_msg.min_missing_message_age(), state_msg.min_resync_period()
	TO state_msg_writer, state_msg_reader;
GRANT SELECT ON state_msg.clients, state_msg.client_state, state_msg.missing_ranges,
	state_msg.resync_requests, state_msg.rejected_messages,
	state_msg.sr_clientmessagestats, state_msg.resync_outstanding,
	state_msg.resync_reissue_due
	TO state_msg_reader;
