# SPDX-License-Identifier: MIT
# The worstcase plot: p99.99 and max cycles of each timed call, one bar per
# target, log scale, with the 500-cycle bar of the locked heap drawn across.
# bench/run calls it in its output directory once it has written
# worstcase_p9999.dat and worstcase_max.dat (a header row of target names,
# then one row per scenario and call); by hand, in that directory:
#   gnuplot -e "term='pngcairo'; out='worstcase.png'; ncol=8" bench/worstcase.gp
# (ncol: the targets plus one).
if (!exists("term")) term = 'pngcairo'
if (!exists("out")) out = 'worstcase.png'
if (!exists("ncol")) ncol = 8

if (term eq 'svg') {
    set terminal svg size 1100,900
} else {
    if (term eq 'pngcairo') {
        set terminal pngcairo size 1100,900 font 'sans,10'
    } else {
        set terminal png size 1100,900
    }
}
set output out
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set key outside right top
set grid ytics
set xtics nomirror
set logscale y
set format y '%.0f'
set ylabel 'cycles (log scale)'
set multiplot layout 2,1 title 'Single calls on a warm heap, 16 B to the largest (median of runs; lower is better)'
set title 'p99.99'
set yrange [10:*]
set arrow 1 from graph 0, first 500 to graph 1, first 500 nohead dashtype 2 linewidth 2 front
set label 1 '500' at graph 1, first 500 offset 0.5,0 front
plot for [i=2:ncol] 'worstcase_p9999.dat' using i:xtic(1) title columnheader(i)
unset arrow 1
unset label 1
set title 'max'
set arrow 2 from graph 0, first 5000 to graph 1, first 5000 nohead dashtype 2 linewidth 2 front
set label 2 '5000' at graph 1, first 5000 offset 0.5,0 front
plot for [i=2:ncol] 'worstcase_max.dat' using i:xtic(1) title columnheader(i)
unset multiplot
