/*-------------------------------------------------------------------------
 *
 * report_convert.c
 *	  A parsed report's values as inbox rows.
 *
 * report_parse.c gives a report's header and messages as the document's
 * UTF-8 strings; this file turns them into the datums of an inbox row
 * (Datum values[INBOX_NATTS]), in the database encoding, so that a report's
 * messages take exactly the inbox's path through the batch.  A value that
 * does not convert makes its message bad, with a reason naming the message
 * and the field; whether the converted values make a valid message is the
 * batch's to decide (message.c), as for any inbox row.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "parser/scansup.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "report.h"
#include "report_parse.h"
#include "state_msg.h"

/* Messages from a report come from a client's upload to a management point */
#define REPORT_SOURCE "mp"

/*
 * Convert len bytes (valid in encoding from) to another encoding without
 * throwing: false if a character has no equivalent.  The result is
 * NUL-terminated, in the current memory context, or the input itself when
 * no conversion is needed (the same encoding, or SQL_ASCII on either side,
 * which takes bytes as they are).
 */
bool
sm_convert_encoding(const char *src, int len, int from, int to,
				 char **result, int *result_len)
{
	Oid			proc;
	unsigned char *buf;
	int			converted;

	if (from == to || from == PG_SQL_ASCII || to == PG_SQL_ASCII)
	{
		*result = (char *) src;
		*result_len = len;
		return true;
	}

	proc = FindDefaultConversionProc(from, to);
	if (!OidIsValid(proc))
		return false;
	if ((Size) len >= (MaxAllocHugeSize - 1) / MAX_CONVERSION_GROWTH)
		return false;
	buf = MemoryContextAllocHuge(CurrentMemoryContext,
								 (Size) len * MAX_CONVERSION_GROWTH + 1);
	converted = pg_do_encoding_conversion_buf(proc, from, to,
											  (unsigned char *) src, len,
											  buf,
											  len * MAX_CONVERSION_GROWTH + 1,
											  true);
	if (converted != len)
		return false;
	*result = (char *) buf;
	*result_len = strlen((char *) buf);
	return true;
}

/*
 * A value the parser gave (UTF-8, NUL-terminated) as text in the database
 * encoding; false if a character has no equivalent there
 */
static bool
utf8_to_text(const char *value, size_t len, Datum *result)
{
	char	   *converted;
	int			converted_len;

	if (len > MaxAllocSize - VARHDRSZ ||
		!sm_convert_encoding(value, (int) len, PG_UTF8, GetDatabaseEncoding(),
						  &converted, &converted_len))
		return false;
	*result = PointerGetDatum(cstring_to_text_with_len(converted,
													   converted_len));
	return true;
}

/* Is a header value absent, empty or only white space? */
static bool
header_value_missing(const char *value)
{
	if (value == NULL)
		return true;
	for (; *value; value++)
		if (!scanner_isspace(*value))
			return false;
	return true;
}

/*
 * Turn the header's values into the datums every message carries.  A
 * blank NetBIOSName, ClientVersion or Priority counts as not given, so that
 * it neither replaces the client's stored name or version (the latest
 * non-NULL one wins) nor makes the report's messages bad.
 */
bool
sm_report_convert_header(const SmReport *report, ReportHeader *hdr)
{
	int64_t		priority;
	char		why[128];

	memset(hdr, 0, sizeof(ReportHeader));
	if (!utf8_to_text(report->client_id, strlen(report->client_id),
					  &hdr->client_id))
		return false;
	hdr->has_netbios_name = !header_value_missing(report->netbios_name);
	if (hdr->has_netbios_name &&
		!utf8_to_text(report->netbios_name, strlen(report->netbios_name),
					  &hdr->netbios_name))
	{
		hdr->has_netbios_name = false;
		hdr->header_sqlstate = ERRCODE_UNTRANSLATABLE_CHARACTER;
		hdr->header_error = pstrdup("NetBIOSName of the report header has a character with no equivalent in the database encoding");
	}
	hdr->has_client_version = !header_value_missing(report->client_version);
	if (hdr->has_client_version &&
		!utf8_to_text(report->client_version, strlen(report->client_version),
					  &hdr->client_version))
	{
		hdr->has_client_version = false;
		hdr->header_sqlstate = ERRCODE_UNTRANSLATABLE_CHARACTER;
		hdr->header_error = pstrdup("ClientVersion of the report header has a character with no equivalent in the database encoding");
	}

	if (!header_value_missing(report->priority) && hdr->header_error == NULL)
	{
		if (!sm_report_parse_int(report->priority, PG_INT64_MIN, PG_INT64_MAX,
								 &priority, why, sizeof(why)))
		{
			hdr->header_sqlstate = ERRCODE_INVALID_TEXT_REPRESENTATION;
			hdr->header_error = psprintf("Priority of the report header: %s",
										   why);
		}
		else if (priority < PG_INT32_MIN || priority > PG_INT32_MAX)
		{
			hdr->header_sqlstate = ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE;
			hdr->header_error = pstrdup("Priority of the report header is out of range for integer");
		}
		else
		{
			hdr->priority = Int32GetDatum((int32) priority);
			hdr->has_priority = true;
		}
	}
	return true;
}

