import GatewayHTTP2
import GatewaySystem

/// Gives memory back to the kernel: an idle HTTP/2 connection's (client or backend), and the allocator's after a
/// surge of connections, or of handshakes, has passed.
///
/// Idle HTTP/2 connections: while the worker has connections, every `sweepMs` each HTTP/2
/// connection is asked to let go of what it holds for nothing once it has been idle for a whole
/// sweep (HTTP2Session.releaseIdleMemory: nghttp2's written frame-buffer and stream-table pages,
/// our tables and scratch). An idle HTTP/2 connection then costs 8 KB less RSS.
///
/// Surges: glibc keeps what a worker freed (Allocator.tuneForServer: page faults cost handshakes
/// CPU), and a flood of 4,000 connections left the gateway at ten times its resident size for
/// good. A handshake in flight holds ~30 KB that its end frees (OpenSSL 3.0 zeroes a 16 KiB
/// message buffer for each), so 2,000 handshakes at once leave ~60 MB of free heap behind even
/// while their connections stay. Checked only when the connection count or the handshakes in
/// flight pass `surge`; then every `intervalMs` it looks whether the connections have fallen to
/// half their peak, or the handshakes to a quarter of theirs, and if so releases the allocator's
/// free memory and the buffer pool's unused blocks once, and starts over. A smaller burst of
/// handshakes (`handshakeBurst` at once, e.g. 50 clients connecting together, or 50 requests at
/// once opening backend connections) is given back once no handshake was in flight at two sweeps
/// in a row: 50 at once left ~2 MB of free heap behind, 2 KB per connection of 1,000 held
/// (../shared/bench mem: 17.3 KB, against 15.3 KB one at a time).
final class MemoryRelief: TimerTarget {
    /// unowned(unsafe): the worker owns this and outlives it.
    unowned(unsafe) let worker: Worker
    var deadline: UInt64 = 0
    var timerSlot = 0
    private(set) var peak = 0
    private(set) var handshakePeak = 0
    /// Releases done (tests, logs).
    private(set) var releases = 0
    /// Sweeps since the last surge check (one every `intervalMs / sweepMs` sweeps).
    private var sweeps = 0
    /// Sweeps in a row that found no handshake in flight.
    private var quietHandshakeSweeps = 0

    static let surge = 512
    static let handshakeBurst = 32
    static let intervalMs: UInt64 = 2000
    static let sweepMs: UInt64 = 1000

    init(worker: Worker) { self.worker = worker }

    /// A connection was added: `count` is the worker's connection count now.
    @inline(__always) func noteCount(_ count: Int) {
        if deadline == 0 { arm(now: worker.loop.now) }
        guard count > peak else { return }
        peak = count
    }

    /// A handshake started: `count` is the worker's handshakes in flight now.
    @inline(__always) func noteHandshakes(_ count: Int) {
        guard count > handshakePeak else { return }
        handshakePeak = count
        if deadline == 0 { arm(now: worker.loop.now) }
    }

    func deadlineExpired(now: UInt64) {
        deadline = 0
        sweepIdleHTTP2()
        quietHandshakeSweeps = worker.handshakesInFlight == 0 ? quietHandshakeSweeps + 1 : 0
        sweeps += 1
        if handshakePeak >= Self.handshakeBurst && quietHandshakeSweeps >= 2 {
            release()
        } else if sweeps * Int(Self.sweepMs) >= Int(Self.intervalMs) {
            sweeps = 0
            checkSurge()
        }
        if worker.connectionCount > 0 || peak >= Self.surge || handshakePeak >= Self.surge { arm(now: now) }
    }

    /// Each HTTP/2 connection with no exchange and nothing waiting to be written (its session
    /// decides whether it was idle for a whole sweep).
    /// With no exchange open at all, the worker's block cache (nghttp2's and OpenSSL's) goes too.
    private func sweepIdleHTTP2() {
        var busy = false
        for c in worker.live.values {
            guard c.exchanges.isEmpty && c.io.output.isEmpty else { busy = true; continue }
            if c.http2?.releaseIdleMemory() != nil { c.releaseIdleHTTP2Storage() }
        }
        worker.pool.releaseIdleHTTP2Memory()
        worker.exchangePool.reclaim()
        if !busy { Allocator.releaseBlockCache() }
    }

    private func checkSurge() {
        guard peak >= Self.surge || handshakePeak >= Self.surge else {
            peak = worker.connectionCount
            if handshakePeak < Self.handshakeBurst { handshakePeak = worker.handshakesInFlight }
            return
        }
        let count = worker.connectionCount, handshakes = worker.handshakesInFlight
        if count * 2 <= peak || (handshakePeak >= Self.surge && handshakes * 4 <= handshakePeak) { release() }
    }

    private func release() {
        let count = worker.connectionCount, handshakes = worker.handshakesInFlight
        worker.exchangePool.trim(to: ExchangePool.keptAfterSurge)
        Allocator.releaseBlockCache()
        Allocator.releaseFreeMemory()
        worker.buffers.releaseFreeBlocks()
        releases += 1
        worker.logs.error.log(.info, "memory_released", "a surge of connections or handshakes has passed: free memory given back to the kernel",
                              [("worker", .int(worker.id)), ("peak", .int(peak)), ("connections", .int(count)),
                               ("handshake_peak", .int(handshakePeak)), ("handshakes", .int(handshakes))])
        peak = count
        handshakePeak = handshakes
    }

    private func arm(now: UInt64) {
        deadline = now + Self.sweepMs
        worker.loop.schedule(self)
    }
}
