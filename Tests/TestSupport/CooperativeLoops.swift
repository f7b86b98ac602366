/// Gives the thread back to the cooperative pool once every `batch` iterations of a CPU-bound test loop (property
/// tests over thousands of random inputs). The pool has as many threads as cores (two in CI), and the in-process
/// servers of the tests running beside such a loop need them: without a turn now and then they answer seconds late
/// on a loaded machine, and time-outs that are generous on their own fail.
public func yieldToOtherTests(every batch: Int = 100, at iteration: Int) async {
    if iteration % batch == batch - 1 { await Task.yield() }
}
