/*-------------------------------------------------------------------------
 *
 * fleet.c
 *	  A fleet of simulated ConfigMgr clients for state_msg: tests, the demo
 *	  and the benchmark.
 *
 * Every simulated client keeps its cache (the latest message per topic)
 * and its serial counter, raises the messages of a scenario, and uploads
 * what it raised every cycle (15 simulated minutes) as one upload: rows
 * streamed with COPY into state_msg.inbox, or an XML report handed to
 * state_msg.ingest_report().  A share of uploads is lost, a share arrives
 * late (held back whole cycles), some arrive twice, some clients are
 * reinstalled (their serials restart at 1).  Each cycle the simulator runs
 * the check cycle and, as a management point, claims the resync requests
 * and answers them at the client's next upload: its cache renumbered from
 * its current serial plus a resync-complete message (700/2); a share of
 * clients never answers.
 *
 * Simulated time reaches the server through state_msg.clock_offset (set in
 * the session before each step, so the engine clock reads the simulated
 * time): days pass in seconds and every time the engine records agrees
 * with the simulation.  The setting is PGC_SUSET: connect as a superuser
 * (or a role granted SET on the parameter; run_resync_check is called with
 * an explicit as_of, never ahead of the engine clock).
 *
 * The simulator keeps its own record of what it delivered, in the order it
 * delivered it, and a model of what the README's rules make of it (serial
 * tracking, resets, resync events, the newest-state rule, the check cycle,
 * delivery of requests), written from the rules, not from the engine.
 * Every cycle it compares the check cycle's counts and the claimed clients
 * with the model; at the end, every client's row, every current state,
 * every missing range and the open requests, the monitoring views and the
 * two monitoring queries.  With the final resync (the default) every client
 * that answers must also hold exactly its cache.  The last line says
 * "fleet: OK ..." or "fleet: FAIL ..." (exit status 1).
 *
 * Deterministic for a seed: every client draws from its own xoshiro256**
 * generator seeded with splitmix64 from (seed, client); the server's
 * answers (claims) are only compared, and acted on in client order.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libpq-fe.h"

#define T0_UNIX		1794268800LL	/* 2026-11-10 00:00 UTC, a Patch Tuesday */
#define CYCLE		900				/* seconds between uploads */
#define HALF_CYCLE	450				/* the check cycle and claims run mid-cycle */
#define USEC		1000000LL
#define DAY_CYCLES	96
#define FSP_PER_CYCLE 2500			/* 10,000 messages per 3,600 s */

/* Topics: the same table in every scenario */
#define TOPIC_BACKGROUND 0			/* 9 topics of everyday traffic */
#define NBACKGROUND 9
#define TOPIC_RESYNC 9				/* 700: resync complete */
#define TOPIC_DEPLOY 10				/* 800: client deployment (rollout) */
#define TOPIC_SCAN 11				/* 501: update scan */
#define TOPIC_UPDATES 12			/* 500 x updates, then 402 x updates */

enum scenario
{
	ROLLOUT, PATCH_TUESDAY, RESYNC_STORM, SITE_RESTORE
};
static const char *scenario_names[] = {"rollout", "patch-tuesday",
"resync-storm", "site-restore"};

/* Options */
static const char *opt_dbname, *opt_host, *opt_port, *opt_user;
static int	opt_clients = 200;
static int	opt_days = 4;
static int	opt_scenario = PATCH_TUESDAY;
static uint64_t opt_seed = 1;
static bool opt_via_report = false;
static bool opt_batch_cycle = false;
static int	opt_updates = 20;
static double opt_required = 0.5;	/* share of updates a client requires */
static double opt_loss = 0.02, opt_late = 0.05, opt_dup = 0.01;
static double opt_reinstall = 0.02, opt_offline = 0.02, opt_storm = 0.3;
static double opt_rate = 6;			/* background messages per client per day */
static int	opt_late_max = 8;
static int	opt_check_every = 1;
static bool opt_settle = true;
static bool opt_dry_run = false;
static int	opt_max_diffs = 10;
static bool opt_verbose = false;
static int	opt_trace = -1;		/* a client whose messages the model traces */
static bool opt_preloaded = false;	/* the database holds other clients too */
static int64_t opt_progress = 0;	/* a progress line every N messages */
static bool opt_updates_given = false;	/* --updates: a Patch Tuesday in any scenario */
static const char *opt_processing;	/* --processing: SET state_msg.processing */
static const char *opt_backlog_aware;	/* --backlog-aware: SET state_msg.backlog_aware_resync */
static int64_t opt_drain = -1;	/* queued: messages processed per cycle (-1: all) */
static const char *opt_cycle_log;	/* a CSV line per cycle to this file */

/* ---------------------------------------------------------------------- */
/* Random numbers: splitmix64 seeds xoshiro256** */

typedef struct Rng
{
	uint64_t	s[4];
} Rng;

