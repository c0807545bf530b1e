/*-------------------------------------------------------------------------
 *
 * report.c
 *	  The XML report entry points: ingest_report(text), ingest_report(bytea)
 *	  and retry_rejected_reports().
 *
 * A client's upload is one XML report (domain.md section 2).  The
 * XML-to-messages step is report_parse.c's (plain C and libxml2, so that it
 * can be fuzzed alone); this file runs it under PostgreSQL's libxml2 error
 * handling (pg_xml_init(), which also stops every external entity load),
 * turns each StateMessage into an inbox row (report_convert.c) and feeds the
 * rows to one batch, in the caller's transaction, as the inbox does.  A document that is not a
 * well-formed report is rejected whole: stored in state_msg.rejected_reports
 * as received (on_bad_message = quarantine) or an error.
 *
 * The functions run with the extension owner's rights (SECURITY DEFINER,
 * search_path pg_catalog, pg_temp) and reach the engine's tables by name,
 * so each calls the schema guard before anything else.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <libxml/xmlerror.h>

#include "access/detoast.h"
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "parser/scansup.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/xml.h"

#include "report.h"
#include "report_parse.h"
#include "state_msg.h"

/* Columns of ingest_report()'s result: messages, then one per verdict */
#define REPORT_RESULT_NATTS (1 + VERDICT_RESULT_COUNT)

/* What became of one report */
typedef struct ReportOutcome
{
	bool		rejected;		/* rejected whole: nothing was applied */
	int			sqlstate;		/* if so, why */
	char	   *reason;
	bool		over_size_limit;	/* rejected for max_report_size */
	char	   *client_id;		/* the header's ClientID as given, in the
								 * database encoding, or NULL */
	int64		messages;		/* StateMessage elements */
	int64		counts[VERDICT_COUNT];
} ReportOutcome;

/* Statements kept across calls for the life of the backend */
static SPIPlanPtr store_report_plan;
static SPIPlanPtr lock_reports_plan;
static SPIPlanPtr read_report_plan;
static SPIPlanPtr drop_report_plan;
static SPIPlanPtr rereject_report_plan;

/*
 * Store a rejected report; $1 the time (engine clock), $2 reason, $3
 * SQLSTATE, $4 client id, $5 'text' or 'bytea', $6 the document
 */
static const char *store_report_sql =
"INSERT INTO state_msg.rejected_reports (rejected_at, reason, sqlstate,"
" client_id, received_as, report)"
" VALUES ($1, $2, $3, $4, $5, $6) RETURNING rejected_id";

/* The rejected reports asked for, locked, in rejected_id order; $1 ids */
static const char *lock_reports_sql =
"SELECT p.rejected_id FROM state_msg.rejected_reports p"
" WHERE p.rejected_id OPERATOR(pg_catalog.=) ANY ($1)"
" ORDER BY p.rejected_id FOR UPDATE";

/* One rejected report (locked already); $1 its id */
static const char *read_report_sql =
"SELECT p.received_as, p.report FROM state_msg.rejected_reports p"
" WHERE p.rejected_id OPERATOR(pg_catalog.=) $1";

/* A report that now went through; $1 its id */
static const char *drop_report_sql =
"DELETE FROM state_msg.rejected_reports p"
" WHERE p.rejected_id OPERATOR(pg_catalog.=) $1";

/*
 * A report rejected again: the fresh verdict; $1 id, $2 the time (engine
 * clock), $3 reason, $4 SQLSTATE, $5 client id
 */
static const char *rereject_report_sql =
"UPDATE state_msg.rejected_reports p"
" SET rejected_at = $2, reason = $3, sqlstate = $4, client_id = $5"
" WHERE p.rejected_id OPERATOR(pg_catalog.=) $1";

/*
 * The parser's allocator: the report's memory context, never an error
 * thrown through libxml2's frames (a failed allocation returns NULL and the
 * parser reports SM_REPORT_OUT_OF_MEMORY)
 */
static void *
report_alloc(void *arg, size_t size)
{
	if (size == 0)
		size = 1;
	if (!AllocSizeIsValid(size))
		return NULL;
	return MemoryContextAllocExtended((MemoryContext) arg, size,
									  MCXT_ALLOC_NO_OOM);
}

