/*
 * unit.c
 *	  Unit test of the report parser and its conversions, outside the
 *	  server (C and libxml2 only): the report shapes of issue 7 and
 *	  domain.md, each encoding, the documents that must be rejected and
 *	  why, the allocator failing at every point, and the edges of the
 *	  integer and DMTF conversions.  Run by test/fuzz/run.sh --unit;
 *	  prints one line per failed check and a summary, exits 1 on failure.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/xmlerror.h>

#include "../../src/report_parse.h"
#include "arena.h"

static int	checks;
static int	failures;

#define CHECK(cond) check((cond), #cond, __FILE__, __LINE__)
#define CHECK_STR(a, b) check_str((a), (b), #a, __LINE__)

/* Counts a check, prints it if it failed */
static void
check(int ok, const char *what, const char *file, int line)
{
	checks++;
	if (!ok)
	{
		failures++;
		printf("FAIL %s:%d: %s\n", file, line, what);
	}
}

/* A string check that shows both sides when it fails */
static void
check_str(const char *got, const char *want, const char *what, int line)
{
	checks++;
	if ((got == NULL) != (want == NULL) || (got && strcmp(got, want) != 0))
	{
		failures++;
		printf("FAIL unit.c:%d: %s is \"%s\", want \"%s\"\n", line, what,
			   got ? got : "(null)", want ? want : "(null)");
	}
}

static Arena arena = {.cap = (size_t) 1 << 30};
static SmReport rep;

/* Parses a document of len bytes (strlen if len is -1) */
static SmReportError
parse(const char *doc, long len, const char *encoding)
{
	arena_reset(&arena);
	arena.peak = 0;
	return sm_report_parse(doc, len < 0 ? strlen(doc) : (size_t) len,
						   encoding, arena_alloc, &arena, &rep);
}

/* The domain.md example, with a non-ASCII NetBIOS name */
static const char *example =
"<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n"
"<Report><ReportHeader><Identification><Machine><ClientInstalled>1</ClientInstalled>\n"
"<ClientType>1</ClientType><ClientID>GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F</ClientID>\n"
"<ClientVersion>5.00.9122.1000</ClientVersion><NetBIOSName>WKS-\xC3\x84\xE2\x82\xAC</NetBIOSName>\n"
"<CodePage>437</CodePage><SystemDefaultLCID>1033</SystemDefaultLCID><Priority>5</Priority>\n"
"</Machine></Identification><ReportDetails><ReportContent>State Message Data</ReportContent>\n"
"<ReportType>Full</ReportType><Date>20261110183000.000000+000</Date><Version>1.0</Version>\n"
"<Format>1.0</Format></ReportDetails></ReportHeader><ReportBody>\n"
"<StateMessage MessageTime=\"20261110181502.120000+000\" SerialNumber=\"41\">\n"
"<Topic ID=\"3F2504E0-4F89-11D3-9A0C-0305E82C3301\" Type=\"500\" IDType=\"3\" User=\"\" UserSID=\"\"/>\n"
"<State ID=\"2\" Criticality=\"0\"/><UserParameters Flags=\"0\" Count=\"1\"><Param>200</Param>\n"
"</UserParameters></StateMessage></ReportBody></Report>\n";

/* What every encoding of the example must give */
static void
check_example(const char *label)
{
	SmRawMessage *m;

	if (rep.error != SM_REPORT_OK)
	{
		printf("FAIL %s: error %d line %d: %s\n", label, rep.error,
			   rep.error_line, rep.error_detail);
		failures++;
		return;
	}
	CHECK_STR(rep.client_id, "GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F");
	CHECK_STR(rep.netbios_name, "WKS-\xC3\x84\xE2\x82\xAC");
	CHECK_STR(rep.client_version, "5.00.9122.1000");
	CHECK_STR(rep.priority, "5");
	CHECK(rep.nmessages == 1);
	if (rep.nmessages != 1)
		return;
	m = &rep.messages[0];
	CHECK(m->ordinal == 1);
	CHECK_STR(m->message_time, "20261110181502.120000+000");
	CHECK_STR(m->serial_number, "41");
	CHECK(m->has_topic && m->has_state);
	CHECK_STR(m->topic_id, "3F2504E0-4F89-11D3-9A0C-0305E82C3301");
	CHECK_STR(m->topic_type, "500");
	CHECK_STR(m->topic_id_type, "3");
	CHECK_STR(m->user_name, "");
	CHECK_STR(m->user_sid, "");
	CHECK_STR(m->state_id, "2");
	CHECK_STR(m->criticality, "0");
	CHECK(m->details == NULL && m->details_type == NULL);
	CHECK(m->nparams == 1);
	CHECK_STR(m->params[0], "200");
	CHECK_STR(m->param_flags, "0");
	CHECK(rep.xml_ctxt == NULL);
}

