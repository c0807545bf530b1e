/*-------------------------------------------------------------------------
 *
 * report_parse.c
 *	  From a client's XML report (its upload, as sent) to its messages.
 *
 * libxml2's SAX2 interface feeds a small state machine that follows the
 * report's element path (by local name, whatever the namespace) and keeps
 * only what a message carries; no tree is built.  Plain C and libxml2, no
 * server headers, so test/fuzz runs the same code outside the server.
 *
 * Safety rules, each enforced here rather than left to libxml2's defaults:
 * - any DOCTYPE stops the parser in the internalSubset callback, before a
 *   single declaration of the internal subset is read; no DTD is loaded, no
 *   entity is declared, looked up or resolved (getEntity, resolveEntity and
 *   entityDecl refuse), so no entity bomb and no file or URL is ever read;
 * - elements nest at most SM_REPORT_MAX_DEPTH deep and a report holds at
 *   most SM_REPORT_MAX_MESSAGES messages; sizes of values are bounded by the
 *   document, whose size the caller limits;
 * - what libxml2 2.9 lets through is checked here: a NUL character (it
 *   ends the input for libxml2), bytes left undecoded at the end;
 * - libxml2's errors go to a structured handler in the parser context's
 *   own SAX handler (libxml2 prefers it to the global one that the server's
 *   pg_xml_init() installs), which keeps the first fatal error.
 *
 * Encodings: the caller's encoding is forced (the declaration ignored);
 * without one, byte order marks and UTF-16 without them are detected here,
 * and a UTF-8 document declaring UTF-16 is read as UTF-8, as real uploads
 * need; other declarations are libxml2's to follow.
 *
 *-------------------------------------------------------------------------
 */
#include "report_parse.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <libxml/encoding.h>
#include <libxml/entities.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlerror.h>

/* Where an open element sits in a report, from the path of local names */
typedef enum ElemKind
{
	EL_OTHER,					/* unknown, misplaced or repeated: ignored */
	EL_REPORT,
	EL_HEADER,
	EL_IDENTIFICATION,
	EL_MACHINE,
	EL_CLIENT_ID,
	EL_NETBIOS_NAME,
	EL_CLIENT_VERSION,
	EL_PRIORITY,
	EL_BODY,
	EL_MESSAGE,
	EL_TOPIC,
	EL_STATE,
	EL_DETAILS,
	EL_PARAMS,
	EL_PARAM
} ElemKind;

/* The parser's state, libxml2's userData in every callback */
typedef struct ParseState
{
	xmlParserCtxtPtr ctxt;
	SmReport   *report;
	SmReportAlloc alloc;
	void	   *alloc_arg;
	int			depth;			/* elements open */
	ElemKind	kinds[SM_REPORT_MAX_DEPTH];
	int			param_index;	/* slot of the open Param (EL_PARAM) */
	int			messages_allocated;
	bool		seen_root;
	bool		msg_seen_details;	/* the open message's first StateDetails */
	bool		msg_seen_params;	/* ... and UserParameters were seen */
	/* text of the open text element (EL_CLIENT_ID ... EL_PARAM) */
	char	   *text;
	size_t		text_len;
	size_t		text_cap;
	/* libxml2's first fatal error */
	bool		xml_failed;
	int			xml_code;
	int			xml_line;
	char		xml_message[200];
} ParseState;

static const char empty_string[] = "";

#if defined(__GNUC__) || defined(__clang__)
#define SM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SM_PRINTF(f, a)
#endif

static void fail(ParseState *st, SmReportError error, const char *fmt,...) SM_PRINTF(3, 4);
static bool reject(char *reason, size_t reason_size, const char *fmt,...) SM_PRINTF(3, 4);

/*
 * Copies msg into dst (dst_size bytes) as valid UTF-8 on one line: control
 * characters become spaces, invalid bytes '?', no character is cut in half
 * (the server stores the detail in a text column and in error messages).
 */
