#!/usr/bin/env bash
# Shared set-up for test/check.sh, test/demo.sh and test/bench/run.sh, run as
# root on Debian 12: installs what is missing (PostgreSQL 15, its server
# headers, pg_cron for test/t/008_pg_cron.pl, IPC::Run for TAP tests, libxml2's
# headers for the XML report parser), then
# builds and installs the extension
# from a copy of the checkout owned by the postgres user, because the server
# (and so pg_regress and the TAP tests) refuses to run as root.
# Sets ROOT (the checkout), WORK (the copy) and PG_BIN.
#
# STATE_MSG_PG_ROOT=/opt/pgX uses a relocated copy of PostgreSQL instead
# (made with cp -a of /usr/lib/postgresql/15, /usr/share/postgresql/15 and
# /usr/include/postgresql under that root), so that several checkouts can
# build and test at once without sharing the installed extension.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_BIN=${STATE_MSG_PG_ROOT:-}/usr/lib/postgresql/15/bin
export PATH="$PG_BIN:$PATH"

if [ "$(id -u)" -ne 0 ]; then
	echo "run this as root: it installs packages and the extension" >&2
	exit 1
fi

missing=()
for pkg in postgresql-15 postgresql-server-dev-15 postgresql-15-cron libipc-run-perl libxml2-dev make gcc \
	gnuplot-nox \
	prometheus-postgres-exporter; do
	dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "== installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# One build and test run at a time on this machine: they share the installed
# extension.  (A no-op in CI, which runs once.)
if [ -z "${STATE_MSG_PG_ROOT:-}" ]; then
	exec 9>/tmp/state_msg.install.lock
	flock 9
fi

WORK=$(mktemp -d /tmp/state_msg.XXXXXX)
tar --exclude=.git -C "$ROOT" -cf - . | tar -C "$WORK" -xf -
chown -R postgres: "$WORK"

# Tests build with assertions (Assert() checks the engine's invariants),
# the benchmark without (STATE_MSG_ASSERTS=0)
copt="-Wall -Wextra -Wno-unused-parameter -Werror"
[ "${STATE_MSG_ASSERTS:-1}" = 1 ] && copt="$copt -DUSE_ASSERT_CHECKING"
echo "== building state_msg"
runuser -u postgres -- make -s -C "$WORK" PG_CONFIG="$PG_BIN/pg_config" with_llvm=no \
	COPT="$copt"
make -s -C "$WORK" PG_CONFIG="$PG_BIN/pg_config" with_llvm=no install >/dev/null
