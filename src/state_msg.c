/*-------------------------------------------------------------------------
 *
 * state_msg.c
 *	  Module entry point, settings and the engine clock.
 *
 * Durations are real-valued settings in minutes, so that a value in any
 * unit ('30s', '2d', '1.5h') is kept exactly (to the microsecond) and a bare
 * number keeps meaning minutes, as in 1.0.  Settings that steer code running
 * with the extension owner's rights (the resync policy, the clock) are
 * PGC_SUSET; a superuser may delegate them with GRANT SET ON PARAMETER.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <math.h>

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "state_msg.h"

PG_MODULE_MAGIC;

/* No duration setting may exceed a century: later arithmetic stays in range */
#define MAX_DURATION_MINUTES (100.0 * 365.25 * 24 * 60)

/* Settings; durations in minutes */
double		sm_min_missing_message_age = 2 * 24 * 60;
double		sm_min_resync_period = 72 * 60;
double		sm_clock_offset = 0;
double		sm_max_clock_skew = 60;
double		sm_keep_completed_requests = 30 * 24 * 60;
double		sm_keep_rejected_messages = 30 * 24 * 60;
int			sm_on_bad_message = BAD_MESSAGE_QUARANTINE;
int			sm_batch_chunk_size = 32768;
int			sm_batch_chunk_memory = 64 * 1024;	/* kB */
int			sm_max_state_details_size = 1024 * 1024;	/* bytes */
int			sm_max_report_size = 16 * 1024 * 1024;	/* bytes */
bool		sm_live_summaries = true;
int			sm_processing = PROCESSING_IMMEDIATE;
int			sm_queue_batch_size = 10000;
double		sm_queue_rotation_interval = 1;
int			sm_fsp_throttle_messages = 10000;
double		sm_fsp_throttle_interval = 60;
int			sm_backlog_significant_messages = 100000;
double		sm_backlog_significant_age = 60;
double		sm_backlog_history_retention = 14 * 24 * 60;
static char *sm_high_priority_topic_types_string = NULL;

/* The parsed state_msg.high_priority_topic_types (guc "extra") */
typedef struct TopicTypeList
{
	int			n;
	int32		types[FLEXIBLE_ARRAY_MEMBER];
} TopicTypeList;
static TopicTypeList *sm_high_priority_topic_types = NULL;

static const struct config_enum_entry processing_options[] = {
	{"immediate", PROCESSING_IMMEDIATE, false},
	{"queued", PROCESSING_QUEUED, false},
	{NULL, 0, false}
};
int			sm_max_resync_requests_per_cycle = -1;
bool		sm_backlog_aware_resync = true;

static const struct config_enum_entry bad_message_options[] = {
	{"quarantine", BAD_MESSAGE_QUARANTINE, false},
	{"error", BAD_MESSAGE_ERROR, false},
	{NULL, 0, false}
};

void		_PG_init(void);

/*
 * Check hook of state_msg.high_priority_topic_types: a comma-separated list
 * of integers (topic types), maybe empty; the parsed list goes in *extra
 */
static bool
check_topic_type_list(char **newval, void **extra, GucSource source)
{
	char	   *p = *newval;
	int			max = 1;
	TopicTypeList *list;

	for (char *c = p; *c; c++)
		if (*c == ',')
			max++;
	list = (TopicTypeList *) malloc(offsetof(TopicTypeList, types) +
								 max * sizeof(int32));
	if (list == NULL)
		return false;
	list->n = 0;
	while (*p)
	{
		char	   *end;
		long		v;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' && list->n == 0)
			break;
		errno = 0;
		v = strtol(p, &end, 10);
		if (end == p || errno != 0 || v < PG_INT32_MIN || v > PG_INT32_MAX)
		{
			GUC_check_errdetail("List must contain topic types (integers) separated by commas.");
			free(list);
			return false;
		}
		list->types[list->n++] = (int32) v;
		p = end;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == ',')
			p++;
		else if (*p != '\0')
		{
			GUC_check_errdetail("List must contain topic types (integers) separated by commas.");
			free(list);
			return false;
		}
	}
	*extra = list;
	return true;
}

/* Assign hook of state_msg.high_priority_topic_types */
static void
assign_topic_type_list(const char *newval, void *extra)
{
	sm_high_priority_topic_types = (TopicTypeList *) extra;
}

/* Is the topic type listed in state_msg.high_priority_topic_types? */
bool
sm_is_high_priority_topic_type(int32 topic_type)
{
	if (sm_high_priority_topic_types == NULL)
		return false;
	for (int i = 0; i < sm_high_priority_topic_types->n; i++)
		if (sm_high_priority_topic_types->types[i] == topic_type)
			return true;
	return false;
}