/* splitmix64: one step, for seeding and hashing */
static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t	z = (*x += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* A generator of its own for (seed, stream) */
static void
rng_seed(Rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t	x = seed * 0x100000001B3ULL ^ (stream + 1) * 0xD6E8FEB86659FD93ULL;

	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256**: the next 64 bits */
static inline uint64_t
rng_next(Rng *r)
{
	uint64_t   *s = r->s;
	uint64_t	result = rotl(s[1] * 5, 7) * 9;
	uint64_t	t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Uniform in [0, 1) */
static inline double
rng_unit(Rng *r)
{
	return (rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform in [0, n) (n > 0) */
static inline uint32_t
rng_below(Rng *r, uint32_t n)
{
	return (uint32_t) (((rng_next(r) >> 32) * (uint64_t) n) >> 32);
}

/* ---------------------------------------------------------------------- */
/* Topics, messages, uploads, clients */

typedef struct Topic
{
	int			type;
	int			id_type;
	char		id[96];
	int			idlen;
} Topic;

static Topic *topics;
static int	ntopics;

typedef struct Msg
{
	int64_t		serial;			/* -1: none (relayed by a fallback status point) */
	int32_t		time;			/* seconds since T0 */
	int32_t		topic;
	int32_t		state;
	int32_t		fsp;
} Msg;

/* One upload (or a fallback status point's batch), delivered as it is */
typedef struct Upload
{
	struct Upload *next;
	int32_t		client;
	int32_t		nmsgs;
	int32_t		answer;			/* a resync answer */
	Msg			msgs[];
} Upload;

typedef struct Bucket
{
	Upload	   *head;
	Upload	   *tail;
} Bucket;

/* A client's cache entry: the latest message of a topic */
typedef struct CacheEntry
{
	int32_t		time;
	int16_t		state;
	uint8_t		present;
	uint8_t		fsp;
} CacheEntry;

/* The model's current state of one topic of one client */
typedef struct StateEntry
{
	uint32_t	serial_plus1;	/* 0: no serial */
	int32_t		time;
	uint16_t	epoch;
	int16_t		state;
	uint8_t		present;
	uint8_t		fsp;
} StateEntry;

/*
 * Queued mode: one client's messages waiting in one of the server's queues
 * (high, low, fsp), in the order they were enqueued
 */
enum
{
	Q_HIGH, Q_LOW, Q_FSP, NQUEUES
};

typedef struct Fifo
{
	Msg		   *msgs;
	int			head;			/* the oldest waiting */
	int			n;				/* msgs[head .. n - 1] wait */
	int			cap;
} Fifo;

typedef struct Range
{
	int64_t		first;
	int64_t		last;
	int64_t		detected;		/* usecs since T0 */
} Range;

/* The model: what the rules make the engine hold for one client */
typedef struct Server
{
	bool		known;
	bool		has_next;
	bool		has_epoch_started;
	bool		has_lmt;
	bool		has_issued;
	bool		has_completed;
	bool		undelivered;	/* an open request not yet claimed */
	int64_t		next;
	int64_t		epoch;
	int64_t		epoch_started;	/* usecs since T0 */
	int64_t		lmt;			/* last_message_time, usecs since T0 */
	int64_t		issued;
	int64_t		completed;
	int64_t		processed, missing, late_fills, duplicates, resets,
				unserialized, issued_count;
	Range	   *ranges;
	int			nranges;
	int			rcap;
	StateEntry *states;
	uint8_t    *seen;			/* serials accepted in the current epoch */
	int64_t		seen_bytes;
	Fifo		queued[NQUEUES];	/* queued mode: what waits, per queue */
} Server;

typedef struct Client
{
	Rng			rng;
	int64_t		serial;			/* the next serial it sends */
	int			install_cycle;	/* rollout: when it is installed */
	int			reinstall_cycle;	/* -1: never */
	bool		offline;		/* never answers a resync request */
	bool		storm;			/* resync-storm: loses its uploads for hours */
	bool		answer_due;		/* claimed: answers at its next upload */
	int			next_event;		/* patch-tuesday: next cycle with messages */
	int			scan_cycle;
	uint8_t    *upd_step;		/* per update: enforcement step, 0 = none */
	int16_t    *upd_cycle;		/* per update: cycle of its next step */
	CacheEntry *cache;
	Server		srv;
} Client;

static Client *clients;
static int	ncycles;			/* opt_days * 96 */
static Bucket *buckets;
static int	nbuckets;
static Upload *fsp_head, *fsp_tail; /* fallback status point queue */
static int	fsp_queued;

/* Figures */
static int64_t n_generated, n_delivered, n_lost_msgs, n_uploads, n_lost,
			n_late, n_dup, n_answers, n_claims, n_statements, n_resets_sent,
			n_checks_issued, n_checks_reissued, n_fsp;
static int64_t n_diffs;
static int64_t v_model[8];		/* verdict counts the model predicts */
static int64_t n_answer_resets; /* resets at an answer's first message */
static int64_t n_answers_after_reset; /* answers after one that reset in
										 * their statement */
static int64_t n_answers_after_another; /* answers after another answer of
										 * the client in their statement */
static int64_t n_stale_answers; /* answers stale as a whole */
static int64_t n_stale_by_answer;	/* stale, before an answer in the
									 * statement */

/* Queued processing (README, Queued processing) */
static bool queued;				/* state_msg.processing is queued */
static int	backlog_aware = -1; /* state_msg.backlog_aware_resync: -1 absent */
static int64_t n_waiting;		/* messages waiting in the model's queues */
static int64_t n_processed;		/* messages processed (both modes) */
static int64_t n_answers_processed; /* 700/2 messages processed */
static int64_t n_checks_held_back;	/* requests the check cycles held back */
static int64_t scenario_processed, scenario_answers;	/* by the last cycle */
static int64_t n_drained;		/* messages the drain batches processed */
static int64_t cyc_issued, cyc_reissued, cyc_held;	/* this cycle's check */
static int64_t peak_waiting;	/* the most waiting at a mid-cycle */
static int	peak_cycle;
static int	last_inconsistent;	/* the last cycle not consistent */
static FILE *cycle_log;

enum verdict
{
	V_IN_ORDER, V_GAP, V_LATE_FILL, V_DUPLICATE, V_SERIAL_RESET,
	V_UNSERIALIZED
};

static PGconn *conn;
static int64_t server_delta;	/* server clock - local clock, usecs */

/* ---------------------------------------------------------------------- */
/* Output and errors */

/* Print a failure of the simulator itself (not a difference) and stop */
static void
die(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	fputs("fleet: ", stdout);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\nfleet: FAIL error\n");
	exit(2);
}

/* Record a difference between the database and the simulator's record */
static void
diff(const char *fmt,...)
{
	va_list		ap;

	if (n_diffs++ >= opt_max_diffs)
		return;
	va_start(ap, fmt);
	fputs("fleet: difference: ", stdout);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (!p)
		die("out of memory");
	return p;
}

static void *
xcalloc(size_t n, size_t size)
{
	void	   *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		die("out of memory");
	return p;
}

static int64_t
local_usecs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * USEC + ts.tv_nsec / 1000;
}

static double
mono_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------------- */
/* Text: client ids, times, COPY rows, XML reports */

/* The client's id: a GUID naming the seed and the client */
static int
client_id(int i, char *buf)
{
	return sprintf(buf, "GUID:%08X-F1EE-4000-8000-%012X",
				   (unsigned) (opt_seed & 0xFFFFFFFF), (unsigned) i);
}

/* The client index of an id, -1 if it is none of ours */
static int
client_index(const char *id)
{
	char		buf[64];
	unsigned long i;

	if (strlen(id) != 41)
		return -1;
	i = strtoul(id + 29, NULL, 16);
	if (i >= (unsigned long) opt_clients)
		return -1;
	client_id((int) i, buf);
	return strcmp(buf, id) == 0 ? (int) i : -1;
}

/*
 * With --preloaded, the condition that keeps a query to the fleet's own
 * clients (their ids share a prefix; the key columns are COLLATE "C", so
 * the LIKE is a range of the index); else nothing
 */
static const char *
fleet_only(const char *conj)
{
	static char buf[128];

	if (!opt_preloaded)
		return "";
	snprintf(buf, sizeof(buf), " %s client_id LIKE 'GUID:%08X-F1EE-4000-8000-%%'",
			 conj, (unsigned) (opt_seed & 0xFFFFFFFF));
	return buf;
}

/* A formatted string, malloc'd (for the few queries built at run time) */
static char *
psprintf(const char *fmt,...)
{
	va_list		ap;
	int			n;
	char	   *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	p = xmalloc(n + 1);
	va_start(ap, fmt);
	vsnprintf(p, n + 1, fmt, ap);
	va_end(ap);
	return p;
}

/* A GUID made of a number, for topic ids */
static void
guid_of(uint64_t n, char *buf)
{
	uint64_t	x = n * 7919 + 17;
	uint64_t	a = splitmix64(&x),
				b = splitmix64(&x);

	sprintf(buf, "%08X-%04X-4%03X-A%03X-%012llX", (unsigned) (a >> 32),
			(unsigned) (a >> 16) & 0xFFFF, (unsigned) a & 0xFFF,
			(unsigned) (b >> 52) & 0xFFF,
			(unsigned long long) (b & 0xFFFFFFFFFFFFULL));
}

/* The topic table of every scenario */
static void
make_topics(void)
{
	static const struct
	{
		int			type;
		const char *id;
	}			background[NBACKGROUND] = {
		{1000, "MP:P01-MP01.contoso.com"},
		{1300, "ClientHealth"},
		{2001, "EndpointProtection"},
		{401, "ScopeId_P01/Baseline_1"},
		{401, "ScopeId_P01/Baseline_2"},
		{401, "ScopeId_P01/Baseline_3"},
		{401, "ScopeId_P01/Baseline_4"},
		{1000, "MP:P01-MP02.contoso.com"},
		{2001, "EndpointProtection/Definitions"},
	};

	ntopics = TOPIC_UPDATES + 2 * opt_updates;
	topics = xcalloc(ntopics, sizeof(Topic));
	for (int i = 0; i < NBACKGROUND; i++)
	{
		topics[i].type = background[i].type;
		strcpy(topics[i].id, background[i].id);
	}
	topics[TOPIC_RESYNC].type = 700;
	strcpy(topics[TOPIC_RESYNC].id, "StateMessageResync");
	topics[TOPIC_DEPLOY].type = 800;
	strcpy(topics[TOPIC_DEPLOY].id, "P01-ClientDeployment");
	topics[TOPIC_SCAN].type = 501;
	topics[TOPIC_SCAN].id_type = 3;
	guid_of(999999, topics[TOPIC_SCAN].id);
	for (int u = 0; u < opt_updates; u++)
	{
		Topic	   *d = &topics[TOPIC_UPDATES + u];
		Topic	   *e = &topics[TOPIC_UPDATES + opt_updates + u];

		d->type = 500;
		d->id_type = 3;
		guid_of(u, d->id);
		e->type = 402;
		e->id_type = 3;
		memcpy(e->id, "ScopeId_P01/SUM_", 16);
		guid_of(u, e->id + 16);
	}
	for (int i = 0; i < ntopics; i++)
		topics[i].idlen = strlen(topics[i].id);
}

/* Append an unsigned number */
static inline char *
put_uint(char *p, uint64_t v)
{
	char		tmp[24];
	int			n = 0;

	do
	{
		tmp[n++] = '0' + v % 10;
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static inline char *
put_digits(char *p, int v, int width)
{
	for (int i = width - 1; i >= 0; i--)
	{
		p[i] = '0' + v % 10;
		v /= 10;
	}
	return p + width;
}

/* Civil date of a day number since 1970-01-01 (Howard Hinnant's algorithm) */
static void
civil(int64_t days, int *y, int *m, int *d)
{
	int64_t		z = days + 719468;
	int64_t		era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned	doe = (unsigned) (z - era * 146097);
	unsigned	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned	mp = (5 * doy + 2) / 153;

	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int) (yoe + era * 400 + (*m <= 2));
}

/* A message time (seconds since T0) as "YYYY-MM-DD HH:MM:SS+00" or DMTF */
static char *
put_time(char *p, int32_t t, bool dmtf)
{
	int64_t		u = T0_UNIX + t;
	int			y,
				m,
				d,
				s = (int) (u % 86400);

	civil(u / 86400, &y, &m, &d);
	p = put_digits(p, y, 4);
	if (!dmtf)
		*p++ = '-';
	p = put_digits(p, m, 2);
	if (!dmtf)
		*p++ = '-';
	p = put_digits(p, d, 2);
	if (!dmtf)
		*p++ = ' ';
	p = put_digits(p, s / 3600, 2);
	if (!dmtf)
		*p++ = ':';
	p = put_digits(p, s / 60 % 60, 2);
	if (!dmtf)
		*p++ = ':';
	p = put_digits(p, s % 60, 2);
	if (dmtf)
	{
		memcpy(p, ".000000+000", 11);
		return p + 11;
	}
	memcpy(p, "+00", 3);
	return p + 3;
}

/* A growing text buffer */
typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Buf;

static inline void
buf_reserve(Buf *b, size_t more)
{
	if (b->len + more > b->cap)
	{
		b->cap = (b->len + more) * 2;
		b->data = realloc(b->data, b->cap);
		if (!b->data)
			die("out of memory");
	}
}

static inline void
buf_put(Buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
}

#define BUF_LIT(b, s) buf_put((b), (s), sizeof(s) - 1)

/* The COPY text rows of an upload */
static void
format_copy(Buf *b, Upload *up)
{
	char		id[64];
	int			idlen = client_id(up->client, id);

	buf_reserve(b, (size_t) up->nmsgs * (idlen + 160));
	for (int i = 0; i < up->nmsgs; i++)
	{
		Msg		   *m = &up->msgs[i];
		Topic	   *t = &topics[m->topic];
		char	   *p = b->data + b->len;

		memcpy(p, id, idlen);
		p += idlen;
		*p++ = '\t';
		if (m->serial < 0)
		{
			memcpy(p, "\\N", 2);
			p += 2;
		}
		else
			p = put_uint(p, m->serial);
		*p++ = '\t';
		p = put_uint(p, t->type);
		*p++ = '\t';
		memcpy(p, t->id, t->idlen);
		p += t->idlen;
		*p++ = '\t';
		p = put_uint(p, t->id_type);
		*p++ = '\t';
		p = put_uint(p, m->state);
		*p++ = '\t';
		*p++ = '0';
		*p++ = '\t';
		p = put_time(p, m->time, false);
		*p++ = '\t';
		if (m->fsp)
		{
			memcpy(p, "fsp", 3);
			p += 3;
		}
		else
		{
			memcpy(p, "mp", 2);
			p += 2;
		}
		*p++ = '\n';
		b->len = p - b->data;
	}
}

/* An upload as the client's XML report (domain.md section 2) */
static void
format_report(Buf *b, Upload *up, int32_t now)
{
	char		id[64],
				tmp[64];
	int			idlen = client_id(up->client, id);

	BUF_LIT(b, "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n<Report><ReportHeader>"
			"<Identification><Machine><ClientInstalled>1</ClientInstalled>"
			"<ClientType>1</ClientType><ClientID>");
	buf_put(b, id, idlen);
	BUF_LIT(b, "</ClientID><ClientVersion>5.00.9122.1000</ClientVersion>"
			"<NetBIOSName>");
	buf_put(b, tmp, sprintf(tmp, "WKS-%06d", up->client));
	BUF_LIT(b, "</NetBIOSName><CodePage>437</CodePage>"
			"<SystemDefaultLCID>1033</SystemDefaultLCID><Priority>5</Priority>"
			"</Machine></Identification><ReportDetails>"
			"<ReportContent>State Message Data</ReportContent>"
			"<ReportType>Full</ReportType><Date>");
	buf_put(b, tmp, put_time(tmp, now, true) - tmp);
	BUF_LIT(b, "</Date><Version>1.0</Version><Format>1.0</Format>"
			"</ReportDetails></ReportHeader><ReportBody>");
	for (int i = 0; i < up->nmsgs; i++)
	{
		Msg		   *m = &up->msgs[i];
		Topic	   *t = &topics[m->topic];
		char	   *p;

		buf_reserve(b, 300 + t->idlen);
		p = b->data + b->len;
		memcpy(p, "<StateMessage MessageTime=\"", 27);
		p = put_time(p + 27, m->time, true);
		memcpy(p, "\" SerialNumber=\"", 16);
		p = put_uint(p + 16, m->serial);
		memcpy(p, "\"><Topic ID=\"", 13);
		p += 13;
		memcpy(p, t->id, t->idlen);
		p += t->idlen;
		memcpy(p, "\" Type=\"", 8);
		p = put_uint(p + 8, t->type);
		memcpy(p, "\" IDType=\"", 10);
		p = put_uint(p + 10, t->id_type);
		memcpy(p, "\" User=\"\" UserSID=\"\"/><State ID=\"", 33);
		p = put_uint(p + 33, m->state);
		memcpy(p, "\" Criticality=\"0\"/></StateMessage>", 34);
		b->len = p + 34 - b->data;
	}
	BUF_LIT(b, "</ReportBody></Report>");
}

/* ---------------------------------------------------------------------- */
/* The model of the rules (README, The rules), per client */

static inline int64_t
eff_usecs(const Msg *m)
{
	return (int64_t) m->time * USEC;	/* no clock runs ahead here */
}

static void
note_seen(Server *c, int64_t s)
{
	int64_t		byte = s / 8;

	if (byte >= c->seen_bytes)
	{
		int64_t		n = (byte + 1) * 2;

		c->seen = realloc(c->seen, n);
		if (!c->seen)
			die("out of memory");
		memset(c->seen + c->seen_bytes, 0, n - c->seen_bytes);
		c->seen_bytes = n;
	}
	c->seen[byte] |= 1 << (s % 8);
}

static bool
was_seen(Server *c, int64_t s)
{
	return s / 8 < c->seen_bytes && (c->seen[s / 8] & (1 << (s % 8)));
}

/* Issue a request: dated now, but after the client's last completion */
static void
model_issue(Server *c, int64_t now)
{
	int64_t		t = now;

	if (c->has_completed && c->completed + 1 > t)
		t = c->completed + 1;
	c->issued = t;
	c->has_issued = true;
	c->issued_count++;
	c->undelivered = true;
}

/* A completion: dated now, but after the last issue; forgets the ranges below */
static void
model_complete(Server *c, int64_t serial, int64_t now)
{
	int64_t		t = now;
	int			keep = 0;

	if (c->has_issued && c->issued + 1 > t)
		t = c->issued + 1;
	c->completed = t;
	c->has_completed = true;
	c->undelivered = false;		/* every open request is completed */
	if (serial < 0)
		return;
	for (int i = 0; i < c->nranges; i++)
		if (c->ranges[i].last >= serial)
			c->ranges[keep++] = c->ranges[i];
	c->nranges = keep;
}

static bool
outstanding(Server *c)
{
	return c->has_issued && (!c->has_completed || c->completed < c->issued);
}

static void
add_range(Server *c, int64_t first, int64_t last, int64_t detected, int pos)
{
	if (c->nranges == c->rcap)
	{
		c->rcap = c->rcap ? c->rcap * 2 : 4;
		c->ranges = realloc(c->ranges, c->rcap * sizeof(Range));
		if (!c->ranges)
			die("out of memory");
	}
	memmove(&c->ranges[pos + 1], &c->ranges[pos],
			(c->nranges - pos) * sizeof(Range));
	c->ranges[pos].first = first;
	c->ranges[pos].last = last;
	c->ranges[pos].detected = detected;
	c->nranges++;
}

static int
find_range(Server *c, int64_t s)
{
	for (int i = 0; i < c->nranges; i++)
		if (c->ranges[i].first <= s && s <= c->ranges[i].last)
			return i;
	return -1;
}

/*
 * A serial reset at serial s: a new epoch that started at time started,
 * the old ranges dropped, a request issued
 */
static void
model_reset(Server *c, int64_t s, int64_t started, int64_t now)
{
	c->resets++;
	c->epoch++;
	c->epoch_started = started;
	c->has_epoch_started = true;
	c->next = s + 1;
	c->nranges = 0;
	if (c->seen)
		memset(c->seen, 0, c->seen_bytes);
	model_issue(c, now);
}

/*
 * Is a resync answer's 700/2 a serial reset where the answer begins (below
 * next, in no range, later than the client's newest)?  Then the reset is
 * the answer's first message.
 */
static bool
answer_resets(Server *c, const Msg *complete)
{
	return complete->serial < c->next && find_range(c, complete->serial) < 0 &&
		c->has_lmt && eff_usecs(complete) > c->lmt;
}

/* The newest-state rule: is message m (of epoch) newer than the state? */
static bool
is_newer(const Msg *m, int64_t epoch, const StateEntry *s)
{
	if (m->serial >= 0 && s->serial_plus1)
	{
		if (epoch != s->epoch)
			return epoch > s->epoch;
		return m->serial > (int64_t) s->serial_plus1 - 1;
	}
	return m->time >= s->time;
}

/*
 * One client's messages of one statement, in arrival order, at engine
 * clock now (usecs since T0): serial tracking, resets, completions and the
 * current state, as the README's rules say.
 */
static void
model_chunk(int ci, Msg **rows, int n, int64_t now)
{
	Server	   *c = &clients[ci].srv;
	static int *answer_of;		/* each message's answer's 700/2, or -1 */
	static int	answer_cap;
	int			answer = -1;	/* the 700/2 of the answer being processed */
	bool		answer_stale = false;	/* it is stale as a whole */
	bool		answer_reset_here = false;	/* an answer reset before it */
	int			first_end = -1;	/* the statement's first answer's 700/2 */
	int			last_end = -1;	/* and its last's */
	int			prev_end = -1;

	if (!c->known)
	{
		c->known = true;
		c->states = xcalloc(ntopics, sizeof(StateEntry));
	}

	/*
	 * The resync answers: every 700/2 with a serial ends one, with the
	 * serialized messages before it whose serials count down one by one
	 * from it (messages without a serial are skipped), back to the
	 * previous answer's 700/2 at most; each answer is judged as a whole at
	 * its first message
	 */
	if (n > answer_cap)
	{
		answer_cap = n * 2;
		free(answer_of);
		answer_of = xcalloc(answer_cap, sizeof(int));
	}
	for (int i = 0; i < n; i++)
		answer_of[i] = -1;
	for (int end = 0; end < n; end++)
	{
		int64_t		prev;

		if (rows[end]->serial < 0 || rows[end]->topic != TOPIC_RESYNC ||
			rows[end]->state != 2)
			continue;
		answer_of[end] = end;
		prev = rows[end]->serial;
		for (int i = end - 1; i > prev_end; i--)
		{
			if (rows[i]->serial < 0)
				continue;
			if (rows[i]->serial != prev - 1)
				break;
			prev = rows[i]->serial;
			answer_of[i] = end;
		}
		if (first_end < 0)
			first_end = end;
		else
			n_answers_after_another++;
		prev_end = last_end = end;
	}

	/* a client without a baseline: the lowest serial, up to a reset */
	if (!c->has_next)
	{
		bool		any = false;
		int64_t		min = 0,
					newest = 0;

		for (int i = 0; i < n; i++)
		{
			Msg		   *m = rows[i];

			if (m->serial < 0)
				continue;
			if (any && m->serial < min && eff_usecs(m) > newest)
				break;
			if (!any || m->serial < min)
				min = m->serial;
			if (!any || eff_usecs(m) > newest)
				newest = eff_usecs(m);
			any = true;
		}
		if (any)
		{
			c->has_next = true;
			c->next = min;
		}
	}

	for (int i = 0; i < n; i++)
	{
		Msg		   *m = rows[i];
		int64_t		s = m->serial;
		int64_t		eff = eff_usecs(m);
		int			v;
		int			pos;

		bool		first = answer_of[i] >= 0 && answer_of[i] != answer;

		if (answer_of[i] >= 0)
			answer = answer_of[i];
		if (first)
		{
			/* an answer whose 700/2 is before the epoch began: stale */
			answer_stale = c->has_epoch_started &&
				eff_usecs(rows[answer]) < c->epoch_started;
			n_stale_answers += answer_stale;
			n_answers_after_reset += answer_reset_here;
		}

		c->processed++;
		n_processed++;
		if (m->topic == TOPIC_RESYNC && m->state == 2)
			n_answers_processed++;
		if (s < 0)
		{
			v = V_UNSERIALIZED;
			c->unserialized++;
		}
		else if (answer_of[i] >= 0 && answer_stale)
			v = V_DUPLICATE;	/* an answer sent before the reinstall */
		else if (answer_of[i] < 0 && c->has_epoch_started &&
				 eff < c->epoch_started)
		{
			v = V_DUPLICATE;	/* stale: sent before the reinstall */
			n_stale_by_answer += i < last_end;
		}
		else if (first && answer_resets(c, rows[answer]))
		{
			/* a reinstalled client answering: the reset is the answer's */
			v = V_SERIAL_RESET;
			model_reset(c, s, eff_usecs(rows[answer]), now);
			n_answer_resets++;
			answer_reset_here = true;
		}
		else if (s == c->next)
		{
			v = V_IN_ORDER;
			c->next = s + 1;
		}
		else if (s > c->next)
		{
			v = V_GAP;
			add_range(c, c->next, s - 1, now, c->nranges);
			c->missing += s - c->next;
			c->next = s + 1;
		}
		else if ((pos = find_range(c, s)) >= 0)
		{
			Range		r = c->ranges[pos];

			v = V_LATE_FILL;
			c->late_fills++;
			c->nranges--;
			memmove(&c->ranges[pos], &c->ranges[pos + 1],
					(c->nranges - pos) * sizeof(Range));
			if (s < r.last)
				add_range(c, s + 1, r.last, r.detected, pos);
			if (r.first < s)
				add_range(c, r.first, s - 1, r.detected, pos);
		}
		else if (c->has_lmt && eff > c->lmt)
		{
			v = V_SERIAL_RESET;
			model_reset(c, s, eff, now);
		}
		else
			v = V_DUPLICATE;

		v_model[v]++;
		if (ci == opt_trace)
		{
			static const char *names[] = {"in_order", "gap", "late_fill",
			"duplicate", "serial_reset", "unserialized"};

			printf("fleet: trace client %d at %+lld s: serial %lld, %d/%s state %d at %+d s: %s; next %lld, epoch %lld, %d ranges%s\n",
				   ci, (long long) (now / USEC), (long long) s, topics[m->topic].type,
				   topics[m->topic].id, m->state, m->time, names[v],
				   (long long) c->next, (long long) c->epoch, c->nranges,
				   answer_of[i] >= 0 ? (answer_stale ? ", in a stale resync answer" :
										", in a resync answer") : "");
		}
		if (v == V_DUPLICATE)
		{
			c->duplicates++;
			continue;
		}
		if (s >= 0)
		{
			if (!c->has_lmt || eff > c->lmt)
				c->lmt = eff;
			c->has_lmt = true;
			note_seen(c, s);
		}
		if (m->topic == TOPIC_RESYNC && m->state == 2)
			model_complete(c, s, now);
		{
			StateEntry *st = &c->states[m->topic];

			if (!st->present || is_newer(m, c->epoch, st))
			{
				st->present = 1;
				st->serial_plus1 = s >= 0 ? (uint32_t) (s + 1) : 0;
				st->epoch = (uint16_t) c->epoch;
				st->time = m->time;
				st->state = (int16_t) m->state;
				st->fsp = (uint8_t) m->fsp;
			}
		}
	}
}

/*
 * One statement of uploads, in delivery order, through the model: each
 * client's messages in arrival order (a stable counting sort by client)
 */
static void
model_statement(Upload **ups, int nups, int64_t now)
{
	static Msg **msgs;
	static int *start;
	static int	cap;
	int			n = 0;

	if (nups == 1)
	{
		Msg		   *one[4096];
		Msg		  **p = ups[0]->nmsgs <= 4096 ? one : xmalloc(ups[0]->nmsgs * sizeof(Msg *));

		for (int i = 0; i < ups[0]->nmsgs; i++)
			p[i] = &ups[0]->msgs[i];
		model_chunk(ups[0]->client, p, ups[0]->nmsgs, now);
		if (p != one)
			free(p);
		return;
	}
	for (int u = 0; u < nups; u++)
		n += ups[u]->nmsgs;
	if (!start)
		start = xcalloc(opt_clients + 1, sizeof(int));
	if (n > cap)
	{
		cap = n * 2;
		msgs = realloc(msgs, cap * sizeof(Msg *));
		if (!msgs)
			die("out of memory");
	}
	memset(start, 0, (opt_clients + 1) * sizeof(int));
	for (int u = 0; u < nups; u++)
		start[ups[u]->client + 1] += ups[u]->nmsgs;
	for (int i = 0; i < opt_clients; i++)
		start[i + 1] += start[i];
	for (int u = 0; u < nups; u++)
		for (int i = 0; i < ups[u]->nmsgs; i++)
			msgs[start[ups[u]->client]++] = &ups[u]->msgs[i];
	/* start[i] is now where client i + 1 begins */
	for (int i = 0, from = 0; i < opt_clients; i++)
	{
		if (start[i] > from)
			model_chunk(i, msgs + from, start[i] - from, now);
		from = start[i];
	}
}

/* ---------------------------------------------------------------------- */
/* Queued mode: the model's queues */

/* Append a message to a client's queue, growing it (or compacting it) */
static void
fifo_push(Fifo *f, const Msg *m)
{
	if (f->n == f->cap)
	{
		if (f->head > 0 && f->head >= f->n / 2)
		{
			/* reuse the room the processed messages left */
			memmove(f->msgs, f->msgs + f->head, (f->n - f->head) * sizeof(Msg));
			f->n -= f->head;
			f->head = 0;
		}
		else
		{
			f->cap = f->cap ? f->cap * 2 : 16;
			f->msgs = realloc(f->msgs, f->cap * sizeof(Msg));
			if (!f->msgs)
				die("out of memory");
		}
	}
	f->msgs[f->n++] = *m;
}

/* How many messages wait in a client's queue */
static inline int
fifo_len(const Fifo *f)
{
	return f->n - f->head;
}

/*
 * One statement of uploads enqueued (README, Queued processing, Which
 * queue): relayed (fsp) messages join fsp; else every message of a client
 * whose messages in the statement include a 700/2 joins high, and so do
 * topic types of state_msg.high_priority_topic_types (800, the default);
 * the rest join low.  Each queue keeps a client's messages in the order
 * they were enqueued.
 */
static void
model_enqueue(Upload **ups, int nups)
{
	static bool *answering;

	if (!answering)
		answering = xcalloc(opt_clients, sizeof(bool));
	for (int u = 0; u < nups; u++)
		for (int i = 0; i < ups[u]->nmsgs; i++)
			if (ups[u]->msgs[i].topic == TOPIC_RESYNC && ups[u]->msgs[i].state == 2)
				answering[ups[u]->client] = true;
	for (int u = 0; u < nups; u++)
		for (int i = 0; i < ups[u]->nmsgs; i++)
		{
			Msg		   *m = &ups[u]->msgs[i];
			int			q = m->fsp ? Q_FSP :
				answering[ups[u]->client] || topics[m->topic].type == 800 ? Q_HIGH :
				Q_LOW;

			fifo_push(&clients[ups[u]->client].srv.queued[q], m);
			n_waiting++;
		}
	for (int u = 0; u < nups; u++)
		answering[ups[u]->client] = false;
}

/*
 * Client ci's next n waiting messages were processed in one batch at
 * engine clock now: a batch takes the queues in the order high, low, fsp,
 * a low message only once every high one was taken, and from a queue a
 * client's oldest first (README, Draining), so they are the high queue's
 * first, then the low queue's, then the fsp queue's; they go through the
 * rules as the client's messages of one statement
 */
static void
model_processed(int ci, int64_t n, int64_t now)
{
	Server	   *c = &clients[ci].srv;
	static Msg **rows;
	static int64_t cap;
	int64_t		k = 0;

	if (n > cap)
	{
		cap = n * 2;
		free(rows);
		rows = xmalloc(cap * sizeof(Msg *));
	}
	for (int q = 0; q < NQUEUES && k < n; q++)
	{
		Fifo	   *f = &c->queued[q];

		while (k < n && fifo_len(f) > 0)
			rows[k++] = &f->msgs[f->head++];
	}
	if (k < n)
		diff("client %d: %lld messages processed at %+lld s, but only %lld waited",
			 ci, (long long) n, (long long) (now / USEC), (long long) k);
	n_waiting -= k;
	if (k > 0)
		model_chunk(ci, rows, (int) k, now);
	/* the rows point into the queues until model_chunk is done */
	for (int q = 0; q < NQUEUES; q++)
		if (c->queued[q].head == c->queued[q].n)
			c->queued[q].head = c->queued[q].n = 0;
}

/* How many messages of a client wait, in all queues */
static int
waiting_of(Server *c)
{
	int			n = 0;

	for (int q = 0; q < NQUEUES; q++)
		n += fifo_len(&c->queued[q]);
	return n;
}

/* Does a 700/2 of the client wait in a queue (its answer)? */
static bool
answer_waits(Server *c)
{
	for (int q = 0; q < NQUEUES; q++)
		for (int i = c->queued[q].head; i < c->queued[q].n; i++)
			if (c->queued[q].msgs[i].topic == TOPIC_RESYNC &&
				c->queued[q].msgs[i].state == 2)
				return true;
	return false;
}

/* Does a message with a serial in [first, last] wait in a queue? */
static bool
serial_waits(Server *c, int64_t first, int64_t last)
{
	for (int q = 0; q < NQUEUES; q++)
		for (int i = c->queued[q].head; i < c->queued[q].n; i++)
		{
			int64_t		s = c->queued[q].msgs[i].serial;

			if (s >= first && s <= last)
				return true;
		}
	return false;
}

/*
 * The check cycle as of as_of (usecs since T0); returns issued, reissued
 * and held back.  With state_msg.backlog_aware_resync on, a client whose
 * reissue is due but whose 700/2 waits in a queue, or whose request is
 * due but a serial of one of its old enough missing ranges waits, is held
 * back (resync_held_back_clients())
 */
static void
model_check(int64_t as_of, int64_t age, int64_t period, int64_t *issued,
			int64_t *reissued, int64_t *held)
{
	*issued = *reissued = *held = 0;
	for (int i = 0; i < opt_clients; i++)
	{
		Server	   *c = &clients[i].srv;

		if (!c->known)
			continue;
		if (outstanding(c))
		{
			if (c->issued <= as_of - period)
			{
				if (backlog_aware > 0 && answer_waits(c))
					(*held)++;
				else
				{
					model_issue(c, as_of);
					(*reissued)++;
				}
			}
		}
		else
		{
			bool		due = false,
						waits = false;

			for (int r = 0; r < c->nranges; r++)
				if (c->ranges[r].detected <= as_of - age)
				{
					due = true;
					if (backlog_aware > 0 &&
						serial_waits(c, c->ranges[r].first, c->ranges[r].last))
						waits = true;
				}
			if (due && waits)
				(*held)++;
			else if (due)
			{
				model_issue(c, as_of);
				(*issued)++;
			}
		}
	}
}

/* A deep copy of the model (site-restore: the backup) */
static Server *
model_snapshot(void)
{
	Server	   *copy = xmalloc(opt_clients * sizeof(Server));

	for (int i = 0; i < opt_clients; i++)
	{
		Server	   *c = &clients[i].srv;
		Server	   *d = &copy[i];

		*d = *c;
		d->ranges = NULL;
		d->states = NULL;
		d->seen = NULL;
		if (c->rcap)
		{
			d->ranges = xmalloc(c->rcap * sizeof(Range));
			memcpy(d->ranges, c->ranges, c->nranges * sizeof(Range));
		}
		if (c->states)
		{
			d->states = xmalloc(ntopics * sizeof(StateEntry));
			memcpy(d->states, c->states, ntopics * sizeof(StateEntry));
		}
		if (c->seen_bytes)
		{
			d->seen = xmalloc(c->seen_bytes);
			memcpy(d->seen, c->seen, c->seen_bytes);
		}
		for (int q = 0; q < NQUEUES; q++)
		{
			Fifo	   *f = &c->queued[q];

			d->queued[q].msgs = NULL;
			d->queued[q].head = d->queued[q].n = d->queued[q].cap = 0;
			for (int j = f->head; j < f->n; j++)
				fifo_push(&d->queued[q], &f->msgs[j]);
		}
	}
	return copy;
}

/* ---------------------------------------------------------------------- */
/* The server */

static PGresult *
run(const char *sql, ExecStatusType expect)
{
	PGresult   *res = PQexec(conn, sql);

	if (PQresultStatus(res) != expect)
		die("%s: %s", sql, PQerrorMessage(conn));
	return res;
}

static void
run_command(const char *sql)
{
	PQclear(run(sql, PGRES_COMMAND_OK));
}

static int64_t
query_int(const char *sql)
{
	PGresult   *res = run(sql, PGRES_TUPLES_OK);
	int64_t		v;

	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
		die("%s: expected one value", sql);
	v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return v;
}

/*
 * Send several statements in one round trip; their results come from
 * next_rows()
 */
static void
send_statements(const char *sql)
{
	if (!PQsendQuery(conn, sql))
		die("%s: %s", sql, PQerrorMessage(conn));
}

/*
 * The next result holding rows of the statements send_statements() sent, or
 * NULL after the last; the results of commands (the clock's SET) are
 * skipped, so a caller tells its queries apart by their columns alone, and
 * any error ends the run
 */
static PGresult *
next_rows(const char *sql)
{
	PGresult   *res;

	while ((res = PQgetResult(conn)) != NULL)
	{
		ExecStatusType st = PQresultStatus(res);

		if (st == PGRES_TUPLES_OK)
			return res;
		if (st != PGRES_COMMAND_OK)
			die("%s: %s", sql, PQerrorMessage(conn));
		PQclear(res);
	}
	return NULL;
}

/*
 * The engine clock: set_clock() says which simulated time (seconds since
 * T0) it must read from now on; the SET is sent with the next statement
 * (clock_sql), so a cycle without statements costs nothing.  The offset is
 * computed when it is sent, so the engine clock reads the simulated time
 * then, plus the real time the statements that follow take (at most a
 * minute: then it is sent again).  No outcome depends on it: detections,
 * issues and check cycles the rules compare are 7.5 simulated minutes
 * apart or more, and issues and completions within a cycle follow each
 * other in event order whatever the clock says (README, Event times).
 */
static int64_t clock_target = INT64_MIN;
static int64_t clock_sent = INT64_MIN;
static int64_t clock_sent_at;	/* local clock when it was sent */

static void
set_clock(int64_t sim)
{
	clock_target = sim;
}

/* The SET for the clock, if it must be sent, else an empty string */
static const char *
clock_sql(void)
{
	static char sql[128];
	int64_t		offset;

	/* sent again after a real minute, so a long cycle does not drift */
	if (clock_target == clock_sent && local_usecs() - clock_sent_at < 60 * USEC)
		return "";
	clock_sent = clock_target;
	clock_sent_at = local_usecs();
	offset = (T0_UNIX + clock_target) * USEC - (local_usecs() + server_delta);
	snprintf(sql, sizeof(sql), "SET state_msg.clock_offset = '%lldus';",
			 (long long) offset);
	return sql;
}

/* Send the clock's SET now, if it must be sent */
static void
sync_clock(void)
{
	const char *sql = clock_sql();

	if (*sql)
		run_command(sql);
}

static void
connect_db(void)
{
	const char *keys[6];
	const char *vals[6];
	int			n = 0;
	int64_t		before,
				after,
				server;

	keys[n] = "dbname";
	vals[n++] = opt_dbname;
	if (opt_host)
	{
		keys[n] = "host";
		vals[n++] = opt_host;
	}
	if (opt_port)
	{
		keys[n] = "port";
		vals[n++] = opt_port;
	}
	if (opt_user)
	{
		keys[n] = "user";
		vals[n++] = opt_user;
	}
	keys[n] = "application_name";
	vals[n++] = "fleet";
	keys[n] = NULL;
	vals[n] = NULL;
	conn = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(conn) != CONNECTION_OK)
		die("cannot connect: %s", PQerrorMessage(conn));
	run_command("SET timezone = 'UTC'");
	run_command("SET client_min_messages = warning");
	run_command("SET state_msg.on_bad_message = error");
	before = local_usecs();
	server = query_int("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint");
	after = local_usecs();
	server_delta = server - (before + after) / 2;
}

/*
 * With --progress N, a line each time a statement takes the messages
 * delivered past a multiple of N: the count, the seconds since the start
 * and the seconds spent in the statements that delivered messages (from
 * sending to their result: not the check cycles, claims or the simulator's
 * own work), from which a benchmark reads the rate of any stretch of the
 * stream
 */
static double progress_start,
			statement_secs;

static void
progress_line(double elapsed)
{
	printf("fleet: progress: %lld messages delivered, %.3f s, %.3f s in statements\n",
		   (long long) n_delivered, elapsed, statement_secs);
}

static void
progress_note(int64_t before, double sent)
{
	statement_secs += mono_seconds() - sent;
	if (opt_progress > 0 && n_delivered / opt_progress > before / opt_progress)
		progress_line(mono_seconds() - progress_start);
}

/* Send one statement of uploads; with reports, one call per upload */
static void
deliver_statement(Upload **ups, int nups, int32_t now)
{
	static Buf	buf;
	bool		fsp = ups[0]->msgs[0].fsp;
	int64_t		before_stmt = n_delivered;
	double		sent;

	n_statements++;
	for (int u = 0; u < nups; u++)
		n_delivered += ups[u]->nmsgs;
	if (opt_via_report && !fsp)
	{
		/* one report per upload (nups is 1) */
		int64_t		before[8];
		PGresult   *res;
		const char *param;
		static const char *sql = "SELECT messages, in_order, gap, late_fill,"
			" duplicate, serial_reset, unserialized, rejected"
			" FROM state_msg.ingest_report($1)";

		memcpy(before, v_model, sizeof(before));
		buf.len = 0;
		format_report(&buf, ups[0], now);
		buf_put(&buf, "", 1);
		if (queued)
			model_enqueue(ups, nups);	/* verdicts all 0: nothing processed */
		else
			model_statement(ups, nups, (int64_t) now * USEC);
		if (opt_dry_run)
			return;
		param = buf.data;
		sent = mono_seconds();
		sync_clock();
		res = PQexecParams(conn, sql, 1, NULL, &param, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
			die("ingest_report: %s", PQerrorMessage(conn));
		if (strtoll(PQgetvalue(res, 0, 0), NULL, 10) != ups[0]->nmsgs ||
			strtoll(PQgetvalue(res, 0, 7), NULL, 10) != 0)
			diff("client %d: report of %d messages: ingest_report counted %s messages, %s rejected",
				 ups[0]->client, ups[0]->nmsgs, PQgetvalue(res, 0, 0),
				 PQgetvalue(res, 0, 7));
		for (int v = 0; v <= V_UNSERIALIZED; v++)
		{
			int64_t		got = strtoll(PQgetvalue(res, 0, v + 1), NULL, 10);

			if (got != v_model[v] - before[v])
				diff("client %d: report of %d messages at %+d s: %s = %lld, rules say %lld",
					 ups[0]->client, ups[0]->nmsgs, now, PQfname(res, v + 1),
					 (long long) got, (long long) (v_model[v] - before[v]));
		}
		PQclear(res);
		progress_note(before_stmt, sent);
		return;
	}

	buf.len = 0;
	for (int u = 0; u < nups; u++)
		format_copy(&buf, ups[u]);
	if (queued)
		model_enqueue(ups, nups);
	else
		model_statement(ups, nups, (int64_t) now * USEC);
	if (opt_dry_run)
		return;
	{
		char		sql[512];
		PGresult   *res;

		/* the clock's SET, if due, and the COPY in one round trip */
		sent = mono_seconds();
		snprintf(sql, sizeof(sql), "%sCOPY state_msg.inbox (client_id,"
				 " serial_number, topic_type, topic_id, topic_id_type, state_id,"
				 " criticality, message_time, source) FROM STDIN", clock_sql());
		if (!PQsendQuery(conn, sql))
			die("COPY: %s", PQerrorMessage(conn));
		while ((res = PQgetResult(conn)) != NULL &&
			   PQresultStatus(res) == PGRES_COMMAND_OK)
			PQclear(res);
		if (PQresultStatus(res) != PGRES_COPY_IN)
			die("COPY: %s", PQerrorMessage(conn));
		PQclear(res);
		if (PQputCopyData(conn, buf.data, (int) buf.len) != 1 ||
			PQputCopyEnd(conn, NULL) != 1)
			die("COPY: %s", PQerrorMessage(conn));
		res = PQgetResult(conn);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			die("COPY: %s", PQerrorMessage(conn));
		PQclear(res);
		while ((res = PQgetResult(conn)) != NULL)
			PQclear(res);
	}
	progress_note(before_stmt, sent);
}

/* Deliver what arrives in a cycle: one statement per upload, or one in all */
static void
deliver_bucket(Bucket *b, int32_t now)
{
	static Upload **ups;
	static int	cap;
	int			n = 0;

	for (Upload *u = b->head; u; u = u->next)
		n++;
	if (n > cap)
	{
		cap = n * 2;
		ups = realloc(ups, cap * sizeof(Upload *));
		if (!ups)
			die("out of memory");
	}
	n = 0;
	for (Upload *u = b->head; u; u = u->next)
		ups[n++] = u;
	if (opt_batch_cycle && !opt_via_report)
	{
		if (n > 0)
			deliver_statement(ups, n, now);
	}
	else
		for (int i = 0; i < n; i++)
			deliver_statement(&ups[i], 1, now);
	for (Upload *u = b->head; u;)
	{
		Upload	   *next = u->next;

		free(u);
		u = next;
	}
	b->head = b->tail = NULL;
}

/*
 * The fallback status point forwards what it queued, at most its throttle
 * per cycle (whole clients' batches), in one statement
 */
static void
deliver_fsp(int32_t now)
{
	static Upload **ups;
	static int	cap;
	int			n = 0,
				k = 0;

	while (fsp_head && (k == 0 || k + fsp_head->nmsgs <= FSP_PER_CYCLE))
	{
		Upload	   *u = fsp_head;

		fsp_head = u->next;
		if (!fsp_head)
			fsp_tail = NULL;
		fsp_queued -= u->nmsgs;
		k += u->nmsgs;
		if (n == cap)
		{
			cap = cap ? cap * 2 : 64;
			ups = realloc(ups, cap * sizeof(Upload *));
			if (!ups)
				die("out of memory");
		}
		ups[n++] = u;
	}
	if (n == 0)
		return;
	n_fsp += k;
	deliver_statement(ups, n, now);
	for (int i = 0; i < n; i++)
		free(ups[i]);
}

/*
 * Queued mode: process up to limit waiting messages (-1: all) at simulated
 * second now, as the site's drainer would between cycles, by
 * state_msg.process_queue_batch() in a loop (the simulator must be the only
 * drainer: no worker, no pg_cron job).  Which clients a batch served is
 * the engine's choice (shard by shard): after each batch the simulator
 * reads the messages_processed of the clients processed since a little
 * before now (the engine clock agrees with the simulation only to a few
 * milliseconds; the previous cycle's drain was 15 minutes earlier) and
 * feeds each client's new ones to the model (model_processed()); what
 * they add up to must be what the batch returned.
 */
static void
drain(int64_t limit, int32_t now)
{
	set_clock(now);
	while (limit != 0 && n_waiting > 0)
	{
		int64_t		got = -1,
					sum = 0;

		if (opt_dry_run)
		{
			/* no server: the clients in order, high, then low, then fsp */
			int64_t		left = limit < 0 ? 10000 : limit < 10000 ? limit : 10000;
			int64_t    *take = xcalloc(opt_clients, sizeof(int64_t));

			for (int q = 0; q < NQUEUES && left > 0; q++)
				for (int i = 0; i < opt_clients && left > 0; i++)
				{
					int			n = fifo_len(&clients[i].srv.queued[q]);

					if (q > 0 && take[i] < fifo_len(&clients[i].srv.queued[0]))
						continue;
					n = n < left ? n : (int) left;
					take[i] += n;
					left -= n;
				}
			got = 0;
			for (int i = 0; i < opt_clients; i++)
				if (take[i] > 0)
				{
					model_processed(i, take[i], (int64_t) now * USEC);
					got += take[i];
				}
			free(take);
			sum = got;
		}
		else
		{
			char	   *sql;
			char		n[32] = "NULL";
			PGresult   *res;

			if (limit > 0)
				snprintf(n, sizeof(n), "%lld",
						 (long long) (limit < 1000000000 ? limit : 1000000000));
			sql = psprintf("%sSELECT state_msg.process_queue_batch(%s);"
						   "SELECT client_id, messages_processed FROM state_msg.clients"
						   " WHERE last_processed_time >= to_timestamp(%lld)%s",
						   clock_sql(), n, (long long) (T0_UNIX + now - HALF_CYCLE / 2), fleet_only("AND"));
			send_statements(sql);
			while ((res = next_rows(sql)) != NULL)
			{
				if (PQnfields(res) == 1)
					got = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
				else
					for (int j = 0; j < PQntuples(res); j++)
					{
						int			i = client_index(PQgetvalue(res, j, 0));
						int64_t		d;

						if (i < 0)
							continue;
						d = strtoll(PQgetvalue(res, j, 1), NULL, 10) -
							clients[i].srv.processed;
						if (d > 0)
						{
							model_processed(i, d, (int64_t) now * USEC);
							sum += d;
						}
					}
				PQclear(res);
			}
			free(sql);
		}
		if (sum != got)
			diff("a batch at %+d s processed %lld messages, the clients' counters grew by %lld",
				 now, (long long) got, (long long) sum);
		n_drained += got;
		if (got <= 0)
			break;
		if (limit > 0)
			limit = got >= limit ? 0 : limit - got;
	}
}

/*
 * The end of the run drains everything: lift the fsp throttle (to its
 * largest value, in the simulator's session), so that the relayed
 * messages it still holds back are processed too
 */
static void
lift_fsp_throttle(void)
{
	if (!opt_dry_run)
		run_command("SET state_msg.fsp_throttle_messages = 2147483647");
}

/* ---------------------------------------------------------------------- */
/* Clients and scenarios */

static void
bucket_add(int cycle, Upload *u)
{
	Bucket	   *b;

	if (cycle >= nbuckets)
		cycle = nbuckets - 1;
	b = &buckets[cycle];
	u->next = NULL;
	if (b->tail)
		b->tail->next = u;
	else
		b->head = u;
	b->tail = u;
}

static Upload *
upload_new(int client, Msg *msgs, int n, bool answer)
{
	Upload	   *u = xmalloc(sizeof(Upload) + n * sizeof(Msg));

	u->next = NULL;
	u->client = client;
	u->nmsgs = n;
	u->answer = answer;
	memcpy(u->msgs, msgs, n * sizeof(Msg));
	return u;
}

/* Decide an upload's fate: lost, late, on time; and maybe a second copy */
static void
send_upload(Client *cl, int ci, Msg *msgs, int n, bool answer, int cycle,
			bool faults)
{
	Upload	   *u;
	bool		lost;

	n_uploads++;
	if (answer)
		n_answers++;
	lost = faults && ((cl->storm && cycle >= ncycles / 8 &&
					   cycle < ncycles / 8 + 24) ||
					  rng_unit(&cl->rng) < opt_loss);
	if (lost)
	{
		n_lost++;
		n_lost_msgs += n;
		return;
	}
	u = upload_new(ci, msgs, n, answer);
	if (faults && rng_unit(&cl->rng) < opt_late)
	{
		n_late++;
		bucket_add(cycle + 1 + rng_below(&cl->rng, opt_late_max), u);
	}
	else
		bucket_add(cycle, u);
	if (faults && rng_unit(&cl->rng) < opt_dup)
	{
		n_dup++;
		bucket_add(cycle + rng_below(&cl->rng, 3),
				   upload_new(ci, msgs, n, answer));
	}
}

static int
msg_time_cmp(const void *a, const void *b)
{
	const Msg  *x = a,
			   *y = b;

	return x->time < y->time ? -1 : x->time > y->time;
}

/* Add a raised message to a cycle's list (times within the cycle) */
static inline void
raise_msg(Msg *out, int *n, int topic, int state, int32_t time)
{
	out[*n].serial = -1;
	out[*n].time = time;
	out[*n].topic = topic;
	out[*n].state = state;
	out[*n].fsp = 0;
	(*n)++;
}

/* Messages of a Patch Tuesday for client cl in cycle k */
static void
patch_tuesday(Client *cl, int k, int32_t base, Msg *out, int *n)
{
	Rng		   *r = &cl->rng;
	int			next = INT32_MAX;

	if (k < cl->next_event)
		return;
	if (k == cl->scan_cycle)
	{
		int32_t		t = base + 1 + rng_below(r, 300);

		raise_msg(out, n, TOPIC_SCAN, 2, t);
		raise_msg(out, n, TOPIC_SCAN, 3, t + 60 + rng_below(r, 200));
		for (int u = 0; u < opt_updates; u++)
		{
			double		x = rng_unit(r);
			int			state = x < opt_required ? 2 :
				x < opt_required + (1 - opt_required) / 5 ? 3 : 1;

			raise_msg(out, n, TOPIC_UPDATES + u, state, t + 300 + rng_below(r, 300));
			if (state == 2)
			{
				cl->upd_step[u] = 1;
				cl->upd_cycle[u] = (int16_t) (k + 1 + rng_below(r, 8));
			}
		}
	}
	for (int u = 0; u < opt_updates; u++)
	{
		static const int steps[] = {0, 12, 13, 7, 8};
		int			step = cl->upd_step[u];

		if (step == 0 || step > 5)
			continue;
		if (cl->upd_cycle[u] == k)
		{
			int32_t		t = base + 1 + rng_below(r, CYCLE - 10);
			int			topic = TOPIC_UPDATES + opt_updates + u;

			if (step < 5)
				raise_msg(out, n, topic, steps[step], t);
			else if (rng_unit(r) < 0.92)
			{
				raise_msg(out, n, topic, 10, t);
				raise_msg(out, n, TOPIC_UPDATES + u, 3, t + 2);
			}
			else
				raise_msg(out, n, topic, 11, t);
			cl->upd_step[u] = step + 1;
			cl->upd_cycle[u] = (int16_t) (k + 1 + rng_below(r, 2));
		}
		if (cl->upd_step[u] <= 5 && cl->upd_cycle[u] < next)
			next = cl->upd_cycle[u];
	}
	cl->next_event = next;
}

/*
 * One client's cycle k (its upload at T0 + k * 15 min): raise the
 * scenario's messages, number them, update the cache, upload; then, if a
 * resync request was claimed for it, upload the answer.
 */
static void
client_cycle(int ci, int k, bool traffic, bool faults)
{
	Client	   *cl = &clients[ci];
	Rng		   *r = &cl->rng;
	int32_t		base = (k - 1) * CYCLE; /* the cycle's messages: (base, base + 900) */
	Msg			out[4096];
	int			n = 0;

	if (traffic && opt_scenario == ROLLOUT && k == cl->install_cycle)
	{
		/* the installer's four messages, relayed by the fallback status point */
		static const int states[] = {100, 400, 500, 700};
		Msg			fsp[4];

		for (int i = 0; i < 4; i++)
		{
			fsp[i].serial = -1;
			fsp[i].time = base + 10 + 60 * i;
			fsp[i].topic = TOPIC_DEPLOY;
			fsp[i].state = states[i];
			fsp[i].fsp = 1;
		}
		{
			Upload	   *u = upload_new(ci, fsp, 4, false);

			if (fsp_tail)
				fsp_tail->next = u;
			else
				fsp_head = u;
			fsp_tail = u;
			fsp_queued += 4;
		}
		n_generated += 4;
		cl->cache[TOPIC_DEPLOY].present = 1;
		cl->cache[TOPIC_DEPLOY].state = 700;
		cl->cache[TOPIC_DEPLOY].time = fsp[3].time;
		cl->cache[TOPIC_DEPLOY].fsp = 1;
	}
	if (opt_scenario == ROLLOUT && k <= cl->install_cycle)
		return;					/* not installed yet: no uploads */

	if (traffic && k == cl->reinstall_cycle)
	{
		cl->serial = 1;			/* reinstalled: serials restart */
		n_resets_sent++;
	}

	if (traffic)
	{
		double		p = opt_rate / DAY_CYCLES;

		while (p > 0 && rng_unit(r) < p && n < 64)
		{
			raise_msg(out, &n, TOPIC_BACKGROUND + rng_below(r, NBACKGROUND),
					  1 + rng_below(r, 4), base + 1 + rng_below(r, CYCLE - 10));
			p = p > 1 ? p - 1 : p / 4;
		}
		if (opt_scenario == PATCH_TUESDAY || opt_updates > 0)
			patch_tuesday(cl, k, base, out, &n);
	}
	if (n > 0)
	{
		qsort(out, n, sizeof(Msg), msg_time_cmp);
		for (int i = 0; i < n; i++)
		{
			CacheEntry *e = &cl->cache[out[i].topic];

			out[i].serial = cl->serial++;
			e->present = 1;
			e->state = (int16_t) out[i].state;
			e->time = out[i].time;
			e->fsp = 0;
		}
		n_generated += n;
		send_upload(cl, ci, out, n, false, k, faults);
	}

	if (cl->answer_due && !cl->offline)
	{
		/* the cache renumbered, with its original times, then 700/2 */
		n = 0;
		for (int t = 0; t < ntopics; t++)
		{
			CacheEntry *e = &cl->cache[t];

			if (!e->present || t == TOPIC_RESYNC)
				continue;
			out[n].serial = cl->serial++;
			out[n].time = e->time;
			out[n].topic = t;
			out[n].state = e->state;
			out[n].fsp = 0;
			n++;
		}
		out[n].serial = cl->serial++;
		out[n].time = base + CYCLE - 1;
		out[n].topic = TOPIC_RESYNC;
		out[n].state = 2;
		out[n].fsp = 0;
		n++;
		n_generated += n;
		cl->answer_due = false;
		send_upload(cl, ci, out, n, true, k, faults);
	}
}

/* Set up the fleet for the scenario */
static void
make_fleet(void)
{
	clients = xcalloc(opt_clients, sizeof(Client));
	for (int i = 0; i < opt_clients; i++)
	{
		Client	   *cl = &clients[i];
		Rng		   *r = &cl->rng;

		rng_seed(r, opt_seed, i);
		cl->cache = xcalloc(ntopics, sizeof(CacheEntry));
		/* an existing fleet has sent messages before; a new install has not */
		cl->serial = opt_scenario == ROLLOUT ? 1 : 1 + rng_below(r, 10000);
		cl->install_cycle = opt_scenario == ROLLOUT ?
			1 + (int) rng_below(r, ncycles / 2 < DAY_CYCLES ? ncycles / 2 : DAY_CYCLES) : 0;
		cl->reinstall_cycle = rng_unit(r) < opt_reinstall ?
			1 + (int) rng_below(r, ncycles) : -1;
		cl->offline = rng_unit(r) < opt_offline;
		cl->storm = opt_scenario == RESYNC_STORM && rng_unit(r) < opt_storm;
		if (opt_scenario == PATCH_TUESDAY || opt_updates > 0)
		{
			cl->upd_step = xcalloc(opt_updates, 1);
			cl->upd_cycle = xcalloc(opt_updates, sizeof(int16_t));
			/* released at 02:00, every client scans within four hours */
			cl->scan_cycle = 9 + (int) rng_below(r, 16);
			cl->next_event = cl->scan_cycle;
		}
	}
}

/* ---------------------------------------------------------------------- */
/* Check cycles, claims, the site restore */

static int64_t setting_age, setting_period;	/* usecs */

/* Note what a claim returned: client i's request is handed to it */
static void
claimed_one(bool *claimed, const char *id, int32_t sim)
{
	int			i = client_index(id);

	if (i < 0)
		diff("claimed a request of an unknown client %s", id);
	else if (claimed[i])
		diff("client %d claimed twice at %+d s", i, sim);
	else
		claimed[i] = true;
}

/*
 * Mid-cycle at simulated second sim: the check cycle (if check), compared
 * with the model's, then the management point claims the undelivered
 * requests, compared with the model's; the claimed clients answer at their
 * next upload.  One round trip: the clock's SET, the check, the claim.
 */
static void
mid_cycle(int32_t sim, bool check)
{
	int64_t		issued = 0,
				reissued = 0,
				held = 0;
	bool	   *claimed = xcalloc(opt_clients, 1);
	int			nclaimed = 0;

	if (check)
	{
		model_check((int64_t) sim * USEC, setting_age, setting_period, &issued,
					&reissued, &held);
		n_checks_issued += issued;
		n_checks_reissued += reissued;
		n_checks_held_back += held;
		cyc_issued += issued;
		cyc_reissued += reissued;
		cyc_held += held;
	}
	if (opt_dry_run)
	{
		for (int i = 0; i < opt_clients; i++)
			claimed[i] = clients[i].srv.known && clients[i].srv.undelivered;
	}
	else
	{
		char		sql[512];
		PGresult   *res;

		snprintf(sql, sizeof(sql), "%s", clock_sql());
		if (check)
			snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql),
					 "SELECT issued, reissued FROM state_msg.run_resync_check("
					 "to_timestamp(%lld));", (long long) (T0_UNIX + sim));
		if (check && backlog_aware >= 0)
			snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql),
					 "SELECT coalesce(sum(clients), 0), 0, 0"
					 " FROM state_msg.resync_held_back WHERE as_of = to_timestamp(%lld);",
					 (long long) (T0_UNIX + sim));
		snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql),
				 "SELECT client_id FROM state_msg.claim_resync_requests(10000)");
		send_statements(sql);
		while ((res = next_rows(sql)) != NULL)
		{
			if (PQnfields(res) == 3)
			{
				int64_t		gh = strtoll(PQgetvalue(res, 0, 0), NULL, 10);

				if (gh != held)
					diff("check cycle at %+d s: held back %lld; rules say %lld",
						 sim, (long long) gh, (long long) held);
			}
			else if (PQnfields(res) == 2)
			{
				int64_t		gi = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
				int64_t		gr = strtoll(PQgetvalue(res, 0, 1), NULL, 10);

				if (gi != issued || gr != reissued)
					diff("check cycle at %+d s: issued %lld, reissued %lld; rules say %lld, %lld",
						 sim, (long long) gi, (long long) gr, (long long) issued,
						 (long long) reissued);
			}
			else
			{
				nclaimed = PQntuples(res);
				for (int j = 0; j < nclaimed; j++)
					claimed_one(claimed, PQgetvalue(res, j, 0), sim);
			}
			PQclear(res);
		}
		while (nclaimed == 10000)
		{
			res = run("SELECT client_id FROM state_msg.claim_resync_requests(10000)",
					  PGRES_TUPLES_OK);
			nclaimed = PQntuples(res);
			for (int j = 0; j < nclaimed; j++)
				claimed_one(claimed, PQgetvalue(res, j, 0), sim);
			PQclear(res);
		}
	}
	for (int i = 0; i < opt_clients; i++)
	{
		Server	   *c = &clients[i].srv;
		bool		expect = c->known && c->undelivered;

		if (claimed[i] != expect)
			diff("client %d at %+d s: %s, but the rules say it %s an undelivered request",
				 i, sim, claimed[i] ? "claimed" : "not claimed",
				 expect ? "has" : "has no");
		if (claimed[i])
		{
			n_claims++;
			c->undelivered = false;
			clients[i].answer_due = true;
		}
	}
	free(claimed);
}

