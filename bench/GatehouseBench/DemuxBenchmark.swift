func runDemuxBenchmark() {}