/* Define a duration setting in minutes, PGC_SUSET */
static void
define_duration(const char *name, const char *short_desc, const char *long_desc,
				double *var, double boot, double min)
{
	DefineCustomRealVariable(name, short_desc, long_desc, var, boot,
							 min, MAX_DURATION_MINUTES,
							 PGC_SUSET, GUC_UNIT_MIN, NULL, NULL, NULL);
}

/* Define the settings; nothing else needs loading at start-up yet */
void
_PG_init(void)
{
	define_duration("state_msg.min_missing_message_age",
					"How old a missing serial range must be before the resync check requests a resync.",
					"ConfigMgr's Min Missing Message Age.",
					&sm_min_missing_message_age, 2 * 24 * 60, 0);

	define_duration("state_msg.min_resync_period",
					"How long a resync request may wait for its completion before it is issued again.",
					"ConfigMgr's Min Resync Period.",
					&sm_min_resync_period, 72 * 60, 0);

	define_duration("state_msg.clock_offset",
					"Added to the server's clock to give the engine clock.",
					"Every time the engine records comes from the engine clock; tests and simulations move it to let days pass.",
					&sm_clock_offset, 0, -MAX_DURATION_MINUTES);

	define_duration("state_msg.max_clock_skew",
					"How far ahead of the engine clock a client's message time may run before it is taken as the engine clock's time.",
					"Bounds what one client clock that runs ahead can do to the ordering and reset decisions.",
					&sm_max_clock_skew, 60, 0);

	define_duration("state_msg.keep_completed_requests",
					"How long state_msg.purge() keeps a completed resync request after its completion.",
					"Outstanding requests are never purged.",
					&sm_keep_completed_requests, 30 * 24 * 60, 0);

	define_duration("state_msg.keep_rejected_messages",
					"How long state_msg.purge() keeps a quarantined row after it was rejected.",
					NULL,
					&sm_keep_rejected_messages, 30 * 24 * 60, 0);

	DefineCustomEnumVariable("state_msg.on_bad_message",
							 "What to do with a message that fails validation.",
							 "quarantine stores it in state_msg.rejected_messages with a warning; error fails the statement.",
							 &sm_on_bad_message,
							 BAD_MESSAGE_QUARANTINE, bad_message_options,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("state_msg.batch_chunk_size",
							"Messages a batch processes together, in one set of statements.",
							"A chunk ends at the first client boundary past this size; larger chunks use more memory and fewer statements.",
							&sm_batch_chunk_size,
							32768, 1, 1024 * 1024,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("state_msg.batch_chunk_memory",
							"Memory a batch's chunk of messages may use.",
							"A chunk also ends at the first client boundary past this size.",
							&sm_batch_chunk_memory,
							64 * 1024, 1024, 1024 * 1024,
							PGC_USERSET, GUC_UNIT_KB,
							NULL, NULL, NULL);

	/*
	 * PGC_SUSET: it bounds what the owner-rights batch stores for any
	 * writer.  Up to the largest value a text can hold.
	 */
	DefineCustomIntVariable("state_msg.max_state_details_size",
							"Largest state details a message may carry, in bytes.",
							"A message with larger state details is rejected (quarantined, or an error under on_bad_message = error).",
							&sm_max_state_details_size,
							1024 * 1024, 0, MaxAllocSize - VARHDRSZ,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("state_msg.max_report_size",
							"Largest XML report state_msg.ingest_report() parses, in bytes as received.",
							"A larger report is rejected whole before it is parsed, so that parsing memory stays bounded.",
							&sm_max_report_size,
							16 * 1024 * 1024, 1, MaxAllocSize,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("state_msg.live_summaries",
							 "Keeps the counts behind state_msg.topic_state_summary and state_msg.update_compliance current with every batch.",
							 "Off skips their cost; the views then count client_state directly until state_msg.rebuild_state_counts().",
							 &sm_live_summaries,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	/*
	 * Queued processing (issue 9).  PGC_SUSET: a database's mode and its
	 * queues' policy are the superuser's (ALTER DATABASE ... SET), never a
	 * session's choice.
	 */
	DefineCustomEnumVariable("state_msg.processing",
							 "Whether the inbox, ingest() and ingest_report() process messages at once or only enqueue them.",
							 "immediate processes them in the caller's statement; queued validates and enqueues them, for state_msg.process_queue() or the background worker to process.",
							 &sm_processing,
							 PROCESSING_IMMEDIATE, processing_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("state_msg.high_priority_topic_types",
							   "Topic types whose messages go to the high queue.",
							   "A comma-separated list of topic types; resync answers go to the high queue whatever it says.",
							   &sm_high_priority_topic_types_string,
							   "800",
							   PGC_SUSET, GUC_LIST_INPUT,
							   check_topic_type_list, assign_topic_type_list,
							   NULL);

	DefineCustomIntVariable("state_msg.queue_batch_size",
							"Messages one batch of state_msg.process_queue_batch() takes from the queues at most.",
							"A high-queue upload is never cut, so a batch may take more to finish one.",
							&sm_queue_batch_size,
							10000, 1, 10 * 1000 * 1000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	define_duration("state_msg.queue_rotation_interval",
					"How long enqueuing writes one partition of state_msg.queue_chunks before a drainer moves it on.",
					"Drained partitions are emptied with TRUNCATE, so the queue leaves no dead rows behind.",
					&sm_queue_rotation_interval, 1, 0);

	DefineCustomIntVariable("state_msg.fsp_throttle_messages",
							"Messages of the fsp queue released to processing per state_msg.fsp_throttle_interval at most.",
							"ConfigMgr's fallback status point throttle.",
							&sm_fsp_throttle_messages,
							10000, 0, INT_MAX,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	define_duration("state_msg.fsp_throttle_interval",
					"The interval of the fallback status point throttle.",
					NULL,
					&sm_fsp_throttle_interval, 60, 0);

	DefineCustomIntVariable("state_msg.backlog_significant_messages",
							"Waiting messages from which state_msg.backlog shows a queue as significant.",
							NULL,
							&sm_backlog_significant_messages,
							100000, 1, INT_MAX,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	define_duration("state_msg.backlog_significant_age",
					"Age of the oldest waiting message from which state_msg.backlog shows a queue as significant.",
					NULL,
					&sm_backlog_significant_age, 60, 0);

	define_duration("state_msg.backlog_history_retention",
					"How long state_msg.sample_backlog() keeps the samples of state_msg.backlog_history.",
					NULL,
					&sm_backlog_history_retention, 14 * 24 * 60, 0);

	DefineCustomBoolVariable("state_msg.backlog_aware_resync",
							 "Holds back resync requests whose answer waits in the queue.",
							 "On, the check cycle requests no resync for missing serials waiting in the queue and reissues none for a client whose 700/2 waits there; off behaves as ConfigMgr documents.",
							 &sm_backlog_aware_resync,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("state_msg.max_resync_requests_per_cycle",
							"Most resync requests one check cycle issues; -1 for no limit.",
							"The longest overdue clients are asked first; the rest wait for later cycles, so that a restored site asks its clients back gradually.",
							&sm_max_resync_requests_per_cycle,
							-1, -1, INT_MAX,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	/* the background worker's settings; with the preload, the worker */
	sm_worker_init();

	MarkGUCPrefixReserved("state_msg");
	sm_stats_init();
}

/* A duration setting in microseconds */
int64
sm_duration_usecs(double minutes)
{
	return (int64) rint(minutes * USECS_PER_MINUTE);
}

/*
 * The engine clock: the server's clock plus state_msg.clock_offset.  Every
 * time the engine records (missing-range detection, processing, resync
 * issue and completion) comes from here.
 */
TimestampTz
sm_engine_now(void)
{
	return GetCurrentTimestamp() + sm_duration_usecs(sm_clock_offset);
}

/*
 * A message's effective time: its own, unless it runs more than
 * state_msg.max_clock_skew ahead of the engine clock at its processing,
 * when it is taken as that clock's time.  Ordering and reset decisions use
 * it, so no single message's clock can make a client's later messages look
 * old.  (processed_at is near the engine clock, so nothing overflows.)
 */
TimestampTz
sm_effective_time(TimestampTz message_time, TimestampTz processed_at)
{
	Assert(!TIMESTAMP_NOT_FINITE(processed_at));
	if (message_time > processed_at + sm_duration_usecs(sm_max_clock_skew))
		return processed_at;
	return message_time;
}

/* A duration setting as an interval, for SQL that compares times */
static Datum
duration_interval(double minutes)
{
	Interval   *result = palloc0(sizeof(Interval));

	result->time = sm_duration_usecs(minutes);
	PG_RETURN_INTERVAL_P(result);
}

PG_FUNCTION_INFO_V1(state_msg_min_missing_message_age);
Datum
state_msg_min_missing_message_age(PG_FUNCTION_ARGS)
{
	return duration_interval(sm_min_missing_message_age);
}

PG_FUNCTION_INFO_V1(state_msg_min_resync_period);
Datum
state_msg_min_resync_period(PG_FUNCTION_ARGS)
{
	return duration_interval(sm_min_resync_period);
}

PG_FUNCTION_INFO_V1(state_msg_backlog_significant_age);
Datum
state_msg_backlog_significant_age(PG_FUNCTION_ARGS)
{
	return duration_interval(sm_backlog_significant_age);
}

PG_FUNCTION_INFO_V1(state_msg_backlog_significant_messages);
Datum
state_msg_backlog_significant_messages(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(sm_backlog_significant_messages);
}

PG_FUNCTION_INFO_V1(state_msg_backlog_history_retention);
Datum
state_msg_backlog_history_retention(PG_FUNCTION_ARGS)
{
	return duration_interval(sm_backlog_history_retention);
}

PG_FUNCTION_INFO_V1(state_msg_engine_now);
Datum
state_msg_engine_now(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(sm_engine_now());
}