/*
 * site-restore: the backup copies every table pg_dump keeps of the
 * extension (its configuration tables: clients, client_state,
 * missing_ranges, resync_requests, rejected_messages and whatever a
 * release adds) into a schema of its own; the restore empties them and
 * puts the copies back with triggers off, as pg_restore --data-only
 * --disable-triggers of a dump taken then would, and the model goes back
 * to its snapshot.
 */
static Server *backup;

static void
site_backup(void)
{
	backup = model_snapshot();
	if (opt_dry_run)
		return;
	sync_clock();
	run_command("DROP SCHEMA IF EXISTS fleet_backup CASCADE;"
				"CREATE SCHEMA fleet_backup;"
				"CREATE TABLE fleet_backup.tables AS"
				" SELECT row_number() OVER (ORDER BY c.oid) AS n, c.oid::regclass AS rel"
				" FROM pg_extension e, unnest(e.extconfig) AS x(oid)"
				" JOIN pg_class c ON c.oid = x.oid"
				" WHERE e.extname = 'state_msg' AND c.relkind IN ('r', 'p');"
				"DO $$DECLARE t record; BEGIN"
				" FOR t IN SELECT n, rel FROM fleet_backup.tables LOOP"
				"  EXECUTE format('CREATE TABLE fleet_backup.t%s AS TABLE %s', t.n, t.rel);"
				" END LOOP; END$$");
}

