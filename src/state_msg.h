/*-------------------------------------------------------------------------
 *
 * state_msg.h
 *	  Declarations shared by the state message engine's source files.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STATE_MSG_H
#define STATE_MSG_H

#include "access/tupdesc.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

/* The release of the SQL objects this library works with */
#define SM_RELEASE "1.1"

/*
 * Limits on what a message may carry (more is rejected).  Ids are limited in
 * bytes, so that client_state's primary key entries always fit an index
 * page; serials to 2^48, so that no counter of missing serials can overflow.
 */
#define SM_MAX_CLIENT_ID_BYTES	256
#define SM_MAX_TOPIC_ID_BYTES	512
#define SM_MAX_USER_PARAMS		5
#define SM_MAX_USER_PARAM_LEN	4096	/* characters */
#define SM_MAX_SERIAL			(INT64CONST(1) << 48)

/*
 * Limits on the optional fields of release 1.1, in bytes: far above what
 * Windows allows (a user principal name, a SID string of 15 sub-authorities,
 * a NetBIOS or DNS host name, a version string), low enough that a bad
 * relay cannot make every state row large.  state_details is limited by
 * state_msg.max_state_details_size.
 */
#define SM_MAX_USER_NAME_BYTES	512
#define SM_MAX_USER_SID_BYTES	256
#define SM_MAX_NETBIOS_NAME_BYTES 256
#define SM_MAX_CLIENT_VERSION_BYTES 256

/* The resync-complete message: topic type 700, state id 2 */
#define SM_RESYNC_TOPIC_TYPE	700
#define SM_RESYNC_COMPLETE_STATE 2

/* Columns of state_msg.inbox, in table order */
typedef enum InboxColumn
{
	INBOX_CLIENT_ID,
	INBOX_SERIAL_NUMBER,
	INBOX_TOPIC_TYPE,
	INBOX_TOPIC_ID,
	INBOX_TOPIC_ID_TYPE,
	INBOX_STATE_ID,
	INBOX_CRITICALITY,
	INBOX_MESSAGE_TIME,
	INBOX_USER_PARAMS,
	INBOX_SOURCE,
	/* optional (release 1.1): what an XML report carries besides */
	INBOX_USER_NAME,
	INBOX_USER_SID,
	INBOX_STATE_DETAILS_TYPE,
	INBOX_STATE_DETAILS,
	INBOX_PRIORITY,
	INBOX_NETBIOS_NAME,
	INBOX_CLIENT_VERSION,
	INBOX_NATTS
} InboxColumn;

/* What processing made of a message; labels match SQL type state_msg.verdict */
typedef enum Verdict
{
	VERDICT_IN_ORDER,
	VERDICT_GAP,
	VERDICT_LATE_FILL,
	VERDICT_DUPLICATE,
	VERDICT_SERIAL_RESET,
	VERDICT_UNSERIALIZED,
	VERDICT_REJECTED,
	VERDICT_QUEUED,				/* queued processing: enqueued, not processed */
	VERDICT_COUNT
} Verdict;

/*
 * Verdicts that the per-verdict result rows (ingest_report(),
 * retry_rejected()) have a column for: all but queued, which those rows
 * show as messages less the others
 */
#define VERDICT_RESULT_COUNT VERDICT_QUEUED

extern const char *const sm_verdict_names[VERDICT_COUNT];

/* What state_msg.on_bad_message asks for */
typedef enum BadMessageAction
{
	BAD_MESSAGE_QUARANTINE,
	BAD_MESSAGE_ERROR
} BadMessageAction;

