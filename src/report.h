/*-------------------------------------------------------------------------
 *
 * report.h
 *	  Declarations shared by the XML report entry points (report.c) and the
 *	  conversion of a parsed report into inbox rows (report_convert.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef REPORT_H
#define REPORT_H

#include "report_parse.h"

/* The header's values, as every message of the report carries them */
typedef struct ReportHeader
{
	Datum		client_id;
	Datum		netbios_name;
	bool		has_netbios_name;
	Datum		client_version;
	bool		has_client_version;
	Datum		priority;
	bool		has_priority;
	char	   *header_error; /* why a header value (Priority, NetBIOSName,
								 * ClientVersion) does not convert, or NULL:
								 * every message then fails with it */
	int			header_sqlstate;
} ReportHeader;

extern bool sm_convert_encoding(const char *src, int len, int from, int to,
								char **result, int *result_len);
extern bool sm_report_convert_header(const SmReport *report,
									 ReportHeader *hdr);
extern bool sm_report_convert_message(const SmRawMessage *raw,
									  const ReportHeader *hdr,
									  Datum *values, bool *isnull,
									  int *sqlstate, char **reason);

#endif							/* REPORT_H */