static void
site_restore(void)
{
	for (int i = 0; i < opt_clients; i++)
	{
		Server	   *c = &clients[i].srv;

		free(c->ranges);
		free(c->states);
		free(c->seen);
		for (int q = 0; q < NQUEUES; q++)
			free(c->queued[q].msgs);
		*c = backup[i];
	}
	free(backup);
	/* the queue's partitions are configuration tables: restored too */
	n_waiting = 0;
	for (int i = 0; i < opt_clients; i++)
		n_waiting += waiting_of(&clients[i].srv);
	if (opt_dry_run)
		return;
	run_command("BEGIN;"
				"SET LOCAL session_replication_role = replica;"
				"DO $$DECLARE t record; BEGIN"
				" EXECUTE (SELECT 'TRUNCATE ' || string_agg(rel::text, ', ')"
				"  FROM fleet_backup.tables);"
				" FOR t IN SELECT n, rel FROM fleet_backup.tables LOOP"
				"  EXECUTE format('INSERT INTO %s OVERRIDING SYSTEM VALUE"
				" SELECT * FROM fleet_backup.t%s', t.rel, t.n);"
				" END LOOP; END$$;"
				"COMMIT;"
				"DROP SCHEMA fleet_backup CASCADE");
}

/* ---------------------------------------------------------------------- */
/* The final comparison */

