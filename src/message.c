/*-------------------------------------------------------------------------
 *
 * message.c
 *	  Validation of incoming state messages and normalization of client ids.
 *
 * A message is checked field by field before anything is applied, so that a
 * bad row can be set aside (or fail its statement) without leaving anything
 * half done.  The checks report a SQLSTATE and a sentence naming the field.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "state_msg.h"

#define GUID_PREFIX "GUID:"
#define GUID_PREFIX_LEN 5
#define GUID_TEXT_LEN 36		/* 8-4-4-4-12 hex digits */

/* At most this many characters of an input value are echoed in a message */
#define ECHO_CHARS 64

/* Is c ASCII white space: space, tab, line feed, vertical tab, form feed, CR? */
static inline bool
is_ascii_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/*
 * Is code point c, beyond ASCII, white space around an id?  The Unicode
 * White_Space characters, plus the invisible format characters that lead
 * ids pasted from documents or consoles: zero width space, non-joiner and
 * joiner, word joiner, the byte order mark, the direction marks and the
 * bidirectional embedding and isolate controls, and the Mongolian vowel
 * separator (white space until Unicode 6.3).
 */
static bool
is_unicode_space(pg_wchar c)
{
	switch (c)
	{
		case 0x0085:			/* next line */
		case 0x00A0:			/* no-break space */
		case 0x1680:			/* ogham space mark */
		case 0x180E:			/* Mongolian vowel separator */
		case 0x205F:			/* medium mathematical space */
		case 0x2060:			/* word joiner */
		case 0x3000:			/* ideographic space */
		case 0xFEFF:			/* byte order mark, zero width no-break space */
			return true;
		default:
			/*
			 * U+2000..U+200A spaces, U+200B..U+200D zero width, U+200E..U+200F
			 * direction marks; U+2028..U+2029 line and paragraph separators,
			 * U+202A..U+202E embeddings and overrides, U+202F narrow no-break
			 * space; U+2066..U+2069 isolates
			 */
			return (c >= 0x2000 && c <= 0x200F) ||
				(c >= 0x2028 && c <= 0x202F) ||
				(c >= 0x2066 && c <= 0x2069);
	}
}

/* Is the database encoding UTF8, so that ids are read as Unicode? */
static inline bool
database_is_utf8(void)
{
	return GetDatabaseEncoding() == PG_UTF8;
}

/*
 * Bytes of white space at the start of s (of length len).  ASCII white
 * space always; the Unicode kind (is_unicode_space()) only when the
 * database encoding is UTF8: in other encodings a byte above 0x7F is never
 * white space.
 */
static size_t
leading_space_slow(const char *s, size_t len)
{
	bool		utf8 = database_is_utf8();
	size_t		i = 0;

	while (i < len)
	{
		const unsigned char *c = (const unsigned char *) s + i;

		if (*c < 0x80)
		{
			if (!is_ascii_space(*c))
				break;
			i++;
		}
		else
		{
			size_t		charlen;

			if (!utf8)
				break;
			charlen = pg_utf_mblen(c);
			if (charlen > len - i || !is_unicode_space(utf8_to_unicode(c)))
				break;
			i += charlen;
		}
	}
	return i;
}

/*
 * Bytes of white space at the end of s (of length len), as
 * leading_space_slow() sees it.  UTF-8 is read backwards: a character
 * starts at the first byte that is not a continuation byte (10xxxxxx).
 */
static size_t
trailing_space_slow(const char *s, size_t len)
{
	bool		utf8 = database_is_utf8();
	size_t		end = len;

	while (end > 0)
	{
		const unsigned char *u = (const unsigned char *) s;

		if (u[end - 1] < 0x80)
		{
			if (!is_ascii_space(u[end - 1]))
				break;
			end--;
		}
		else
		{
			size_t		start = end - 1;

			if (!utf8)
				break;
			while (start > 0 && end - start < MAX_MULTIBYTE_CHAR_LEN &&
				   (u[start] & 0xC0) == 0x80)
				start--;
			if ((size_t) pg_utf_mblen(u + start) != end - start ||
				!is_unicode_space(utf8_to_unicode(u + start)))
				break;
			end = start;
		}
	}
	return len - end;
}