/* Is the UTF-16 text d (len bytes) badly formed: odd, or a lone surrogate? */
static bool
bad_utf16(const unsigned char *d, size_t len, bool big_endian)
{
	if (len % 2 != 0)
		return true;
	for (size_t i = 0; i < len; i += 2)
	{
		unsigned int u = big_endian ? (d[i] << 8 | d[i + 1]) :
		(d[i + 1] << 8 | d[i]);

		if (u >= 0xDC00 && u <= 0xDFFF)
			return true;
		if (u >= 0xD800 && u <= 0xDBFF)
		{
			unsigned int low;

			if (i + 3 >= len)
				return true;
			low = big_endian ? (d[i + 2] << 8 | d[i + 3]) :
				(d[i + 3] << 8 | d[i + 2]);
			if (low < 0xDC00 || low > 0xDFFF)
				return true;
			i += 2;
		}
	}
	return false;
}

/*
 * Is a document the parser refused not valid in the encoding it is read in,
 * rather than bad XML?  UTF-16 when it starts with a byte order mark (FF FE,
 * FE FF) or with "<" in UTF-16 (3C 00, 00 3C): an odd length or a lone
 * surrogate.  Otherwise UTF-8, unless its declaration names an encoding
 * other than UTF-8 or UTF-16 (then libxml2's verdict stands): a byte
 * sequence that is not UTF-8.  Text handed over as text is always valid.
 */
static bool
bad_encoding(const unsigned char *d, size_t len)
{
	const char *end_decl;

	if (len >= 2 && ((d[0] == 0xFF && d[1] == 0xFE) ||
					 (d[0] == 0x3C && d[1] == 0x00)))
		return bad_utf16(d, len, false);
	if (len >= 2 && ((d[0] == 0xFE && d[1] == 0xFF) ||
					 (d[0] == 0x00 && d[1] == 0x3C)))
		return bad_utf16(d, len, true);
	if (len >= 3 && d[0] == 0xEF && d[1] == 0xBB && d[2] == 0xBF)
	{
		d += 3;
		len -= 3;
	}
	if (len >= 5 && memcmp(d, "<?xml", 5) == 0 &&
		(end_decl = memchr(d, '>', Min(len, 1024))) != NULL)
	{
		char	   *decl = pnstrdup((const char *) d,
									end_decl - (const char *) d);
		char	   *enc = strstr(decl, "encoding");

		if (enc != NULL)
		{
			enc += strcspn(enc, "\"'");
			if (*enc != '\0' && pg_strncasecmp(enc + 1, "UTF-8", 5) != 0 &&
				pg_strncasecmp(enc + 1, "UTF8", 4) != 0 &&
				pg_strncasecmp(enc + 1, "UTF-16", 6) != 0)
				return false;
		}
	}
	for (size_t i = 0; i < len;)
	{
		int			l;

		if (d[i] < 0x80)
		{
			i++;
			continue;
		}
		l = pg_utf_mblen(d + i);
		if ((size_t) l > len - i || !pg_utf8_islegal(d + i, l))
			return true;
		i += l;
	}
	return false;
}

/*
 * The SQLSTATE and reason of a document the parser refused; data and len
 * are what it read, text whether it was handed over as text
 */
