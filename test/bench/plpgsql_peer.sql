-- The benchmark's peer: what a DBA would write without this extension.
--
-- Plain tables and a PL/pgSQL row trigger on an inbox table that keeps
-- nothing: for every row, lock the client, classify the serial (in order,
-- gap, late fill, duplicate), keep missing ranges, keep the newest state per
-- topic by serial, and handle the resync-complete message (700/2).  It has
-- neither serial resets nor clock-skew bounds nor quarantine: it is the
-- straightforward version, and the benchmark compares rates on the same
-- rows in the same run.  Schema plpgsql_peer; load with psql -f (it drops
-- and recreates its schema); insert into plpgsql_peer.inbox.

DROP SCHEMA IF EXISTS plpgsql_peer CASCADE;
CREATE SCHEMA plpgsql_peer;

CREATE TABLE plpgsql_peer.clients (
	client_id text PRIMARY KEY,
	next_serial bigint NOT NULL,
	last_message_time timestamptz,
	missing_serials bigint NOT NULL DEFAULT 0,
	late_fills bigint NOT NULL DEFAULT 0,
	duplicates bigint NOT NULL DEFAULT 0,
	last_resync_completed_time timestamptz
);

CREATE TABLE plpgsql_peer.missing_ranges (
	client_id text,
	first_serial bigint,
	last_serial bigint,
	detected_at timestamptz NOT NULL,
	PRIMARY KEY (client_id, first_serial)
);

CREATE TABLE plpgsql_peer.client_state (
	client_id text,
	topic_type integer,
	topic_id text,
	state_id integer NOT NULL,
	serial_number bigint NOT NULL,
	message_time timestamptz NOT NULL,
	PRIMARY KEY (client_id, topic_type, topic_id)
);

CREATE TABLE plpgsql_peer.inbox (
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
);

-- One message: returns its verdict
CREATE FUNCTION plpgsql_peer.ingest(m plpgsql_peer.inbox)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	c plpgsql_peer.clients;
	r plpgsql_peer.missing_ranges;
	verdict text;
BEGIN
	INSERT INTO plpgsql_peer.clients (client_id, next_serial)
	VALUES (m.client_id, m.serial_number)
	ON CONFLICT (client_id) DO NOTHING;
	SELECT * INTO c FROM plpgsql_peer.clients
	WHERE client_id = m.client_id FOR UPDATE;

	IF m.serial_number = c.next_serial THEN
		verdict := 'in_order';
		UPDATE plpgsql_peer.clients
		SET next_serial = m.serial_number + 1,
			last_message_time = greatest(last_message_time, m.message_time)
		WHERE client_id = m.client_id;
	ELSIF m.serial_number > c.next_serial THEN
		verdict := 'gap';
		INSERT INTO plpgsql_peer.missing_ranges
		VALUES (m.client_id, c.next_serial, m.serial_number - 1, now());
		UPDATE plpgsql_peer.clients
		SET next_serial = m.serial_number + 1,
			last_message_time = greatest(last_message_time, m.message_time),
			missing_serials = missing_serials + (m.serial_number - c.next_serial)
		WHERE client_id = m.client_id;
	ELSE
		SELECT * INTO r FROM plpgsql_peer.missing_ranges
		WHERE client_id = m.client_id AND first_serial <= m.serial_number
		  AND last_serial >= m.serial_number;
		IF NOT FOUND THEN
			UPDATE plpgsql_peer.clients SET duplicates = duplicates + 1
			WHERE client_id = m.client_id;
			RETURN 'duplicate';
		END IF;
		verdict := 'late_fill';
		DELETE FROM plpgsql_peer.missing_ranges
		WHERE client_id = m.client_id AND first_serial = r.first_serial;
		IF r.first_serial < m.serial_number THEN
			INSERT INTO plpgsql_peer.missing_ranges
			VALUES (m.client_id, r.first_serial, m.serial_number - 1, r.detected_at);
		END IF;
		IF r.last_serial > m.serial_number THEN
			INSERT INTO plpgsql_peer.missing_ranges
			VALUES (m.client_id, m.serial_number + 1, r.last_serial, r.detected_at);
		END IF;
		UPDATE plpgsql_peer.clients SET late_fills = late_fills + 1
		WHERE client_id = m.client_id;
	END IF;

	INSERT INTO plpgsql_peer.client_state
	VALUES (m.client_id, m.topic_type, m.topic_id, m.state_id, m.serial_number,
			m.message_time)
	ON CONFLICT (client_id, topic_type, topic_id) DO UPDATE
	SET state_id = excluded.state_id, serial_number = excluded.serial_number,
		message_time = excluded.message_time
	WHERE plpgsql_peer.client_state.serial_number < excluded.serial_number;

	IF m.topic_type = 700 AND m.state_id = 2 THEN
		UPDATE plpgsql_peer.clients SET last_resync_completed_time = now()
		WHERE client_id = m.client_id;
		DELETE FROM plpgsql_peer.missing_ranges
		WHERE client_id = m.client_id AND last_serial < m.serial_number;
	END IF;
	RETURN verdict;
END
$$;

-- The inbox keeps nothing: each row is processed and dropped
CREATE FUNCTION plpgsql_peer.inbox_process() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM plpgsql_peer.ingest(NEW);
	RETURN NULL;
END
$$;

CREATE TRIGGER inbox_process BEFORE INSERT ON plpgsql_peer.inbox
	FOR EACH ROW EXECUTE FUNCTION plpgsql_peer.inbox_process();
