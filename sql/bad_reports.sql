-- Malformed XML reports (issue 7).  A document that is not a well-formed
-- report (not XML, bad encoding, wrong root, no ClientID, any DOCTYPE, over
-- state_msg.max_report_size) is rejected whole: under on_bad_message =
-- quarantine it goes to state_msg.rejected_reports as received and nothing
-- of it is applied; under error the call fails with its SQLSTATE.  No
-- entity is expanded and no file is read.  In a well-formed report a bad
-- message is quarantined like a bad inbox row and the others are processed.
-- retry_rejected_reports() resubmits rejected reports; purge() ages them.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';

CREATE FUNCTION pg_temp.report(client_xml text, body text)
RETURNS text LANGUAGE sql AS $$
SELECT '<Report><ReportHeader><Identification><Machine><ClientInstalled>1</ClientInstalled>'
	|| client_xml || '<NetBIOSName>WKS-0042</NetBIOSName><Priority>5</Priority>'
	|| '</Machine></Identification></ReportHeader><ReportBody>' || body
	|| '</ReportBody></Report>'
$$;
CREATE FUNCTION pg_temp.msg(serial text, topic_id text, state_id text,
							mtime text DEFAULT '20261110181502.120000+000',
							topic_type text DEFAULT '500', extra text DEFAULT '')
RETURNS text LANGUAGE sql AS $$
SELECT '<StateMessage MessageTime="' || mtime || '" SerialNumber="' || serial || '">'
	|| '<Topic ID="' || topic_id || '" Type="' || topic_type || '" IDType="3"/>'
	|| '<State ID="' || state_id || '" Criticality="0"/>' || extra || '</StateMessage>'