static void
copy_detail(char *dst, size_t dst_size, const char *msg)
{
	const unsigned char *s = (const unsigned char *) msg;
	size_t		o = 0;

	while (*s && o + 1 < dst_size)
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
			n = 0;
		for (int i = 1; i < n; i++)
			if ((s[i] & 0xC0) != 0x80)
				n = 0;
		/* overlong, surrogate and beyond U+10FFFF forms */
		if ((n == 3 && *s == 0xE0 && s[1] < 0xA0) ||
			(n == 3 && *s == 0xED && s[1] >= 0xA0) ||
			(n == 4 && *s == 0xF0 && s[1] < 0x90) ||
			(n == 4 && *s == 0xF4 && s[1] >= 0x90))
			n = 0;
		if (n == 0)
		{
			dst[o++] = '?';
			s++;
			continue;
		}
		if (o + n >= dst_size)
			break;
		if (n == 1)
			dst[o] = (*s < 0x20 || *s == 0x7F) ? ' ' : (char) *s;
		else
			memcpy(dst + o, s, n);
		o += n;
		s += n;
	}
	while (o > 0 && dst[o - 1] == ' ')
		o--;
	dst[o] = '\0';
}

/*
 * Rejects the document (the first reason wins) and stops libxml2, which
 * then sees an empty input and returns at once.
 */
static void
fail(ParseState *st, SmReportError error, const char *fmt,...)
{
	SmReport   *report = st->report;
	char		buf[sizeof(report->error_detail)];
	va_list		ap;

	if (report->error != SM_REPORT_OK)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	report->error = error;
	report->error_line = (st->ctxt && st->ctxt->input) ? st->ctxt->input->line : 0;
	copy_detail(report->error_detail, sizeof(report->error_detail), buf);
	if (st->ctxt)
		xmlStopParser(st->ctxt);
}

/* The caller's allocator; on failure the document is rejected */
static void *
st_alloc(ParseState *st, size_t size)
{
	void	   *p = st->alloc(st->alloc_arg, size);

	if (p == NULL)
		fail(st, SM_REPORT_OUT_OF_MEMORY, "out of memory (%zu bytes)", size);
	return p;
}

/*
 * Appends text to the open text element, doubling the buffer so that a
 * large StateDetails arriving in many small callbacks costs linear time.
 * Old buffers are left to the caller's allocator, which frees them all at
 * once: at most as much again as the final buffer.
 */
static void
text_append(ParseState *st, const char *s, size_t len)
{
	if (st->text_len + len + 1 > st->text_cap)
	{
		size_t		cap = st->text_cap ? st->text_cap : 64;
		char	   *text;

		while (cap < st->text_len + len + 1)
			cap *= 2;
		text = st_alloc(st, cap);
		if (text == NULL)
			return;
		if (st->text_len > 0)
			memcpy(text, st->text, st->text_len);
		st->text = text;
		st->text_cap = cap;
	}
	memcpy(st->text + st->text_len, s, len);
	st->text_len += len;
	st->text[st->text_len] = '\0';
}

/* The collected text as a string of its own size ("" for none) */
static const char *
text_copy(ParseState *st)
{
	char	   *s;

	if (st->text_len == 0)
		return empty_string;
	s = st_alloc(st, st->text_len + 1);
	if (s == NULL)
		return NULL;
	memcpy(s, st->text, st->text_len + 1);
	return s;
}

/*
 * An attribute's value as a string.  Without XML_PARSE_NOENT libxml2 hands
 * over '&' (from &amp; or &#38;) re-escaped as "&#38;" in attribute values,
 * for a tree builder to decode; every other reference is already replaced,
 * so "&#38;" is the one sequence to undo.
 */
static const char *
attr_copy(ParseState *st, const xmlChar *value, const xmlChar *end)
{
	size_t		len = end - value;
	char	   *s = st_alloc(st, len + 1);
	size_t		o = 0;

	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++)
	{
		s[o++] = (char) value[i];
		if (value[i] == '&' && len - i >= 5 && memcmp(value + i, "&#38;", 5) == 0)
			i += 4;
	}
	s[o] = '\0';
	return s;
}

/*
 * The value of the first attribute of that local name, NULL if none.  Once
 * the document is rejected, the attributes must not be read: stopping the
 * parser freed the input buffer they point into.
 */
static const char *
attr_get(ParseState *st, const char *name, int nb_attributes,
		 const xmlChar **attributes)
{
	if (st->report->error != SM_REPORT_OK)
		return NULL;
	for (int i = 0; i < nb_attributes; i++)
	{
		const xmlChar **a = attributes + 5 * i;

		if (strcmp((const char *) a[0], name) == 0)
			return attr_copy(st, a[3], a[4]);
	}
	return NULL;
}