/* UTF-8 to UTF-16 (little or big endian), with or without a BOM */
static size_t
to_utf16(const char *s, char *out, int big, int bom)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t		o = 0;

	if (bom)
	{
		out[o++] = big ? '\xFE' : '\xFF';
		out[o++] = big ? '\xFF' : '\xFE';
	}
	while (*p)
	{
		unsigned	c;

		if (*p < 0x80)
			c = *p++;
		else if (*p < 0xE0)
			c = ((p[0] & 0x1F) << 6) | (p[1] & 0x3F), p += 2;
		else
			c = ((p[0] & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F), p += 3;
		out[o++] = (char) (big ? c >> 8 : c & 0xFF);
		out[o++] = (char) (big ? c & 0xFF : c >> 8);
	}
	return o;
}

/* The example in every encoding and declaration a client sends */
static void
test_encodings(void)
{
	static char buf[8192];
	const char *no_decl = strchr(example, '\n') + 1;
	size_t		n;

	parse(example, -1, "UTF-8");
	check_example("text declared UTF-16");
	parse(example, -1, NULL);
	check_example("bytes UTF-8 declared UTF-16");
	parse(no_decl, -1, NULL);
	check_example("bytes UTF-8 no declaration");
	snprintf(buf, sizeof(buf), "\xEF\xBB\xBF%s", example);
	parse(buf, -1, NULL);
	check_example("bytes UTF-8 BOM declared UTF-16");
	parse(buf, -1, "UTF-8");
	check_example("text with BOM");
	for (int big = 0; big <= 1; big++)
		for (int bom = 0; bom <= 1; bom++)
			for (int decl = 0; decl <= 1; decl++)
			{
				char		label[64];

				n = to_utf16(decl ? example : no_decl, buf, big, bom);
				snprintf(label, sizeof(label), "UTF-16%s bom=%d decl=%d",
						 big ? "BE" : "LE", bom, decl);
				parse(buf, (long) n, NULL);
				check_example(label);
			}
	/* an incomplete character at the end: not dropped silently */
	n = to_utf16(no_decl, buf, 0, 1);
	CHECK(parse(buf, (long) n + 1, NULL) == SM_REPORT_NOT_XML);	/* odd byte */
	memcpy(buf + n, "\x00\xD8", 2);	/* lone high surrogate */
	CHECK(parse(buf, (long) n + 2, NULL) == SM_REPORT_NOT_XML);
	CHECK_STR(rep.error_detail, "incomplete character at the end of the document (2 bytes)");
	memcpy(buf + n, "\x0A\x00", 2);
	CHECK(parse(buf, (long) n + 2, NULL) == SM_REPORT_OK);
	n = to_utf16(no_decl, buf, 1, 0);
	memcpy(buf + n, "\xD8\x00", 2);
	CHECK(parse(buf, (long) n + 2, NULL) == SM_REPORT_NOT_XML);
	/* a lone surrogate inside */
	n = to_utf16("<Report><ReportHeader><Identification><Machine><ClientID>a_b</ClientID>"
				 "</Machine></Identification></ReportHeader></Report>", buf, 0, 1);
	memcpy(memchr(buf, '_', n), "\x00\xDC", 2);
	CHECK(parse(buf, (long) n, NULL) == SM_REPORT_NOT_XML);
	snprintf(buf, sizeof(buf), "%s\xC3", no_decl);
	CHECK(parse(buf, -1, NULL) == SM_REPORT_NOT_XML);
	CHECK(parse(buf, -1, "UTF-8") == SM_REPORT_NOT_XML);
	snprintf(buf, sizeof(buf), "%s\xE2\x82", no_decl);
	CHECK(parse(buf, -1, "UTF-8") == SM_REPORT_NOT_XML);

	/* UTF-16 bytes handed over as UTF-8 text: not XML (NUL) */
	n = to_utf16(example, buf, 0, 1);
	CHECK(parse(buf, (long) n, "UTF-8") == SM_REPORT_NOT_XML);
	/* declared ISO-8859-1, detected: honoured */
	CHECK(parse("<?xml version='1.0' encoding='ISO-8859-1'?><Report><ReportHeader>"
				"<Identification><Machine><ClientID>x</ClientID><NetBIOSName>\xC4"
				"</NetBIOSName></Machine></Identification></ReportHeader></Report>",
				-1, NULL) == SM_REPORT_OK);
	CHECK_STR(rep.netbios_name, "\xC3\x84");
	/* text: any declaration is ignored, the text is UTF-8 */
	CHECK(parse("<?xml version='1.0' encoding='ISO-8859-1'?><Report><ReportHeader>"
				"<Identification><Machine><ClientID>x</ClientID><NetBIOSName>\xC3\x84"
				"</NetBIOSName></Machine></Identification></ReportHeader></Report>",
				-1, "UTF-8") == SM_REPORT_OK);
	CHECK_STR(rep.netbios_name, "\xC3\x84");
	CHECK(parse("<?xml version='1.0' encoding='no-such-charset'?><Report><ReportHeader>"
				"<Identification><Machine><ClientID>x</ClientID></Machine></Identification>"
				"</ReportHeader></Report>", -1, "UTF-8") == SM_REPORT_OK);
	CHECK(parse("<?xml version='1.0' encoding='no-such-charset'?><Report/>", -1, NULL)
		  == SM_REPORT_NOT_XML);
	CHECK(parse("<Report/>", -1, "no-such-charset") == SM_REPORT_NOT_XML);
	CHECK_STR(rep.error_detail, "unsupported encoding no-such-charset");
	/* invalid UTF-8 */
	CHECK(parse("<Report><ReportHeader><Identification><Machine><ClientID>\xC3("
				"</ClientID></Machine></Identification></ReportHeader></Report>",
				-1, "UTF-8") == SM_REPORT_NOT_XML);
	CHECK(parse("<Report/>\0<junk", 16, NULL) == SM_REPORT_NOT_XML);
	CHECK_STR(rep.error_detail, "NUL character in the document");
}