static void
parse_failure(const SmReport *report, const char *data, size_t len, bool text,
			  int *sqlstate, char **reason)
{
	char	   *detail = report->error_detail[0] ?
		pstrdup(report->error_detail) : NULL;
	char	   *where = report->error_line > 0 ?
		psprintf(" at line %d", report->error_line) : pstrdup("");
	char	   *bytes;
	const xmlError *last;

	/* libxml2 quotes the bytes it could not decode: quote nothing */
	if (detail != NULL && (bytes = strstr(detail, " Bytes: 0x")) != NULL)
		*bytes = '\0';

	switch (report->error)
	{
		case SM_REPORT_NOT_XML:

			/*
			 * A bad encoding is "not XML" to the parser: tell it apart by
			 * libxml2's error code for an encoding it does not know, or by
			 * checking the bytes
			 */
			last = xmlGetLastError();
			if ((last != NULL &&
				 (last->code == XML_ERR_UNSUPPORTED_ENCODING ||
				  last->code == XML_ERR_UNKNOWN_ENCODING ||
				  last->code == XML_I18N_NO_HANDLER)) ||
				(!text && bad_encoding((const unsigned char *) data, len)))
			{
				*sqlstate = ERRCODE_CHARACTER_NOT_IN_REPERTOIRE;
				*reason = psprintf("report is not in a valid encoding%s%s%s",
								   where, detail ? ": " : "",
								   detail ? detail : "");
			}
			else
			{
				*sqlstate = ERRCODE_INVALID_XML_CONTENT;
				*reason = psprintf("report is not well-formed XML%s%s%s",
								   where, detail ? ": " : "",
								   detail ? detail : "");
			}
			break;
		case SM_REPORT_DOCTYPE:
			*sqlstate = ERRCODE_INVALID_XML_CONTENT;
			*reason = psprintf("report has a DOCTYPE%s (none is allowed; no entity is ever expanded)",
							   where);
			break;
		case SM_REPORT_WRONG_ROOT:
			*sqlstate = ERRCODE_INVALID_XML_CONTENT;
			*reason = psprintf("report's root element is not Report%s", where);
			break;
		case SM_REPORT_NO_CLIENT_ID:
			*sqlstate = ERRCODE_INVALID_XML_CONTENT;
			*reason = pstrdup("report has no ClientID in its header");
			break;
		case SM_REPORT_TOO_LARGE:
			*sqlstate = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
			*reason = psprintf("report exceeds a structural limit%s%s%s",
							   where, detail ? ": " : "",
							   detail ? detail : "");
			break;
		default:
			elog(ERROR, "unexpected report parse result %d",
				 (int) report->error);
	}
}

/*
 * Parse a document under PostgreSQL's libxml2 error handling (which also
 * stops every external entity load).  Nothing is thrown through libxml2's
 * frames but an error of the server (in PostgreSQL's handler of errors
 * libxml2 raises outside the parser, e.g. a failed encoding conversion);
 * it is caught, the parser's libxml2 context freed, libxml2's handlers
 * restored, and thrown again.
 */
static void
parse_report(const char *data, size_t len, const char *encoding,
			 MemoryContext context, SmReport *report)
{
	PgXmlErrorContext *xmlerrcxt;

	xmlerrcxt = pg_xml_init(PG_XML_STRICTNESS_ALL);
	PG_TRY();
	{
		xmlResetLastError();
		sm_report_parse(data, len, encoding, report_alloc, context, report);
	}
	PG_CATCH();
	{
		sm_report_parse_abort(report);
		pg_xml_done(xmlerrcxt, true);
		PG_RE_THROW();
	}
	PG_END_TRY();

	/*
	 * The parser's own libxml2 errors go to its handler and into *report;
	 * PostgreSQL's handler may have collected others (an encoding
	 * conversion's), which add nothing to the parser's verdict
	 */
	pg_xml_done(xmlerrcxt, pg_xml_error_occurred(xmlerrcxt));
}

/* Feed a parsed report's messages to one batch and process it */
static void
process_messages(const SmReport *report, const ReportHeader *hdr,
				 MemoryContext context, ReportOutcome *out)
{
	MemoryContext message_context;
	MemoryContext old;
	MessageBatch *batch;

	batch = sm_batch_begin();	/* connects to SPI */
	message_context = AllocSetContextCreate(context, "state_msg report message",
											ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < report->nmessages; i++)
	{
		Datum		values[INBOX_NATTS];
		bool		isnull[INBOX_NATTS];
		int			sqlstate;
		char	   *reason;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(message_context);
		old = MemoryContextSwitchTo(message_context);
		if (sm_report_convert_message(&report->messages[i], hdr, values, isnull,
							&sqlstate, &reason))
			sm_batch_add(batch, values, isnull);
		else
			sm_batch_reject(batch, values, isnull, sqlstate, reason);
		MemoryContextSwitchTo(old);
	}
	MemoryContextDelete(message_context);
	sm_batch_finish(batch, out->counts);	/* processes; leaves SPI */
	out->messages = report->nmessages;
}