/* The message being read (the last one) */
static SmRawMessage *
current_message(ParseState *st)
{
	return &st->report->messages[st->report->nmessages - 1];
}

/* Starts a StateMessage: a new slot, growing the array by doubling */
static bool
message_begin(ParseState *st, int nb_attributes, const xmlChar **attributes)
{
	SmReport   *report = st->report;
	SmRawMessage *msg;

	if (report->nmessages >= SM_REPORT_MAX_MESSAGES)
	{
		fail(st, SM_REPORT_TOO_LARGE, "more than %d messages",
			 SM_REPORT_MAX_MESSAGES);
		return false;
	}
	if (report->nmessages == st->messages_allocated)
	{
		int			n = st->messages_allocated ? st->messages_allocated * 2 : 16;
		SmRawMessage *messages;

		if (n > SM_REPORT_MAX_MESSAGES)
			n = SM_REPORT_MAX_MESSAGES;
		messages = st_alloc(st, (size_t) n * sizeof(SmRawMessage));
		if (messages == NULL)
			return false;
		if (report->nmessages > 0)
			memcpy(messages, report->messages,
				   (size_t) report->nmessages * sizeof(SmRawMessage));
		report->messages = messages;
		st->messages_allocated = n;
	}
	msg = &report->messages[report->nmessages++];
	memset(msg, 0, sizeof(*msg));
	msg->ordinal = report->nmessages;
	st->msg_seen_details = false;
	st->msg_seen_params = false;
	msg->message_time = attr_get(st, "MessageTime", nb_attributes, attributes);
	msg->serial_number = attr_get(st, "SerialNumber", nb_attributes, attributes);
	return true;
}

/*
 * What an element is, from its parent's kind and its local name; the first
 * of a repeated element counts, later ones are ignored like unknown ones.
 * Reads the attributes of the elements that carry them.
 */
static ElemKind
classify(ParseState *st, ElemKind parent, const char *name,
		 int nb_attributes, const xmlChar **attributes)
{
	SmReport   *report = st->report;
	SmRawMessage *msg;

	switch (parent)
	{
		case EL_REPORT:
			if (strcmp(name, "ReportHeader") == 0)
				return EL_HEADER;
			if (strcmp(name, "ReportBody") == 0)
				return EL_BODY;
			break;
		case EL_HEADER:
			if (strcmp(name, "Identification") == 0)
				return EL_IDENTIFICATION;
			break;
		case EL_IDENTIFICATION:
			if (strcmp(name, "Machine") == 0)
				return EL_MACHINE;
			break;
		case EL_MACHINE:
			if (strcmp(name, "ClientID") == 0 && report->client_id == NULL)
				return EL_CLIENT_ID;
			if (strcmp(name, "NetBIOSName") == 0 && report->netbios_name == NULL)
				return EL_NETBIOS_NAME;
			if (strcmp(name, "ClientVersion") == 0 && report->client_version == NULL)
				return EL_CLIENT_VERSION;
			if (strcmp(name, "Priority") == 0 && report->priority == NULL)
				return EL_PRIORITY;
			break;
		case EL_BODY:
			if (strcmp(name, "StateMessage") == 0)
				return message_begin(st, nb_attributes, attributes) ? EL_MESSAGE : EL_OTHER;
			break;
		case EL_MESSAGE:
			msg = current_message(st);
			if (strcmp(name, "Topic") == 0 && !msg->has_topic)
			{
				msg->has_topic = true;
				msg->topic_id = attr_get(st, "ID", nb_attributes, attributes);
				msg->topic_type = attr_get(st, "Type", nb_attributes, attributes);
				msg->topic_id_type = attr_get(st, "IDType", nb_attributes, attributes);
				msg->user_name = attr_get(st, "User", nb_attributes, attributes);
				msg->user_sid = attr_get(st, "UserSID", nb_attributes, attributes);
				return EL_TOPIC;
			}
			if (strcmp(name, "State") == 0 && !msg->has_state)
			{
				msg->has_state = true;
				msg->state_id = attr_get(st, "ID", nb_attributes, attributes);
				msg->criticality = attr_get(st, "Criticality", nb_attributes, attributes);
				return EL_STATE;
			}
			if (strcmp(name, "StateDetails") == 0 && !st->msg_seen_details)
			{
				st->msg_seen_details = true;
				msg->details_type = attr_get(st, "Type", nb_attributes, attributes);
				return EL_DETAILS;
			}
			if (strcmp(name, "UserParameters") == 0 && !st->msg_seen_params)
			{
				st->msg_seen_params = true;
				msg->param_flags = attr_get(st, "Flags", nb_attributes, attributes);
				return EL_PARAMS;
			}
			break;
		case EL_PARAMS:
			if (strcmp(name, "Param") == 0)
			{
				msg = current_message(st);
				if (msg->nparams == INT_MAX)
					break;
				st->param_index = msg->nparams++;
				if (st->param_index < SM_REPORT_MAX_PARAMS)
					return EL_PARAM;
			}
			break;
		default:
			break;
	}
	return EL_OTHER;
}