#define HEAD "<Report><ReportHeader><Identification><Machine><ClientID>GUID: c1</ClientID>" \
	"</Machine></Identification></ReportHeader><ReportBody>"
#define TAIL "</ReportBody></Report>"

/* The variants issue 7 lists, and the value rules of the parser */
static void
test_variants(void)
{
	SmRawMessage *m;
	static char big[3 << 20];
	size_t		o;

	/* no serial, CDATA details, empty and surplus params, unknown stuff */
	CHECK(parse(HEAD "<Unknown a='1'><StateMessage/></Unknown>"
				"<StateMessage MessageTime=' 20140120171855-300 ' Extra='x'>"
				"<Topic ID='u1' Type='402' IDType='1' User='DOM\\u' UserSID='S-1-5'/>"
				"<State ID='11' Criticality='0'/><Other><Param>no</Param></Other>"
				"<StateDetails Type='2'><![CDATA[<Detail a=\"1\">&amp;]]>text&amp;<x>no</x>"
				"<![CDATA[]]]]><![CDATA[>]]></StateDetails>"
				"<StateDetails Type='9'>second</StateDetails>"
				"<UserParameters Flags='1' Count='2'><Param/><Param>b</Param><Param></Param>"
				"<Param>d</Param><Param> e </Param><Param>f</Param><Param>g</Param></UserParameters>"
				"<UserParameters><Param>h</Param></UserParameters>"
				"<Topic ID='second'/>"
				"</StateMessage>" TAIL, -1, "UTF-8") == SM_REPORT_OK);
	CHECK_STR(rep.client_id, "GUID: c1");
	CHECK(rep.netbios_name == NULL && rep.client_version == NULL && rep.priority == NULL);
	CHECK(rep.nmessages == 1);
	m = &rep.messages[0];
	CHECK(m->serial_number == NULL);
	CHECK_STR(m->message_time, " 20140120171855-300 ");
	CHECK_STR(m->topic_id, "u1");
	CHECK_STR(m->user_name, "DOM\\u");
	CHECK_STR(m->user_sid, "S-1-5");
	CHECK_STR(m->state_id, "11");
	CHECK_STR(m->details_type, "2");
	CHECK_STR(m->details, "<Detail a=\"1\">&amp;text&]]>");
	CHECK(m->details_len == strlen("<Detail a=\"1\">&amp;text&]]>"));
	CHECK(m->nparams == 7);
	CHECK_STR(m->params[0], "");
	CHECK_STR(m->params[1], "b");
	CHECK_STR(m->params[2], "");
	CHECK_STR(m->params[3], "d");
	CHECK_STR(m->params[4], " e ");
	CHECK_STR(m->param_flags, "1");

	/* a message without Topic or State is still a message (quarantined later) */
	CHECK(parse(HEAD "<StateMessage SerialNumber='x'><State ID='1'/></StateMessage>"
				"<StateMessage><Topic ID='t'/></StateMessage>" TAIL, -1, "UTF-8") == SM_REPORT_OK);
	CHECK(rep.nmessages == 2);
	CHECK(!rep.messages[0].has_topic && rep.messages[0].has_state);
	CHECK(rep.messages[1].has_topic && !rep.messages[1].has_state);
	CHECK(rep.messages[1].ordinal == 2 && rep.messages[1].topic_type == NULL);

	/* namespaces: default, prefixed elements and attributes, undeclared prefix */
	CHECK(parse("<r:Report xmlns:r='urn:r' xmlns='urn:d' xmlns:a='urn:a'><ReportHeader>"
				"<Identification><r:Machine><ClientID k='v'>  id \n</ClientID></r:Machine>"
				"</Identification></ReportHeader>\n  <ReportBody>\n <StateMessage a:SerialNumber='7'>"
				"<x:Topic xmlns:x='urn:x' x:ID='t' Type='500'/></StateMessage></ReportBody></r:Report>",
				-1, NULL) == SM_REPORT_OK);
	CHECK_STR(rep.client_id, "  id \n");
	CHECK(rep.nmessages == 1);
	CHECK_STR(rep.messages[0].serial_number, "7");
	CHECK_STR(rep.messages[0].topic_id, "t");
	CHECK(parse("<q:Report><ReportHeader><Identification><Machine><ClientID>c</ClientID>"
				"</Machine></Identification></ReportHeader></q:Report>", -1, NULL) == SM_REPORT_OK);

	/* references: predefined entities and character references are text */
	CHECK(parse(HEAD "<StateMessage><Topic ID='a&amp;b&lt;&#38;&#x26;c&quot;&#x20AC;' "
				"User='&amp;#38;'/><UserParameters><Param>&lt;&amp;&#65;&#x20AC;</Param>"
				"</UserParameters></StateMessage>" TAIL, -1, NULL) == SM_REPORT_OK);
	CHECK_STR(rep.messages[0].topic_id, "a&b<&&c\"\xE2\x82\xAC");
	CHECK_STR(rep.messages[0].user_name, "&#38;");
	CHECK_STR(rep.messages[0].params[0], "<&A\xE2\x82\xAC");
	/* attribute whitespace is normalized by XML itself */
	CHECK(parse(HEAD "<StateMessage><Topic ID='a\tb\nc'/></StateMessage>" TAIL, -1, NULL) == SM_REPORT_OK);
	CHECK_STR(rep.messages[0].topic_id, "a b c");

	/* a large StateDetails arriving in many pieces */
	o = (size_t) snprintf(big, sizeof(big), HEAD "<StateMessage><StateDetails>");
	for (int i = 0; i < 100000; i++)
		o += (size_t) snprintf(big + o, sizeof(big) - o, "x&amp;<![CDATA[yz]]>");
	o += (size_t) snprintf(big + o, sizeof(big) - o, "</StateDetails></StateMessage>" TAIL);
	CHECK(parse(big, (long) o, "UTF-8") == SM_REPORT_OK);
	CHECK(rep.messages[0].details_len == 400000);
	CHECK(strlen(rep.messages[0].details) == 400000);
	CHECK(memcmp(rep.messages[0].details, "x&yzx&yz", 8) == 0);
	CHECK(arena.peak < 3 * 400000);

	/* one CDATA section beyond libxml2's 10 MB default cap */
	{
		size_t		n = 12 << 20;
		char	   *huge = malloc(n + 1024);

		o = (size_t) snprintf(huge, 1024, HEAD "<StateMessage><StateDetails><![CDATA[");
		memset(huge + o, 'd', n);
		o += n;
		o += (size_t) snprintf(huge + o, 1024, "]]></StateDetails></StateMessage>" TAIL);
		CHECK(parse(huge, (long) o, "UTF-8") == SM_REPORT_OK);
		CHECK(rep.nmessages == 1 && rep.messages[0].details_len == n);
		free(huge);
	}

	/* many messages: the array grows */
	o = (size_t) snprintf(big, sizeof(big), HEAD);
	for (int i = 0; i < 5000; i++)
		o += (size_t) snprintf(big + o, sizeof(big) - o,
							   "<StateMessage SerialNumber='%d'/>", i);
	o += (size_t) snprintf(big + o, sizeof(big) - o, TAIL);
	CHECK(parse(big, (long) o, NULL) == SM_REPORT_OK);
	CHECK(rep.nmessages == 5000);
	CHECK_STR(rep.messages[4999].serial_number, "4999");
	CHECK(rep.messages[4999].ordinal == 5000);

	/* at most SM_REPORT_MAX_MESSAGES messages */
	for (int extra = 0; extra <= 1; extra++)
	{
		o = (size_t) snprintf(big, sizeof(big), HEAD);
		for (int i = 0; i < SM_REPORT_MAX_MESSAGES + extra; i++)
			o += (size_t) snprintf(big + o, sizeof(big) - o, "<StateMessage/>");
		o += (size_t) snprintf(big + o, sizeof(big) - o, TAIL);
		CHECK(parse(big, (long) o, NULL) == (extra ? SM_REPORT_TOO_LARGE : SM_REPORT_OK));
	}
	CHECK_STR(rep.error_detail, "more than 100000 messages");
}

