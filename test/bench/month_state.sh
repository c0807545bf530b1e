#!/usr/bin/env bash
# A month of current state, written straight into the tables: shared by
# summaries.sh and site.sh (sourced; the caller's psql, a database with the
# extension and a bench schema).
#
#   load_month_state N   N clients x 200 topics (100 updates, each a 500
#                        (detection) and a 402 (enforcement) topic), in key
#                        order, counted by rebuild_state_counts(), then
#                        VACUUM ANALYZE and a checkpoint; sets MONTH_LOAD,
#                        MONTH_REBUILD and MONTH_VACUUM (seconds) and
#                        MONTH_KEYS (the counts' keys)
#
# Client ids 'GUID:' + md5('sumclient' || n) in bench.sum_clients, topics in
# bench.sum_topics; every client at serial 200, last heard of 2026-11-01.

load_month_state() {
	local nclients=$1 t0 t1 t2 t3
	t0=$EPOCHREALTIME
	psql -v nclients="$nclients" <<'SQL'
SET synchronous_commit = off;
TRUNCATE state_msg.clients, state_msg.client_state, state_msg.missing_ranges,
	state_msg.resync_requests, state_msg.rejected_messages;
DROP TABLE IF EXISTS bench.sum_clients, bench.sum_topics;
CREATE TABLE bench.sum_clients AS
SELECT c AS client_no,
	   'GUID:' || upper(md5('sumclient' || c)::uuid::text) AS client_id
FROM generate_series(1, :nclients) c;
CREATE UNIQUE INDEX ON bench.sum_clients (client_no);
CREATE TABLE bench.sum_topics AS
SELECT u AS update_no, t AS topic_type, lower(md5('update' || u)::uuid::text) AS topic_id
FROM generate_series(1, 100) u, (VALUES (402), (500)) AS tt(t);
INSERT INTO state_msg.clients (client_id, next_serial_number, last_message_time,
	last_processed_time, messages_processed)
SELECT client_id, 201, timestamptz '2026-11-01 00:00+00',
	   timestamptz '2026-11-01 00:00+00', 200
FROM bench.sum_clients ORDER BY client_id COLLATE "C";
INSERT INTO state_msg.client_state (client_id, topic_type, topic_id,
	topic_id_type, state_id, criticality, serial_number, serial_epoch,
	message_time, processed_at, source)
SELECT c.client_id, t.topic_type, t.topic_id, 3,
	   CASE WHEN t.topic_type = 500 THEN (ARRAY[0, 1, 1, 2, 3, 3, 3, 3])[1 + abs(hashtext(c.client_id || t.topic_id)) % 8]
			ELSE (ARRAY[0, 10, 10, 10, 10, 6, 11, 14, 9, 8])[1 + abs(hashtext(t.topic_id || c.client_id)) % 10] END,
	   0, (t.update_no - 1) * 2 + (t.topic_type = 500)::int + 1, 0,
	   timestamptz '2026-11-01 00:00+00', timestamptz '2026-11-01 00:00+00', 'mp'
FROM bench.sum_clients c CROSS JOIN bench.sum_topics t
ORDER BY c.client_id COLLATE "C", t.topic_type, t.topic_id COLLATE "C";
SQL
	t1=$EPOCHREALTIME
	MONTH_KEYS=$(psql -At -c "SELECT state_msg.rebuild_state_counts()")
	t2=$EPOCHREALTIME
	psql -c "VACUUM ANALYZE state_msg.clients" -c "VACUUM ANALYZE state_msg.client_state" \
		-c "VACUUM ANALYZE state_msg.state_counts" -c "CHECKPOINT"
	t3=$EPOCHREALTIME
	MONTH_LOAD=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }')
	MONTH_REBUILD=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.1f", b - a }')
	MONTH_VACUUM=$(awk -v a="$t2" -v b="$t3" 'BEGIN { printf "%.0f", b - a }')
}
