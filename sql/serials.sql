-- Serial tracking (rules 1 and 2): baseline, in order, gap, late fill that
-- shrinks or splits a missing range, duplicate; and the client id spellings
-- that name one client.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

-- The spellings of one client id
SELECT state_msg.normalize_client_id(id)
FROM (VALUES ('GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F'),
			 ('GUID: 6b0c9a51-3d1e-4f7a-9c21-0a1b2c3d4e5f'),
			 ('guid:{6b0c9a51-3d1e-4f7a-9c21-0a1b2c3d4e5f}'),
			 ('  6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F '),
			 ('WKS-0042'),
			 ('GUID:not-a-guid')) AS t(id);

-- Rule 1: the first message is the baseline
SELECT state_msg.ingest('GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F', 41, 500, 'upd-a', 2, '2026-11-10 18:15:00+00');
SELECT client_id, next_serial_number, messages_processed FROM state_msg.clients;

-- Rule 2: in order, under any spelling of the id
SELECT state_msg.ingest('GUID: 6b0c9a51-3d1e-4f7a-9c21-0a1b2c3d4e5f', 42, 500, 'upd-a', 3, '2026-11-10 18:16:00+00');
SELECT state_msg.ingest('6b0c9a51-3d1e-4f7a-9c21-0a1b2c3d4e5f', 43, 500, 'upd-b', 2, '2026-11-10 18:17:00+00');
SELECT count(*) AS clients, min(next_serial_number) AS next FROM state_msg.clients;

-- A gap: 44..49 never arrived
SELECT state_msg.ingest('GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F', 50, 500, 'upd-c', 2, '2026-11-10 18:30:00+00');
SELECT first_serial, last_serial FROM state_msg.missing_ranges ORDER BY 1;

-- Late fills: at the low end, at the high end, in the middle (split)
SELECT state_msg.ingest('GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F', 44, 500, 'upd-d', 2, '2026-11-10 18:18:00+00');
SELECT state_msg.ingest('GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F', 49, 500, 'upd-d', 2, '2026-11-10 18:29:00+00');
SELECT state_msg.ingest('GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F', 47, 500, 'upd-d', 2, '2026-11-10 18:25:00+00');
SELECT first_serial, last_serial FROM state_msg.missing_ranges ORDER BY 1;

-- Filling a one-serial range removes it
SELECT state_msg.ingest('GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F', 48, 500, 'upd-d', 2, '2026-11-10 18:27:00+00');
SELECT first_serial, last_serial FROM state_msg.missing_ranges ORDER BY 1;

-- Duplicates: below next and outside every range, with its original time;
-- also a second copy of a late fill
SELECT state_msg.ingest('GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F', 42, 500, 'upd-a', 3, '2026-11-10 18:16:00+00');
SELECT state_msg.ingest('GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F', 47, 500, 'upd-d', 2, '2026-11-10 18:25:00+00');

SELECT next_serial_number, messages_processed, missing_serials, late_fills,
	   duplicates, serial_resets
FROM state_msg.clients;

-- Within one statement a client's messages are taken in arrival order; a
-- new client's baseline is the lowest serial it sent in that statement.
INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id, state_id, message_time)
VALUES ('WKS-1', 7, 500, 'u1', 2, '2026-11-10 10:07:00+00'),
	   ('WKS-1', 5, 500, 'u1', 1, '2026-11-10 10:05:00+00'),
	   ('WKS-2', 1, 500, 'u1', 2, '2026-11-10 10:01:00+00'),
	   ('WKS-1', 9, 500, 'u2', 3, '2026-11-10 10:09:00+00'),
	   ('WKS-2', 2, 500, 'u1', 3, '2026-11-10 10:02:00+00'),
	   ('WKS-1', 9, 500, 'u2', 3, '2026-11-10 10:09:00+00');
SELECT client_id, next_serial_number, messages_processed, missing_serials,
	   late_fills, duplicates
FROM state_msg.clients WHERE client_id LIKE 'WKS-%' ORDER BY 1;
SELECT client_id, first_serial, last_serial
FROM state_msg.missing_ranges WHERE client_id LIKE 'WKS-%' ORDER BY 1, 2;

-- The inbox keeps nothing
SELECT count(*) FROM state_msg.inbox;

-- Messages without a serial (fallback status point relays) never touch
-- serial tracking
SELECT state_msg.ingest('WKS-2', NULL, 800, 'deploy', 400, '2026-11-10 10:03:00+00', source => 'fsp');
SELECT next_serial_number, messages_processed, unserialized_messages
FROM state_msg.clients WHERE client_id = 'WKS-2';

-- A client known only from relayed messages has no baseline yet
SELECT state_msg.ingest('WKS-3', NULL, 800, 'deploy', 100, '2026-11-10 10:00:00+00', source => 'fsp');
SELECT state_msg.ingest('WKS-3', 12, 500, 'u1', 2, '2026-11-10 10:04:00+00');
SELECT next_serial_number, messages_processed, unserialized_messages
FROM state_msg.clients WHERE client_id = 'WKS-3';
