# benchmarks (filled in)