/* Whether an element's text is kept */
static bool
is_text_kind(ElemKind kind)
{
	switch (kind)
	{
		case EL_CLIENT_ID:
		case EL_NETBIOS_NAME:
		case EL_CLIENT_VERSION:
		case EL_PRIORITY:
		case EL_DETAILS:
		case EL_PARAM:
			return true;
		default:
			return false;
	}
}

/* SAX2 start of an element: its kind, by local name, on the stack */
static void
on_start_element(void *ctx, const xmlChar *localname, const xmlChar *prefix,
				 const xmlChar *URI, int nb_namespaces,
				 const xmlChar **namespaces, int nb_attributes,
				 int nb_defaulted, const xmlChar **attributes)
{
	ParseState *st = ctx;
	const char *name = (const char *) localname;
	ElemKind	kind;

	if (st->report->error != SM_REPORT_OK)
		return;
	if (st->depth >= SM_REPORT_MAX_DEPTH)
	{
		fail(st, SM_REPORT_TOO_LARGE, "elements nested more than %d deep",
			 SM_REPORT_MAX_DEPTH);
		return;
	}
	if (st->depth == 0)
	{
		if (strcmp(name, "Report") != 0)
		{
			fail(st, SM_REPORT_WRONG_ROOT, "root element is %.64s, not Report",
				 name);
			return;
		}
		st->seen_root = true;
		kind = EL_REPORT;
	}
	else
		kind = classify(st, st->kinds[st->depth - 1], name, nb_attributes,
						attributes);
	if (st->report->error != SM_REPORT_OK)
		return;
	if (is_text_kind(kind))
		st->text_len = 0;
	st->kinds[st->depth++] = kind;
}

/* SAX2 end of an element: stores the text of a text element */
static void
on_end_element(void *ctx, const xmlChar *localname, const xmlChar *prefix,
			   const xmlChar *URI)
{
	ParseState *st = ctx;
	SmReport   *report = st->report;
	ElemKind	kind;
	const char *text;

	if (report->error != SM_REPORT_OK || st->depth == 0)
		return;
	kind = st->kinds[--st->depth];
	if (!is_text_kind(kind))
		return;
	if (kind == EL_DETAILS)
	{
		/* the (possibly large) buffer itself, not a copy */
		SmRawMessage *msg = current_message(st);

		msg->details = st->text_len > 0 ? st->text : empty_string;
		msg->details_len = st->text_len;
		st->text = NULL;
		st->text_cap = 0;
		st->text_len = 0;
		return;
	}
	text = text_copy(st);
	if (text == NULL)
		return;
	switch (kind)
	{
		case EL_CLIENT_ID:
			report->client_id = text;
			break;
		case EL_NETBIOS_NAME:
			report->netbios_name = text;
			break;
		case EL_CLIENT_VERSION:
			report->client_version = text;
			break;
		case EL_PRIORITY:
			report->priority = text;
			break;
		case EL_PARAM:
			current_message(st)->params[st->param_index] = text;
			break;
		default:
			break;
	}
}

/*
 * SAX2 text and CDATA: kept for the open text element only (its own text,
 * not that of elements inside it); whitespace between elements drops here.
 */
static void
on_characters(void *ctx, const xmlChar *ch, int len)
{
	ParseState *st = ctx;

	if (st->report->error != SM_REPORT_OK || st->depth == 0 || len <= 0)
		return;
	if (is_text_kind(st->kinds[st->depth - 1]))
		text_append(st, (const char *) ch, (size_t) len);
}

/*
 * A DOCTYPE: rejected before libxml2 reads its internal subset (this
 * callback comes right after the name and external id), so no declaration
 * is ever parsed, let alone expanded or fetched.
 */