/* One validated message, its client id normalized */
typedef struct StateMessage
{
	int64		row_number;		/* 1-based position in its statement */
	char	   *client_id;
	bool		has_serial;
	int64		serial_number;
	int32		topic_type;
	char	   *topic_id;
	int32		topic_id_type;
	int32		state_id;
	int32		criticality;
	TimestampTz message_time;	/* as the client gave it */
	Datum		user_params;	/* text[], or 0 for none */
	char	   *source;
	char	   *user_name;		/* NULL for none, as the rest of this group */
	char	   *user_sid;
	bool		has_state_details_type;
	int32		state_details_type;
	Datum		state_details;	/* text, maybe toasted, or 0 for none */
	bool		has_priority;
	int32		priority;		/* the report's priority */
	char	   *netbios_name;	/* the client's, from the report header */
	char	   *client_version;
	/* set by processing */
	TimestampTz effective_time; /* message_time, bounded by the clock */
	bool		clock_skewed;	/* message_time ran too far ahead: the
								 * effective time is the engine clock's */
	Verdict		verdict;
	int64		serial_epoch;
} StateMessage;

/* What state_msg.processing asks for */
typedef enum SmProcessingMode
{
	PROCESSING_IMMEDIATE,
	PROCESSING_QUEUED
} SmProcessingMode;

/* The queues, in draining order; labels match SQL type state_msg.queue_name */
typedef enum SmQueue
{
	SM_QUEUE_HIGH,
	SM_QUEUE_LOW,
	SM_QUEUE_FSP,
	SM_QUEUE_COUNT
} SmQueue;

extern const char *const sm_queue_names[SM_QUEUE_COUNT];

/* A range of serials that never arrived */
typedef struct MissingRange
{
	int64		first_serial;
	int64		last_serial;
	TimestampTz detected_at;
	bool		stored;			/* state_msg.missing_ranges holds it as is, in
								 * the row (client_id, first_serial) */
} MissingRange;

/* A client's counters: the columns of state_msg.clients of those names */
typedef struct ClientCounters
{
	int64		messages_processed;
	int64		missing_serials;
	int64		late_fills;
	int64		duplicates;
	int64		serial_resets;
	int64		unserialized_messages;
	int64		clock_skewed_messages;
	int64		resync_requests_issued;
} ClientCounters;

/* A resync request a serial reset issued while a batch runs */
typedef struct ResetRequest
{
	TimestampTz issued_at;
	bool		completed;
	TimestampTz completed_at;
} ResetRequest;

/*
 * One client's serial tracking while a batch runs: the state read from
 * state_msg.clients and state_msg.missing_ranges, updated message by
 * message, and written back whole (the client's row is locked).
 */
typedef struct ClientTrack
{
	char	   *client_id;
	bool		is_new;			/* created by this chunk: has no state yet */
	bool		has_baseline;	/* false for a client never seen with a serial */
	int64		next_serial;
	int64		serial_epoch;
	TimestampTz epoch_started;	/* effective time of the reset that began
								 * the epoch */
	bool		has_epoch_started;
	TimestampTz last_message_time;	/* newest effective time of an accepted
									 * serialized message */
	bool		has_last_message_time;
	bool		answer_stale;	/* the resync answer being processed is stale
								 * as a whole (judged at its first message) */

	/*
	 * Missing ranges, sorted and disjoint: not all of the client's, only
	 * those the chunk's serials can meet (see sm_serials_to_probe()) and those
	 * the chunk creates.  Changes are written back as deletes of stored rows
	 * and inserts of the ranges not stored.
	 */
	MissingRange *ranges;
	int			nranges;
	int			maxranges;
	bool		ranges_changed; /* there is something to delete or insert */
	bool		drop_stored;	/* delete all the client's stored ranges */
	int64		drop_below;		/* delete the stored ranges that begin below
								 * this serial (none if 0) */
	int64	   *dropped;		/* first_serial of each stored row to delete */
	int			ndropped;
	int			maxdropped;
	ClientCounters counts;
	/* resync events, in arrival order */
	TimestampTz last_issued;	/* last_resync_issued_time */
	bool		has_last_issued;
	TimestampTz last_completed; /* last_resync_client_completed_time */
	bool		has_last_completed;
	bool		completes_stored;	/* a completion ends the stored open
									 * requests ... */
	TimestampTz stored_completed_at;	/* ... at this time */
	ResetRequest *reset_requests;	/* issued by this chunk's resets */
	int			nreset_requests;
	int			maxreset_requests;
	/* current state */
	StateMessage **by_topic;	/* processed messages by topic, then arrival */
	int			nby_topic;
	bool		needs_stored;	/* a topic's new state depends on the stored */
	StateMessage *stored;		/* if so, client_state's rows, as messages
								 * sorted by topic */
	int			nstored;
	/* the latest non-NULL of each in the chunk, in arrival order, or NULL */
	char	   *netbios_name;
	char	   *client_version;
} ClientTrack;

