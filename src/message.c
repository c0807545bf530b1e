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

#include <ctype.h>

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
		else if (!isxdigit((unsigned char) c))
			return false;
	}
	return true;
}

/*
 * Normalize a client id to one spelling.  Clients report themselves as
 * "GUID:xxxxxxxx-...", "GUID: xxxxxxxx-..." or a bare GUID, in either case;
 * all of these are "GUID:" followed by the upper-case GUID.  Any other id is
 * kept as given, less surrounding white space.
 */
char *
normalize_client_id(const char *raw)
{
	const char *s = raw;
	size_t		len;
	size_t		start;
	bool		prefixed = false;
	char	   *result;

	while (isspace((unsigned char) *s))
		s++;
	len = strlen(s);
	while (len > 0 && isspace((unsigned char) s[len - 1]))
		len--;

	if (len >= GUID_PREFIX_LEN && pg_strncasecmp(s, GUID_PREFIX, GUID_PREFIX_LEN) == 0)
	{
		prefixed = true;
		s += GUID_PREFIX_LEN;
		len -= GUID_PREFIX_LEN;
		while (len > 0 && isspace((unsigned char) *s))
		{
			s++;
			len--;
		}
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

	PG_RETURN_TEXT_P(cstring_to_text(normalize_client_id(raw)));
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

/* Check a required text field: present, not blank, not too long */
static bool
check_text(Datum *values, bool *isnull, InboxColumn col, const char *field,
		   int maxbytes, char **out, int *sqlstate, char **reason)
{
	char	   *s;
	const char *c;

	if (isnull[col])
		return reject(sqlstate, reason, ERRCODE_NULL_VALUE_NOT_ALLOWED,
					  psprintf("%s must not be null", field));
	s = TextDatumGetCString(values[col]);
	if (strlen(s) > (size_t) maxbytes)
		return reject(sqlstate, reason, ERRCODE_STRING_DATA_RIGHT_TRUNCATION,
					  psprintf("%s is longer than %d bytes", field, maxbytes));
	for (c = s; isspace((unsigned char) *c); c++)
		;
	if (*c == '\0')
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
 * column but serial_number and user_params is required.
 */
bool
message_check(Datum *values, bool *isnull, int64 row_number,
			  StateMessage *msg, int *sqlstate, char **reason)
{
	char	   *raw_client_id;

	memset(msg, 0, sizeof(StateMessage));
	msg->row_number = row_number;

	if (!check_text(values, isnull, INBOX_CLIENT_ID, "client_id",
					SM_MAX_CLIENT_ID_BYTES, &raw_client_id, sqlstate, reason))
		return false;
	msg->client_id = normalize_client_id(raw_client_id);
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

	msg->verdict = VERDICT_REJECTED;	/* until processed */
	return true;
}