/*
 * Parse and process one report (a text or bytea datum as received, maybe
 * toasted).  A document that is not a well-formed report comes back as
 * rejected, with its reason; nothing of it is applied.  Everything the
 * parse allocates lives in a memory context of its own, deleted at the end.
 */
static void
process_report(Datum document, bool as_text, ReportOutcome *out)
{
	Size		size = toast_raw_datum_size(document) - VARHDRSZ;
	MemoryContext context;
	MemoryContext old;
	struct varlena *detoasted;
	char	   *data;
	int			len;
	const char *encoding = NULL;
	SmReport	report;
	ReportHeader hdr;

	memset(out, 0, sizeof(ReportOutcome));

	/* Too large: refused before anything is read */
	if (size > (Size) sm_max_report_size)
	{
		out->rejected = true;
		out->over_size_limit = true;
		out->sqlstate = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		out->reason = psprintf("report is %zu bytes, more than state_msg.max_report_size (%d bytes)",
							   size, sm_max_report_size);
		return;
	}

	context = AllocSetContextCreate(CurrentMemoryContext, "state_msg report",
									ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(context);
	detoasted = PG_DETOAST_DATUM_PACKED(document);
	data = VARDATA_ANY(detoasted);
	len = VARSIZE_ANY_EXHDR(detoasted);

	/*
	 * Text is in the database encoding: the parser reads it as UTF-8,
	 * whatever its declaration says
	 */
	if (as_text)
	{
		int			db = GetDatabaseEncoding();

		/* SQL_ASCII text holds any bytes: they must be UTF-8 already */
		if (db == PG_SQL_ASCII ? !pg_verify_mbstr(PG_UTF8, data, len, true) :
			!sm_convert_encoding(data, len, db, PG_UTF8, &data, &len))
		{
			MemoryContextSwitchTo(old);
			out->rejected = true;
			if (db == PG_SQL_ASCII)
			{
				out->sqlstate = ERRCODE_CHARACTER_NOT_IN_REPERTOIRE;
				out->reason = pstrdup("report is not in a valid encoding: its text is not valid UTF-8");
			}
			else
			{
				out->sqlstate = ERRCODE_UNTRANSLATABLE_CHARACTER;
				out->reason = pstrdup("report has a character with no equivalent in UTF-8");
			}
			MemoryContextDelete(context);
			return;
		}
		encoding = "UTF-8";
	}

	memset(&report, 0, sizeof(SmReport));
	parse_report(data, len, encoding, context, &report);

	if (report.error == SM_REPORT_OUT_OF_MEMORY)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while parsing a state message report"),
				 errdetail("The report is %d bytes.", len)));

	/* The client id, where it could be read, for rejected_reports */
	MemoryContextSwitchTo(old);
	if (report.client_id != NULL)
	{
		char	   *id;
		int			id_len;

		if (sm_convert_encoding(report.client_id, strlen(report.client_id),
							 PG_UTF8, GetDatabaseEncoding(), &id, &id_len))
			out->client_id = pnstrdup(id, id_len);
	}

	if (report.error != SM_REPORT_OK)
	{
		out->rejected = true;
		parse_failure(&report, data, len, as_text, &out->sqlstate,
					  &out->reason);
	}
	else if (!sm_report_convert_header(&report, &hdr))
	{
		out->rejected = true;
		out->sqlstate = ERRCODE_UNTRANSLATABLE_CHARACTER;
		out->reason = pstrdup("report's ClientID has a character with no equivalent in the database encoding");
	}
	else
		process_messages(&report, &hdr, context, out);

	MemoryContextDelete(context);
}

/*
 * Refuse a rejected report with an error (on_bad_message = error): what and
 * where, never the document itself
 */
static void
report_error(const ReportOutcome *out)
{
	ereport(ERROR,
			(errcode(out->sqlstate),
			 errmsg("invalid state message report: %s", out->reason),
			 out->over_size_limit ?
			 errhint("A superuser may raise state_msg.max_report_size.") :
			 errhint("Set state_msg.on_bad_message to \"quarantine\" to keep rejected reports in state_msg.rejected_reports.")));
}

