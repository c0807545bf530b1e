# The demo's picture of a backlog, from state_msg.backlog_history: on the
# left the whole run (messages waiting per queue), on the right the drain
# from the moment the worker starts, with each queue's drain_eta (right
# axis, minutes, logarithmic: the estimate starts high while the
# five-minute processing rate still counts minutes without processing, then
# falls; absent where the view gives NULL: nothing waits, or processing
# does not outpace arrivals over the last five minutes).
#
#   gnuplot -e "data='backlog_history.tsv'; out='backlog_drain.png'; start=EPOCH" test/plot_backlog.gp
#
# data: tab-separated, one line per sample, as test/demo.sh writes it:
#   epoch  high  low  fsp  high_eta_s  low_eta_s  fsp_eta_s   ("NaN" for NULL)
# start: the epoch at which the worker began serving the database.
if (!exists("data")) data = 'backlog_history.tsv'
if (!exists("out")) out = 'backlog_drain.png'
if (!exists("start")) start = 0

set terminal pngcairo size 800,400 font 'DejaVu Sans,9' noenhanced
set output out
set datafile separator "\t"
set datafile missing "NaN"
set xdata time
set timefmt "%s"
set xlabel 'engine clock (UTC)'
set format y "%.0s%c"
set yrange [0:*]
set autoscale xfix
set grid xtics ytics lc rgb '#dddddd'
set style line 1 lw 2 lc rgb '#d62728'
set style line 2 lw 2 lc rgb '#1f77b4'
set style line 3 lw 2 lc rgb '#2ca02c'
set arrow 1 from start, graph 0 to start, graph 1 nohead dt 3 lc rgb '#555555'

set multiplot title 'A Patch Tuesday burst in state_msg.backlog_history'

# Left: the burst piles up while no worker serves the database, then drains
set origin 0, 0
set size 0.42, 0.95
set title 'messages waiting, the whole run'
set format x "%H:%M"
set xtics 240
set ylabel 'messages waiting'
set key top left opaque
set label 1 'worker starts' at start, graph 0.45 offset -0.5,0 right tc rgb '#555555'
plot data using 1:3 with lines ls 2 title 'low', \
	'' using 1:2 with lines ls 1 title 'high', \
	'' using 1:4 with lines ls 3 title 'fsp'

# Right: the drain, with the drain ETA
set origin 0.42, 0
set size 0.58, 0.95
set title 'the drain, with drain_eta'
set format x "%H:%M"
set xtics 60
set mxtics 4
set xrange [start - 10:*]
unset ylabel
unset label 1
set y2label 'drain ETA (minutes, log scale)'
set logscale y2
set y2range [0.1:1000]
set ytics nomirror
set y2tics ("0.1" 0.1, "1" 1, "10" 10, "100" 100, "1000" 1000)
set key top right opaque
plot data using 1:3 with lines ls 2 notitle, \
	'' using 1:2 with lines ls 1 notitle, \
	'' using 1:4 with lines ls 3 notitle, \
	'' using 1:($6 / 60) axes x1y2 with linespoints ls 2 lw 1 dt 2 pt 7 ps 0.4 title 'low ETA', \
	'' using 1:($5 / 60) axes x1y2 with linespoints ls 1 lw 1 dt 2 pt 7 ps 0.4 title 'high ETA', \
	'' using 1:($7 / 60) axes x1y2 with linespoints ls 3 lw 1 dt 2 pt 7 ps 0.4 title 'fsp ETA'
unset multiplot
