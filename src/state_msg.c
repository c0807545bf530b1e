/*-------------------------------------------------------------------------
 *
 * state_msg.c
 *	  Module entry point and settings of the state message engine.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "state_msg.h"

PG_MODULE_MAGIC;

/* Settings, in minutes where they are durations */
int			sm_min_missing_message_age = 2 * 24 * 60;
int			sm_min_resync_period = 72 * 60;
int			sm_on_bad_message = BAD_MESSAGE_QUARANTINE;
int			sm_batch_chunk_size = 32768;

static const struct config_enum_entry bad_message_options[] = {
	{"quarantine", BAD_MESSAGE_QUARANTINE, false},
	{"error", BAD_MESSAGE_ERROR, false},
	{NULL, 0, false}
};

void		_PG_init(void);

/* Define the settings; nothing else needs loading at start-up yet */
void
_PG_init(void)
{
	DefineCustomIntVariable("state_msg.min_missing_message_age",
							"How old a missing serial range must be before the resync check requests a resync.",
							"ConfigMgr's Min Missing Message Age.",
							&sm_min_missing_message_age,
							2 * 24 * 60, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MIN,
							NULL, NULL, NULL);

	DefineCustomIntVariable("state_msg.min_resync_period",
							"How long a resync request may wait for its completion before it is issued again.",
							"ConfigMgr's Min Resync Period.",
							&sm_min_resync_period,
							72 * 60, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MIN,
							NULL, NULL, NULL);

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

	MarkGUCPrefixReserved("state_msg");
}

/* A setting in minutes as an interval, for SQL that compares times */
static Datum
minutes_interval(int minutes)
{
	Interval   *result = palloc0(sizeof(Interval));

	result->time = (int64) minutes * USECS_PER_MINUTE;
	PG_RETURN_INTERVAL_P(result);
}

PG_FUNCTION_INFO_V1(state_msg_min_missing_message_age);
Datum
state_msg_min_missing_message_age(PG_FUNCTION_ARGS)
{
	return minutes_interval(sm_min_missing_message_age);
}

PG_FUNCTION_INFO_V1(state_msg_min_resync_period);
Datum
state_msg_min_resync_period(PG_FUNCTION_ARGS)
{
	return minutes_interval(sm_min_resync_period);
}