/* state_msg.c: settings and the engine clock */
extern double sm_min_missing_message_age;
extern double sm_min_resync_period;
extern double sm_clock_offset;
extern double sm_max_clock_skew;
extern double sm_keep_completed_requests;
extern double sm_keep_rejected_messages;
extern int	sm_on_bad_message;
extern int	sm_batch_chunk_size;
extern int	sm_batch_chunk_memory;
extern int	sm_max_report_size;
extern int	sm_max_state_details_size;
extern bool sm_live_summaries;
extern int	sm_processing;
extern int	sm_queue_batch_size;
extern double sm_queue_rotation_interval;
extern int	sm_fsp_throttle_messages;
extern double sm_fsp_throttle_interval;
extern int	sm_backlog_significant_messages;
extern double sm_backlog_significant_age;
extern double sm_backlog_history_retention;
extern bool sm_is_high_priority_topic_type(int32 topic_type);
extern int	sm_max_resync_requests_per_cycle;
extern bool sm_backlog_aware_resync;
extern int64 sm_duration_usecs(double minutes);
extern TimestampTz sm_engine_now(void);
extern TimestampTz sm_effective_time(TimestampTz message_time,
									 TimestampTz processed_at);

/* Add n to a counter; counters stop at the largest bigint, never wrap */
static inline void
sm_count(int64 *counter, int64 n)
{
	if (pg_add_s64_overflow(*counter, n, counter))
		*counter = PG_INT64_MAX;
}

/*
 * The time of a resync event (an issue or a completion) that follows
 * another event at "after" (if any): the engine clock's "now", but never at
 * or before "after", since the monitoring queries compare issue and
 * completion times.  The one home of that rule, in C and (through
 * state_msg.resync_event_time()) in SQL.
 */
static inline TimestampTz
sm_resync_event_time(TimestampTz now, bool has_after, TimestampTz after)
{
	return (has_after && after >= now) ? after + 1 : now;
}

/*
 * guard.c: the engine reaches its objects only through its own schema, and
 * only those of its own release
 */
extern void sm_require_current_release(void);
extern void sm_guard_schema(void);

/* message.c: validation and normalization */
extern char *sm_normalize_client_id(const char *raw);
extern char *sm_echo_text(Datum value);
extern bool sm_message_check(Datum *values, bool *isnull, int64 row_number,
						  StateMessage *msg, int *sqlstate, char **reason);

/* serials.c: per-client serial tracking, in memory */
extern void sm_serials_add_range(ClientTrack *track, int64 first, int64 last,
							  TimestampTz detected_at);
extern void sm_serials_choose_baseline(ClientTrack *track, StateMessage *msgs,
									int nmsgs);
extern Verdict sm_serials_apply(ClientTrack *track, StateMessage *msg,
							 TimestampTz now, const StateMessage *answer,
							 bool answer_first);
extern void sm_serials_forget_below(ClientTrack *track, int64 serial);
extern void sm_serials_drop_all_ranges(ClientTrack *track);
extern int	sm_serials_to_probe(ClientTrack *track, StateMessage *msgs, int nmsgs,
							 int64 *serials);

/* delivery.c: resync requests handed to the clients */
extern void sm_notify_resync_issued(int64 n);

/* resync_events.c: resync requests and completions met while processing */
extern void sm_resync_reset_issued(ClientTrack *track, TimestampTz now);
extern void sm_resync_completed(ClientTrack *track, TimestampTz now);

