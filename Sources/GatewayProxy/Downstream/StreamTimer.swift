import GatewaySystem

/// One timer entry for the deadlines of all of an HTTP/2 connection's streams (response,
/// connect, gRPC timeouts), set to the earliest one noted. A heap entry per stream cost an
/// insert and a removal per request, each sifting through the worker's heap of every open
/// stream (with a retain and a release of two targets per level). A deadline later than the
/// entry's is a store; the entry fires early when its stream finished in time, and re-arms
/// at the earliest deadline left.
final class StreamTimer: TimerTarget {
    var deadline: UInt64 = 0
    var timerSlot = 0
    /// Cleared by the connection's close, which also takes this entry out of the heap.
    var connection: ClientConnection?

    init(_ c: ClientConnection) { connection = c }

    func deadlineExpired(now: UInt64) {
        deadline = 0
        connection?.streamDeadlinesPassed(now: now)
    }
}

extension ClientConnection {
    /// An HTTP/2 stream's exchange will time out at `d` (its `deadline`).
    func noteStreamDeadline(_ d: UInt64) {
        guard phase != .closed else { return }   // no timer (and no cycle with it) after close
        let ref = streamTimer ?? makeStreamTimer()
        ref._withUnsafeGuaranteedRef { t in
            if t.deadline == 0 || d < t.deadline {
                t.deadline = d
                loop.schedule(t)
            }
        }
    }

    private func makeStreamTimer() -> Unmanaged<StreamTimer> {
        let ref = Unmanaged.passRetained(StreamTimer(self))
        streamTimer = ref
        return ref
    }

    /// The stream timer fired: the exchanges whose deadline passed time out (collected first:
    /// each may close, changing the table), and the timer waits for the earliest one left.
    func streamDeadlinesPassed(now: UInt64) {
        var next: UInt64 = 0
        var due: [Exchange] = []
        for ex in exchanges.all where ex.deadline != 0 {
            if ex.deadline <= now { due.append(ex) } else if next == 0 || ex.deadline < next { next = ex.deadline }
        }
        for ex in due where ex.isOpen && ex.deadline != 0 && ex.deadline <= now {
            ex.deadline = 0   // fired, as a heap entry's would be: once, until it sets another
            ex.deadlineExpired(now: now)
        }
        if next != 0 { noteStreamDeadline(next) }
    }

    /// The connection closes (or its idle sweep found it idle): its stream timer leaves the
    /// heap and lets go of it; the next deadline makes another.
    func dropStreamTimer() {
        guard let ref = streamTimer else { return }
        streamTimer = nil
        let t = ref.takeRetainedValue()
        loop.cancel(t)
        t.connection = nil
    }
}