/* Documents rejected whole, each for its reason */
static void
test_rejections(void)
{
	static char deep[4096];
	size_t		o = 0;

	CHECK(parse("<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
				"<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
				"<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>]>"
				"<Report>&lol3;</Report>", -1, NULL) == SM_REPORT_DOCTYPE);
	CHECK_STR(rep.error_detail, "document type declaration (DOCTYPE) not allowed");
	CHECK(rep.error_line == 1);
	CHECK(parse("<!DOCTYPE Report SYSTEM 'file:///etc/passwd'><Report>&x;</Report>",
				-1, "UTF-8") == SM_REPORT_DOCTYPE);
	CHECK(parse("<!DOCTYPE Report [<!ENTITY x SYSTEM 'http://127.0.0.1:1/x'>]>"
				"<Report><ReportHeader><Identification><Machine><ClientID>&x;</ClientID>"
				"</Machine></Identification></ReportHeader></Report>", -1, NULL) == SM_REPORT_DOCTYPE);
	CHECK(parse("<!DOCTYPE Report><Report/>", -1, NULL) == SM_REPORT_DOCTYPE);
	/* undeclared entity: not XML */
	CHECK(parse("<Report>&x;</Report>", -1, NULL) == SM_REPORT_NOT_XML);
	CHECK(parse("", 0, NULL) == SM_REPORT_NOT_XML);
	CHECK(parse("   ", -1, NULL) == SM_REPORT_NOT_XML);
	CHECK(parse("not xml", -1, "UTF-8") == SM_REPORT_NOT_XML);
	CHECK_STR(rep.error_detail, "Start tag expected, '<' not found");
	CHECK(parse(example, (long) strlen(example) - 30, NULL) == SM_REPORT_NOT_XML);
	CHECK(rep.error_line >= 12);
	CHECK(parse("<Report>\n<a>\n</b></Report>", -1, NULL) == SM_REPORT_NOT_XML);
	CHECK_STR(rep.error_detail, "Opening and ending tag mismatch: a line 2 and b");
	CHECK(rep.error_line == 3);
	CHECK(parse("<Report/><Report/>", -1, NULL) == SM_REPORT_NOT_XML);
	CHECK(parse("<Report a='1' a='2'/>", -1, NULL) == SM_REPORT_NOT_XML);
	CHECK(parse("<Report>&#0;</Report>", -1, NULL) == SM_REPORT_NOT_XML);
	CHECK(parse("<report/>", -1, NULL) == SM_REPORT_WRONG_ROOT);
	CHECK_STR(rep.error_detail, "root element is report, not Report");
	CHECK(parse("<Report/>", -1, NULL) == SM_REPORT_NO_CLIENT_ID);
	CHECK(parse("<Report><ClientID>x</ClientID></Report>", -1, NULL) == SM_REPORT_NO_CLIENT_ID);
	CHECK(parse("<Report><ReportHeader><Identification><Machine><ClientID> \n</ClientID>"
				"<ClientID>late</ClientID></Machine></Identification></ReportHeader></Report>",
				-1, NULL) == SM_REPORT_NO_CLIENT_ID);
	CHECK_STR(rep.error_detail, "ClientID is empty");
	/* depth: 64 levels pass, 65 do not */
	for (int depth = 64; depth <= 65; depth++)
	{
		o = (size_t) snprintf(deep, sizeof(deep), "<Report><ReportHeader><Identification>"
							  "<Machine><ClientID>c</ClientID></Machine></Identification></ReportHeader>");
		for (int i = 1; i < depth; i++)
			o += (size_t) snprintf(deep + o, sizeof(deep) - o, "<a>");
		for (int i = 1; i < depth; i++)
			o += (size_t) snprintf(deep + o, sizeof(deep) - o, "</a>");
		o += (size_t) snprintf(deep + o, sizeof(deep) - o, "</Report>");
		CHECK(parse(deep, (long) o, NULL) == (depth == 64 ? SM_REPORT_OK : SM_REPORT_TOO_LARGE));
	}
	CHECK_STR(rep.error_detail, "elements nested more than 64 deep");
}