static void
on_doctype(void *ctx, const xmlChar *name, const xmlChar *ExternalID,
		   const xmlChar *SystemID)
{
	fail((ParseState *) ctx, SM_REPORT_DOCTYPE,
		 "document type declaration (DOCTYPE) not allowed");
}

/* No entity other than the predefined ones (resolved before this) exists */
static xmlEntityPtr
on_get_entity(void *ctx, const xmlChar *name)
{
	return NULL;
}

/* Never reached (a DOCTYPE stops first); refuse anyway */
static void
on_entity_decl(void *ctx, const xmlChar *name, int type,
			   const xmlChar *publicId, const xmlChar *systemId,
			   xmlChar *content)
{
	fail((ParseState *) ctx, SM_REPORT_DOCTYPE, "entity declaration not allowed");
}

/* Never reached; no external entity is ever fetched */
static xmlParserInputPtr
on_resolve_entity(void *ctx, const xmlChar *publicId, const xmlChar *systemId)
{
	fail((ParseState *) ctx, SM_REPORT_DOCTYPE, "external entity not allowed");
	return NULL;
}

/*
 * libxml2's structured error handler for this parser context: keeps the
 * first fatal error (later ones are mostly its consequences).  Namespace
 * errors (an undeclared prefix) and warnings are not fatal: elements match
 * by local name anyway.
 */
static void
on_xml_error(void *ctx, xmlErrorPtr error)
{
	ParseState *st = ctx;

	if (error == NULL || error->level != XML_ERR_FATAL || st->xml_failed)
		return;
	st->xml_failed = true;
	st->xml_code = error->code;
	st->xml_line = error->line;
	copy_detail(st->xml_message, sizeof(st->xml_message),
				error->message ? error->message : "not well-formed XML");
}

/* Whether the input starts with '<' in UCS-4 (libxml2's four patterns) */
static bool
is_ucs4(const unsigned char *d, size_t len)
{
	static const unsigned char patterns[4][4] = {
		{0, 0, 0, '<'}, {'<', 0, 0, 0}, {0, 0, '<', 0}, {0, '<', 0, 0}
	};

	for (int i = 0; len >= 4 && i < 4; i++)
		if (memcmp(d, patterns[i], 4) == 0)
			return true;
	return false;
}

/*
 * In detection mode, the encoding libxml2 gets told, or NULL to let it
 * follow the document's declaration; *skip is a byte order mark to pass
 * over.  libxml2 2.9 alone would refuse a UTF-8 document that declares
 * UTF-16 (common in real uploads) and read UTF-16 without a byte order
 * mark and without an XML declaration as UTF-8.
 */
static const char *
detect_encoding(const unsigned char *d, size_t len, size_t *skip)
{
	*skip = 0;
	if (len >= 3 && d[0] == 0xEF && d[1] == 0xBB && d[2] == 0xBF)
	{
		/* a byte order mark outranks the declaration */
		*skip = 3;
		return "UTF-8";
	}
	if (is_ucs4(d, len))
		return NULL;			/* libxml2 decides */
	if (len >= 2 && d[0] == 0xFF && d[1] == 0xFE)
	{
		*skip = 2;
		return "UTF-16LE";
	}
	if (len >= 2 && d[0] == 0xFE && d[1] == 0xFF)
	{
		*skip = 2;
		return "UTF-16BE";
	}
	if (len >= 2 && d[0] != 0 && d[1] == 0)
		return "UTF-16LE";
	if (len >= 2 && d[0] == 0 && d[1] != 0)
		return "UTF-16BE";

	/* 8-bit: a declaration of UTF-16 is wrong, read it as UTF-8 */
	if (len >= 6 && memcmp(d, "<?xml", 5) == 0)
	{
		size_t		end = len < 200 ? len : 200;

		for (size_t i = 5; i + 8 <= end && !(d[i] == '?' && d[i + 1] == '>'); i++)
		{
			if (memcmp(d + i, "encoding", 8) == 0)
			{
				size_t		j = i + 8;

				while (j < end && (d[j] == ' ' || d[j] == '\t' ||
								   d[j] == '\r' || d[j] == '\n' || d[j] == '='))
					j++;
				if (j < end && (d[j] == '"' || d[j] == '\''))
					j++;
				if (j + 5 <= end && (strncasecmp((const char *) d + j, "UTF16", 5) == 0 ||
									 (j + 6 <= end &&
									  strncasecmp((const char *) d + j, "UTF-16", 6) == 0)))
					return "UTF-8";
				break;
			}
		}
	}
	return NULL;
}