$$;
-- The outcome of a call under on_bad_message = error: the SQLSTATE and
-- message, or the result row
CREATE FUNCTION pg_temp.try_text(doc text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
	SET LOCAL state_msg.on_bad_message = error;
	SELECT * INTO r FROM state_msg.ingest_report(doc);
	RETURN 'ok ' || r::text;
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE FUNCTION pg_temp.try_bytea(doc bytea) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
	SET LOCAL state_msg.on_bad_message = error;
	SELECT * INTO r FROM state_msg.ingest_report(doc);
	RETURN 'ok ' || r::text;
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- The bad documents, as text and as bytea
CREATE TEMP TABLE bad (n int, label text, doc bytea);
INSERT INTO bad VALUES
(1, 'not XML', convert_to('hello, world', 'UTF8')),
(2, 'empty', ''::bytea),
(3, 'truncated', convert_to(substr(pg_temp.report('<ClientID>BAD-3</ClientID>',
	pg_temp.msg('1', 'u', '1')), 1, 150), 'UTF8')),
(4, 'mismatched tags', convert_to('<Report><ReportHeader></ReportBody></Report>', 'UTF8')),
(5, 'wrong root', convert_to(replace(pg_temp.report('<ClientID>BAD-5</ClientID>',
	pg_temp.msg('1', 'u', '1')), 'Report>', 'Rapport>'), 'UTF8')),
(6, 'no ClientID', convert_to(pg_temp.report('', pg_temp.msg('1', 'u', '1')), 'UTF8')),
(7, 'empty ClientID', convert_to(pg_temp.report('<ClientID>  </ClientID>',
	pg_temp.msg('1', 'u', '1')), 'UTF8')),
(8, 'billion laughs', convert_to('<?xml version="1.0"?>
<!DOCTYPE Report [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
' || pg_temp.report('<ClientID>BAD-8</ClientID>', pg_temp.msg('1', '&lol9;', '1')), 'UTF8')),
(9, 'external entity', convert_to('<?xml version="1.0"?>
<!DOCTYPE Report [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
' || pg_temp.report('<ClientID>BAD-9</ClientID>', pg_temp.msg('1', '&xxe;', '1')), 'UTF8')),
(10, 'external DTD', convert_to('<?xml version="1.0"?>
<!DOCTYPE Report SYSTEM "file:///etc/passwd">
' || pg_temp.report('<ClientID>BAD-10</ClientID>', pg_temp.msg('1', 'u', '1')), 'UTF8')),
(11, 'undeclared entity', convert_to(pg_temp.report('<ClientID>BAD-11</ClientID>',
	pg_temp.msg('1', '&xxe;', '1')), 'UTF8'));

-- Under error, as text: the SQLSTATE and what is wrong where, nothing of
-- the document
SELECT n, label, pg_temp.try_text(convert_from(doc, 'UTF8')) FROM bad ORDER BY n;
-- and as bytea
SELECT n, label, pg_temp.try_bytea(doc) FROM bad ORDER BY n;
-- Bad encodings (bytea only: text is always valid in its encoding): bytes
-- that are not UTF-8, with and without a byte order mark or a declaration;
-- a lone UTF-16 surrogate, with and without a byte order mark; an odd
-- number of bytes in UTF-16; an encoding libxml2 does not know
CREATE TEMP TABLE bad_encoding (n int, label text, doc bytea);
INSERT INTO bad_encoding VALUES
(1, 'not UTF-8', convert_to('<Report><ReportHeader><Identification><Machine><ClientID>E1-', 'UTF8')
	|| '\xc328'::bytea || convert_to('</ClientID></Machine></Identification></ReportHeader></Report>', 'UTF8')),
(2, 'not UTF-8, declared', convert_to('<?xml version="1.0" encoding="UTF-8"?><Report><ReportHeader><Identification><Machine><ClientID>E2-', 'UTF8')
	|| '\xe9'::bytea || convert_to('</ClientID></Machine></Identification></ReportHeader></Report>', 'UTF8')),
(3, 'not UTF-8, UTF-8 BOM', '\xefbbbf'::bytea || convert_to('<Report><ReportHeader><Identification><Machine><ClientID>E3-', 'UTF8')
	|| '\xff'::bytea || convert_to('</ClientID></Machine></Identification></ReportHeader></Report>', 'UTF8')),
(4, 'lone surrogate, UTF-16LE BOM', '\xfffe'::bytea
	|| decode(regexp_replace(encode(convert_to('<Report><ReportHeader><Identification><Machine><ClientID>E4-', 'UTF8'), 'hex'), '(..)', '\100', 'g'), 'hex')
	|| '\x00d8'::bytea
	|| decode(regexp_replace(encode(convert_to('</ClientID></Machine></Identification></ReportHeader></Report>', 'UTF8'), 'hex'), '(..)', '\100', 'g'), 'hex')),
(5, 'lone surrogate, UTF-16BE', decode(regexp_replace(encode(convert_to('<Report><ReportHeader><Identification><Machine><ClientID>E5-', 'UTF8'), 'hex'), '(..)', '00\1', 'g'), 'hex')
	|| '\xdc00'::bytea
	|| decode(regexp_replace(encode(convert_to('</ClientID></Machine></Identification></ReportHeader></Report>', 'UTF8'), 'hex'), '(..)', '00\1', 'g'), 'hex')),
(6, 'odd length, UTF-16LE', decode(regexp_replace(encode(convert_to('<Report><ReportHeader>', 'UTF8'), 'hex'), '(..)', '\100', 'g'), 'hex')
	|| '\x20'::bytea || decode(regexp_replace(encode(convert_to('</ReportHeader></Report>', 'UTF8'), 'hex'), '(..)', '\100', 'g'), 'hex')),
(7, 'unknown encoding', convert_to('<?xml version="1.0" encoding="ISO-8859-99"?><Report/>', 'UTF8'));
SELECT n, label, pg_temp.try_bytea(doc) FROM bad_encoding ORDER BY n;
SELECT n, label, r.* FROM bad_encoding, LATERAL state_msg.ingest_report(doc) r ORDER BY n;
SELECT sqlstate, client_id, received_as, reason FROM state_msg.rejected_reports ORDER BY rejected_id;
SELECT count(*) AS kept_as_received
FROM state_msg.rejected_reports j JOIN bad_encoding b ON j.report = b.doc;
DELETE FROM state_msg.rejected_reports;
-- beyond a structural limit of the parser: elements nested deeper than 64
SELECT pg_temp.try_text(pg_temp.report('<ClientID>DEEP</ClientID>',
	repeat('<a>', 65) || repeat('</a>', 65)));
-- a document declaring UTF-16 that is in fact UTF-8 is read as UTF-8
SELECT pg_temp.try_bytea(convert_to('<?xml version="1.0" encoding="UTF-16"?>'
	|| pg_temp.report('<ClientID>UTF8-AS-16</ClientID>', pg_temp.msg('1', 'u', '1')), 'UTF8'));
-- nothing else was applied, nothing kept
SELECT client_id FROM state_msg.clients;
SELECT count(*) AS rejected_reports FROM state_msg.rejected_reports;

-- Under quarantine: each is kept as received, with a WARNING, and the
-- call returns a row of zeros
SELECT n, label, r.* FROM bad, LATERAL state_msg.ingest_report(convert_from(doc, 'UTF8')) r
ORDER BY n;
SELECT n, label, r.* FROM bad, LATERAL state_msg.ingest_report(doc) r ORDER BY n;
SELECT rejected_id, sqlstate, client_id, received_as, reason FROM state_msg.rejected_reports
ORDER BY rejected_id;
-- as received, byte for byte
SELECT count(*) AS kept_as_received
FROM state_msg.rejected_reports j JOIN bad b ON j.report = b.doc
WHERE j.rejected_id = (SELECT min(rejected_id) - 1 FROM state_msg.rejected_reports)
	  + b.n + CASE j.received_as WHEN 'text' THEN 0 ELSE 11 END;
-- nothing applied, no entity expanded, no file read: no new client, and
-- the passwd file's first line is nowhere
SELECT client_id FROM state_msg.clients;
SELECT count(*) AS passwd_seen FROM state_msg.rejected_reports
WHERE reason LIKE '%root:%' OR convert_from(report, 'UTF8') LIKE '%root:%';

-- Too large: refused before it is parsed
SHOW state_msg.max_report_size;
SET state_msg.max_report_size = 200;
SHOW state_msg.max_report_size;
SELECT pg_temp.try_text(pg_temp.report('<ClientID>BIG</ClientID>',
	pg_temp.msg('1', 'u', '1') || pg_temp.msg('2', 'v', '1')));
SELECT * FROM state_msg.ingest_report(pg_temp.report('<ClientID>BIG</ClientID>',
	pg_temp.msg('1', 'u', '1') || pg_temp.msg('2', 'v', '1')));
SELECT rejected_id, sqlstate, client_id, received_as, reason FROM state_msg.rejected_reports
WHERE reason LIKE '%max_report_size%';
SELECT count(*) AS clients FROM state_msg.clients WHERE client_id = 'BIG';
RESET state_msg.max_report_size;
-- only a superuser may change it
CREATE ROLE sm_report_user;
SET ROLE sm_report_user;
SET state_msg.max_report_size = '1GB';
RESET ROLE;
DROP ROLE sm_report_user;

-- Bad messages in a good report: each is quarantined like a bad inbox row
-- (its row number is its place in the report), the others are processed
SELECT * FROM state_msg.ingest_report(pg_temp.report('<ClientID>MIX</ClientID>',
	pg_temp.msg('1', 'ok-1', '1')
	|| pg_temp.msg('x2', 'bad-serial', '1')
	|| '<StateMessage MessageTime="20261110181502.120000+000" SerialNumber="3"><State ID="1"/></StateMessage>'
	|| '<StateMessage MessageTime="20261110181502.120000+000" SerialNumber="4"><Topic ID="no-state" Type="500"/></StateMessage>'
	|| pg_temp.msg('5', 'bad-date', '1', '20261332250000.000000+000')
	|| pg_temp.msg('6', 'six-params', '1', extra => '<UserParameters><Param>1</Param><Param>2</Param><Param>3</Param><Param>4</Param><Param>5</Param><Param>6</Param></UserParameters>')
	|| pg_temp.msg('7', 'bad-state', 'two')
	|| pg_temp.msg('8', 'big-type', '1', topic_type => '99999999999')
	|| pg_temp.msg('9', 'negative-state', '-1')
	|| '<StateMessage SerialNumber="10"><Topic ID="no-time" Type="500"/><State ID="1"/></StateMessage>'
	|| pg_temp.msg('11', 'ok-11', '2')));
SELECT row_number, client_id, serial_number, topic_type, topic_id, state_id, message_time,
	   user_params, source, sqlstate, reason
FROM state_msg.rejected_messages ORDER BY rejected_id;
SELECT topic_id, state_id, serial_number FROM state_msg.client_state WHERE client_id = 'MIX'
ORDER BY 1;
-- the serials of the bad messages are missing: they were never applied
SELECT client_id, first_serial, last_serial FROM state_msg.missing_ranges WHERE client_id = 'MIX';

-- A header Priority that is not a number makes every message of the
-- report bad
SELECT * FROM state_msg.ingest_report(replace(pg_temp.report('<ClientID>PRIO</ClientID>',
	pg_temp.msg('1', 'p1', '1') || pg_temp.msg('2', 'p2', '1')),
	'<Priority>5</Priority>', '<Priority>high</Priority>'));
SELECT row_number, client_id, topic_id, sqlstate, reason FROM state_msg.rejected_messages
WHERE client_id = 'PRIO' ORDER BY rejected_id;

-- Under error the call fails naming the message, and nothing is applied
SELECT pg_temp.try_text(pg_temp.report('<ClientID>MIX-E</ClientID>',
	pg_temp.msg('1', 'ok-1', '1') || pg_temp.msg('x2', 'bad-serial', '1')));
SELECT pg_temp.try_text(pg_temp.report('<ClientID>MIX-E</ClientID>',
	pg_temp.msg('1', 'ok-1', '1') || pg_temp.msg('2', 'bad-date', '1', '20260230000000.000000+000')));
SELECT pg_temp.try_text(pg_temp.report('<ClientID>MIX-E</ClientID>',
	pg_temp.msg('1', 'ok-1', '1') || '<StateMessage MessageTime="20261110181502.120000+000"><State ID="1"/></StateMessage>'));
SELECT pg_temp.try_text(pg_temp.report('<ClientID>MIX-E</ClientID>',
	pg_temp.msg('1', 'ok-1', '1') || pg_temp.msg('2', 'negative', '-1')));
SELECT count(*) AS clients FROM state_msg.clients WHERE client_id = 'MIX-E';

-- Resubmitting: the too-large report goes through now that the limit is
-- the default again; the others are still rejected, with a fresh
-- rejected_at; an unknown id is ignored.  on_bad_message = error does not
-- apply.
UPDATE state_msg.rejected_reports SET rejected_at = '2000-01-01';
SET state_msg.on_bad_message = error;
SELECT * FROM state_msg.retry_rejected_reports(
	ARRAY[999::bigint] || ARRAY(SELECT rejected_id FROM state_msg.rejected_reports));
RESET state_msg.on_bad_message;
SELECT rejected_id, rejected_at > '2001-01-01' AS fresh, sqlstate, client_id
FROM state_msg.rejected_reports ORDER BY rejected_id;
SELECT client_id, messages_processed FROM state_msg.clients WHERE client_id = 'BIG';
-- reports fixed by hand go through too (the wrong root, as text and as
-- bytea: the second is a duplicate)
UPDATE state_msg.rejected_reports
SET report = convert_to(replace(convert_from(report, 'UTF8'), 'Rapport>', 'Report>'), 'UTF8')
WHERE convert_from(report, 'UTF8') LIKE '%<Rapport>%';
SELECT * FROM state_msg.retry_rejected_reports(ARRAY(
	SELECT rejected_id FROM state_msg.rejected_reports
	WHERE convert_from(report, 'UTF8') LIKE '%<Report>%BAD-5%'));
SELECT count(*) FROM state_msg.rejected_reports WHERE convert_from(report, 'UTF8') LIKE '%BAD-5%';
SELECT client_id, messages_processed, duplicates FROM state_msg.clients WHERE client_id = 'BAD-5';

-- Retention: purge() deletes rejected reports as it deletes rejected rows
SET state_msg.clock_offset = '29d';
SELECT * FROM state_msg.purge();
SET state_msg.clock_offset = '31d';
SELECT * FROM state_msg.purge();
SELECT count(*) AS rejected_reports FROM state_msg.rejected_reports;
RESET state_msg.clock_offset;
