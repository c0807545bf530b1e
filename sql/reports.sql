-- XML reports (issue 7): state_msg.ingest_report(text) and
-- state_msg.ingest_report(bytea) take a client's upload as sent and process
-- its messages as one batch, through the same path as the inbox.  Every
-- variant real uploads show goes through: encodings and declarations, client
-- id spellings, optional elements and attributes, DMTF offsets and
-- fractions, unknown elements, namespaces and white space; a resync answer
-- is one report and completes the open request.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
DROP DATABASE IF EXISTS sm_reports_utf8;
DROP DATABASE IF EXISTS sm_reports_latin1;
DROP DATABASE IF EXISTS sm_reports_ascii;
RESET client_min_messages;
SELECT current_database() AS regress_db \gset

-- Databases of known encodings, whatever the cluster's default
CREATE DATABASE sm_reports_utf8 TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C';
CREATE DATABASE sm_reports_latin1 TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C';
CREATE DATABASE sm_reports_ascii TEMPLATE template0 ENCODING 'SQL_ASCII' LOCALE 'C';

\c sm_reports_utf8
SET client_min_messages = warning;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET client_encoding = 'UTF8';
SET timezone = 'UTC';

-- A report as domain.md shows it: client_xml is the whole ClientID element,
-- extra goes at the end of Machine (a Priority, unknown elements)
CREATE FUNCTION pg_temp.report(client_xml text, body text,
							   extra text DEFAULT '<Priority>5</Priority>')
RETURNS text LANGUAGE sql AS $$
SELECT '<Report><ReportHeader><Identification><Machine><ClientInstalled>1</ClientInstalled>'
	|| '<ClientType>1</ClientType>' || client_xml
	|| '<ClientVersion>5.00.9122.1000</ClientVersion><NetBIOSName>WKS-0042</NetBIOSName>'
	|| '<CodePage>437</CodePage><SystemDefaultLCID>1033</SystemDefaultLCID>' || extra
	|| '</Machine></Identification><ReportDetails><ReportContent>State Message Data</ReportContent>'
	|| '<ReportType>Full</ReportType><Date>20261110183000.000000+000</Date><Version>1.0</Version>'
	|| '<Format>1.0</Format></ReportDetails></ReportHeader><ReportBody>' || body
	|| '</ReportBody></Report>'
$$;
-- One StateMessage; a NULL serial leaves the attribute out
CREATE FUNCTION pg_temp.msg(serial bigint, topic_id text, state_id int,
							mtime text DEFAULT '20261110181502.120000+000',
							topic_type int DEFAULT 500, extra text DEFAULT '')
RETURNS text LANGUAGE sql AS $$
SELECT '<StateMessage MessageTime="' || mtime || '"'
	|| coalesce(' SerialNumber="' || serial || '"', '') || '>'
	|| '<Topic ID="' || topic_id || '" Type="' || topic_type || '" IDType="3" User="" UserSID=""/>'
	|| '<State ID="' || state_id || '" Criticality="0"/>' || extra || '</StateMessage>'
$$;
-- UTF-16 of a text, big or little endian, without a byte order mark
CREATE FUNCTION pg_temp.utf16(t text, big_endian boolean) RETURNS bytea
LANGUAGE sql AS $$
SELECT decode(string_agg(CASE WHEN big_endian THEN h ELSE substr(h, 3, 2) || substr(h, 1, 2) END,
						 '' ORDER BY c.n, u.k), 'hex')
FROM regexp_split_to_table(t, '') WITH ORDINALITY AS c(ch, n),
	 LATERAL (SELECT ascii(c.ch) AS cp) p,
	 LATERAL unnest(CASE WHEN p.cp < 65536 THEN ARRAY[p.cp]
					ELSE ARRAY[55296 + ((p.cp - 65536) >> 10), 56320 + ((p.cp - 65536) & 1023)]
					END) WITH ORDINALITY AS u(unit, k),
	 LATERAL (SELECT lpad(to_hex(u.unit), 4, '0') AS h) x
$$;
CREATE VIEW pg_temp.states AS
SELECT client_id, topic_type, topic_id, state_id, serial_number, message_time,
	   user_params, source