/*
 * Whether the input holds a NUL character (in units of the encoding):
 * libxml2 2.9 takes a NUL byte after the root element for the end of the
 * input and accepts whatever follows it unseen.
 */
static bool
has_nul(const unsigned char *d, size_t len, const char *encoding)
{
	if (encoding && strncasecmp(encoding, "UTF-16", 6) == 0)
	{
		for (size_t i = 0; i + 1 < len; i += 2)
			if (d[i] == 0 && d[i + 1] == 0)
				return true;
		return false;
	}
	if (encoding == NULL && is_ucs4(d, len))
	{
		for (size_t i = 0; i + 3 < len; i += 4)
			if (d[i] == 0 && d[i + 1] == 0 && d[i + 2] == 0 && d[i + 3] == 0)
				return true;
		return false;
	}
	return memchr(d, 0, len) != NULL;
}

/*
 * Parses a report; see report_parse.h.  On every path that returns, the
 * parser context is freed here and report->xml_ctxt is NULL again.
 */
SmReportError
sm_report_parse(const char *data, size_t len, const char *encoding,
				SmReportAlloc alloc, void *alloc_arg, SmReport *report)
{
	ParseState	st;
	xmlSAXHandler sax;
	xmlParserCtxtPtr ctxt;
	size_t		skip = 0;
	/*
	 * XML_PARSE_HUGE lifts libxml2's 10 MB cap on one CDATA section (a
	 * StateDetails payload may be larger, up to the server's settings); the
	 * caller bounds the document and SM_REPORT_MAX_DEPTH the nesting.
	 */
	int			options = XML_PARSE_NONET | XML_PARSE_HUGE;

	memset(report, 0, sizeof(*report));
	memset(&st, 0, sizeof(st));
	st.report = report;
	st.alloc = alloc;
	st.alloc_arg = alloc_arg;

	if (len > INT_MAX)
	{
		fail(&st, SM_REPORT_TOO_LARGE, "document larger than %d bytes", INT_MAX);
		return report->error;
	}
	if (encoding == NULL)
		encoding = detect_encoding((const unsigned char *) data, len, &skip);
	else if (strcasecmp(encoding, "UTF-8") == 0 && len >= 3 &&
			 memcmp(data, "\xEF\xBB\xBF", 3) == 0)
		skip = 3;
	if (encoding != NULL)
	{
		/* the caller's (or detected) encoding, whatever the declaration */
		xmlCharEncodingHandlerPtr handler = xmlFindCharEncodingHandler(encoding);

		options |= XML_PARSE_IGNORE_ENC;
		if (handler == NULL)
		{
			fail(&st, SM_REPORT_NOT_XML, "unsupported encoding %.64s", encoding);
			return report->error;
		}
		/* frees a handler made for iconv (not the built-in ones) */
		xmlCharEncCloseFunc(handler);
	}
	data += skip;
	len -= skip;
	if (has_nul((const unsigned char *) data, len, encoding))
	{
		fail(&st, SM_REPORT_NOT_XML, "NUL character in the document");
		return report->error;
	}
	if (len == 0)
	{
		fail(&st, SM_REPORT_NOT_XML, "document is empty");
		return report->error;
	}

	memset(&sax, 0, sizeof(sax));
	sax.initialized = XML_SAX2_MAGIC;
	sax.startElementNs = on_start_element;
	sax.endElementNs = on_end_element;
	sax.characters = on_characters;
	sax.ignorableWhitespace = on_characters;
	sax.cdataBlock = on_characters;
	sax.internalSubset = on_doctype;
	sax.externalSubset = on_doctype;
	sax.getEntity = on_get_entity;
	sax.getParameterEntity = on_get_entity;
	sax.entityDecl = on_entity_decl;
	sax.resolveEntity = on_resolve_entity;
	sax.serror = on_xml_error;

	ctxt = xmlNewParserCtxt();
	if (ctxt == NULL || ctxt->sax == NULL)
	{
		if (ctxt)
			xmlFreeParserCtxt(ctxt);
		fail(&st, SM_REPORT_OUT_OF_MEMORY, "out of memory (parser context)");
		return report->error;
	}
	report->xml_ctxt = ctxt;
	memcpy(ctxt->sax, &sax, sizeof(sax));
	ctxt->userData = &st;
	st.ctxt = ctxt;

	/*
	 * Parses the whole document through the callbacks above (there is no
	 * tree to return).  An allocation that longjmps out of a callback skips
	 * the rest of this function: sm_report_parse_abort frees the context.
	 */
	(void) xmlCtxtReadMemory(ctxt, data, (int) len, NULL, encoding, options);

	if (report->error == SM_REPORT_OK)
	{
		if (ctxt->errNo == XML_ERR_NO_MEMORY ||
			(st.xml_failed && st.xml_code == XML_ERR_NO_MEMORY))
			fail(&st, SM_REPORT_OUT_OF_MEMORY, "out of memory (libxml2)");
		else if (st.xml_failed || !ctxt->wellFormed)
		{
			xmlErrorPtr last = xmlCtxtGetLastError(ctxt);
			const char *msg = st.xml_failed ? st.xml_message :
				(last && last->message) ? last->message : "not well-formed XML";

			fail(&st, SM_REPORT_NOT_XML, "%s", msg);
			report->error_line = st.xml_failed ? st.xml_line : last ? last->line : 0;
		}
		else if (ctxt->input && ctxt->input->buf && ctxt->input->buf->raw &&
				 xmlBufUse(ctxt->input->buf->raw) > 0)
		{
			/*
			 * Bytes left undecoded: an incomplete character at the end (an
			 * odd byte or a lone high surrogate in UTF-16, a cut UTF-8
			 * sequence), which libxml2 2.9 silently drops.
			 */
			fail(&st, SM_REPORT_NOT_XML,
				 "incomplete character at the end of the document (%zu bytes)",
				 xmlBufUse(ctxt->input->buf->raw));
		}
		else if (!st.seen_root)
			fail(&st, SM_REPORT_NOT_XML, "no root element");
		else if (report->client_id == NULL)
			fail(&st, SM_REPORT_NO_CLIENT_ID,
				 "no ClientID in Report/ReportHeader/Identification/Machine");
		else if (report->client_id[strspn(report->client_id, " \t\r\n")] == '\0')
			fail(&st, SM_REPORT_NO_CLIENT_ID, "ClientID is empty");
		if (report->error != SM_REPORT_OK && report->error != SM_REPORT_NOT_XML)
			report->error_line = 0;
	}
	report->xml_ctxt = NULL;
	xmlFreeParserCtxt(ctxt);
	return report->error;
}

