func runEMMBenchmark() {}