/* Topic index of (type, id), by a small hash table */
static int *topic_hash;
static int	topic_hash_size;

static uint32_t
topic_key(int type, const char *id)
{
	uint32_t	h = 2166136261u ^ (uint32_t) type;

	for (; *id; id++)
		h = (h ^ (uint8_t) *id) * 16777619u;
	return h;
}

static void
make_topic_hash(void)
{
	topic_hash_size = 16;
	while (topic_hash_size < ntopics * 2)
		topic_hash_size *= 2;
	topic_hash = xmalloc(topic_hash_size * sizeof(int));
	for (int i = 0; i < topic_hash_size; i++)
		topic_hash[i] = -1;
	for (int t = 0; t < ntopics; t++)
	{
		uint32_t	h = topic_key(topics[t].type, topics[t].id) & (topic_hash_size - 1);

		while (topic_hash[h] >= 0)
			h = (h + 1) & (topic_hash_size - 1);
		topic_hash[h] = t;
	}
}

static int
topic_index(int type, const char *id)
{
	uint32_t	h = topic_key(type, id) & (topic_hash_size - 1);

	while (topic_hash[h] >= 0)
	{
		int			t = topic_hash[h];

		if (topics[t].type == type && strcmp(topics[t].id, id) == 0)
			return t;
		h = (h + 1) & (topic_hash_size - 1);
	}
	return -1;
}