/* Frees the parser context of a parse that an allocation interrupted */
void
sm_report_parse_abort(SmReport *report)
{
	if (report->xml_ctxt != NULL)
	{
		xmlParserCtxtPtr ctxt = report->xml_ctxt;

		report->xml_ctxt = NULL;
		xmlFreeParserCtxt(ctxt);
	}
}

/* Writes a conversion's reason, if the caller wants one */
static bool
reject(char *reason, size_t reason_size, const char *fmt,...)
{
	va_list		ap;

	if (reason != NULL && reason_size > 0)
	{
		va_start(ap, fmt);
		vsnprintf(reason, reason_size, fmt, ap);
		va_end(ap);
	}
	return false;
}

/* XML's whitespace (attribute values have it normalized to spaces) */
static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * A decimal integer in [min, max], optional sign and surrounding
 * whitespace; accumulated in unsigned 64 bits with an overflow check, so
 * every int64 value and nothing beyond converts.
 */
bool
sm_report_parse_int(const char *value, int64_t min, int64_t max,
					int64_t *result, char *reason, size_t reason_size)
{
	const char *p = value;
	bool		negative = false;
	uint64_t	magnitude = 0;
	bool		overflow = false;
	int64_t		v;

	if (value == NULL)
		return reject(reason, reason_size, "missing");
	while (is_space(*p))
		p++;
	if (*p == '\0')
		return reject(reason, reason_size, "empty");
	if (*p == '+' || *p == '-')
		negative = (*p++ == '-');
	if (*p < '0' || *p > '9')
		return reject(reason, reason_size, "not an integer");
	while (*p >= '0' && *p <= '9')
	{
		unsigned	d = (unsigned) (*p++ - '0');

		if (magnitude > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			magnitude = magnitude * 10 + d;
	}
	while (is_space(*p))
		p++;
	if (*p != '\0')
		return reject(reason, reason_size, "not an integer");
	if (overflow ||
		(negative && magnitude > (uint64_t) INT64_MAX + 1) ||
		(!negative && magnitude > (uint64_t) INT64_MAX))
		return reject(reason, reason_size, "out of range %" PRId64 " to %" PRId64,
					  min, max);
	if (negative)
		v = magnitude == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) magnitude;
	else
		v = (int64_t) magnitude;
	if (v < min || v > max)
		return reject(reason, reason_size, "out of range %" PRId64 " to %" PRId64,
					  min, max);
	*result = v;
	return true;
}