/* The first failure of a message's conversion, kept for its reason */
typedef struct ConvertFailure
{
	int			sqlstate;
	char	   *reason;
} ConvertFailure;

/* Record a conversion failure of message ordinal, unless one came before */
static void
convert_fail(ConvertFailure *failure, int ordinal, int sqlstate,
			 const char *what)
{
	if (failure->reason != NULL)
		return;
	failure->sqlstate = sqlstate;
	failure->reason = psprintf("StateMessage %d of the report: %s",
							   ordinal, what);
}

/*
 * An integer attribute into an inbox column: NULL when absent (or dflt, if
 * has_dflt), else a number in [min, max]; a failure names the field
 */
static void
convert_int(const char *value, const char *field, int ordinal,
			int64 min, int64 max, bool is_int8, bool has_dflt, int32 dflt,
			Datum *out, bool *isnull, ConvertFailure *failure)
{
	int64_t		n;
	char		why[128];

	*isnull = true;
	if (value == NULL)
	{
		if (has_dflt)
		{
			*out = Int32GetDatum(dflt);
			*isnull = false;
		}
		else
			convert_fail(failure, ordinal, ERRCODE_NULL_VALUE_NOT_ALLOWED,
						 psprintf("%s is missing", field));
		return;
	}
	if (!sm_report_parse_int(value, PG_INT64_MIN, PG_INT64_MAX, &n, why,
							 sizeof(why)))
	{
		convert_fail(failure, ordinal, ERRCODE_INVALID_TEXT_REPRESENTATION,
					 psprintf("%s: %s", field, why));
		return;
	}
	if (n < min || n > max)
	{
		convert_fail(failure, ordinal, ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
					 psprintf("%s is out of range for %s", field,
							  is_int8 ? "bigint" : "integer"));
		return;
	}
	*out = is_int8 ? Int64GetDatum((int64) n) : Int32GetDatum((int32) n);
	*isnull = false;
}

/* A text attribute into an inbox column: NULL when absent */
static void
convert_text(const char *value, size_t len, const char *field, int ordinal,
			 Datum *out, bool *isnull, ConvertFailure *failure)
{
	*isnull = true;
	if (value == NULL)
		return;
	if (!utf8_to_text(value, len, out))
	{
		convert_fail(failure, ordinal, ERRCODE_UNTRANSLATABLE_CHARACTER,
					 psprintf("%s has a character with no equivalent in the database encoding",
							  field));
		return;
	}
	*isnull = false;
}

/*
 * One StateMessage as an inbox row.  Every field that converts is set (the
 * others are NULL); returns false, with the first failure's SQLSTATE and
 * reason, if one did not.  Whether the values make a valid message is the
 * batch's to decide, as for any inbox row.
 */
