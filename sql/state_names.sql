-- The state names catalog (issue 7): state_names holds the shipped names;
-- ConfigMgr's unquoted v_StateNames queries run unchanged; users (the
-- operator role) add names, edit shipped ones and delete them, as on a table
-- keyed by (topic_type, state_id), and what they write lands in
-- user_state_names (the dumped table), never in shipped_state_names;
-- readers read and write nothing; PUBLIC gets nothing.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
DROP ROLE IF EXISTS sm_names_ops, sm_names_reader, sm_names_writer, sm_names_nobody;
RESET client_min_messages;

CREATE ROLE sm_names_ops IN ROLE state_msg_operator;
CREATE ROLE sm_names_reader IN ROLE state_msg_reader;
CREATE ROLE sm_names_writer IN ROLE state_msg_writer;
CREATE ROLE sm_names_nobody;

-- Shipped: 140 names, none of them the user's
SELECT count(*) AS shipped, count(DISTINCT topic_type) AS topic_types
FROM state_msg.state_names;
SELECT count(*) AS user_rows FROM state_msg.user_state_names;
SELECT topic_type, count(*) FROM state_msg.shipped_state_names GROUP BY 1 ORDER BY 1;

-- ConfigMgr's query, unchanged, with the schema on the search_path
SET search_path = state_msg, public;
SELECT StateName FROM v_StateNames WHERE TopicType = 500;
SELECT StateID, StateName FROM v_StateNames WHERE TopicType = 402 ORDER BY StateID;
SELECT TopicType, StateID, StateName, StateDescription FROM v_StateNames
WHERE TopicType IN (401, 700) AND StateID >= 5 ORDER BY TopicType, StateID;
-- a quoted mixed-case name is another name
SELECT "StateName" FROM v_StateNames;
RESET search_path;

-- The operator edits a shipped name, adds one, deletes a shipped one
SET ROLE sm_names_ops;
UPDATE state_msg.state_names SET state_name = 'Missing',
	state_description = 'Our wording'
WHERE topic_type = 500 AND state_id = 2;
INSERT INTO state_msg.state_names VALUES (9001, 1, 'Custom topic: ready', NULL);
INSERT INTO state_msg.state_names (topic_type, state_id, state_name)
VALUES (9001, 2, 'Custom topic: failed'), (9001, 3, 'Custom topic: gone');
DELETE FROM state_msg.state_names WHERE topic_type = 1660;
-- an edit of the user's own addition
UPDATE state_msg.state_names SET state_description = 'Set by the custom agent'
WHERE topic_type = 9001 AND state_id = 1;
-- deleting one's own addition removes it
DELETE FROM state_msg.state_names WHERE topic_type = 9001 AND state_id = 3;
RESET ROLE;

SELECT * FROM state_msg.state_names
WHERE topic_type IN (500, 1660, 9001) ORDER BY 1, 2;
-- the user's rows: edits and additions, and tombstones for deleted shipped names
SELECT * FROM state_msg.user_state_names ORDER BY 1, 2;
-- the shipped names are untouched
SELECT * FROM state_msg.shipped_state_names
WHERE (topic_type, state_id) IN ((500, 2), (1660, 1), (1660, 2)) ORDER BY 1, 2;
SELECT count(*) FROM state_msg.state_names;

-- Inserting a name that exists fails, whether shipped, edited or added
INSERT INTO state_msg.state_names VALUES (500, 1, 'again', NULL);
INSERT INTO state_msg.state_names VALUES (500, 2, 'again', NULL);
INSERT INTO state_msg.state_names VALUES (9001, 1, 'again', NULL);
-- a deleted shipped name can be inserted again: the tombstone becomes the
-- user's row
INSERT INTO state_msg.state_names VALUES (1660, 2, 'Sensor is on', NULL);
SELECT * FROM state_msg.user_state_names WHERE topic_type = 1660 ORDER BY 2;
-- deleting it again leaves the tombstone again
DELETE FROM state_msg.state_names WHERE topic_type = 1660 AND state_id = 2;
SELECT * FROM state_msg.user_state_names WHERE topic_type = 1660 ORDER BY 2;
-- deleting or updating a deleted name touches nothing
DELETE FROM state_msg.state_names WHERE topic_type = 1660 RETURNING *;
UPDATE state_msg.state_names SET state_name = 'x' WHERE topic_type = 1660 RETURNING *;
-- RETURNING reports the rows written
UPDATE state_msg.state_names SET state_description = 'ours'
WHERE topic_type = 9001 RETURNING *;

