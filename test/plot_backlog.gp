# The demo's picture of a backlog draining, from state_msg.backlog_history:
# messages waiting per queue (left axis) and each queue's drain_eta (right
# axis, minutes; absent where the view gives NULL: nothing waits, or the
# five-minute processing rate does not outpace arrivals).
#
#   gnuplot -e "data='backlog.dat'; out='backlog_drain.png'; start=EPOCH" test/plot_backlog.gp
#
# data: tab-separated, one line per sample, as test/demo.sh writes it:
#   epoch  high  low  fsp  high_eta_s  low_eta_s  fsp_eta_s   ("NaN" for NULL)
# start: the epoch at which the worker began serving the database (a line).
if (!exists("data")) data = 'backlog.dat'
if (!exists("out")) out = 'backlog_drain.png'
if (!exists("title")) title = 'Patch Tuesday burst, drained by the state_msg worker'

set terminal pngcairo size 800,400 font 'DejaVu Sans,9' noenhanced
set output out
set datafile separator "\t"
set datafile missing "NaN"
set title title
set xdata time
set timefmt "%s"
set format x "%H:%M"
set xlabel 'engine clock (UTC)'
set ylabel 'messages waiting'
set y2label 'drain ETA (minutes)'
set format y "%.0s%c"
set yrange [0:*]
set y2range [0:*]
set ytics nomirror
set y2tics
set grid xtics ytics lc rgb '#dddddd'
set key top left box opaque
set border 11

if (exists("start")) {
	set arrow from start, graph 0 to start, graph 1 nohead dt 3 lc rgb '#555555'
	set label 'worker starts' at start, graph 0.97 offset 0.5,0 left tc rgb '#555555'
}

plot data using 1:3 axes x1y1 with lines lw 2 lc rgb '#1f77b4' title 'low waiting', \
	'' using 1:2 axes x1y1 with lines lw 2 lc rgb '#d62728' title 'high waiting', \
	'' using 1:4 axes x1y1 with lines lw 2 lc rgb '#2ca02c' title 'fsp waiting', \
	'' using 1:($6 / 60) axes x1y2 with linespoints dt 2 pt 7 ps 0.4 lc rgb '#1f77b4' title 'low drain ETA', \
	'' using 1:($7 / 60) axes x1y2 with linespoints dt 2 pt 7 ps 0.4 lc rgb '#2ca02c' title 'fsp drain ETA', \
	'' using 1:($5 / 60) axes x1y2 with linespoints dt 2 pt 7 ps 0.4 lc rgb '#d62728' title 'high drain ETA'
