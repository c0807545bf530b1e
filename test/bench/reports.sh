# XML reports against the inbox: messages per second through
# state_msg.ingest_report() for reports of 1, 20 and 200 messages, one
# statement (and transaction) per report, against one multi-row INSERT into
# state_msg.inbox per report of the same messages, grouped the same way, in
# the same cluster.  Targets (reported, not asserted): 200-message reports at
# least 60 % of the inbox path's rate; 1-message reports at most 1.5x its
# time.
#
# Sourced by run.sh (one line, after its set-up: it uses run.sh's psql,
# variant, reset_state, ratio and its cluster), in the default and --quick
# modes.  BENCH_REPORTS_ONLY=1 bash test/bench/run.sh runs this part alone.
# Environment: BENCH_REPORT_MESSAGES (messages per report size, 6,000),
# BENCH_REPEAT (runs per variant, as run.sh).

if [ "$mode" != all ] && [ "$mode" != quick ] && [ -z "${BENCH_REPORTS_ONLY:-}" ]; then
	return 0
fi

REPORT_MESSAGES=${BENCH_REPORT_MESSAGES:-6000}

# The messages: for reports of k messages, REPORT_MESSAGES / k reports from
# many clients (1-message reports: a tenth as many clients, ten reports
# each; 20-message: half as many clients as reports; 200-message: a client
# per report); each client's serials run on from report to report, and a
# report's topics are distinct (250 update topics), as in a client's cache
echo "== XML reports: generating $REPORT_MESSAGES messages for each report size"
psql -v m="$REPORT_MESSAGES" <<'SQL'
CREATE UNLOGGED TABLE bench.rmsg AS
SELECT v.k, c AS client_no,
	   'GUID:' || upper(bench.guid(md5('rclient' || v.k || ':' || c))) AS client_id,
	   r AS report_no, s AS serial_number, 500 AS topic_type,
	   bench.guid(md5('rtopic' || (c * 7 + s) % 250)) AS topic_id, 3 AS topic_id_type,
	   (c + s) % 4 AS state_id, 0 AS criticality,
	   timestamptz '2024-03-01 00:00+00' + (c % 2700) * interval '1 second'
	   + s * interval '90 seconds' AS message_time,
	   ARRAY[(200 + s % 7)::text] AS user_params
FROM (VALUES (1, :m / 10, 10), (20, :m / 40, 2), (200, :m / 200, 1)) AS v(k, nclients, nreports)
CROSS JOIN LATERAL generate_series(1, v.nclients) c
CROSS JOIN LATERAL generate_series(1, v.nreports) r
CROSS JOIN LATERAL generate_series((r - 1) * v.k + 1, r * v.k) s;
ANALYZE bench.rmsg;
SQL