-- Nulls and key changes are refused
INSERT INTO state_msg.state_names VALUES (9002, 1, NULL, 'no name');
INSERT INTO state_msg.state_names VALUES (NULL, 1, 'no type', NULL);
INSERT INTO state_msg.state_names VALUES (9002, NULL, 'no state', NULL);
UPDATE state_msg.state_names SET state_name = NULL WHERE topic_type = 500 AND state_id = 3;
UPDATE state_msg.state_names SET state_id = 4 WHERE topic_type = 500 AND state_id = 3;
UPDATE state_msg.state_names SET topic_type = 9003 WHERE topic_type = 9001 AND state_id = 1;
-- an update that changes nothing still pins the row as the user's
UPDATE state_msg.state_names SET state_name = state_name
WHERE topic_type = 500 AND state_id = 3;
SELECT * FROM state_msg.user_state_names WHERE topic_type = 500 ORDER BY 2;

-- Deleting the user's row returns a name to its shipped version (an edit
-- or a tombstone alike)
SET ROLE sm_names_ops;
DELETE FROM state_msg.user_state_names WHERE topic_type = 500 AND state_id = 3;
DELETE FROM state_msg.user_state_names WHERE topic_type = 1660 AND state_id = 1;
RESET ROLE;
SELECT * FROM state_msg.state_names WHERE topic_type IN (500, 1660) ORDER BY 1, 2;

-- The reports' join: every state gets its name, or NULL if none is known
SELECT t.topic_type, t.state_id, n.state_name
FROM (VALUES (500, 2), (1660, 2), (9001, 2), (4242, 0)) AS t (topic_type, state_id)
LEFT JOIN state_msg.state_names n USING (topic_type, state_id)
ORDER BY 1, 2;

-- Readers read every part, and write none
SET ROLE sm_names_reader;
SELECT count(*) FROM state_msg.state_names;
SELECT count(*) FROM state_msg.v_statenames;
SELECT count(*) FROM state_msg.shipped_state_names;
SELECT count(*) FROM state_msg.user_state_names;
INSERT INTO state_msg.state_names VALUES (9004, 1, 'reader', NULL);
UPDATE state_msg.state_names SET state_name = 'reader' WHERE topic_type = 500;
DELETE FROM state_msg.state_names WHERE topic_type = 500;
INSERT INTO state_msg.user_state_names VALUES (9004, 1, 'reader', NULL, false);
RESET ROLE;

-- The operator cannot write the shipped names, nor through v_StateNames
SET ROLE sm_names_ops;
INSERT INTO state_msg.shipped_state_names VALUES (9004, 1, 'ops', NULL);
UPDATE state_msg.shipped_state_names SET state_name = 'ops';
UPDATE state_msg.v_statenames SET statename = 'ops' WHERE topictype = 500;
RESET ROLE;

-- Writers and others get nothing
SET ROLE sm_names_writer;
SELECT count(*) FROM state_msg.state_names;
INSERT INTO state_msg.state_names VALUES (9004, 1, 'writer', NULL);
RESET ROLE;
SET ROLE sm_names_nobody;
SELECT count(*) FROM state_msg.v_statenames;
RESET ROLE;

-- Who may do what, on each part of the catalog
SELECT r.rolname, c.relname,
	   has_table_privilege(r.rolname, c.oid, 'SELECT') AS sel,
	   has_table_privilege(r.rolname, c.oid, 'INSERT') AS ins,
	   has_table_privilege(r.rolname, c.oid, 'UPDATE') AS upd,
	   has_table_privilege(r.rolname, c.oid, 'DELETE') AS del
FROM pg_roles r, pg_class c
WHERE r.rolname IN ('state_msg_operator', 'state_msg_reader', 'state_msg_writer')
  AND c.relnamespace = 'state_msg'::regnamespace
  AND c.relname IN ('state_names', 'v_statenames', 'shipped_state_names', 'user_state_names')
ORDER BY 1, 2;

-- The trigger function runs with the caller's rights, its search_path pinned
SELECT proname, prosecdef, proconfig FROM pg_proc
WHERE oid = 'state_msg.state_names_write'::regproc;

-- A hostile search_path changes nothing
CREATE SCHEMA evil;
CREATE TABLE evil.user_state_names (LIKE state_msg.user_state_names);
SET search_path = evil, pg_catalog, public;
SET ROLE sm_names_ops;
INSERT INTO state_msg.state_names VALUES (9005, 1, 'safe', NULL);
RESET ROLE;
RESET search_path;
SELECT count(*) FROM evil.user_state_names;
SELECT * FROM state_msg.state_names WHERE topic_type = 9005;
DROP SCHEMA evil CASCADE;

DROP ROLE sm_names_ops, sm_names_reader, sm_names_writer, sm_names_nobody;