/* The allocator failing at every point: an error, never a crash */
static void
test_out_of_memory(void)
{
	size_t		need;
	int			oom = 0;

	parse(example, -1, NULL);
	need = arena.peak;
	for (size_t cap = 0; cap < need; cap++)
	{
		Arena		small = {.cap = cap};
		SmReportError e = sm_report_parse(example, strlen(example), NULL,
										  arena_alloc, &small, &rep);

		oom += e == SM_REPORT_OUT_OF_MEMORY;
		CHECK(e == SM_REPORT_OUT_OF_MEMORY);
		if (e != SM_REPORT_OUT_OF_MEMORY)
			printf("cap %zu of %zu: error %d %s\n", cap, need, e, rep.error_detail);
		CHECK(rep.xml_ctxt == NULL);
		arena_reset(&small);
	}
	CHECK(oom > 0);
	sm_report_parse_abort(&rep);	/* no-op after a normal return */
}

static int	global_calls;

/* Stands for the server's handler (pg_xml_init installs one globally) */
static void
global_handler(void *ctx, xmlErrorPtr error)
{
	global_calls++;
}

/* With a global structured handler set, results and details are the same */
static void
test_global_handler(void)
{
	xmlSetStructuredErrorFunc(NULL, global_handler);
	CHECK(parse("<Report>\n<a>\n</b></Report>", -1, NULL) == SM_REPORT_NOT_XML);
	CHECK_STR(rep.error_detail, "Opening and ending tag mismatch: a line 2 and b");
	CHECK(rep.error_line == 3);
	parse(example, -1, "UTF-8");
	check_example("with a global handler");
	CHECK(parse("<!DOCTYPE x [<!ENTITY a 'b'>]><Report/>", -1, NULL) == SM_REPORT_DOCTYPE);
	CHECK(global_calls == 0);
	xmlSetStructuredErrorFunc(NULL, NULL);
}