# The statement files, written once: per report, one ingest_report() call
# with the XML a client uploads, and one INSERT of its messages
write_report_statements() {
	local k=$1
	psql -At -v k="$k" -v dir="$BENCH" <<'SQL'
\o :dir/reports_:k.sql
SELECT format('SELECT FROM state_msg.ingest_report(%L);',
	'<Report><ReportHeader><Identification><Machine><ClientInstalled>1</ClientInstalled>'
	|| '<ClientType>1</ClientType><ClientID>' || client_id || '</ClientID>'
	|| '<ClientVersion>5.00.9122.1000</ClientVersion><NetBIOSName>WKS-' || client_no
	|| '</NetBIOSName><CodePage>437</CodePage><SystemDefaultLCID>1033</SystemDefaultLCID>'
	|| '<Priority>5</Priority></Machine></Identification><ReportDetails>'
	|| '<ReportContent>State Message Data</ReportContent><ReportType>Full</ReportType>'
	|| '<Date>20240301000000.000000+000</Date><Version>1.0</Version><Format>1.0</Format>'
	|| '</ReportDetails></ReportHeader><ReportBody>'
	|| string_agg('<StateMessage MessageTime="'
				  || to_char(message_time AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISS.US') || '+000"'
				  || ' SerialNumber="' || serial_number || '"><Topic ID="' || topic_id
				  || '" Type="' || topic_type || '" IDType="' || topic_id_type
				  || '" User="" UserSID=""/><State ID="' || state_id || '" Criticality="'
				  || criticality || '"/><UserParameters Flags="0" Count="1"><Param>'
				  || user_params[1] || '</Param></UserParameters></StateMessage>',
				  '' ORDER BY serial_number)
	|| '</ReportBody></Report>')
FROM bench.rmsg WHERE k = :k
GROUP BY client_no, client_id, report_no ORDER BY report_no, client_no;
\o :dir/inbox_:k.sql
SELECT 'INSERT INTO state_msg.inbox (client_id, serial_number, topic_type, topic_id,'
	   || ' topic_id_type, state_id, criticality, message_time, user_params) VALUES '
	   || string_agg(format('(%L, %s, %s, %L, %s, %s, %s, %L, %L)', client_id, serial_number,
							topic_type, topic_id, topic_id_type, state_id, criticality,
							message_time, user_params), ', ' ORDER BY serial_number) || ';'
FROM bench.rmsg WHERE k = :k
GROUP BY client_no, client_id, report_no ORDER BY report_no, client_no;
\o
SQL
	chmod 644 "$BENCH/reports_$k.sql" "$BENCH/inbox_$k.sql"
}

# After a run: every message processed, in order, nothing rejected
check_reports() {
	local k=$1 out
	out=$(psql -At -v k="$k" <<'SQL'
SELECT format('reports of %s: %s clients (expected %s), %s processed (expected %s), '
			  '%s missing, %s rejected messages, %s rejected reports', :k,
			  count(*), (SELECT count(DISTINCT client_no) FROM bench.rmsg WHERE k = :k),
			  sum(messages_processed), (SELECT count(*) FROM bench.rmsg WHERE k = :k),
			  sum(missing_serials), (SELECT count(*) FROM state_msg.rejected_messages),
			  (SELECT count(*) FROM state_msg.rejected_reports))
FROM state_msg.clients
HAVING count(*) <> (SELECT count(DISTINCT client_no) FROM bench.rmsg WHERE k = :k)
	OR sum(messages_processed) <> (SELECT count(*) FROM bench.rmsg WHERE k = :k)
	OR sum(missing_serials) <> 0
	OR (SELECT count(*) FROM state_msg.rejected_messages) <> 0
	OR (SELECT count(*) FROM state_msg.rejected_reports) <> 0;
SQL
)
	assert_empty "reports of $k" "$out"
}

# The two paths alternate run by run (fresh state and a checkpoint before
# each), so that a change in the machine's load meets both alike
for k in 1 20 200; do
	write_report_statements "$k"
	n=$(psql -At -c "SELECT count(*) FROM bench.rmsg WHERE k = $k")
	inbox_runs=()
	report_runs=()
	echo "== reports of $k messages: inbox INSERT and ingest_report(), $REPEAT runs each"
	for ((i = 1; i <= REPEAT; i++)); do
		for path in inbox reports; do
			reset_state
			psql -c "TRUNCATE state_msg.rejected_reports"
			t0=$EPOCHREALTIME
			psql -f "$BENCH/${path}_$k.sql" >/dev/null
			t1=$EPOCHREALTIME
			check_reports "$k"
			secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
			if [ "$path" = inbox ]; then inbox_runs+=("$secs"); else report_runs+=("$secs"); fi
		done
	done
	record "inbox_$k" "inbox: multi-row INSERT per report of $k messages" "$n" "${inbox_runs[@]}"
	record "report_$k" "ingest_report(text), reports of $k messages" "$n" "${report_runs[@]}"
done

echo
echo "XML reports against the inbox ($REPORT_MESSAGES messages per size, one statement"
echo "and transaction per report, median of $REPEAT runs):"
for k in 1 20 200; do
	printf '   reports of %3s: ingest_report %8s msg/s, inbox INSERT %8s msg/s: rate %5s%%, time %5sx\n' \
		"$k" "${RATE[report_$k]}" "${RATE[inbox_$k]}" \
		"$(awk -v a="${RATE[report_$k]}" -v b="${RATE[inbox_$k]}" 'BEGIN { printf "%.1f", 100 * a / b }')" \
		"$(ratio "${RATE[inbox_$k]}" "${RATE[report_$k]}")"
done
r=$(awk -v a="${RATE[report_200]}" -v b="${RATE[inbox_200]}" 'BEGIN { printf "%.1f", 100 * a / b }')
printf '   200-message reports: %s%% of the inbox rate  (target >= 60%%: %s)\n' "$r" \
	"$(awk -v v="$r" 'BEGIN { print (v >= 60 ? "met" : "NOT MET") }')"
r=$(ratio "${RATE[inbox_1]}" "${RATE[report_1]}")
printf '   1-message reports: %sx the inbox time  (target <= 1.5x: %s)\n' "$r" \
	"$(awk -v v="$r" 'BEGIN { print (v <= 1.5 ? "met" : "NOT MET") }')"
psql -c "DROP TABLE bench.rmsg"

if [ -n "${BENCH_REPORTS_ONLY:-}" ]; then
	exit 0
fi