/* Run a query in single-row mode, calling fn for each row */
static void
each_row(const char *sql, void (*fn) (PGresult *res, void *arg), void *arg)
{
	PGresult   *res;

	if (!PQsendQuery(conn, sql) || !PQsetSingleRowMode(conn))
		die("%s: %s", sql, PQerrorMessage(conn));
	while ((res = PQgetResult(conn)) != NULL)
	{
		ExecStatusType st = PQresultStatus(res);

		if (st == PGRES_SINGLE_TUPLE)
			fn(res, arg);
		else if (st != PGRES_TUPLES_OK)
			die("%s: %s", sql, PQerrorMessage(conn));
		PQclear(res);
	}
}

static inline int64_t
col_int(PGresult *res, int col)
{
	return PQgetisnull(res, 0, col) ? -1 : strtoll(PQgetvalue(res, 0, col), NULL, 10);
}

/* usecs since T0 of a column holding usecs since the Unix epoch */
static inline int64_t
col_time(PGresult *res, int col)
{
	return PQgetisnull(res, 0, col) ? INT64_MIN :
		strtoll(PQgetvalue(res, 0, col), NULL, 10) - T0_UNIX * USEC;
}

static bool *db_client_seen;
static int64_t db_processed;	/* sum of messages_processed */

static void
compare_client(PGresult *res, void *arg)
{
	int			i = client_index(PQgetvalue(res, 0, 0));
	Server	   *c;
	struct
	{
		const char *name;
		int64_t		got;
		int64_t		want;
	}			f[12];
	int			nf = 0;

	(void) arg;
	if (i < 0)
	{
		diff("clients has a client the fleet never had: %s", PQgetvalue(res, 0, 0));
		return;
	}
	db_client_seen[i] = true;
	db_processed += col_int(res, 4);
	c = &clients[i].srv;
	if (!c->known)
	{
		diff("client %d is in clients, but the rules say it is unknown", i);
		return;
	}
#define FIELD(n, g, w) do { f[nf].name = (n); f[nf].got = (g); f[nf].want = (w); nf++; } while (0)
	FIELD("next_serial_number", col_int(res, 1), c->has_next ? c->next : -1);
	FIELD("serial_epoch", col_int(res, 2), c->epoch);
	FIELD("last_message_time", col_time(res, 3), c->has_lmt ? c->lmt : INT64_MIN);
	FIELD("messages_processed", col_int(res, 4), c->processed);
	FIELD("missing_serials", col_int(res, 5), c->missing);
	FIELD("late_fills", col_int(res, 6), c->late_fills);
	FIELD("duplicates", col_int(res, 7), c->duplicates);
	FIELD("serial_resets", col_int(res, 8), c->resets);
	FIELD("unserialized_messages", col_int(res, 9), c->unserialized);
	FIELD("resync_requests_issued", col_int(res, 10), c->issued_count);
	FIELD("outstanding request", strcmp(PQgetvalue(res, 0, 11), "t") == 0,
		  outstanding(c));
	FIELD("undelivered requests", col_int(res, 12) > 0, c->undelivered);
#undef FIELD
	for (int j = 0; j < nf; j++)
		if (f[j].got != f[j].want)
			diff("client %d: %s is %lld, the rules say %lld", i, f[j].name,
				 (long long) f[j].got, (long long) f[j].want);
}

static uint8_t **db_state_seen;

/*
 * A state of an answering client that is not its cache after the final
 * resync: explained if the rules make the model differ from the cache too
 * (a reinstall whose new serials fell into an old missing range, say),
 * else a difference.  counts[0] explained, counts[1] not.
 */
static void
cache_differs(int i, int t, int64_t *counts)
{
	CacheEntry *e = &clients[i].cache[t];
	StateEntry *s = clients[i].srv.states ? &clients[i].srv.states[t] : NULL;
	bool		model_same = e->present && s && s->present &&
		s->state == e->state && s->time == e->time;

	if (model_same)
	{
		counts[1]++;
		diff("client %d topic %d/%s: the database's state is not the client's cache (state %d, %+d s) after the final resync",
			 i, topics[t].type, topics[t].id, e->state, e->time);
	}
	else
	{
		counts[0]++;
		if (opt_verbose)
			printf("fleet: client %d topic %d/%s: cache state %d at %+d s, the rules keep state %d at %+d s (serial %lld, epoch %d of the client's %lld)\n",
				   i, topics[t].type, topics[t].id, e->state, e->time,
				   s ? s->state : -1, s ? s->time : 0,
				   s ? (long long) s->serial_plus1 - 1 : -1LL, s ? s->epoch : -1,
				   (long long) clients[i].srv.epoch);
	}
}