/* sm_report_parse_int: format, whitespace, every int64 edge */
static void
test_int(void)
{
	int64_t		v = 0;
	char		reason[64];

	CHECK(sm_report_parse_int(" 42\n", 0, 100, &v, reason, sizeof(reason)) && v == 42);
	CHECK(sm_report_parse_int("+7", -10, 10, &v, reason, sizeof(reason)) && v == 7);
	CHECK(sm_report_parse_int("-0", 0, 0, &v, reason, sizeof(reason)) && v == 0);
	CHECK(sm_report_parse_int("007", 0, 10, &v, reason, sizeof(reason)) && v == 7);
	CHECK(sm_report_parse_int("9223372036854775807", INT64_MIN, INT64_MAX, &v, NULL, 0) &&
		  v == INT64_MAX);
	CHECK(sm_report_parse_int("-9223372036854775808", INT64_MIN, INT64_MAX, &v, NULL, 0) &&
		  v == INT64_MIN);
	CHECK(!sm_report_parse_int("9223372036854775808", INT64_MIN, INT64_MAX, &v, reason, sizeof(reason)));
	CHECK_STR(reason, "out of range -9223372036854775808 to 9223372036854775807");
	CHECK(!sm_report_parse_int("-9223372036854775809", INT64_MIN, INT64_MAX, &v, reason, sizeof(reason)));
	CHECK(!sm_report_parse_int("18446744073709551616", INT64_MIN, INT64_MAX, &v, reason, sizeof(reason)));
	CHECK(!sm_report_parse_int("99999999999999999999999999", 0, 10, &v, reason, sizeof(reason)));
	CHECK_STR(reason, "out of range 0 to 10");
	CHECK(!sm_report_parse_int("2147483648", INT32_MIN, INT32_MAX, &v, reason, sizeof(reason)));
	CHECK_STR(reason, "out of range -2147483648 to 2147483647");
	CHECK(sm_report_parse_int("-2147483648", INT32_MIN, INT32_MAX, &v, NULL, 0) && v == INT32_MIN);
	CHECK(!sm_report_parse_int("", 0, 10, &v, reason, sizeof(reason)));
	CHECK_STR(reason, "empty");
	CHECK(!sm_report_parse_int("  ", 0, 10, &v, reason, sizeof(reason)));
	CHECK(!sm_report_parse_int(NULL, 0, 10, &v, reason, sizeof(reason)));
	CHECK_STR(reason, "missing");
	CHECK(!sm_report_parse_int("-", 0, 10, &v, reason, sizeof(reason)));
	CHECK_STR(reason, "not an integer");
	CHECK(!sm_report_parse_int("1 2", 0, 10, &v, reason, sizeof(reason)));
	CHECK(!sm_report_parse_int("0x10", 0, 100, &v, reason, sizeof(reason)));
	CHECK(!sm_report_parse_int("1.0", 0, 100, &v, reason, sizeof(reason)));
	CHECK(!sm_report_parse_int("+-1", -5, 100, &v, reason, sizeof(reason)));
	CHECK(!sm_report_parse_int("\xC2\xA0" "1", 0, 100, &v, reason, sizeof(reason)));
	v = 99;
	CHECK(!sm_report_parse_int("5", 6, 10, &v, reason, sizeof(reason)) && v == 99);
}