FROM state_msg.client_state ORDER BY client_id, topic_type, topic_id;

-- The report of domain.md, as text: one message, in order
SELECT * FROM state_msg.ingest_report(pg_temp.report(
	'<ClientID>GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F</ClientID>',
	'<StateMessage MessageTime="20261110181502.120000+000" SerialNumber="41">
<Topic ID="3F2504E0-4F89-11D3-9A0C-0305E82C3301" Type="500" IDType="3" User="" UserSID=""/>
<State ID="2" Criticality="0"/><UserParameters Flags="0" Count="1"><Param>200</Param>
</UserParameters></StateMessage>'));
SELECT * FROM pg_temp.states;
SELECT client_id, next_serial_number, messages_processed FROM state_msg.clients;
-- and everything else it carries: user and SID (empty here), the report's
-- priority, and the client's NetBIOS name and version
SELECT user_name, user_sid, state_details_type, state_details, priority
FROM state_msg.client_state;
SELECT client_id, netbios_name, client_version FROM state_msg.clients;

-- Several messages of one client: one batch, a verdict each (42 in order,
-- 45 leaves a gap, 44 fills it late, 42 again is a duplicate)
SELECT * FROM state_msg.ingest_report(pg_temp.report(
	'<ClientID>GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F</ClientID>',
	pg_temp.msg(42, 'upd-a', 3) || pg_temp.msg(45, 'upd-b', 2)
	|| pg_temp.msg(44, 'upd-c', 1) || pg_temp.msg(42, 'upd-a', 3)));
SELECT client_id, first_serial, last_serial FROM state_msg.missing_ranges;

-- Encodings.  Text is read as UTF-8 whatever its declaration says, so a
-- document declaring UTF-16 handed over as text works
SELECT * FROM state_msg.ingest_report('<?xml version="1.0" encoding="UTF-16"?>'
	|| pg_temp.report('<ClientID>ENC-TEXT</ClientID>',
					  pg_temp.msg(1, 'upd-ü', 2, extra => '<UserParameters Flags="0" Count="1"><Param>Prüfung ✓ 𝄞</Param></UserParameters>')));
-- bytea: UTF-16 LE and BE, with and without a byte order mark, declared
-- or not; UTF-8 with a byte order mark, and without
SELECT v.label, r.*
FROM (VALUES
	('utf-16le bom', '\xfffe'::bytea || pg_temp.utf16('<?xml version="1.0" encoding="UTF-16"?>'
		|| pg_temp.report('<ClientID>ENC-LE-BOM</ClientID>', pg_temp.msg(1, 'upd-ü', 2, extra => '<UserParameters><Param>Prüfung ✓ 𝄞</Param></UserParameters>')), false)),
	('utf-16le no bom', pg_temp.utf16('<?xml version="1.0" encoding="UTF-16"?>'
		|| pg_temp.report('<ClientID>ENC-LE</ClientID>', pg_temp.msg(1, 'upd-ü', 2, extra => '<UserParameters><Param>Prüfung ✓ 𝄞</Param></UserParameters>')), false)),
	('utf-16be bom', '\xfeff'::bytea || pg_temp.utf16('<?xml version="1.0" encoding="UTF-16"?>'
		|| pg_temp.report('<ClientID>ENC-BE-BOM</ClientID>', pg_temp.msg(1, 'upd-ü', 2, extra => '<UserParameters><Param>Prüfung ✓ 𝄞</Param></UserParameters>')), true)),
	('utf-16be no bom', pg_temp.utf16('<?xml version="1.0" encoding="UTF-16"?>'
		|| pg_temp.report('<ClientID>ENC-BE</ClientID>', pg_temp.msg(1, 'upd-ü', 2, extra => '<UserParameters><Param>Prüfung ✓ 𝄞</Param></UserParameters>')), true)),
	('utf-16le bom, no declaration', '\xfffe'::bytea || pg_temp.utf16(
		pg_temp.report('<ClientID>ENC-LE-BOM-NODECL</ClientID>', pg_temp.msg(1, 'upd-ü', 2, extra => '<UserParameters><Param>Prüfung ✓ 𝄞</Param></UserParameters>')), false)),
	('utf-8 bom', '\xefbbbf'::bytea || convert_to(
		pg_temp.report('<ClientID>ENC-UTF8-BOM</ClientID>', pg_temp.msg(1, 'upd-ü', 2, extra => '<UserParameters><Param>Prüfung ✓ 𝄞</Param></UserParameters>')), 'UTF8')),
	('utf-8', convert_to('<?xml version="1.0" encoding="UTF-8"?>'
		|| pg_temp.report('<ClientID>ENC-UTF8</ClientID>', pg_temp.msg(1, 'upd-ü', 2, extra => '<UserParameters><Param>Prüfung ✓ 𝄞</Param></UserParameters>')), 'UTF8'))
	) AS v(label, doc),
	LATERAL state_msg.ingest_report(v.doc) r;
-- every one arrived with the same text
SELECT client_id, topic_id, user_params, user_params[1] = 'Prüfung ✓ 𝄞' AS same
FROM state_msg.client_state WHERE client_id LIKE 'ENC-%' ORDER BY 1;
SELECT count(*) AS rejected_reports FROM state_msg.rejected_reports;

-- Client ids: GUID: with or without a space, no prefix, lower case, a
-- ClientID element with attributes: all one client
SELECT v.s, r.*
FROM (VALUES (1, '<ClientID>GUID:1A2B3C4D-0000-4000-8000-00000000000A</ClientID>'),
			 (2, '<ClientID>GUID: 1a2b3c4d-0000-4000-8000-00000000000a</ClientID>'),
			 (3, '<ClientID>1A2B3C4D-0000-4000-8000-00000000000A</ClientID>'),
			 (4, '<ClientID Type="1" Source="SMS">GUID:1A2B3C4D-0000-4000-8000-00000000000A</ClientID>'))
	 AS v(s, c),
	 LATERAL state_msg.ingest_report(pg_temp.report(v.c, pg_temp.msg(v.s, 'upd-g', v.s))) r
ORDER BY v.s;
SELECT client_id, next_serial_number, messages_processed FROM state_msg.clients
WHERE client_id LIKE 'GUID:1A2B%';

-- No SerialNumber: an unserialized message (a relay's), state kept
SELECT * FROM state_msg.ingest_report(pg_temp.report('<ClientID>NOSERIAL</ClientID>',
	pg_temp.msg(NULL, 'upd-n', 4)));
SELECT * FROM pg_temp.states WHERE client_id = 'NOSERIAL';

-- User parameters: empty Param elements are empty strings; Count is not
-- read (here 5 for 3 elements, 1 for 2, 2 for none); no UserParameters, no
-- parameters
SELECT * FROM state_msg.ingest_report(pg_temp.report('<ClientID>PARAMS</ClientID>',
	pg_temp.msg(1, 'p1', 1, extra => '<UserParameters Flags="0" Count="5"><Param></Param><Param/><Param>x</Param></UserParameters>')
	|| pg_temp.msg(2, 'p2', 1, extra => '<UserParameters Flags="0" Count="1"><Param>a</Param><Param> b </Param></UserParameters>')
	|| pg_temp.msg(3, 'p3', 1, extra => '<UserParameters Flags="0" Count="2"></UserParameters>')
	|| pg_temp.msg(4, 'p4', 1)));
SELECT topic_id, user_params, cardinality(user_params) FROM pg_temp.states WHERE client_id = 'PARAMS';

-- StateDetails with a CDATA payload (markup and entities inside are text),
-- and with text and CDATA mixed
SELECT * FROM state_msg.ingest_report(pg_temp.report('<ClientID>DETAILS</ClientID>',
	pg_temp.msg(1, 'd1', 1, extra => '<StateDetails Type="1"><![CDATA[<Details><Item Name="a&b">&amp;</Item></Details>]]></StateDetails>')
	|| pg_temp.msg(2, 'd2', 1, extra => '<StateDetails Type="2">x <![CDATA[<y/>]]> &lt;z&gt;</StateDetails>')));
SELECT topic_id, state_details_type, state_details FROM state_msg.client_state
WHERE client_id = 'DETAILS' ORDER BY topic_id;

-- DMTF times: offsets in minutes (+000, -300, +060, +330) and 0 to 6
-- fractional digits; the times are UTC
SELECT * FROM state_msg.ingest_report(pg_temp.report('<ClientID>TIMES</ClientID>',
	pg_temp.msg(1, 't0', 1, '20261110181502+000')
	|| pg_temp.msg(2, 't1', 1, '20261110181502.1-300')
	|| pg_temp.msg(3, 't2', 1, '20261110181502.12+060')
	|| pg_temp.msg(4, 't3', 1, '20261110181502.123+330')
	|| pg_temp.msg(5, 't4', 1, '20261110181502.1234+000')
	|| pg_temp.msg(6, 't5', 1, '20261110181502.12345-000')
	|| pg_temp.msg(7, 't6', 1, '20261110181502.123456+000')
	|| pg_temp.msg(8, 't7', 1, '20261231235959.999999-720')));
SELECT topic_id, message_time FROM pg_temp.states WHERE client_id = 'TIMES';

-- Priority or none
SELECT * FROM state_msg.ingest_report(pg_temp.report('<ClientID>PRIO</ClientID>',
	pg_temp.msg(1, 'q', 1), '<Priority>10</Priority>'));
SELECT * FROM state_msg.ingest_report(pg_temp.report('<ClientID>PRIO</ClientID>',
	pg_temp.msg(2, 'q', 2), ''));
SELECT topic_id, state_id, priority FROM state_msg.client_state WHERE client_id = 'PRIO';
SELECT * FROM state_msg.ingest_report(pg_temp.report('<ClientID>PRIO</ClientID>',
	pg_temp.msg(3, 'q2', 2), '<Priority>10</Priority>'));
SELECT topic_id, state_id, priority FROM state_msg.client_state WHERE client_id = 'PRIO'
ORDER BY topic_id;

-- Unknown elements and attributes are ignored, wherever they are;
-- namespaces (a default one on Report, prefixed ones on unknown
-- elements), comments, processing instructions and white space between
-- elements change nothing
SELECT * FROM state_msg.ingest_report(
'<?xml version="1.0" encoding="UTF-8"?>
<!-- uploaded by a management point -->
<Report xmlns="urn:example:statemessage" xmlns:x="urn:example:other" Version="2">
  <ReportHeader>
    <Identification>
      <Machine Extra="1">
        <ClientInstalled>1</ClientInstalled>
        <ClientType>1</ClientType>
        <ClientID  Type="1">GUID:9F8E7D6C-0000-4000-8000-000000000001</ClientID>
        <x:Site Code="ABC"><x:Inner/></x:Site>
        <ClientVersion>5.00.9122.1000</ClientVersion>
        <NetBIOSName>WKS-9</NetBIOSName>
        <Priority>0</Priority>
        <Unknown>text</Unknown>
      </Machine>
    </Identification>
    <ReportDetails><ReportContent>State Message Data</ReportContent></ReportDetails>
  </ReportHeader>
  <?sms-hint keep?>
  <ReportBody>
    <StateMessage MessageTime="20261110181502.120000+000" SerialNumber="7" Flags="3">
      <Topic ID="ns-topic" Type="402" IDType="1" User="CONTOSO\alice" UserSID="S-1-5-21-1" Color="blue"/>
      <State ID="1" Criticality="0" Extra=""/>
      <x:Annotation>ignored <x:b/></x:Annotation>
      <UserParameters Flags="0" Count="1">
        <Param>p</Param>
      </UserParameters>
    </StateMessage>
    <Unknown/>
  </ReportBody>
  <Trailer/>
</Report>
');
SELECT * FROM pg_temp.states WHERE client_id LIKE 'GUID:9F8E%';
SELECT user_name, user_sid, priority FROM state_msg.client_state WHERE client_id LIKE 'GUID:9F8E%';
SELECT netbios_name, client_version FROM state_msg.clients WHERE client_id LIKE 'GUID:9F8E%';

-- A report with no StateMessage: nothing to do
SELECT * FROM state_msg.ingest_report(pg_temp.report('<ClientID>EMPTY</ClientID>', ''));
SELECT count(*) FROM state_msg.clients WHERE client_id = 'EMPTY';

-- Everything is in the caller's transaction: a rolled-back report leaves
-- nothing
BEGIN;
SELECT messages, in_order FROM state_msg.ingest_report(pg_temp.report('<ClientID>ROLLBACK</ClientID>',
	pg_temp.msg(1, 'r', 1)));
ROLLBACK;
SELECT count(*) FROM state_msg.clients WHERE client_id = 'ROLLBACK';

-- A resync answer is one report: the client's cache renumbered, then
-- 700/2.  RS lost serials 2 and 3; the check cycle asks it to resync
SELECT * FROM state_msg.ingest_report(pg_temp.report('<ClientID>RS</ClientID>',
	pg_temp.msg(1, 'c1', 1) || pg_temp.msg(4, 'c2', 1) || pg_temp.msg(5, 'c3', 1)));
SELECT client_id, first_serial, last_serial FROM state_msg.missing_ranges WHERE client_id = 'RS';
SET state_msg.min_missing_message_age = 0;
SELECT * FROM state_msg.run_resync_check();
RESET state_msg.min_missing_message_age;
SELECT client_id, reason, completed_at IS NULL AS open FROM state_msg.resync_requests
WHERE client_id = 'RS';
-- the answer: its three cached messages with new serials, then 700/2
SELECT * FROM state_msg.ingest_report(pg_temp.report('<ClientID>RS</ClientID>',
	pg_temp.msg(6, 'c1', 2, '20261110190000.000000+000')
	|| pg_temp.msg(7, 'c2', 2, '20261110190001.000000+000')
	|| pg_temp.msg(8, 'c3', 2, '20261110190002.000000+000')
	|| pg_temp.msg(9, 'resync', 2, '20261110190003.000000+000', 700)));
-- the request is completed, the gap below the answer forgotten, the cache
-- is the current state
SELECT client_id, reason, completed_at IS NOT NULL AS completed FROM state_msg.resync_requests
WHERE client_id = 'RS';
SELECT count(*) AS missing_ranges FROM state_msg.missing_ranges WHERE client_id = 'RS';
SELECT client_id, next_serial_number,
	   last_resync_client_completed_time >= last_resync_issued_time AS completed
FROM state_msg.clients WHERE client_id = 'RS';
SELECT topic_type, topic_id, state_id, serial_number FROM pg_temp.states WHERE client_id = 'RS';
SELECT state_msg.has_open_request(c) AS open FROM state_msg.clients c WHERE client_id = 'RS';

-- Nothing was rejected in all of this
SELECT count(*) AS rejected_messages FROM state_msg.rejected_messages;
SELECT count(*) AS rejected_reports FROM state_msg.rejected_reports;

-- In a LATIN1 database, text is converted to UTF-8 for the parser and the
-- values back: é goes both ways; a character LATIN1 has no equivalent for
-- makes its message bad (22P05), or in the ClientID the whole report
\c sm_reports_latin1
SET client_min_messages = warning;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET client_encoding = 'UTF8';
SET timezone = 'UTC';
SELECT getdatabaseencoding();
SELECT * FROM state_msg.ingest_report('<?xml version="1.0" encoding="UTF-16"?>'
	|| '<Report><ReportHeader><Identification><Machine><ClientID>WKS-é</ClientID></Machine>'
	|| '</Identification></ReportHeader><ReportBody>'
	|| '<StateMessage MessageTime="20261110181502.120000+000" SerialNumber="1">'
	|| '<Topic ID="upd-é" Type="500" IDType="3"/><State ID="2"/>'
	|| '<UserParameters><Param>café</Param></UserParameters></StateMessage>'
	|| '</ReportBody></Report>');
SELECT client_id, topic_id, user_params FROM state_msg.client_state;
SELECT * FROM state_msg.ingest_report(
	convert_to('<Report><ReportHeader><Identification><Machine><ClientID>WKS-é</ClientID></Machine>'
	|| '</Identification></ReportHeader><ReportBody>'
	|| '<StateMessage MessageTime="20261110181502.120000+000" SerialNumber="2">'
	|| '<Topic ID="upd-é" Type="500" IDType="3"/><State ID="3"/>'
	|| '<UserParameters><Param>ok ', 'UTF8') || '\xe29c93'::bytea
	|| convert_to('</Param></UserParameters></StateMessage>'
	|| '<StateMessage MessageTime="20261110181502.120000+000" SerialNumber="3">'
	|| '<Topic ID="upd-2" Type="500" IDType="3"/><State ID="3"/></StateMessage>'
	|| '</ReportBody></Report>', 'UTF8'));
SELECT row_number, client_id, serial_number, topic_id, sqlstate, reason FROM state_msg.rejected_messages;
SELECT client_id, topic_id, state_id, serial_number FROM state_msg.client_state ORDER BY topic_id;
SELECT * FROM state_msg.ingest_report(
	convert_to('<Report><ReportHeader><Identification><Machine><ClientID>WKS-', 'UTF8')
	|| '\xe29c93'::bytea
	|| convert_to('</ClientID></Machine></Identification></ReportHeader><ReportBody>'
	|| '<StateMessage MessageTime="20261110181502.120000+000" SerialNumber="1">'
	|| '<Topic ID="u" Type="500" IDType="3"/><State ID="3"/></StateMessage>'
	|| '</ReportBody></Report>', 'UTF8'));
SELECT sqlstate, client_id, received_as, reason FROM state_msg.rejected_reports;
SELECT count(*) AS clients FROM state_msg.clients;
-- in the NetBIOSName, every message of the report
SELECT * FROM state_msg.ingest_report(
	convert_to('<Report><ReportHeader><Identification><Machine><ClientID>WKS-N</ClientID>'
	|| '<NetBIOSName>WKS-', 'UTF8') || '\xe29c93'::bytea
	|| convert_to('</NetBIOSName></Machine></Identification></ReportHeader><ReportBody>'
	|| '<StateMessage MessageTime="20261110181502.120000+000" SerialNumber="1">'
	|| '<Topic ID="u" Type="500" IDType="3"/><State ID="3"/></StateMessage>'
	|| '</ReportBody></Report>', 'UTF8'));
SELECT row_number, client_id, sqlstate, reason FROM state_msg.rejected_messages
WHERE client_id = 'WKS-N';

-- In a SQL_ASCII database text holds bytes as they are: UTF-8 passes
-- through, anything else is a bad encoding (22021)
\c sm_reports_ascii
SET client_min_messages = warning;
CREATE EXTENSION state_msg;
RESET client_min_messages;
SET timezone = 'UTC';
SELECT getdatabaseencoding();
SELECT * FROM state_msg.ingest_report(
	'<Report><ReportHeader><Identification><Machine><ClientID>WKS-é</ClientID></Machine>'
	|| '</Identification></ReportHeader><ReportBody>'
	|| '<StateMessage MessageTime="20261110181502.120000+000" SerialNumber="1">'
	|| '<Topic ID="upd-é" Type="500" IDType="3"/><State ID="2"/></StateMessage>'
	|| '</ReportBody></Report>');
SELECT encode(convert_to(client_id, 'SQL_ASCII'), 'escape') AS client_id,
	   encode(convert_to(topic_id, 'SQL_ASCII'), 'hex') AS topic_id_hex
FROM state_msg.client_state;
SELECT * FROM state_msg.ingest_report(convert_from(
	convert_to('<Report><ReportHeader><Identification><Machine><ClientID>WKS-', 'SQL_ASCII')
	|| '\xe9'::bytea
	|| convert_to('</ClientID></Machine></Identification></ReportHeader><ReportBody>'
	|| '</ReportBody></Report>', 'SQL_ASCII'), 'SQL_ASCII'));
SELECT sqlstate, client_id, received_as, encode(report, 'escape') LIKE '%WKS-\\351%' AS as_received,
	   reason FROM state_msg.rejected_reports;

\c :regress_db
DROP DATABASE sm_reports_utf8;
DROP DATABASE sm_reports_latin1;
DROP DATABASE sm_reports_ascii;