static void
compare_state(PGresult *res, void *arg)
{
	int			i = client_index(PQgetvalue(res, 0, 0));
	int			t = topic_index(atoi(PQgetvalue(res, 0, 1)), PQgetvalue(res, 0, 2));
	StateEntry *s;
	int64_t		serial = col_int(res, 4);

	if (i < 0 || t < 0)
	{
		diff("client_state has a row the fleet never sent: %s %s %s",
			 PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
		return;
	}
	if (!clients[i].srv.states || !clients[i].srv.states[t].present)
	{
		diff("client %d topic %d/%s: a state the rules say it has not",
			 i, topics[t].type, topics[t].id);
		return;
	}
	db_state_seen[i][t] = 1;
	s = &clients[i].srv.states[t];
	if (atoi(PQgetvalue(res, 0, 3)) != s->state ||
		serial != (int64_t) s->serial_plus1 - 1 ||
		col_int(res, 5) != s->epoch ||
		col_time(res, 6) != (int64_t) s->time * USEC ||
		(strcmp(PQgetvalue(res, 0, 7), "fsp") == 0) != s->fsp)
		diff("client %d topic %d/%s: state %s serial %s epoch %s time %s source %s;"
			 " the rules say state %d serial %lld epoch %d time %+d s source %s",
			 i, topics[t].type, topics[t].id, PQgetvalue(res, 0, 3),
			 PQgetisnull(res, 0, 4) ? "none" : PQgetvalue(res, 0, 4),
			 PQgetvalue(res, 0, 5), PQgetvalue(res, 0, 6), PQgetvalue(res, 0, 7),
			 s->state, (long long) s->serial_plus1 - 1, s->epoch, s->time,
			 s->fsp ? "fsp" : "mp");
	/* after the final resync, every answering client holds its cache */
	if (opt_settle && !clients[i].offline && t != TOPIC_RESYNC)
	{
		CacheEntry *e = &clients[i].cache[t];
		bool		same = e->present &&
			atoi(PQgetvalue(res, 0, 3)) == e->state &&
			col_time(res, 6) == (int64_t) e->time * USEC;

		if (!same)
			cache_differs(i, t, arg);
	}
}

typedef struct RangeCheck
{
	int			client;
	int			n;
	Range		got[64];
	int			ngot;
} RangeCheck;

static int
range_cmp(const void *a, const void *b)
{
	const Range *x = a,
			   *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

/* The ranges of one client, gathered, against the model's */
static void
finish_ranges(RangeCheck *rc)
{
	Server	   *c;
	Range	   *want;

	if (rc->client < 0)
		return;
	c = &clients[rc->client].srv;
	want = xmalloc((c->nranges + 1) * sizeof(Range));
	memcpy(want, c->ranges, c->nranges * sizeof(Range));
	qsort(want, c->nranges, sizeof(Range), range_cmp);
	if (rc->n != c->nranges)
		diff("client %d: %d missing ranges, the rules say %d (first %lld-%lld)",
			 rc->client, rc->n, c->nranges,
			 (long long) (c->nranges ? want[0].first : rc->ngot ? rc->got[0].first : -1),
			 (long long) (c->nranges ? want[0].last : rc->ngot ? rc->got[0].last : -1));
	else
		for (int j = 0; j < rc->ngot; j++)
			if (rc->got[j].first != want[j].first || rc->got[j].last != want[j].last)
			{
				diff("client %d: missing range %lld-%lld, the rules say %lld-%lld",
					 rc->client, (long long) rc->got[j].first,
					 (long long) rc->got[j].last, (long long) want[j].first,
					 (long long) want[j].last);
				break;
			}
	free(want);
	rc->client = -1;
	rc->n = rc->ngot = 0;
}

static void
compare_range(PGresult *res, void *arg)
{
	RangeCheck *rc = arg;
	int			i = client_index(PQgetvalue(res, 0, 0));
	int64_t		first = col_int(res, 1),
				last = col_int(res, 2);

	if (i < 0)
	{
		diff("missing_ranges has a client the fleet never had");
		return;
	}
	db_client_seen[i] = true;
	if (i != rc->client)
	{
		finish_ranges(rc);
		rc->client = i;
	}
	rc->n++;
	if (rc->ngot < 64)
	{
		rc->got[rc->ngot].first = first;
		rc->got[rc->ngot].last = last;
		rc->ngot++;
	}
	/* no missing range covers a serial the server received (this epoch) */
	for (int64_t s = first; s <= last && s - first < 100000; s++)
		if (was_seen(&clients[i].srv, s))
		{
			diff("client %d: missing range %lld-%lld covers serial %lld, which was delivered",
				 i, (long long) first, (long long) last, (long long) s);
			break;
		}
}

/* Every table and view against the model; counts cache differences */
static void
compare_database(int64_t *cache_diffs)
{
	RangeCheck	rc = {.client = -1};
	int64_t		want_issued_not_completed = 0,
				want_never_completed = 0;

	make_topic_hash();
	db_client_seen = xcalloc(opt_clients, sizeof(bool));
	db_state_seen = xcalloc(opt_clients, sizeof(uint8_t *));
	for (int i = 0; i < opt_clients; i++)
		db_state_seen[i] = xcalloc(ntopics, 1);

	each_row(psprintf("SELECT c.client_id, next_serial_number, serial_epoch,"
					  " (extract(epoch FROM last_message_time) * 1000000)::bigint,"
					  " messages_processed, missing_serials, late_fills, duplicates,"
					  " serial_resets, unserialized_messages, resync_requests_issued,"
					  " state_msg.has_open_request(c),"
					  " (SELECT count(*) FROM state_msg.resync_requests r"
					  "   WHERE r.client_id = c.client_id AND r.completed_at IS NULL"
					  "   AND r.delivered_at IS NULL)"
					  " FROM state_msg.clients c%s", fleet_only("WHERE")),
			 compare_client, NULL);
	for (int i = 0; i < opt_clients; i++)
		if (clients[i].srv.known && !db_client_seen[i])
			diff("client %d is missing from clients", i);
	/* every message delivered was processed once (a restore forgets some) */
	if (opt_scenario != SITE_RESTORE && db_processed != n_delivered)
		diff("clients.messages_processed adds up to %lld, but %lld messages were delivered",
			 (long long) db_processed, (long long) n_delivered);

	each_row(psprintf("SELECT client_id, topic_type, topic_id, state_id, serial_number,"
					  " serial_epoch, (extract(epoch FROM message_time) * 1000000)::bigint,"
					  " source FROM state_msg.client_state%s", fleet_only("WHERE")),
			 compare_state, cache_diffs);
	for (int i = 0; i < opt_clients; i++)
	{
		Server	   *c = &clients[i].srv;

		for (int t = 0; t < ntopics; t++)
		{
			if (c->states && c->states[t].present && !db_state_seen[i][t])
				diff("client %d topic %d/%s: no state, the rules say state %d",
					 i, topics[t].type, topics[t].id, c->states[t].state);
			if (opt_settle && !clients[i].offline && t != TOPIC_RESYNC &&
				clients[i].cache[t].present && !db_state_seen[i][t])
				cache_differs(i, t, cache_diffs);
		}
	}

	memset(db_client_seen, 0, opt_clients * sizeof(bool));
	each_row(psprintf("SELECT client_id, first_serial, last_serial FROM state_msg.missing_ranges%s"
					  " ORDER BY client_id, first_serial", fleet_only("WHERE")),
			 compare_range, &rc);
	finish_ranges(&rc);
	for (int i = 0; i < opt_clients; i++)
	{
		Server	   *c = &clients[i].srv;

		if (c->nranges > 0 && !db_client_seen[i])
			diff("client %d: no missing range, the rules say %d (first %lld-%lld)",
				 i, c->nranges, (long long) c->ranges[0].first,
				 (long long) c->ranges[0].last);
		if (c->known && outstanding(c))
			want_issued_not_completed++;
		if (c->known && c->has_issued && !c->has_completed)
			want_never_completed++;
	}

	/* the monitoring view and the two queries of the site's documentation */
	{
		int64_t		q1,
					q2,
					v1,
					v2;
		PGresult   *res;

		run_command("SET search_path = state_msg, public");
		q1 = query_int("select count(*) from SR_ClientMessageStats where LastResyncIssuedTime is not null"
					   " and (LastResyncIssuedTime > LastResyncClientCompletedTime)");
		q2 = query_int("select count(*) from SR_ClientMessageStats where LastResyncIssuedTime is not null"
					   " and LastResyncClientCompletedTime is null");
		run_command("RESET search_path");
		res = run("SELECT issued_not_completed, never_completed FROM state_msg.resync_outstanding",
				  PGRES_TUPLES_OK);
		v1 = atoll(PQgetvalue(res, 0, 0));
		v2 = atoll(PQgetvalue(res, 0, 1));
		PQclear(res);
		/* query 1 counts issued after a completion; never completed are query 2 */
		if (q1 != want_issued_not_completed - want_never_completed)
			diff("monitoring query 1 counts %lld, the rules say %lld", (long long) q1,
				 (long long) (want_issued_not_completed - want_never_completed));
		if (q2 != want_never_completed)
			diff("monitoring query 2 counts %lld, the rules say %lld", (long long) q2,
				 (long long) want_never_completed);
		if (v1 != q1 || v2 != q2)
			diff("resync_outstanding says %lld, %lld; the queries %lld, %lld",
				 (long long) v1, (long long) v2, (long long) q1, (long long) q2);
		printf("fleet: monitoring: query 1 %lld, query 2 %lld, resync_outstanding %lld/%lld\n",
			   (long long) q1, (long long) q2, (long long) v1, (long long) v2);
	}
}

/* ---------------------------------------------------------------------- */

static void
usage(void)
{
	printf("usage: fleet --dbname DB [--host H] [--port P] [--user U]\n"
		   "  --clients N (200) --days D (4) --scenario rollout|patch-tuesday|resync-storm|site-restore\n"
		   "  --seed S (1) --via inbox|report (inbox) --batch upload|cycle (upload)\n"
		   "  --updates N (20) --required F (0.5) --rate R (6 everyday messages per client and day)\n"
		   "  --loss F (0.02) --late F (0.05) --late-max CYCLES (8) --duplicate F (0.01)\n"
		   "  --reinstall F (0.02) --offline F (0.02) --storm F (0.3)\n"
		   "  --check-every CYCLES (1) --no-settle --dry-run --max-diffs N (10) --verbose\n"
		   "  --trace CLIENT (print what the rules make of one client's messages)\n"
		   "  --preloaded (the database holds other clients: leave them alone)\n"
		   "  --progress N (a line with the messages delivered and the seconds, every N)\n"
		   "  --processing immediate|queued (SET state_msg.processing; default: the database's)\n"
		   "  --drain N (queued: messages processed per cycle; default all)\n"
		   "  --backlog-aware on|off (SET state_msg.backlog_aware_resync; default: the database's)\n"
		   "  --cycle-log FILE (a CSV line per cycle: backlog, check cycle, processing)\n"
		   "  (--updates N in any scenario adds a Patch Tuesday on the first day)\n");
	exit(2);
}

static double
parse_share(const char *name, const char *v)
{
	char	   *end;
	double		d = strtod(v, &end);

	if (*end || d < 0 || d > 1)
		die("%s must be a share between 0 and 1, not \"%s\"", name, v);
	return d;
}

static long
parse_int(const char *name, const char *v, long min, long max)
{
	char	   *end;
	long		n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (*end || errno || n < min || n > max)
		die("%s must be an integer from %ld to %ld, not \"%s\"", name, min, max, v);
	return n;
}

static void
parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
	{
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool		takes = true;

		if (strcmp(a, "--preloaded") == 0)
			opt_preloaded = true, takes = false;
		else if (strcmp(a, "--no-settle") == 0)
			opt_settle = false, takes = false;
		else if (strcmp(a, "--dry-run") == 0)
			opt_dry_run = true, takes = false;
		else if (strcmp(a, "--verbose") == 0)
			opt_verbose = true, takes = false;
		else if (strcmp(a, "--help") == 0)
			usage();
		else if (!v)
			usage();
		else if (strcmp(a, "--dbname") == 0)
			opt_dbname = v;
		else if (strcmp(a, "--host") == 0)
			opt_host = v;
		else if (strcmp(a, "--port") == 0)
			opt_port = v;
		else if (strcmp(a, "--user") == 0)
			opt_user = v;
		else if (strcmp(a, "--clients") == 0)
			opt_clients = (int) parse_int(a, v, 1, 1 << 24);
		else if (strcmp(a, "--days") == 0)
			opt_days = (int) parse_int(a, v, 1, 300);
		else if (strcmp(a, "--seed") == 0)
			opt_seed = strtoull(v, NULL, 10);
		else if (strcmp(a, "--updates") == 0)
			opt_updates = (int) parse_int(a, v, 0, 1000), opt_updates_given = true;
		else if (strcmp(a, "--processing") == 0)
			opt_processing = v;
		else if (strcmp(a, "--backlog-aware") == 0)
			opt_backlog_aware = v;
		else if (strcmp(a, "--drain") == 0)
			opt_drain = parse_int(a, v, 1, 1000000000);
		else if (strcmp(a, "--cycle-log") == 0)
			opt_cycle_log = v;
		else if (strcmp(a, "--required") == 0)
			opt_required = parse_share(a, v);
		else if (strcmp(a, "--rate") == 0)
			opt_rate = strtod(v, NULL);
		else if (strcmp(a, "--loss") == 0)
			opt_loss = parse_share(a, v);
		else if (strcmp(a, "--late") == 0)
			opt_late = parse_share(a, v);
		else if (strcmp(a, "--late-max") == 0)
			opt_late_max = (int) parse_int(a, v, 1, 1000);
		else if (strcmp(a, "--duplicate") == 0)
			opt_dup = parse_share(a, v);
		else if (strcmp(a, "--reinstall") == 0)
			opt_reinstall = parse_share(a, v);
		else if (strcmp(a, "--offline") == 0)
			opt_offline = parse_share(a, v);
		else if (strcmp(a, "--storm") == 0)
			opt_storm = parse_share(a, v);
		else if (strcmp(a, "--check-every") == 0)
			opt_check_every = (int) parse_int(a, v, 1, 10000);
		else if (strcmp(a, "--trace") == 0)
			opt_trace = (int) parse_int(a, v, 0, 1 << 24);
		else if (strcmp(a, "--progress") == 0)
			opt_progress = parse_int(a, v, 1, 1000000000);
		else if (strcmp(a, "--max-diffs") == 0)
			opt_max_diffs = (int) parse_int(a, v, 0, 1000000);
		else if (strcmp(a, "--via") == 0)
		{
			if (strcmp(v, "report") == 0)
				opt_via_report = true;
			else if (strcmp(v, "inbox") != 0)
				usage();
		}
		else if (strcmp(a, "--batch") == 0)
		{
			if (strcmp(v, "cycle") == 0)
				opt_batch_cycle = true;
			else if (strcmp(v, "upload") != 0)
				usage();
		}
		else if (strcmp(a, "--scenario") == 0)
		{
			int			s;

			for (s = 0; s < 4; s++)
				if (strcmp(v, scenario_names[s]) == 0)
					break;
			if (s == 4)
				usage();
			opt_scenario = s;
		}
		else
			usage();
		if (takes)
			i++;
	}
	if (!opt_dbname && !opt_dry_run)
		usage();
	if (opt_scenario != PATCH_TUESDAY && !opt_updates_given)
		opt_updates = 0;
	if (opt_processing && strcmp(opt_processing, "queued") != 0 &&
		strcmp(opt_processing, "immediate") != 0)
		usage();
	if (opt_backlog_aware && strcmp(opt_backlog_aware, "on") != 0 &&
		strcmp(opt_backlog_aware, "off") != 0)
		usage();
}

/*
 * The cycle from which the scenario's incident counts for the time to
 * consistency: the storm's first lost upload, the restore, the release of
 * the updates, the first installs
 */
static int
incident_cycle(void)
{
	switch (opt_scenario)
	{
		case RESYNC_STORM:
			return ncycles / 8;
		case SITE_RESTORE:
			return ncycles * 2 / 5;
		case PATCH_TUESDAY:
			return 9;
		default:
			return 1;
	}
}

/*
 * The end of cycle k (its mid-cycle point, after its uploads, the drain,
 * the check cycle and the claims): what waits (checked against
 * state_msg.backlog in queued mode), the peak, and whether the database
 * matches the clients: nothing waits, and no client that answers resync
 * requests has a missing range or an outstanding request (the model's
 * view, which the check cycles and the end compare with the database)
 */
static void
cycle_end(int k, int64_t processed_before, int64_t answers_before)
{
	bool		consistent = n_waiting == 0;

	if (queued && !opt_dry_run && !opt_preloaded)
	{
		int64_t		db = query_int("SELECT coalesce(sum(waiting), 0)::bigint FROM state_msg.backlog");

		if (db != n_waiting)
			diff("cycle %d: state_msg.backlog says %lld messages wait, the rules say %lld",
				 k, (long long) db, (long long) n_waiting);
	}
	if (n_waiting > peak_waiting && k >= incident_cycle())
	{
		peak_waiting = n_waiting;
		peak_cycle = k;
	}
	for (int i = 0; i < opt_clients && consistent; i++)
	{
		Server	   *c = &clients[i].srv;

		if (c->known && !clients[i].offline && (c->nranges > 0 || outstanding(c)))
			consistent = false;
	}
	if (!consistent)
		last_inconsistent = k;
	if (cycle_log)
	{
		char		t[32];

		*put_time(t, k * CYCLE + HALF_CYCLE, false) = '\0';
		fprintf(cycle_log, "%d,%s,%lld,%lld,%lld,%lld,%lld,%lld,%d\n", k, t,
				(long long) n_waiting, (long long) cyc_issued,
				(long long) cyc_reissued, (long long) cyc_held,
				(long long) (n_answers_processed - answers_before),
				(long long) (n_processed - processed_before), consistent);
	}
	cyc_issued = cyc_reissued = cyc_held = 0;
}

int
main(int argc, char **argv)
{
	double		start,
				elapsed,
				cpu;
	int			last;
	int64_t		cache_diffs[2] = {0, 0};

	setvbuf(stdout, NULL, _IOLBF, 0);
	parse_args(argc, argv);
	ncycles = opt_days * DAY_CYCLES;
	make_topics();
	make_fleet();
	nbuckets = ncycles + opt_late_max + 8;
	buckets = xcalloc(nbuckets, sizeof(Bucket));
	if (!opt_dry_run)
	{
		connect_db();
		setting_age = query_int("SELECT (extract(epoch FROM state_msg.min_missing_message_age()) * 1000000)::bigint");
		setting_period = query_int("SELECT (extract(epoch FROM state_msg.min_resync_period()) * 1000000)::bigint");
		if (query_int(psprintf("SELECT count(*) FROM state_msg.clients%s",
							   fleet_only("WHERE"))) != 0)
			die(opt_preloaded ? "the database already has clients of this fleet (this seed)" :
				"the database already has clients: the simulator starts from an empty one");
		if (opt_processing)
			run_command(psprintf("SET state_msg.processing = %s", opt_processing));
		if (opt_backlog_aware)
			run_command(psprintf("SET state_msg.backlog_aware_resync = %s",
								 opt_backlog_aware));
		{
			PGresult   *res = run("SELECT current_setting('state_msg.processing'),"
								  " current_setting('state_msg.backlog_aware_resync', true)",
								  PGRES_TUPLES_OK);

			queued = strcmp(PQgetvalue(res, 0, 0), "queued") == 0;
			if (!PQgetisnull(res, 0, 1) && *PQgetvalue(res, 0, 1))
				backlog_aware = strcmp(PQgetvalue(res, 0, 1), "on") == 0;
			PQclear(res);
		}
		if (queued && !opt_preloaded &&
			query_int("SELECT count(*) FROM state_msg.queue") != 0)
			die("the queue is not empty: the simulator starts from an empty one");
	}
	else
	{
		setting_age = 2 * 86400 * USEC;
		setting_period = 3 * 86400 * USEC;
		queued = opt_processing && strcmp(opt_processing, "queued") == 0;
		if (opt_backlog_aware)
			backlog_aware = strcmp(opt_backlog_aware, "on") == 0;
	}
	if (opt_drain >= 0 && !queued)
		die("--drain needs queued processing (--processing queued)");
	if (opt_cycle_log)
	{
		cycle_log = fopen(opt_cycle_log, "w");
		if (!cycle_log)
			die("cannot write %s: %s", opt_cycle_log, strerror(errno));
		setvbuf(cycle_log, NULL, _IOLBF, 0);	/* follow a run as it goes */
		fprintf(cycle_log, "cycle,time,waiting,issued,reissued,held_back,answers_processed,messages_processed,consistent\n");
	}

	start = progress_start = mono_seconds();
	for (int k = 1; k <= ncycles; k++)
	{
		int32_t		now = k * CYCLE;

		int64_t		processed_before = n_processed,
					answers_before = n_answers_processed;

		set_clock(now);
		for (int i = 0; i < opt_clients; i++)
			client_cycle(i, k, true, true);
		deliver_bucket(&buckets[k], now);
		deliver_fsp(now);
		if (queued)
			drain(opt_drain, now);
		if (opt_scenario == SITE_RESTORE && k == ncycles / 4)
			site_backup();
		if (opt_scenario == SITE_RESTORE && k == ncycles * 2 / 5)
			site_restore();
		set_clock(now + HALF_CYCLE);
		if (k % opt_check_every == 0)
			mid_cycle(now + HALF_CYCLE, true);
		cycle_end(k, processed_before, answers_before);
		if (opt_verbose && k % DAY_CYCLES == 0)
			printf("fleet: day %d: %lld messages generated, %lld delivered, %.1f s\n",
				   k / DAY_CYCLES, (long long) n_generated, (long long) n_delivered,
				   mono_seconds() - start);
	}
	last = ncycles;
	scenario_processed = n_processed;
	scenario_answers = n_answers_processed;
	if (queued && !opt_settle)
	{
		/* no final resync: what waits is processed at the next cycle's time */
		lift_fsp_throttle();
		drain(-1, (ncycles + 1) * CYCLE);
		last = ncycles + 1;
	}
	if (opt_settle)
	{
		/*
		 * The final resync: whatever is held back arrives, every client is
		 * asked to resync, and every client that answers does so without
		 * loss; then the server must hold each answering client's cache.
		 */
		for (int k = ncycles + 1; k <= ncycles + 2; k++)
		{
			int32_t		now = k * CYCLE;

			set_clock(now);
			if (k == ncycles + 1)
				for (int b = k + 1; b < nbuckets; b++)
					for (Upload *u = buckets[b].head; u;)
					{
						Upload	   *next = u->next;

						bucket_add(k, u);
						u = next;
					}
			for (int b = k + 1; b < nbuckets; b++)
				buckets[b].head = buckets[b].tail = NULL;
			for (int i = 0; i < opt_clients; i++)
				client_cycle(i, k, false, false);
			deliver_bucket(&buckets[k], now);
			while (fsp_queued > 0)
				deliver_fsp(now);
			if (queued)
			{
				lift_fsp_throttle();
				drain(-1, now);
			}
			set_clock(now + HALF_CYCLE);
			if (k == ncycles + 1)
			{
				for (int i = 0; i < opt_clients; i++)
					if (clients[i].srv.known)
						model_issue(&clients[i].srv, (int64_t) (now + HALF_CYCLE) * USEC);
				if (!opt_dry_run)
					sync_clock();
				if (!opt_dry_run)
					PQclear(run(psprintf("SELECT count(state_msg.request_resync(client_id))"
									 " FROM state_msg.clients%s", fleet_only("WHERE")),
							PGRES_TUPLES_OK));
			}
			mid_cycle(now + HALF_CYCLE, false);
			last = k;
		}
	}
	elapsed = mono_seconds() - start;
	cpu = (double) clock() / CLOCKS_PER_SEC;
	if (opt_progress > 0)
		progress_line(elapsed);
	{
		char		end[32];

		*put_time(end, last * CYCLE + HALF_CYCLE, false) = '\0';
		printf("fleet: the simulated clock ends at %s\n", end);
	}

	printf("fleet: %s, %d clients, %d days, seed %llu, via %s%s: %lld messages generated,"
		   " %lld delivered in %lld statements (%lld uploads: %lld lost, %lld late,"
		   " %lld twice; %lld resync answers, %lld relayed), %lld resets, %lld requests"
		   " issued and %lld reissued by check cycles, %lld claimed; %.2f s, %.0f msg/s;"
		   " simulator CPU %.2f s%s\n",
		   scenario_names[opt_scenario], opt_clients, opt_days,
		   (unsigned long long) opt_seed, opt_via_report ? "report" : "inbox",
		   opt_batch_cycle ? " (one statement per cycle)" : "",
		   (long long) n_generated, (long long) n_delivered, (long long) n_statements,
		   (long long) n_uploads, (long long) n_lost, (long long) n_late,
		   (long long) n_dup, (long long) n_answers, (long long) n_fsp,
		   (long long) n_resets_sent, (long long) n_checks_issued,
		   (long long) n_checks_reissued, (long long) n_claims, elapsed,
		   n_delivered / (elapsed > 0 ? elapsed : 1e-9), cpu,
		   opt_dry_run ? " (dry run: generated, modelled and formatted, not sent)" : "");
	printf("fleet: verdicts by the rules: %lld in order, %lld gap, %lld late fill,"
		   " %lld duplicate, %lld serial reset, %lld unserialized\n",
		   (long long) v_model[V_IN_ORDER], (long long) v_model[V_GAP],
		   (long long) v_model[V_LATE_FILL], (long long) v_model[V_DUPLICATE],
		   (long long) v_model[V_SERIAL_RESET], (long long) v_model[V_UNSERIALIZED]);
	printf("fleet: resync answers by the rules: %lld resets at an answer's first message,"
		   " %lld stale messages before an answer in its statement,"
		   " %lld answers after another in their statement (%lld after one that reset),"
		   " %lld answers stale as a whole\n",
		   (long long) n_answer_resets, (long long) n_stale_by_answer,
		   (long long) n_answers_after_another,
		   (long long) n_answers_after_reset,
		   (long long) n_stale_answers);

	{
		int64_t		known = 0,
					offline = 0;

		for (int i = 0; i < opt_clients; i++)
			if (clients[i].srv.known)
			{
				known++;
				offline += clients[i].offline;
			}
		printf("fleet: %lld clients known to the site, %lld of them never answer\n",
			   (long long) known, (long long) offline);
	}
	{
		/*
		 * The backlog and the resyncs over the scenario's cycles (not the
		 * final resync): the time to consistency runs from the incident to
		 * the first mid-cycle from which, to the scenario's end, the
		 * database matches the clients (cycle_end())
		 */
		char		peak[32],
					ttc[64];
		int			inc = incident_cycle();

		*put_time(peak, peak_cycle * CYCLE + HALF_CYCLE, false) = '\0';
		if (last_inconsistent >= ncycles)
			snprintf(ttc, sizeof(ttc), "none (not consistent at the end)");
		else
		{
			int			from = last_inconsistent + 1 > inc ? last_inconsistent + 1 : inc;

			snprintf(ttc, sizeof(ttc), "%.2f h",
					 ((double) from * CYCLE + HALF_CYCLE - (double) inc * CYCLE) / 3600);
		}
		printf("fleet: backlog: processing %s, backlog-aware resync %s, drain %lld per cycle:"
			   " %lld requests issued, %lld reissued, %lld held back by check cycles;"
			   " %lld resync answers processed, %lld messages processed;"
			   " peak backlog %lld at %s; time to consistency %s\n",
			   queued ? "queued" : "immediate",
			   backlog_aware < 0 ? "absent" : backlog_aware ? "on" : "off",
			   (long long) (queued ? opt_drain : -1),
			   (long long) n_checks_issued, (long long) n_checks_reissued,
			   (long long) n_checks_held_back, (long long) scenario_answers,
			   (long long) scenario_processed, (long long) peak_waiting,
			   peak_cycle ? peak : "-", ttc);
	}
	if (cycle_log)
		fclose(cycle_log);
	if (opt_dry_run)
	{
		printf("fleet: OK dry run, %.0f msg/s, %.0f msg per CPU second\n",
			   n_delivered / (elapsed > 0 ? elapsed : 1e-9),
			   n_delivered / (cpu > 0 ? cpu : 1e-9));
		return 0;
	}
	compare_database(cache_diffs);
	if (opt_settle)
		printf("fleet: after the final resync, %lld cached states of answering clients differ"
			   " from the database, %lld of them as the rules say\n",
			   (long long) (cache_diffs[0] + cache_diffs[1]), (long long) cache_diffs[0]);
	PQfinish(conn);
	if (n_diffs > 0)
	{
		printf("fleet: FAIL %lld differences (%s, seed %llu)\n", (long long) n_diffs,
			   scenario_names[opt_scenario], (unsigned long long) opt_seed);
		return 1;
	}
	printf("fleet: OK %s, %d clients, %d days, seed %llu: %lld messages delivered,"
		   " every client, state, range, request and counter as the rules say\n",
		   scenario_names[opt_scenario], opt_clients, opt_days,
		   (unsigned long long) opt_seed, (long long) n_delivered);
	return 0;
}
