import Glibc
import Testing
@testable import GatewaySystem

@Suite struct EventLoopTests {
    private final class Closed {}

    /// What a step closes mid-call stays allocated until the loop's iteration is over, so the
    /// steps that use it at +0 (Exchange.withUpstream) return through live memory.
    @Test func anObjectClosedDuringAnIterationLivesToItsEnd() throws {
        let loop = try EventLoop()
        weak var closed: Closed?
        do {
            let c = Closed()
            closed = c
            loop.keepUntilEndOfBatch(c)
        }
        #expect(closed != nil, "held by the loop, nothing else")
        loop.execute { loop.stop() }   // one iteration: the wake-up, then the end of it
        loop.run()
        #expect(closed == nil, "let go at the end of the iteration")
    }

    /// Closes itself in its own event and records whether it was freed by then.
    private final class SelfClosing: EventHandler {
        final class Record { var freed = false; var aliveAfterClose: Bool? }
        let loop: EventLoop, fd: Int32, record: Record
        init(loop: EventLoop, fd: Int32, record: Record) { self.loop = loop; self.fd = fd; self.record = record }
        deinit { record.freed = true }
        override func handleEvent(readable: Bool, writable: Bool) {
            loop.closeAndDeregister(fd: fd)   // drops the table's reference, the only one
            record.aliveAfterClose = !record.freed
            loop.stop()
        }
    }

    /// The loop calls handlers at +0: one that closes itself in its own event must still be
    /// allocated when the close returns, and be freed once the batch is over.
    @Test func aHandlerThatClosesItselfLivesToTheEndOfTheBatch() throws {
        let loop = try EventLoop()
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[1]) }
        let record = SelfClosing.Record()
        try loop.register(fd: fds[0], handler: SelfClosing(loop: loop, fd: fds[0], record: record), interest: .read)
        #expect(!record.freed, "the table holds it")
        var one: UInt8 = 1
        #expect(write(fds[1], &one, 1) == 1)
        loop.run()
        #expect(record.aliveAfterClose == true, "not freed inside its own event")
        #expect(record.freed, "let go at the end of the batch")
    }

    private final class Queued: EventHandler {
        let turns: Counter
        final class Counter { var value = 0; var freed = false }
        init(_ turns: Counter) { self.turns = turns }
        deinit { turns.freed = true }
        override func endOfBatch() { turns.value += 1 }
    }

    /// A target queued with `afterBatch` is held by the queue (nothing else need hold it), gets
    /// one turn however often it asked, and is let go after it; a `held` one is not released.
    @Test func batchTargetsGetOneTurnAndTheQueuesReferenceOnlyWhenOwned() throws {
        let loop = try EventLoop()
        let owned = Queued.Counter()
        do {
            let q = Queued(owned)
            loop.afterBatch(q)
            loop.afterBatch(q)
        }
        let kept = Queued(Queued.Counter())
        loop.afterBatch(kept, held: true)
        loop.execute { loop.stop() }
        loop.run()
        #expect(owned.value == 1 && owned.freed, "one turn, then the queue's reference goes")
        #expect(kept.turns.value == 1 && !kept.batchQueued)
    }
}