/*
 * Store a rejected report in state_msg.rejected_reports, as received, and
 * return its rejected_id.  Connects to SPI for the statement.
 */
static int64
store_rejected_report(const ReportOutcome *out, Datum document, bool as_text)
{
	Oid			argtypes[] = {TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID,
	TEXTOID, BYTEAOID};
	Datum		args[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	int64		id;

	args[0] = TimestampTzGetDatum(sm_engine_now());
	args[1] = CStringGetTextDatum(out->reason);
	args[2] = CStringGetTextDatum(unpack_sql_state(out->sqlstate));
	args[3] = out->client_id ? CStringGetTextDatum(out->client_id) : (Datum) 0;
	nulls[3] = out->client_id ? ' ' : 'n';
	args[4] = CStringGetTextDatum(as_text ? "text" : "bytea");
	/* text and bytea share their representation: the bytes as received */
	args[5] = document;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	sm_run_kept(&store_report_plan, store_report_sql, 6, argtypes, args, nulls,
				SPI_OK_INSERT_RETURNING);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									 SPI_tuptable->tupdesc, 1, &isnull));
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	return id;
}

/* ingest_report(text) and ingest_report(bytea) */
static Datum
ingest_report(FunctionCallInfo fcinfo, bool as_text)
{
	Datum		document = PG_GETARG_DATUM(0);	/* as received: not detoasted */
	ReportOutcome out;
	Datum		result[REPORT_RESULT_NATTS];

	sm_guard_schema();
	sm_require_current_release();

	process_report(document, as_text, &out);
	if (out.rejected)
	{
		int64		id;

		if (sm_on_bad_message == BAD_MESSAGE_ERROR)
			report_error(&out);
		id = store_rejected_report(&out, document, as_text);
		ereport(WARNING,
				(errcode(out.sqlstate),
				 errmsg("state message report rejected: %s", out.reason),
				 errdetail("The report was stored in state_msg.rejected_reports with rejected_id %lld; nothing of it was applied.",
						   (long long) id)));
	}

	result[0] = Int64GetDatum(out.messages);
	for (int v = 0; v < VERDICT_RESULT_COUNT; v++)
		result[1 + v] = Int64GetDatum(out.counts[v]);
	PG_RETURN_DATUM(sm_result_row(fcinfo, result, REPORT_RESULT_NATTS));
}

/*
 * state_msg.ingest_report(report text): one client upload handed over as
 * text, in the database encoding; it is read as UTF-8 whatever its XML
 * declaration says (a management point that decoded UTF-16 leaves the
 * declaration as it was)
 */
PG_FUNCTION_INFO_V1(state_msg_ingest_report_text);
Datum
state_msg_ingest_report_text(PG_FUNCTION_ARGS)
{
	return ingest_report(fcinfo, true);
}

/*
 * state_msg.ingest_report(report bytea): one client upload, the bytes as
 * received (UTF-8, or UTF-16 in either byte order, with or without a byte
 * order mark); the parser detects the encoding
 */
PG_FUNCTION_INFO_V1(state_msg_ingest_report_bytea);
Datum
state_msg_ingest_report_bytea(PG_FUNCTION_ARGS)
{
	return ingest_report(fcinfo, false);
}

/*
 * state_msg.retry_rejected_reports(rejected_ids): resubmit rejected reports
 * (once the sender is fixed, or state_msg.max_report_size raised), each as
 * the call it was, as one batch of its own, in rejected_id order.  A report
 * that now goes through is processed and its row deleted; one that is still
 * rejected stays, with the fresh reason, SQLSTATE, client id and
 * rejected_at.  As for retry_rejected(), on_bad_message does not apply:
 * nothing fails, and a bad message of a resubmitted report is quarantined.
 * Ids that name no row are ignored.  Returns resubmitted, still_rejected,
 * then the messages of the resubmitted reports and the count of each
 * verdict.
 */
