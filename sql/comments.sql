-- Observability: every object the extension owns explains itself.  Every
-- member of the extension (tables, views, functions, types, the access
-- method, whatever a later release adds), every column of its tables and
-- every trigger on them has a COMMENT, so \d+, \dT+, \df+ and \dv+ say what
-- it is for.  The query lists what lacks one: it must return no rows.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;

CREATE TEMP VIEW uncommented AS
WITH member AS (
	-- every object the extension owns (created by its scripts)
	SELECT d.classid, d.objid
	FROM pg_catalog.pg_depend d
	JOIN pg_catalog.pg_extension x ON x.oid = d.refobjid
	WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
	  AND x.extname = 'state_msg'
	  AND d.deptype = 'e'
),
member_table AS (
	SELECT c.oid
	FROM member m
	JOIN pg_catalog.pg_class c
		ON m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND c.oid = m.objid
	WHERE c.relkind IN ('r', 'p', 'f')
),
needs_comment AS (
	-- each member, less those that come with another object: the sequence
	-- of an identity or serial column, and array and row types
	SELECT m.classid, m.objid, 0 AS objsubid
	FROM member m
	WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_depend owner
					  WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
						AND owner.classid = m.classid AND owner.objid = m.objid
						AND owner.refobjsubid > 0 AND owner.deptype IN ('a', 'i'))
	  AND NOT EXISTS (SELECT FROM pg_catalog.pg_type t
					  WHERE m.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
						AND t.oid = m.objid
						AND (EXISTS (SELECT FROM pg_catalog.pg_type e
									 WHERE e.typarray = t.oid)
							 OR (t.typtype = 'c'
								 AND EXISTS (SELECT FROM pg_catalog.pg_class r
											 WHERE r.oid = t.typrelid
											   AND r.relkind <> 'c'))))
	UNION ALL
	-- each column of each table (a view's columns are optional)
	SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, a.attrelid, a.attnum
	FROM member_table tab
	JOIN pg_catalog.pg_attribute a ON a.attrelid = tab.oid
	WHERE a.attnum > 0 AND NOT a.attisdropped
	UNION ALL
	-- each trigger on a table (triggers belong to their table, not the
	-- extension)
	SELECT 'pg_catalog.pg_trigger'::pg_catalog.regclass, tg.oid, 0
	FROM member_table tab
	JOIN pg_catalog.pg_trigger tg ON tg.tgrelid = tab.oid
	WHERE NOT tg.tgisinternal
)
SELECT pg_catalog.pg_describe_object(n.classid, n.objid, n.objsubid) AS object
FROM needs_comment n
WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_description d
				  WHERE d.classoid = n.classid AND d.objoid = n.objid
					AND d.objsubid = n.objsubid);

-- Nothing lacks a comment
SELECT object FROM uncommented ORDER BY object COLLATE "C";

-- The query finds each kind of object without one (comments removed in a
-- transaction that is rolled back)
BEGIN;
COMMENT ON TABLE state_msg.clients IS NULL;
COMMENT ON COLUMN state_msg.clients.duplicates IS NULL;
COMMENT ON COLUMN state_msg.inbox.source IS NULL;
COMMENT ON VIEW state_msg.resync_outstanding IS NULL;
COMMENT ON FUNCTION state_msg.engine_now() IS NULL;
COMMENT ON TYPE state_msg.verdict IS NULL;
COMMENT ON ACCESS METHOD state_msg_inbox IS NULL;
COMMENT ON TRIGGER inbox_process ON state_msg.inbox IS NULL;
-- a view's column without one is not listed
COMMENT ON COLUMN state_msg.resync_reissue_due.waited IS NULL;
-- nor an identity column's sequence
COMMENT ON SEQUENCE state_msg.resync_requests_request_id_seq IS NULL;
SELECT object FROM uncommented ORDER BY object COLLATE "C";
ROLLBACK;