/* current_state.c: the newest-state rule and the fold */
extern void sm_current_state_sort(ClientTrack *track, StateMessage *msgs,
							   int nmsgs);
extern void sm_current_state_collect(ClientTrack *track,
								  Tuplestorestate *new_states,
								  Tuplestorestate *newer_states,
								  Tuplestorestate *decided_states,
								  TupleDesc desc, TimestampTz now);

/* batch.c: the one processing path behind every entry point */
typedef struct MessageBatch MessageBatch;
extern MessageBatch *sm_batch_begin(void);
extern MessageBatch *sm_batch_begin_immediate(void);
extern bool sm_batch_add(MessageBatch *batch, Datum *values, bool *isnull);
extern void sm_batch_reject(MessageBatch *batch, Datum *values, bool *isnull,
							int sqlstate, const char *reason);
extern void sm_batch_add_message(MessageBatch *batch, const StateMessage *msg);
extern Verdict sm_batch_finish(MessageBatch *batch, int64 *counts);

/*
 * enqueue.c: writing a statement's messages to the queue, in chunks
 */
typedef struct QueueWriter QueueWriter;
extern QueueWriter *sm_queue_writer_begin(MemoryContext context,
										  HTAB *answer_clients);
extern void sm_queue_writer_put(QueueWriter *writer, int64 row_number,
								Datum *values, bool *isnull,
								const char *client_id);
extern int64 sm_queue_writer_end(QueueWriter *writer);

/*
 * queue.c: the queue's tables (queued processing): queue and shard, chunks,
 * the counts and flow behind state_msg.backlog, rotation
 */
typedef struct QueueFlow QueueFlow;
extern SmQueue sm_queue_choose(const char *source, int32 topic_type,
							   bool resync_answer);
extern int16 sm_queue_shard(const char *client_id);

/* Partitions of state_msg.queue_chunks: queue_0 .. queue_2 */
#define SM_QUEUE_GENERATIONS 3

/* Shards: a client's messages all fall in one; drainers lock shards */
#define SM_QUEUE_SHARDS 64

/* Columns of state_msg.queue_chunks (and its partitions), in table order */
enum
{
	SM_CHUNK_GENERATION,
	SM_CHUNK_QUEUE,				/* the enum queue_name */
	SM_CHUNK_SHARD,
	SM_CHUNK_UPLOAD_ID,
	SM_CHUNK_FIRST_ROW,
	SM_CHUNK_ENQUEUED_AT,
	SM_CHUNK_ROW_NUMBERS,
	SM_CHUNK_MESSAGES,			/* state_msg.queued_message[] */
	SM_CHUNK_NATTS
};

/* A chunk's messages (flat state_msg.queued_message) and their positions */
typedef struct QueueChunk
{
	int			n;
	int64	   *row_numbers;
	Datum	   *messages;
	Oid			message_type;
} QueueChunk;

extern void sm_queue_start_upload(int64 *upload_id, int16 *generation,
								  Oid *relid);
extern void sm_queue_chunk_read(QueueChunk *chunk, Datum row_numbers,
								Datum messages);
extern void sm_queue_chunk_rewrite(int generation, Datum ctid,
								   QueueChunk *chunk, int first, int n);
extern void sm_queue_message_deform(TupleDesc desc, Datum message,
									Datum *values, bool *isnull);
extern QueueFlow *sm_queue_flow_begin(MemoryContext context);
extern void sm_queue_flow_add(QueueFlow *flow, SmQueue queue, int32 topic_type,
							  int64 arrived, int64 processed, int64 answers);
extern void sm_queue_flow_waiting(QueueFlow *flow, SmQueue queue,
								  int generation, TimestampTz enqueued_at,
								  int64 messages, int64 chunks);