/* Reads n decimal digits at *p (advancing it); false if one is not a digit */
static bool
digits(const char **p, int n, int *value)
{
	int			v = 0;

	for (int i = 0; i < n; i++)
	{
		char		c = (*p)[i];

		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*value = v;
	return true;
}

/*
 * Days from 1970-01-01 to a date of the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil), in integer arithmetic only.
 */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t		era,
				yoe,
				doy,
				doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/*
 * A DMTF time, yyyyMMddHHmmss[.f...]±O: 0 to 6 fractional digits after the
 * dot (the dot may be left out with them), the UTC offset in 1 to 4 digits
 * of minutes with its sign (local = UTC + offset), surrounding whitespace
 * allowed.  Year 0001 to 9999, real calendar dates (leap years), seconds
 * 00 to 59.  The result's magnitude stays below 2^59 microseconds: no
 * overflow.
 */
bool
sm_report_parse_dmtf(const char *value, int64_t *usecs, char *reason,
					 size_t reason_size)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	const char *p = value;
	int			year,
				month,
				day,
				hour,
				minute,
				second;
	int			fraction = 0,
				nfrac = 0,
				offset = 0,
				noff = 0;
	bool		negative;
	int			dim;
	int64_t		seconds;

	if (value == NULL)
		return reject(reason, reason_size, "missing");
	while (is_space(*p))
		p++;
	if (*p == '\0')
		return reject(reason, reason_size, "empty");
	if (!digits(&p, 4, &year) || !digits(&p, 2, &month) ||
		!digits(&p, 2, &day) || !digits(&p, 2, &hour) ||
		!digits(&p, 2, &minute) || !digits(&p, 2, &second))
		return reject(reason, reason_size,
					  "not a DMTF time (yyyyMMddHHmmss.ffffff+OOO)");
	if (*p == '.')
	{
		p++;
		while (*p >= '0' && *p <= '9')
		{
			if (++nfrac > 6)
				return reject(reason, reason_size,
							  "more than 6 fractional digits");
			fraction = fraction * 10 + (*p++ - '0');
		}
	}
	for (int i = nfrac; i < 6; i++)
		fraction *= 10;
	if (*p != '+' && *p != '-')
		return reject(reason, reason_size,
					  "UTC offset (+ or - and minutes) expected");
	negative = (*p++ == '-');
	while (*p >= '0' && *p <= '9')
	{
		if (++noff > 4)
			return reject(reason, reason_size,
						  "UTC offset longer than 4 digits");
		offset = offset * 10 + (*p++ - '0');
	}
	if (noff == 0)
		return reject(reason, reason_size, "UTC offset without digits");
	while (is_space(*p))
		p++;
	if (*p != '\0')
		return reject(reason, reason_size, "not a DMTF time (trailing characters)");

	if (year < 1)
		return reject(reason, reason_size, "year 0000 out of range");
	if (month < 1 || month > 12)
		return reject(reason, reason_size, "month %02d out of range", month);
	dim = mdays[month - 1];
	if (month == 2 && (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)))
		dim = 29;
	if (day < 1 || day > dim)
		return reject(reason, reason_size, "day %02d out of range for %04d-%02d",
					  day, year, month);
	if (hour > 23)
		return reject(reason, reason_size, "hour %02d out of range", hour);
	if (minute > 59)
		return reject(reason, reason_size, "minute %02d out of range", minute);
	if (second > 59)
		return reject(reason, reason_size, "second %02d out of range", second);

	seconds = (days_from_civil(year, month, day) - days_from_civil(2000, 1, 1)) * 86400
		+ hour * 3600 + minute * 60 + second
		- (int64_t) (negative ? -offset : offset) * 60;
	*usecs = seconds * 1000000 + fraction;
	return true;
}
