/*
 * fuzz_report.c
 *	  libFuzzer harness of the XML report parser (src/report_parse.c): every
 *	  input is parsed as bytes (encoding detected, as ingest_report(bytea)
 *	  does) and as text ("UTF-8", as ingest_report(text) does), the second
 *	  time now and then with an allocator cap the parse cannot meet (the
 *	  out-of-memory paths), and every value of an accepted report goes
 *	  through the conversions.  What the server relies on is asserted:
 *	  strings valid UTF-8 and NUL-terminated, counts consistent, the parser
 *	  context freed, conversion results in range.  Built and run by
 *	  test/fuzz/run.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/xmlerror.h>

#include "../../src/report_parse.h"
#include "arena.h"

/* abort() with a message: libFuzzer records the input as a crash */
#define REQUIRE(cond) \
	do { if (!(cond)) { fprintf(stderr, "REQUIRE failed: %s (%s:%d)\n", \
								#cond, __FILE__, __LINE__); abort(); } } while (0)

/* Whether s is NUL-terminated valid UTF-8 (no surrogates, overlongs) */
static int
valid_utf8(const char *str)
{
	const unsigned char *s = (const unsigned char *) str;

	while (*s)
	{
		int			n;

		if (*s < 0x80)
			n = 1;
		else if (*s >= 0xC2 && *s <= 0xDF)
			n = 2;
		else if (*s >= 0xE0 && *s <= 0xEF)
			n = 3;
		else if (*s >= 0xF0 && *s <= 0xF4)
			n = 4;
		else
			return 0;
		for (int i = 1; i < n; i++)
			if ((s[i] & 0xC0) != 0x80)
				return 0;
		if ((n == 3 && *s == 0xE0 && s[1] < 0xA0) ||
			(n == 3 && *s == 0xED && s[1] >= 0xA0) ||
			(n == 4 && *s == 0xF0 && s[1] < 0x90) ||
			(n == 4 && *s == 0xF4 && s[1] >= 0x90))
			return 0;
		s += n;
	}
	return 1;
}

/* A value: absent, or valid UTF-8 */
static void
check_value(const char *s)
{
	if (s != NULL)
		REQUIRE(valid_utf8(s));
}

/* An integer value through the conversion, its result in range */
static void
convert_int(const char *s, int64_t min, int64_t max)
{
	int64_t		v;
	char		reason[64];

	if (s == NULL)
		return;
	reason[0] = '\0';
	if (sm_report_parse_int(s, min, max, &v, reason, sizeof(reason)))
		REQUIRE(v >= min && v <= max);
	else
		REQUIRE(reason[0] != '\0');
}

/* A time value through the DMTF conversion */
static void
convert_time(const char *s)
{
	int64_t		u;
	char		reason[80];

	if (s == NULL)
		return;
	reason[0] = '\0';
	if (sm_report_parse_dmtf(s, &u, reason, sizeof(reason)))
		REQUIRE(u > -(INT64_C(1) << 59) && u < (INT64_C(1) << 59));
	else
		REQUIRE(reason[0] != '\0');
}

/* Parses once and checks everything the server relies on */
static void
run(const uint8_t *data, size_t size, const char *encoding, size_t cap)
{
	static Arena arena;
	SmReport	rep;
	SmReportError e;

	arena.cap = cap;
	e = sm_report_parse((const char *) data, size, encoding, arena_alloc,
						&arena, &rep);
	REQUIRE(e == rep.error);
	REQUIRE(e >= SM_REPORT_OK && e <= SM_REPORT_OUT_OF_MEMORY);
	REQUIRE(rep.xml_ctxt == NULL);
	REQUIRE(memchr(rep.error_detail, '\0', sizeof(rep.error_detail)) != NULL);
	REQUIRE(valid_utf8(rep.error_detail));
	if (e != SM_REPORT_OK)
	{
		REQUIRE(rep.error_detail[0] != '\0');
		arena_reset(&arena);
		return;
	}
	REQUIRE(rep.client_id != NULL && rep.client_id[0] != '\0');
	check_value(rep.client_id);
	check_value(rep.netbios_name);
	check_value(rep.client_version);
	check_value(rep.priority);
	convert_int(rep.priority, INT32_MIN, INT32_MAX);
	REQUIRE(rep.nmessages >= 0 && rep.nmessages <= SM_REPORT_MAX_MESSAGES);
	for (int i = 0; i < rep.nmessages; i++)
	{
		SmRawMessage *m = &rep.messages[i];

		REQUIRE(m->ordinal == i + 1);
		check_value(m->message_time);
		check_value(m->serial_number);
		check_value(m->topic_id);
		check_value(m->topic_type);
		check_value(m->topic_id_type);
		check_value(m->user_name);
		check_value(m->user_sid);
		check_value(m->state_id);
		check_value(m->criticality);
		check_value(m->details_type);
		check_value(m->details);
		check_value(m->param_flags);
		REQUIRE(m->has_topic || (m->topic_id == NULL && m->topic_type == NULL &&
								 m->topic_id_type == NULL && m->user_name == NULL &&
								 m->user_sid == NULL));
		REQUIRE(m->has_state || (m->state_id == NULL && m->criticality == NULL));
		if (m->details != NULL)
			REQUIRE(strlen(m->details) == m->details_len);
		else
			REQUIRE(m->details_len == 0);
		REQUIRE(m->nparams >= 0);
		for (int p = 0; p < SM_REPORT_MAX_PARAMS; p++)
		{
			REQUIRE((p < m->nparams) == (m->params[p] != NULL));
			check_value(m->params[p]);
		}
		convert_time(m->message_time);
		convert_int(m->serial_number, INT64_MIN, INT64_MAX);
		convert_int(m->topic_type, INT32_MIN, INT32_MAX);
		convert_int(m->topic_id_type, INT32_MIN, INT32_MAX);
		convert_int(m->state_id, INT32_MIN, INT32_MAX);
		convert_int(m->criticality, INT32_MIN, INT32_MAX);
		convert_int(m->details_type, INT32_MIN, INT32_MAX);
	}
	arena_reset(&arena);
}

/* Keeps libxml2 from printing (the server's handler stands in the same place) */
static void
quiet(void *ctx, xmlErrorPtr error)
{
}

int			LLVMFuzzerInitialize(int *argc, char ***argv);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	xmlInitParser();
	xmlSetStructuredErrorFunc(NULL, quiet);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t		cap = (size_t) 256 << 20;

	run(data, size, NULL, cap);
	/* one input in four: a cap from the last byte, often too small */
	if (size > 0 && (data[size - 1] & 3) == 0)
		cap = (size_t) data[size - 1] * 16;
	run(data, size, "UTF-8", cap);
	return 0;
}