/* sm_report_parse_dmtf: offsets, fractions, calendar, edges */
static void
test_dmtf(void)
{
	int64_t		u = 0;
	char		reason[80];

#define DMTF_OK(s, want) CHECK(sm_report_parse_dmtf((s), &u, reason, sizeof(reason)) && u == (want))
#define DMTF_BAD(s, why) do { CHECK(!sm_report_parse_dmtf((s), &u, reason, sizeof(reason))); \
		CHECK_STR(reason, (why)); } while (0)

	DMTF_OK("20140120171855.573000+000", INT64_C(443553535573000));
	DMTF_OK("20140120171855.573+060", INT64_C(443549935573000));
	DMTF_OK("20140120171855-300", INT64_C(443571535000000));
	DMTF_OK(" 20140120171855.+000 ", INT64_C(443553535000000));
	DMTF_OK("20140120171855.5-0", INT64_C(443553535500000));
	DMTF_OK("20140120171855.57+0000", INT64_C(443553535570000));
	DMTF_OK("20140120171855.5730+000", INT64_C(443553535573000));
	DMTF_OK("20140120171855.57300+000", INT64_C(443553535573000));
	DMTF_OK("20000101000000.000000+000", 0);
	DMTF_OK("19991231235959.999999+000", -1);
	DMTF_OK("19700101000000.000000+000", INT64_C(-946684800000000));
	DMTF_OK("20240229235959.999999+000", INT64_C(762566399999999));
	DMTF_OK("20000229120000.5+000", INT64_C(5140800500000));
	DMTF_OK("00010101000000.000000+9999", INT64_C(-63082881540000000));
	DMTF_OK("99991231235959.999999-9999", INT64_C(252456215939999999));
	DMTF_BAD("20230229000000.000000+000", "day 29 out of range for 2023-02");
	DMTF_BAD("19000229000000.000000+000", "day 29 out of range for 1900-02");
	DMTF_BAD("20230431000000.000000+000", "day 31 out of range for 2023-04");
	DMTF_BAD("20230100000000.000000+000", "day 00 out of range for 2023-01");
	DMTF_BAD("20231301000000.000000+000", "month 13 out of range");
	DMTF_BAD("00000000000000.000000+000", "year 0000 out of range");
	DMTF_BAD("20230101240000.000000+000", "hour 24 out of range");
	DMTF_BAD("20230101006000.000000+000", "minute 60 out of range");
	DMTF_BAD("20230101000060.000000+000", "second 60 out of range");
	DMTF_BAD("20230101000000.0000000+000", "more than 6 fractional digits");
	DMTF_BAD("20230101000000.000000+00000", "UTC offset longer than 4 digits");
	DMTF_BAD("20230101000000.000000+", "UTC offset without digits");
	DMTF_BAD("20230101000000.000000", "UTC offset (+ or - and minutes) expected");
	DMTF_BAD("20230101000000.000000Z", "UTC offset (+ or - and minutes) expected");
	DMTF_BAD("20230101000000.000000+000x", "not a DMTF time (trailing characters)");
	DMTF_BAD("2023-01-01 00:00:00", "not a DMTF time (yyyyMMddHHmmss.ffffff+OOO)");
	DMTF_BAD("2023010100000", "not a DMTF time (yyyyMMddHHmmss.ffffff+OOO)");
	DMTF_BAD("", "empty");
	DMTF_BAD(NULL, "missing");
	DMTF_BAD("20230101000000.******+***", "UTC offset (+ or - and minutes) expected");
}

