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
}