/*
 * Bytes of white space at the start of s (of length len).  Most ids start
 * with an ASCII character that is not white space: then one byte is all
 * this looks at, as cheap as the ASCII-only rule was.
 */
static inline size_t
leading_space(const char *s, size_t len)
{
	unsigned char c = len > 0 ? (unsigned char) s[0] : 0;

	if (len > 0 && c < 0x80 && !is_ascii_space(c))
		return 0;
	return leading_space_slow(s, len);
}

/* Bytes of white space at the end of s, looking at one byte if it can */
static inline size_t
trailing_space(const char *s, size_t len)
{
	unsigned char c = len > 0 ? (unsigned char) s[len - 1] : 0;

	if (len > 0 && c < 0x80 && !is_ascii_space(c))
		return 0;
	return trailing_space_slow(s, len);
}

/*
 * Is s nothing but white space (as leading_space_slow() defines it)?  Such
 * an id is blank: it names nothing, however many characters it has.
 */
static bool
is_blank(const char *s)
{
	size_t		len = strlen(s);

	return leading_space(s, len) == len;
}

/* The hex digits, ASCII only: a table, as cheap as isxdigit() and locale-free */
static const bool hex_digit[256] = {
	['0'] = true, ['1'] = true, ['2'] = true, ['3'] = true, ['4'] = true,
	['5'] = true, ['6'] = true, ['7'] = true, ['8'] = true, ['9'] = true,
	['A'] = true, ['B'] = true, ['C'] = true, ['D'] = true, ['E'] = true,
	['F'] = true,
	['a'] = true, ['b'] = true, ['c'] = true, ['d'] = true, ['e'] = true,
	['f'] = true
};

/* Is s (of length len) a GUID, 8-4-4-4-12 hex digits, optionally in braces? */
static bool
is_guid(const char *s, size_t len, size_t *start)
{
	*start = 0;
	if (len == GUID_TEXT_LEN + 2 && s[0] == '{' && s[len - 1] == '}')
		*start = 1;
	else if (len != GUID_TEXT_LEN)
		return false;

	for (int i = 0; i < GUID_TEXT_LEN; i++)
	{
		char		c = s[*start + i];

		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (c != '-')
				return false;
		}
		else if (!hex_digit[(unsigned char) c])
			return false;
	}
	return true;
}

/*
 * Normalize a client id to one spelling.  Clients report themselves as
 * "GUID:xxxxxxxx-...", "GUID: xxxxxxxx-..." or a bare GUID, in either case;
 * all of these are "GUID:" followed by the upper-case GUID.  Any other id is
 * kept as given, less surrounding white space (leading_space_slow()):
 * relays and consoles add a byte order mark, direction marks or no-break
 * spaces that must not make the same client two.  White space inside an id
 * is kept.  An id that is nothing but white space, or "GUID:" alone, gives
 * "".
 */
char *
sm_normalize_client_id(const char *raw)
{
	const char *s = raw;
	size_t		len = strlen(raw);
	size_t		skip;
	size_t		start;
	bool		prefixed = false;
	char	   *result;

	skip = leading_space(s, len);
	s += skip;
	len -= skip;
	len -= trailing_space(s, len);

	if (len >= GUID_PREFIX_LEN && pg_strncasecmp(s, GUID_PREFIX, GUID_PREFIX_LEN) == 0)
	{
		prefixed = true;
		s += GUID_PREFIX_LEN;
		len -= GUID_PREFIX_LEN;
		skip = leading_space(s, len);
		s += skip;
		len -= skip;
	}

	if (is_guid(s, len, &start))
	{
		result = palloc(GUID_PREFIX_LEN + GUID_TEXT_LEN + 1);
		memcpy(result, GUID_PREFIX, GUID_PREFIX_LEN);
		for (int i = 0; i < GUID_TEXT_LEN; i++)
		{
			char		c = s[start + i];

			/* hex digits and dashes only: ASCII case folding is enough */
			result[GUID_PREFIX_LEN + i] = (c >= 'a' && c <= 'f') ? c - ('a' - 'A') : c;
		}
		result[GUID_PREFIX_LEN + GUID_TEXT_LEN] = '\0';
		return result;
	}

	if (!prefixed)
		return pnstrdup(s, len);
	if (len == 0)
		return pstrdup("");		/* "GUID:" alone names no client */
	return psprintf(GUID_PREFIX "%.*s", (int) len, s);
}

