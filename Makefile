# state_msg: PGXS build, install and tests
EXTENSION = state_msg
MODULE_big = state_msg
OBJS = src/state_msg.o src/message.o src/serials.o src/resync_events.o \
	src/current_state.o src/batch.o src/forget.o src/admin.o \
	src/store.o src/inbox.o src/inbox_am.o src/guard.o src/resync.o \
	src/delivery.o src/report.o src/report_convert.o src/report_parse.o \
	src/summaries.o src/stats.o src/worker.o src/launcher.o \
	src/queue.o src/enqueue.o src/drain.o
DATA = $(wildcard sql/state_msg--*.sql)

# XML reports are parsed with libxml2, as PostgreSQL's own xml type does
PG_CPPFLAGS = $(shell xml2-config --cflags)
SHLIB_LINK = $(shell xml2-config --libs)

# pg_regress (sql/NAME.sql, expected/NAME.out: the regression inputs live
# beside the install scripts, which DATA tells apart by their name) and the
# isolation tester (specs/NAME.spec, expected/NAME.out), each on a throwaway
# instance of its own.
REGRESS = $(patsubst sql/%.sql,%,$(sort $(filter-out sql/state_msg--%,$(wildcard sql/*.sql))))
REGRESS_OPTS = --temp-instance=./tmp_regress
ISOLATION = $(patsubst specs/%.spec,%,$(sort $(wildcard specs/*.spec)))
ISOLATION_OPTS = --temp-instance=./tmp_isolation

# TAP tests (PostgreSQL::Test::Cluster) live in test/t
TAP_TESTS = 1
PROVE_TESTS = $(sort $(wildcard test/t/*.pl))

EXTRA_CLEAN = tmp_regress tmp_isolation output_iso

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Every object depends on the shared header
$(OBJS): src/state_msg.h

# The background worker and its launcher
src/worker.o src/launcher.o: src/worker.h

# The XML report parser (also built alone by test/fuzz)
src/report_parse.o src/report.o src/report_convert.o: src/report_parse.h
src/report.o src/report_convert.o: src/report.h