PG_FUNCTION_INFO_V1(state_msg_retry_rejected_reports);
Datum
state_msg_retry_rejected_reports(PG_FUNCTION_ARGS)
{
	Oid			lock_types[] = {INT8ARRAYOID};
	Oid			id_types[] = {INT8OID};
	Oid			rereject_types[] = {INT8OID, TIMESTAMPTZOID, TEXTOID, TEXTOID,
	TEXTOID};
	int			nest_level;
	int64	   *ids;
	int			nids;
	int64		resubmitted = 0;
	int64		still_rejected = 0;
	int64		messages = 0;
	int64		counts[VERDICT_COUNT] = {0};
	MemoryContext report_context;
	Datum		args[5];
	Datum		result[2 + REPORT_RESULT_NATTS];

	sm_guard_schema();
	sm_require_current_release();

	/* Bad messages of a resubmitted report are quarantined, whatever is set */
	nest_level = NewGUCNestLevel();
	(void) set_config_option("state_msg.on_bad_message", "quarantine",
							 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE, true,
							 0, false);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = PG_GETARG_DATUM(0);
	sm_run_kept(&lock_reports_plan, lock_reports_sql, 1, lock_types, args,
				NULL, SPI_OK_SELECT);
	nids = (int) SPI_processed;
	ids = palloc(Max(nids, 1) * sizeof(int64));
	for (int i = 0; i < nids; i++)
	{
		bool		isnull;

		ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
											 SPI_tuptable->tupdesc, 1,
											 &isnull));
	}
	SPI_freetuptable(SPI_tuptable);

	report_context = AllocSetContextCreate(CurrentMemoryContext,
										   "state_msg retry report",
										   ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < nids; i++)
	{
		MemoryContext old;
		SPITupleTable *row;
		bool		isnull;
		char	   *received_as;
		Datum		document;
		ReportOutcome out;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(report_context);
		old = MemoryContextSwitchTo(report_context);

		args[0] = Int64GetDatum(ids[i]);
		sm_run_kept(&read_report_plan, read_report_sql, 1, id_types, args,
					NULL, SPI_OK_SELECT);
		MemoryContextSwitchTo(report_context);
		if (SPI_processed != 1)
			elog(ERROR, "rejected report " INT64_FORMAT " vanished while locked",
				 ids[i]);
		row = SPI_tuptable;
		received_as = TextDatumGetCString(SPI_getbinval(row->vals[0],
														row->tupdesc, 1,
														&isnull));
		document = SPI_getbinval(row->vals[0], row->tupdesc, 2, &isnull);

		process_report(document, strcmp(received_as, "text") == 0, &out);
		SPI_freetuptable(row);

		if (out.rejected)
		{
			args[1] = TimestampTzGetDatum(sm_engine_now());
			args[2] = CStringGetTextDatum(out.reason);
			args[3] = CStringGetTextDatum(unpack_sql_state(out.sqlstate));
			args[4] = out.client_id ? CStringGetTextDatum(out.client_id) :
				(Datum) 0;
			sm_run_kept(&rereject_report_plan, rereject_report_sql, 5,
						rereject_types, args,
						out.client_id ? "     " : "    n", SPI_OK_UPDATE);
			still_rejected++;
		}
		else
		{
			sm_run_kept(&drop_report_plan, drop_report_sql, 1, id_types, args,
						NULL, SPI_OK_DELETE);
			resubmitted++;
			sm_count(&messages, out.messages);
			for (int v = 0; v < VERDICT_COUNT; v++)
				sm_count(&counts[v], out.counts[v]);
		}
		MemoryContextSwitchTo(old);
	}
	MemoryContextDelete(report_context);

	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	AtEOXact_GUC(true, nest_level);

	result[0] = Int64GetDatum(resubmitted);
	result[1] = Int64GetDatum(still_rejected);
	result[2] = Int64GetDatum(messages);
	for (int v = 0; v < VERDICT_RESULT_COUNT; v++)
		result[3 + v] = Int64GetDatum(counts[v]);
	PG_RETURN_DATUM(sm_result_row(fcinfo, result, 2 + REPORT_RESULT_NATTS));
}
