/*-------------------------------------------------------------------------
 *
 * report_parse.h
 *	  From a client's XML report (its upload, as sent) to its messages.
 *
 * Plain C and libxml2 only, no server headers: test/fuzz runs this step
 * outside the server.  The caller sets up libxml2's error handling (in the
 * server, pg_xml_init()) and supplies the allocator; the parser never frees
 * what it allocates through it (the server allocates in a memory context
 * it resets, the fuzz harness in an arena).
 *
 *-------------------------------------------------------------------------
 */
#ifndef REPORT_PARSE_H
#define REPORT_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A message may carry at most this many user parameters */
#define SM_REPORT_MAX_PARAMS 5

/*
 * Structural limits against hostile input (SM_REPORT_TOO_LARGE beyond them):
 * elements nested deeper than a report ever is, and more messages than any
 * client's cache holds (it also bounds the messages array to about 18 MB
 * whatever the server's size limit).
 */
#define SM_REPORT_MAX_DEPTH 64
#define SM_REPORT_MAX_MESSAGES 100000

/* Why a document is not a well-formed report (it is then rejected whole) */
typedef enum SmReportError
{
	SM_REPORT_OK,
	SM_REPORT_NOT_XML,			/* not well-formed XML, or bad encoding */
	SM_REPORT_DOCTYPE,			/* has a DOCTYPE (never read, never expanded) */
	SM_REPORT_WRONG_ROOT,		/* root element is not Report */
	SM_REPORT_NO_CLIENT_ID,		/* no non-empty ClientID in the header */
	SM_REPORT_TOO_LARGE,		/* beyond a structural limit (depth, counts) */
	SM_REPORT_OUT_OF_MEMORY
} SmReportError;

/*
 * One StateMessage element, its values as the document gives them: UTF-8,
 * NUL-terminated, surrounding whitespace kept, NULL when absent.  Nothing is
 * validated here beyond the structure (sm_report_parse_* below convert).
 */
typedef struct SmRawMessage
{
	int			ordinal;		/* 1-based position in the report body */
	const char *message_time;	/* StateMessage/@MessageTime */
	const char *serial_number;	/* StateMessage/@SerialNumber */
	bool		has_topic;
	const char *topic_id;		/* Topic/@ID */
	const char *topic_type;		/* Topic/@Type */
	const char *topic_id_type;	/* Topic/@IDType */
	const char *user_name;		/* Topic/@User */
	const char *user_sid;		/* Topic/@UserSID */
	bool		has_state;
	const char *state_id;		/* State/@ID */
	const char *criticality;	/* State/@Criticality */
	const char *details_type;	/* StateDetails/@Type */
	const char *details;		/* StateDetails text and CDATA, joined */
	size_t		details_len;
	int			nparams;		/* Param elements seen (may exceed the max) */
	const char *params[SM_REPORT_MAX_PARAMS];	/* the first ones */
	const char *param_flags;	/* UserParameters/@Flags (not stored yet) */
} SmRawMessage;

/* A parsed report: its header and its messages, in document order */
typedef struct SmReport
{
	const char *client_id;		/* Machine/ClientID text, as given */
	const char *netbios_name;	/* Machine/NetBIOSName */
	const char *client_version; /* Machine/ClientVersion */
	const char *priority;		/* Machine/Priority */
	int			nmessages;
	SmRawMessage *messages;
	/* when not SM_REPORT_OK: what and where */
	SmReportError error;
	int			error_line;
	char		error_detail[256];
	/* libxml2's parser context while sm_report_parse runs, else NULL */
	void	   *xml_ctxt;
} SmReport;

typedef void *(*SmReportAlloc) (void *arg, size_t size);

/*
 * Parse len bytes of a report.  encoding forces the document's encoding
 * ("UTF-8" for text handed over by the server, whatever its declaration
 * says); NULL detects it (byte order mark, UTF-16 without one, the
 * declaration; a UTF-8 document declaring UTF-16 is read as UTF-8).
 * Returns report->error.
 *
 * Elements match by local name, whatever their namespace; of a repeated
 * element (ClientID, Topic, StateDetails, ...) the first counts; a value is
 * an element's own text and CDATA (not that of elements inside it), or an
 * attribute's value, entities and character references replaced.  A
 * ClientID of whitespace only is no ClientID.
 *
 * report->xml_ctxt holds libxml2's parser context while this runs; it is
 * freed on every path that returns.  If alloc does not return (palloc's
 * longjmp), call sm_report_parse_abort(report) in the handler.
 */
extern SmReportError sm_report_parse(const char *data, size_t len,
									 const char *encoding,
									 SmReportAlloc alloc, void *alloc_arg,
									 SmReport *report);

/*
 * Frees what sm_report_parse left behind when an allocation did not return
 * (palloc's longjmp): call it from the caller's PG_CATCH with the same
 * report.  A no-op when sm_report_parse returned normally.
 */
extern void sm_report_parse_abort(SmReport *report);

/*
 * Conversions of a message's values; false (and a reason in reason, at most
 * reason_size bytes) for a value that does not convert.
 */
extern bool sm_report_parse_int(const char *value, int64_t min, int64_t max,
								int64_t *result, char *reason,
								size_t reason_size);

/*
 * A DMTF time (yyyyMMddHHmmss.ffffff+OOO, 0 to 6 fractional digits, the
 * offset from UTC in minutes with its sign) as microseconds since
 * 2000-01-01 00:00:00 UTC, PostgreSQL's epoch.
 */
extern bool sm_report_parse_dmtf(const char *value, int64_t *usecs,
								 char *reason, size_t reason_size);

#endif							/* REPORT_PARSE_H */