PG_FUNCTION_INFO_V1(state_msg_normalize_client_id);
Datum
state_msg_normalize_client_id(PG_FUNCTION_ARGS)
{
	char	   *raw = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_TEXT_P(cstring_to_text(sm_normalize_client_id(raw)));
}

/*
 * A text value to quote in a message: its first ECHO_CHARS characters, cut
 * on a character boundary, then "..." if there is more.  Only that prefix
 * is detoasted, so an error about a huge value stays small and cheap.
 */
char *
sm_echo_text(Datum value)
{
	int32		max_bytes = ECHO_CHARS * pg_database_encoding_max_length();
	Size		total = toast_raw_datum_size(value) - VARHDRSZ;
	text	   *prefix = DatumGetTextPSlice(value, 0, max_bytes);
	const char *data = VARDATA_ANY(prefix);
	int			clip = pg_mbcharcliplen(data, VARSIZE_ANY_EXHDR(prefix),
										ECHO_CHARS);

	return psprintf("%.*s%s", clip, data, (Size) clip < total ? "..." : "");
}

/* Record why a message is rejected; always returns false for the caller */
static bool
reject(int *sqlstate, char **reason, int code, char *text)
{
	*sqlstate = code;
	*reason = text;
	return false;
}

/* Is s longer than maxlen characters?  Counting bytes first is cheaper. */
static bool
too_long(const char *s, int maxlen)
{
	size_t		bytes = strlen(s);

	return bytes > (size_t) maxlen && pg_mbstrlen_with_len(s, bytes) > maxlen;
}

/*
 * Check a required text field: present, not too long, not blank.  The
 * length is read from the datum's header, so an oversized value is refused
 * without being detoasted.
 */
static bool
check_text(Datum *values, bool *isnull, InboxColumn col, const char *field,
		   int maxbytes, char **out, int *sqlstate, char **reason)
{
	char	   *s;

	if (isnull[col])
		return reject(sqlstate, reason, ERRCODE_NULL_VALUE_NOT_ALLOWED,
					  psprintf("%s must not be null", field));
	if (toast_raw_datum_size(values[col]) - VARHDRSZ > (Size) maxbytes)
		return reject(sqlstate, reason, ERRCODE_STRING_DATA_RIGHT_TRUNCATION,
					  psprintf("%s is longer than %d bytes", field, maxbytes));
	s = TextDatumGetCString(values[col]);
	if (is_blank(s))
		return reject(sqlstate, reason, ERRCODE_INVALID_PARAMETER_VALUE,
					  psprintf("%s must not be empty", field));
	*out = s;
	return true;
}

/* Check a required integer field: present and not negative */
static bool
check_int(Datum *values, bool *isnull, InboxColumn col, const char *field,
		  int32 *out, int *sqlstate, char **reason)
{
	if (isnull[col])
		return reject(sqlstate, reason, ERRCODE_NULL_VALUE_NOT_ALLOWED,
					  psprintf("%s must not be null", field));
	*out = DatumGetInt32(values[col]);
	if (*out < 0)
		return reject(sqlstate, reason, ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
					  psprintf("%s must not be negative", field));
	return true;
}

/*
 * Check an optional text field: NULL (none) or at most maxbytes bytes, the
 * length read from the datum's header, so an oversized value is refused
 * without being detoasted.  Kept as given otherwise (empty included).
 */
