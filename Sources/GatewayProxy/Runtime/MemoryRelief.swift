import GatewaySystem

/// Gives memory back to the kernel after a surge of connections has passed. glibc keeps what a
/// worker freed (Allocator.tuneForServer: page faults cost handshakes CPU), and a flood of
/// 4,000 connections left the gateway at ten times its resident size for good. Armed only when
/// the connection count passes `surge` (no timer otherwise); then every `intervalMs` it looks
/// whether the count has fallen to half its peak or less, and if so releases the allocator's
/// free memory and the buffer pool's unused blocks once, and starts over from the count now.
final class MemoryRelief: TimerTarget {
    /// unowned(unsafe): the worker owns this and outlives it.
    unowned(unsafe) let worker: Worker
    var deadline: UInt64 = 0
    var timerSlot = 0
    private(set) var peak = 0
    /// Releases done (tests, logs).
    private(set) var releases = 0

    static let surge = 512
    static let intervalMs: UInt64 = 2000

    init(worker: Worker) { self.worker = worker }

    /// A connection was added: `count` is the worker's connection count now.
    @inline(__always) func noteCount(_ count: Int) {
        guard count > peak else { return }
        peak = count
        if peak >= Self.surge && deadline == 0 { arm(now: worker.loop.now) }
    }

    func deadlineExpired(now: UInt64) {
        deadline = 0
        let count = worker.connectionCount
        if count * 2 <= peak {
            Allocator.releaseFreeMemory()
            worker.buffers.releaseFreeBlocks()
            releases += 1
            worker.logs.error.log(.info, "memory_released", "the connection count fell from its peak: free memory given back to the kernel",
                                  [("worker", .int(worker.id)), ("peak", .int(peak)), ("connections", .int(count))])
            peak = count
        }
        if peak >= Self.surge { arm(now: now) }
    }

    private func arm(now: UInt64) {
        deadline = now + Self.intervalMs
        worker.loop.schedule(self)
    }
}