/*
 * Every seed of the fuzz corpus gets the verdict its name says: doctype-*
 * DOCTYPE, deep-65 TOO_LARGE, wrong-root* WRONG_ROOT, *client-id* without attributes
 * NO_CLIENT_ID, truncated/undeclared/junk/empty NOT_XML, the rest OK.
 */
static void
test_corpus(const char *dir)
{
	DIR		   *d = opendir(dir);
	struct dirent *e;
	int			n = 0;

	if (d == NULL)
	{
		printf("FAIL cannot open %s\n", dir);
		failures++;
		return;
	}
	while ((e = readdir(d)) != NULL)
	{
		char		path[4096];
		FILE	   *f;
		static char buf[1 << 16];
		size_t		len;
		const char *name = e->d_name;
		SmReportError want = SM_REPORT_OK;

		if (name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		f = fopen(path, "rb");
		if (f == NULL)
			continue;
		len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		if (strncmp(name, "doctype-", 8) == 0)
			want = SM_REPORT_DOCTYPE;
		else if (strncmp(name, "deep-65", 7) == 0)
			want = SM_REPORT_TOO_LARGE;
		else if (strncmp(name, "wrong-root", 10) == 0)
			want = SM_REPORT_WRONG_ROOT;
		else if (strstr(name, "client-id") && !strstr(name, "attributes"))
			want = SM_REPORT_NO_CLIENT_ID;
		else if (strstr(name, "truncated") || strstr(name, "undeclared") ||
				 strstr(name, "junk") ||
				 strncmp(name, "empty.", 6) == 0)
			want = SM_REPORT_NOT_XML;
		if (parse(buf, (long) len, NULL) != want)
		{
			printf("FAIL corpus %s: error %d (want %d) line %d: %s\n", name,
				   rep.error, want, rep.error_line, rep.error_detail);
			failures++;
		}
		checks++;
		n++;
	}
	closedir(d);
	CHECK(n >= 20);
}

int
main(int argc, char **argv)
{
	xmlInitParser();
	test_encodings();
	test_variants();
	test_rejections();
	test_out_of_memory();
	test_global_handler();
	test_int();
	test_dmtf();
	if (argc > 1)
		test_corpus(argv[1]);
	arena_reset(&arena);
	xmlCleanupParser();
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