static bool
check_optional_text(Datum *values, bool *isnull, InboxColumn col,
					const char *field, int maxbytes, char **out,
					int *sqlstate, char **reason)
{
	*out = NULL;
	if (isnull[col])
		return true;
	if (toast_raw_datum_size(values[col]) - VARHDRSZ > (Size) maxbytes)
		return reject(sqlstate, reason, ERRCODE_STRING_DATA_RIGHT_TRUNCATION,
					  psprintf("%s is longer than %d bytes", field, maxbytes));
	*out = TextDatumGetCString(values[col]);
	return true;
}

/*
 * Check the optional state details: NULL (none) or at most
 * state_msg.max_state_details_size bytes.  The size comes from the datum's
 * header (a TOAST pointer's, or a compressed value's raw size), and the
 * value itself is kept as the datum it is, maybe still toasted: nothing of
 * a large payload is read or copied here.
 */
static bool
check_state_details(Datum *values, bool *isnull, Datum *out,
					int *sqlstate, char **reason)
{
	Size		size;

	*out = (Datum) 0;
	if (isnull[INBOX_STATE_DETAILS])
		return true;
	size = toast_raw_datum_size(values[INBOX_STATE_DETAILS]) - VARHDRSZ;
	if (size > (Size) sm_max_state_details_size)
		return reject(sqlstate, reason, ERRCODE_STRING_DATA_RIGHT_TRUNCATION,
					  psprintf("state_details is larger than state_msg.max_state_details_size (%d bytes): %zu bytes",
							   sm_max_state_details_size, size));
	*out = values[INBOX_STATE_DETAILS];
	return true;
}

