import Foundation

// `swift run -c release gatehouse-bench [demux|emm|playout|monitor|all]`: the figures quoted in docs/benchmarks.md.
let which = CommandLine.arguments.dropFirst().first ?? "all"
if which == "demux" || which == "all" { runDemuxBenchmark() }
if which == "emm" || which == "all" { runEMMBenchmark() }
if which == "playout" || which == "all" { runPlayoutBenchmark() }
if which == "monitor" || which == "all" { runMonitorBenchmark() }