bool
sm_report_convert_message(const SmRawMessage *raw, const ReportHeader *hdr,
				Datum *values, bool *isnull, int *sqlstate, char **reason)
{
	ConvertFailure failure = {0, NULL};
	int			ordinal = raw->ordinal;
	int64_t		usecs;
	char		why[128];

	for (int col = 0; col < INBOX_NATTS; col++)
	{
		values[col] = (Datum) 0;
		isnull[col] = true;
	}

	values[INBOX_CLIENT_ID] = hdr->client_id;
	isnull[INBOX_CLIENT_ID] = false;
	values[INBOX_SOURCE] = CStringGetTextDatum(REPORT_SOURCE);
	isnull[INBOX_SOURCE] = false;

	/* No SerialNumber: a message without a serial, as relays send */
	if (raw->serial_number != NULL)
		convert_int(raw->serial_number, "SerialNumber", ordinal,
					PG_INT64_MIN, PG_INT64_MAX, true, false, 0,
					&values[INBOX_SERIAL_NUMBER],
					&isnull[INBOX_SERIAL_NUMBER], &failure);

	if (raw->message_time == NULL)
		convert_fail(&failure, ordinal, ERRCODE_NULL_VALUE_NOT_ALLOWED,
					 "MessageTime is missing");
	else if (!sm_report_parse_dmtf(raw->message_time, &usecs, why,
								   sizeof(why)))
		convert_fail(&failure, ordinal, ERRCODE_DATETIME_FIELD_OVERFLOW,
					 psprintf("MessageTime: %s", why));
	else if (!IS_VALID_TIMESTAMP((TimestampTz) usecs))
		convert_fail(&failure, ordinal, ERRCODE_DATETIME_VALUE_OUT_OF_RANGE,
					 "MessageTime is out of range for timestamptz");
	else
	{
		values[INBOX_MESSAGE_TIME] = TimestampTzGetDatum((TimestampTz) usecs);
		isnull[INBOX_MESSAGE_TIME] = false;
	}

	if (!raw->has_topic)
		convert_fail(&failure, ordinal, ERRCODE_INVALID_PARAMETER_VALUE,
					 "it has no Topic element");
	else
	{
		convert_text(raw->topic_id, raw->topic_id ? strlen(raw->topic_id) : 0,
					 "Topic ID", ordinal, &values[INBOX_TOPIC_ID],
					 &isnull[INBOX_TOPIC_ID], &failure);
		if (raw->topic_id == NULL)
			convert_fail(&failure, ordinal, ERRCODE_NULL_VALUE_NOT_ALLOWED,
						 "Topic ID is missing");
		convert_int(raw->topic_type, "Topic Type", ordinal,
					PG_INT32_MIN, PG_INT32_MAX, false, false, 0,
					&values[INBOX_TOPIC_TYPE], &isnull[INBOX_TOPIC_TYPE],
					&failure);
		/* the inbox's default, 0, for an IDType not given */
		convert_int(raw->topic_id_type, "Topic IDType", ordinal,
					PG_INT32_MIN, PG_INT32_MAX, false, true, 0,
					&values[INBOX_TOPIC_ID_TYPE], &isnull[INBOX_TOPIC_ID_TYPE],
					&failure);
		convert_text(raw->user_name,
					 raw->user_name ? strlen(raw->user_name) : 0,
					 "Topic User", ordinal, &values[INBOX_USER_NAME],
					 &isnull[INBOX_USER_NAME], &failure);
		convert_text(raw->user_sid, raw->user_sid ? strlen(raw->user_sid) : 0,
					 "Topic UserSID", ordinal, &values[INBOX_USER_SID],
					 &isnull[INBOX_USER_SID], &failure);
	}

	if (!raw->has_state)
		convert_fail(&failure, ordinal, ERRCODE_INVALID_PARAMETER_VALUE,
					 "it has no State element");
	else
	{
		convert_int(raw->state_id, "State ID", ordinal,
					PG_INT32_MIN, PG_INT32_MAX, false, false, 0,
					&values[INBOX_STATE_ID], &isnull[INBOX_STATE_ID],
					&failure);
		/* the inbox's default, 0, for a Criticality not given */
		convert_int(raw->criticality, "State Criticality", ordinal,
					PG_INT32_MIN, PG_INT32_MAX, false, true, 0,
					&values[INBOX_CRITICALITY], &isnull[INBOX_CRITICALITY],
					&failure);
	}

	if (raw->details_type != NULL)
		convert_int(raw->details_type, "StateDetails Type", ordinal,
					PG_INT32_MIN, PG_INT32_MAX, false, false, 0,
					&values[INBOX_STATE_DETAILS_TYPE],
					&isnull[INBOX_STATE_DETAILS_TYPE], &failure);
	convert_text(raw->details, raw->details_len, "StateDetails", ordinal,
				 &values[INBOX_STATE_DETAILS], &isnull[INBOX_STATE_DETAILS],
				 &failure);

	/* Param elements, as many as there are (Count is not read) */
	if (raw->nparams > SM_REPORT_MAX_PARAMS)
		convert_fail(&failure, ordinal, ERRCODE_ARRAY_SUBSCRIPT_ERROR,
					 psprintf("UserParameters has %d Param elements, more than %d",
							  raw->nparams, SM_REPORT_MAX_PARAMS));
	else if (raw->nparams > 0)
	{
		Datum		elems[SM_REPORT_MAX_PARAMS];
		bool		ok = true;

		for (int i = 0; i < raw->nparams && ok; i++)
		{
			const char *p = raw->params[i] ? raw->params[i] : "";

			if (!utf8_to_text(p, strlen(p), &elems[i]))
			{
				convert_fail(&failure, ordinal,
							 ERRCODE_UNTRANSLATABLE_CHARACTER,
							 psprintf("Param %d has a character with no equivalent in the database encoding",
									  i + 1));
				ok = false;
			}
		}
		if (ok)
		{
			values[INBOX_USER_PARAMS] =
				PointerGetDatum(construct_array(elems, raw->nparams, TEXTOID,
												-1, false, TYPALIGN_INT));
			isnull[INBOX_USER_PARAMS] = false;
		}
	}

	/* What the header says of the client, on every message */
	if (hdr->header_error != NULL)
		convert_fail(&failure, ordinal, hdr->header_sqlstate,
					 hdr->header_error);
	values[INBOX_PRIORITY] = hdr->priority;
	isnull[INBOX_PRIORITY] = !hdr->has_priority;
	values[INBOX_NETBIOS_NAME] = hdr->netbios_name;
	isnull[INBOX_NETBIOS_NAME] = !hdr->has_netbios_name;
	values[INBOX_CLIENT_VERSION] = hdr->client_version;
	isnull[INBOX_CLIENT_VERSION] = !hdr->has_client_version;

	if (failure.reason != NULL)
	{
		*sqlstate = failure.sqlstate;
		*reason = failure.reason;
		return false;
	}
	return true;
}