/* Check the optional user parameters: a flat text array of at most five */
static bool
check_user_params(Datum *values, bool *isnull, Datum *out,
				  int *sqlstate, char **reason)
{
	ArrayType  *params;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	*out = (Datum) 0;
	if (isnull[INBOX_USER_PARAMS])
		return true;

	params = DatumGetArrayTypePCopy(values[INBOX_USER_PARAMS]);
	if (ARR_NDIM(params) > 1)
		return reject(sqlstate, reason, ERRCODE_ARRAY_SUBSCRIPT_ERROR,
					  pstrdup("user_params must be a one-dimensional array"));
	deconstruct_array(params, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	if (n > SM_MAX_USER_PARAMS)
		return reject(sqlstate, reason, ERRCODE_ARRAY_SUBSCRIPT_ERROR,
					  psprintf("user_params has %d elements, more than %d",
								   n, SM_MAX_USER_PARAMS));
	for (int i = 0; i < n; i++)
	{
		if (!nulls[i] &&
			too_long(TextDatumGetCString(elems[i]), SM_MAX_USER_PARAM_LEN))
			return reject(sqlstate, reason, ERRCODE_STRING_DATA_RIGHT_TRUNCATION,
						  psprintf("user_params element %d is longer than %d characters",
								   i + 1, SM_MAX_USER_PARAM_LEN));
	}
	*out = PointerGetDatum(params);
	return true;
}

/*
 * Validate one inbox row and fill *msg.  On failure returns false with the
 * SQLSTATE and a sentence saying which field was wrong and how.  Every
 * column but serial_number, user_params and the optional ones of release
 * 1.1 (user_name and after) is required.  msg->state_details is the given
 * datum itself, not a copy: the caller keeps it valid while msg is used.
 */
bool
sm_message_check(Datum *values, bool *isnull, int64 row_number,
			  StateMessage *msg, int *sqlstate, char **reason)
{
	char	   *raw_client_id;

	memset(msg, 0, sizeof(StateMessage));
	msg->row_number = row_number;

	if (!check_text(values, isnull, INBOX_CLIENT_ID, "client_id",
					SM_MAX_CLIENT_ID_BYTES, &raw_client_id, sqlstate, reason))
		return false;
	msg->client_id = sm_normalize_client_id(raw_client_id);
	if (msg->client_id[0] == '\0')
		return reject(sqlstate, reason, ERRCODE_INVALID_PARAMETER_VALUE,
					  pstrdup("client_id must not be empty"));

	msg->has_serial = !isnull[INBOX_SERIAL_NUMBER];
	if (msg->has_serial)
	{
		msg->serial_number = DatumGetInt64(values[INBOX_SERIAL_NUMBER]);
		if (msg->serial_number < 0)
			return reject(sqlstate, reason, ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
						  pstrdup("serial_number must not be negative"));
		if (msg->serial_number > SM_MAX_SERIAL)
			return reject(sqlstate, reason, ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
						  psprintf("serial_number is above " INT64_FORMAT,
								   SM_MAX_SERIAL));
	}

	if (!check_int(values, isnull, INBOX_TOPIC_TYPE, "topic_type",
				   &msg->topic_type, sqlstate, reason))
		return false;
	if (!check_text(values, isnull, INBOX_TOPIC_ID, "topic_id",
					SM_MAX_TOPIC_ID_BYTES, &msg->topic_id, sqlstate, reason))
		return false;
	if (!check_int(values, isnull, INBOX_TOPIC_ID_TYPE, "topic_id_type",
				   &msg->topic_id_type, sqlstate, reason))
		return false;
	if (!check_int(values, isnull, INBOX_STATE_ID, "state_id",
				   &msg->state_id, sqlstate, reason))
		return false;
	if (!check_int(values, isnull, INBOX_CRITICALITY, "criticality",
				   &msg->criticality, sqlstate, reason))
		return false;

	if (isnull[INBOX_MESSAGE_TIME])
		return reject(sqlstate, reason, ERRCODE_NULL_VALUE_NOT_ALLOWED,
					  pstrdup("message_time must not be null"));
	msg->message_time = DatumGetTimestampTz(values[INBOX_MESSAGE_TIME]);
	if (TIMESTAMP_NOT_FINITE(msg->message_time))
		return reject(sqlstate, reason, ERRCODE_DATETIME_VALUE_OUT_OF_RANGE,
					  pstrdup("message_time must be finite"));

	if (!check_user_params(values, isnull, &msg->user_params, sqlstate, reason))
		return false;

	if (isnull[INBOX_SOURCE])
		return reject(sqlstate, reason, ERRCODE_NULL_VALUE_NOT_ALLOWED,
					  pstrdup("source must not be null"));
	msg->source = TextDatumGetCString(values[INBOX_SOURCE]);
	if (strcmp(msg->source, "mp") != 0 && strcmp(msg->source, "fsp") != 0)
		return reject(sqlstate, reason, ERRCODE_INVALID_PARAMETER_VALUE,
					  pstrdup("source must be 'mp' or 'fsp'"));

	if (!check_optional_text(values, isnull, INBOX_USER_NAME, "user_name",
							 SM_MAX_USER_NAME_BYTES, &msg->user_name,
							 sqlstate, reason) ||
		!check_optional_text(values, isnull, INBOX_USER_SID, "user_sid",
							 SM_MAX_USER_SID_BYTES, &msg->user_sid,
							 sqlstate, reason))
		return false;
	msg->has_state_details_type = !isnull[INBOX_STATE_DETAILS_TYPE];
	if (msg->has_state_details_type)
		msg->state_details_type =
			DatumGetInt32(values[INBOX_STATE_DETAILS_TYPE]);
	if (!check_state_details(values, isnull, &msg->state_details,
							 sqlstate, reason))
		return false;
	msg->has_priority = !isnull[INBOX_PRIORITY];
	if (msg->has_priority)
	{
		msg->priority = DatumGetInt32(values[INBOX_PRIORITY]);
		if (msg->priority < 0)
			return reject(sqlstate, reason, ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
						  pstrdup("priority must not be negative"));
	}
	if (!check_optional_text(values, isnull, INBOX_NETBIOS_NAME,
							 "netbios_name", SM_MAX_NETBIOS_NAME_BYTES,
							 &msg->netbios_name, sqlstate, reason) ||
		!check_optional_text(values, isnull, INBOX_CLIENT_VERSION,
							 "client_version", SM_MAX_CLIENT_VERSION_BYTES,
							 &msg->client_version, sqlstate, reason))
		return false;

	msg->verdict = VERDICT_REJECTED;	/* until processed */
	return true;
}