extern void sm_queue_flow_write(QueueFlow *flow, TimestampTz now);
extern void sm_queue_maybe_compact(bool force);
extern int	sm_queue_rotate(bool *stranded);
extern int64 sm_queue_move_chunks(int from, int to, int shard, int64 limit);
extern SPIPlanPtr sm_queue_partition_plan(SPIPlanPtr *plans, int generation,
										  const char *sql_format, int nargs,
										  Oid *argtypes);

/* inbox.c: the inbox's columns and its processing trigger */
extern void sm_inbox_map_columns(TupleDesc desc, const char *relname,
							  int *attnos);
extern bool sm_inbox_is_process_function(Oid funcoid);

/* admin.c: operations */
extern Datum sm_result_row(FunctionCallInfo fcinfo, Datum *values, int n);

/* store.c: the engine's tables */
extern void sm_store_load_clients(ClientTrack *tracks, int ntracks,
							   StateMessage *msgs, int *starts);
extern void sm_store_load_states(ClientTrack *tracks, int ntracks);
extern int	sm_compare_topics(const StateMessage *a, const StateMessage *b);
extern void sm_store_save_clients(ClientTrack *tracks, int ntracks,
							   TimestampTz now, MemoryContext batch_context);
extern TupleDesc sm_store_states_desc(void);
extern void sm_store_put_state(Tuplestorestate *store, TupleDesc desc,
							StateMessage *msg, TimestampTz now);
extern void sm_store_write_states(TupleDesc desc,
							   Tuplestorestate *new_states,
							   Tuplestorestate *newer_states,
							   Tuplestorestate *decided_states,
							   MemoryContext batch_context);
extern void sm_store_run_with_rows(SPIPlanPtr *plan, const char *sql,
								   const char *enr_name, TupleDesc desc,
								   Tuplestorestate *rows, int expected,
								   MemoryContext enr_context);
extern void sm_run_kept(SPIPlanPtr *plan, const char *sql, int nargs,
						Oid *argtypes, Datum *values, const char *nulls,
						int expected);
extern void sm_store_rejected(Datum *values, bool *isnull, int64 row_number,
						   int sqlstate, const char *reason);

/* summaries.c: the live summaries' count deltas */
typedef enum SummaryKind
{
	SUMMARY_NEW,				/* states of new clients (no stored state) */
	SUMMARY_NEWER,				/* the upsert that keeps the newer state */
	SUMMARY_REPLACED			/* the upsert that replaces */
} SummaryKind;
extern void sm_summaries_count(SummaryKind kind, TupleDesc desc,
							   Tuplestorestate *rows,
							   MemoryContext batch_context);
extern void sm_summaries_counted(uint64 rows);
extern void sm_summaries_mark_stale(void);
extern void sm_summaries_maybe_compact(void);

/*
 * stats.c: the engine's counters (state_msg.stats).  Counts are added per
 * backend and published only when the transaction commits.
 */
typedef enum SmStat
{
	SM_STAT_ENQUEUED,
	SM_STAT_PROCESSED_IN_ORDER, /* processed, by verdict, in Verdict order */
	SM_STAT_PROCESSED_GAP,
	SM_STAT_PROCESSED_LATE_FILL,
	SM_STAT_PROCESSED_DUPLICATE,
	SM_STAT_PROCESSED_SERIAL_RESET,
	SM_STAT_PROCESSED_UNSERIALIZED,
	SM_STAT_REJECTED,
	SM_STAT_BATCHES,
	SM_STAT_PROCESSING_USECS,
	SM_STAT_RESYNCS_ISSUED,
	SM_STAT_RESYNCS_REISSUED,
	SM_STAT_RESYNCS_COMPLETED,
	SM_STAT_RESYNCS_HELD_BACK,
	SM_STAT_COUNT
} SmStat;
extern void sm_stats_add(SmStat which, int64 n);
extern void sm_stats_init(void);

/* worker.c: the background worker that drains the queue */
extern void sm_worker_init(void);
extern void sm_worker_wake(void);

#endif							/* STATE_MSG_H */
