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
-- bad encodings, as bytea only (text is always valid in its encoding): a
-- byte that is not UTF-8, a document that declares UTF-16 but is not, and
-- an unpaired UTF-16 surrogate
SELECT pg_temp.try_bytea(convert_to(pg_temp.report('<ClientID>BAD-E1</ClientID>',
	pg_temp.msg('1', 'u', '1')), 'UTF8') || '\xc328'::bytea);
SELECT pg_temp.try_bytea(convert_to('<?xml version="1.0" encoding="UTF-16"?>'
	|| pg_temp.report('<ClientID>BAD-E2</ClientID>', pg_temp.msg('1', 'u', '1')), 'UTF8'));
SELECT pg_temp.try_bytea('\xfffe3c00'::bytea || '\x00d8'::bytea || '\x3e00'::bytea);
-- nothing was applied, nothing kept
SELECT count(*) AS clients FROM state_msg.clients;
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
WHERE j.rejected_id = b.n + CASE j.received_as WHEN 'text' THEN 0 ELSE 11 END;
-- nothing applied, no entity expanded, no file read: no client, no state,
-- and the passwd file's first line is nowhere
SELECT count(*) AS clients FROM state_msg.clients;
SELECT count(*) AS states FROM state_msg.client_state;
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
SELECT count(*) AS clients FROM state_msg.clients;
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

-- Resubmitting: the too-large report goes through once the limit is
-- raised; the others are still rejected, with a fresh rejected_at; an
-- unknown id is ignored.  on_bad_message = error does not apply.
RESET state_msg.max_report_size;
UPDATE state_msg.rejected_reports SET rejected_at = '2000-01-01';
SET state_msg.on_bad_message = error;
SELECT * FROM state_msg.retry_rejected_reports(
	ARRAY[999::bigint] || ARRAY(SELECT rejected_id FROM state_msg.rejected_reports));
RESET state_msg.on_bad_message;
SELECT rejected_id, rejected_at > '2001-01-01' AS fresh, sqlstate, client_id
FROM state_msg.rejected_reports ORDER BY rejected_id;
SELECT client_id, messages_processed FROM state_msg.clients WHERE client_id = 'BIG';
-- a report fixed by hand goes through too
UPDATE state_msg.rejected_reports
SET report = convert_to(replace(convert_from(report, 'UTF8'), 'Rapport>', 'Report>'), 'UTF8')
WHERE client_id = 'BAD-5';
SELECT * FROM state_msg.retry_rejected_reports(ARRAY(
	SELECT rejected_id FROM state_msg.rejected_reports WHERE client_id = 'BAD-5'));
SELECT count(*) FROM state_msg.rejected_reports WHERE client_id = 'BAD-5';
SELECT client_id, messages_processed FROM state_msg.clients WHERE client_id = 'BAD-5';

-- Retention: purge() deletes rejected reports as it deletes rejected rows
SET state_msg.clock_offset = '29d';
SELECT * FROM state_msg.purge();
SET state_msg.clock_offset = '31d';
SELECT * FROM state_msg.purge();
SELECT count(*) AS rejected_reports FROM state_msg.rejected_reports;
RESET state_msg.clock_offset;
