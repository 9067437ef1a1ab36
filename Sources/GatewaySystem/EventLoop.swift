import Glibc
import CGatewayShims

/// Something the loop calls: a listener, a client or a backend connection on its descriptor's
/// events (`handleEvent`), and anything that asked for a turn once the events of one
/// `epoll_wait` batch were all handled (`afterBatch`, then `endOfBatch`): an HTTP/2 connection
/// writes its client once for every stream answered in the batch, instead of once per backend
/// event (fewer writes, fewer and fuller TLS records). A class rather than protocols so the loop
/// calls through `Unmanaged` references, with no retain and release per call (an existential
/// read from a table was retained around each).
open class EventHandler {
    public init() {}
    /// `readable`/`writable` include error and hang-up conditions, so the handler discovers them on its next I/O call.
    open func handleEvent(readable: Bool, writable: Bool) {}
    /// Set by the loop while the handler is queued for the end of the batch (so it is queued once per batch).
    public final var batchQueued = false
    open func endOfBatch() {}
}

/// Something with a deadline. The loop keeps a min-heap with at most one entry per target;
/// pushing a later deadline is free (the entry fires early, sees the later `deadline`, and
/// re-arms), so resetting an idle timer on every request costs a store, not a heap operation.
/// A target that closes calls `cancel`: its entry goes at once, not at its old deadline.
public protocol TimerTarget: AnyObject {
    /// Monotonic ms, or 0 for none.
    var deadline: UInt64 { get set }
    /// Bookkeeping for the loop: 1 + the index of this target's heap entry, 0 if none.
    var timerSlot: Int { get set }
    func deadlineExpired(now: UInt64)
}

/// One epoll instance driven by one thread. Not thread-safe except `wakeUp`/`execute`:
/// every other method is called on the loop's own thread.
public final class EventLoop: @unchecked Sendable {
    // @unchecked: only `execute`, `wakeUp` (mutex + eventfd) are called from other threads; the rest on the loop thread.
    private let epfd: Int32
    private let wakeFD: Int32
    /// Handlers by fd, each held +1 by the table (the generation in the epoll tag drops events
    /// for a reused fd). Unmanaged so that dispatch costs no retain: a handler taken out of the
    /// table hands its +1 to `closing`, so one that closes itself during its own event stays alive
    /// until the batch ends.
    private var handlers: [Unmanaged<EventHandler>?] = []
    private var generations: [UInt32] = []
    private var interests: [UInt32] = []
    /// Strong, and removed by `cancel` when the target closes: a closed connection must not live
    /// (its SSL and buffers) until its old deadline — under a connection storm that held hundreds
    /// of MB (found by scripts/soak). Not weak: a weak reference gives every connection a side
    /// table, and then each retain and release of it takes the slow path.
    private struct TimerEntry {
        var deadline: UInt64
        let target: TimerTarget
    }
    private var timers: [TimerEntry] = []
    private var events: UnsafeMutablePointer<epoll_event>
    private let maxEvents = 256
    private let taskLock = Mutex()
    private var tasks: [() -> Void] = []
    private var running = true
    /// Handlers for the end of this batch, each held +1 until its turn unless `held` elsewhere
    /// for longer, and the list being run (swapped: no allocation per batch).
    private struct BatchEntry { let target: Unmanaged<EventHandler>; let owned: Bool }
    private var batch: [BatchEntry] = []
    private var batchRunning: [BatchEntry] = []
    /// Objects closed during this iteration, held until its end (`keepUntilEndOfBatch`).
    private var closing: [AnyObject] = []
    /// Cached at each wake-up: the "now" of every handler in that iteration.
    public private(set) var now: UInt64 = monotonicMilliseconds()

    public init() throws(SystemError) {
        guard let e = try retryingSyscall("epoll_create1", { epoll_create1(Int32(EPOLL_CLOEXEC)) }) else {
            throw SystemError("epoll_create1", errno: EAGAIN)
        }
        guard let w = try retryingSyscall("eventfd", { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }) else {
            throw SystemError("eventfd", errno: EAGAIN)
        }
        epfd = e; wakeFD = w
        events = .allocate(capacity: maxEvents)
        var ev = epoll_event()
        ev.events = EPOLLIN.rawValue
        ev.data.u64 = UInt64.max
        _ = try retryingSyscall("epoll_ctl", context: "eventfd") { epoll_ctl(epfd, EPOLL_CTL_ADD, wakeFD, &ev) }
    }

    deinit {
        for h in handlers { h?.release() }
        for e in batch where e.owned { e.target.release() }
        events.deallocate()
        close(epfd); close(wakeFD)
    }

    public struct Interest: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let read = Interest(rawValue: EPOLLIN.rawValue)
        public static let write = Interest(rawValue: EPOLLOUT.rawValue)
        public static let none: Interest = []
        /// Edge-triggered: register once for reading and writing, and the loop reports only
        /// changes; the handler reads and writes until it would block. `setInterest` is then a
        /// no-op, so a connection makes no `epoll_ctl` per request.
        public static let edge = Interest(rawValue: EPOLLET.rawValue)
    }

    public func register(fd: Int32, handler: EventHandler, interest: Interest) throws(SystemError) {
        let i = Int(fd)
        if i >= handlers.count {
            let n = max(i + 1, handlers.count * 2, 64)
            handlers.append(contentsOf: repeatElement(nil, count: n - handlers.count))
            generations.append(contentsOf: repeatElement(0, count: n - generations.count))
            interests.append(contentsOf: repeatElement(0, count: n - interests.count))
        }
        generations[i] &+= 1
        retire(i)
        handlers[i] = .passRetained(handler)
        interests[i] = interest.rawValue
        var ev = epoll_event()
        ev.events = interest.rawValue
        ev.data.u64 = UInt64(generations[i]) << 32 | UInt64(UInt32(bitPattern: fd))
        _ = try retryingSyscall("epoll_ctl", context: "add fd \(fd)") { epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) }
    }

    /// Changes what the loop waits for on `fd`; no syscall when nothing changes.
    public func setInterest(fd: Int32, _ interest: Interest) {
        let i = Int(fd)
        guard i < interests.count, handlers[i] != nil, interests[i] != interest.rawValue,
              interests[i] & Interest.edge.rawValue == 0 else { return }
        interests[i] = interest.rawValue
        var ev = epoll_event()
        ev.events = interest.rawValue
        ev.data.u64 = UInt64(generations[i]) << 32 | UInt64(UInt32(bitPattern: fd))
        _ = epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev)
    }

    /// Gives `fd`'s registration (its interest, its tag) to another handler: a hand-over between
    /// two objects that serve one socket in turn, with no syscall.
    public func replaceHandler(fd: Int32, with handler: EventHandler) {
        let i = Int(fd)
        guard i < handlers.count, handlers[i] != nil else { return }
        retire(i)
        handlers[i] = .passRetained(handler)
    }

    /// Takes `fd`'s handler out of the table; its reference is held until the batch ends.
    @inline(__always) private func retire(_ i: Int) {
        guard let h = handlers[i] else { return }
        handlers[i] = nil
        closing.append(h.takeRetainedValue())
    }

    /// Forgets `fd` without closing it: another handler registers it next (a hand-over).
    public func deregister(fd: Int32) {
        let i = Int(fd)
        guard i < handlers.count, handlers[i] != nil else { return }
        retire(i)
        _ = epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nil)
    }

    /// Forgets `fd` and closes it.
    /// `shared`: another descriptor may refer to the same socket (a listener dup'ed per worker),
    /// so the registration must be removed explicitly; for a connection's own descriptor, closing
    /// it removes it from epoll (one `epoll_ctl` per connection saved), and the generation in
    /// the tag drops any event for it still in this wake-up's batch.
    public func closeAndDeregister(fd: Int32, shared: Bool = false) {
        let i = Int(fd)
        if i < handlers.count, handlers[i] != nil {
            retire(i)
            if shared { _ = epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nil) }
        }
        close(fd)
    }

    /// Makes sure the target's deadline will be looked at no later than it falls.
    public func schedule(_ target: TimerTarget) {
        let d = target.deadline
        guard d != 0 else { return }
        let slot = target.timerSlot
        if slot != 0 {
            let i = slot - 1
            if timers[i].deadline <= d { return }   // fires early and re-arms then
            timers[i].deadline = d
            siftUp(i)
            return
        }
        timers.append(TimerEntry(deadline: d, target: target))
        target.timerSlot = timers.count
        siftUp(timers.count - 1)
    }

    /// The target closed: no deadline any more, and the heap no longer holds it.
    public func cancel(_ target: TimerTarget) {
        target.deadline = 0
        let slot = target.timerSlot
        guard slot != 0 else { return }
        target.timerSlot = 0
        remove(at: slot - 1)
    }

    /// Gives `target` a turn after the current batch of events (once, however often it asks).
    /// `held`: the caller guarantees the target outlives the loop (a worker's exchange pool), so
    /// the list takes no reference of its own.
    public func afterBatch(_ target: EventHandler, held: Bool = false) {
        guard !target.batchQueued else { return }
        target.batchQueued = true
        batch.append(BatchEntry(target: held ? .passUnretained(target) : .passRetained(target), owned: !held))
    }

    /// Holds `object` until the current iteration of `run` is over: a step that uses it at +0
    /// (without a retain of its own) may close it midway and still return through it.
    public func keepUntilEndOfBatch(_ object: AnyObject) {
        closing.append(object)
    }

    @inline(__always) private func runBatchTargets() {
        while !batch.isEmpty {
            swap(&batch, &batchRunning)
            // +0 during the call (the list's +1 lasts it), released after; the list is not
            // changed until removeAll.
            for i in batchRunning.indices {
                let e = batchRunning[i]
                e.target._withUnsafeGuaranteedRef { $0.batchQueued = false; $0.endOfBatch() }
                if e.owned { e.target.release() }
            }
            batchRunning.removeAll(keepingCapacity: true)
        }
    }

    /// Runs `task` on the loop's thread soon. Callable from any thread.
    public func execute(_ task: @escaping () -> Void) {
        taskLock.withLock { tasks.append(task) }
        wakeUp()
    }

    public func wakeUp() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Ends `run()` after the current iteration. Call on the loop's thread (or through `execute`).
    public func stop() { running = false }

    public func run() {
        while running {
            let timeout = nextTimeout()
            let n = epoll_wait(epfd, events, Int32(maxEvents), timeout)
            now = monotonicMilliseconds()
            if n > 0 {
                for k in 0..<Int(n) {
                    let ev = events[k]
                    let tag = ev.data.u64
                    if tag == UInt64.max { drainWakeups(); continue }
                    let fd = Int(UInt32(truncatingIfNeeded: tag))
                    guard fd < handlers.count, generations[fd] == UInt32(tag >> 32), let h = handlers[fd] else { continue }
                    let e = ev.events
                    let err = e & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0
                    // +0: the table's reference lasts the call (see `handlers`).
                    h._withUnsafeGuaranteedRef { $0.handleEvent(readable: e & EPOLLIN.rawValue != 0 || err, writable: e & EPOLLOUT.rawValue != 0 || err) }
                }
            }
            runBatchTargets()
            fireTimers()
            runBatchTargets()
            if !closing.isEmpty { closing.removeAll(keepingCapacity: true) }
        }
    }

    private func drainWakeups() {
        var v: UInt64 = 0
        _ = read(wakeFD, &v, 8)
        let pending = taskLock.withLock { () -> [() -> Void] in
            let t = tasks; tasks = []; return t
        }
        for t in pending { t() }
    }

    private func nextTimeout() -> Int32 {
        guard !timers.isEmpty else { return -1 }
        let first = timers[0].deadline   // not the whole entry: copying it retained its target
        let n = monotonicMilliseconds()
        return first <= n ? 0 : Int32(min(first - n, 60_000))
    }

    private func fireTimers() {
        while let first = timers.first, first.deadline <= now {
            let target = first.target
            target.timerSlot = 0
            remove(at: 0)
            let d = target.deadline
            if d == 0 { continue }
            if d > now { schedule(target) } else { target.deadlineExpired(now: now) }
        }
    }

    private func remove(at i: Int) {
        let last = timers.removeLast()
        guard i < timers.count else { return }
        timers[i] = last
        last.target.timerSlot = i + 1
        siftDown(i)
        siftUp(i)
    }

    private func swapEntries(_ a: Int, _ b: Int) {
        timers.swapAt(a, b)
        timers[a].target.timerSlot = a + 1
        timers[b].target.timerSlot = b + 1
    }

    private func siftUp(_ start: Int) {
        var i = start
        while i > 0 {
            let p = (i - 1) / 2
            if timers[p].deadline <= timers[i].deadline { break }
            swapEntries(p, i); i = p
        }
    }

    private func siftDown(_ start: Int) {
        var i = start
        let n = timers.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < n && timers[l].deadline < timers[m].deadline { m = l }
            if r < n && timers[r].deadline < timers[m].deadline { m = r }
            if m == i { return }
            swapEntries(m, i); i = m
        }
    }
}

/// A pthread mutex, for the few cross-thread hand-offs (never on the request path).
public final class Mutex: @unchecked Sendable {
    // @unchecked: the pthread mutex itself provides the synchronisation.
    private let m: UnsafeMutablePointer<pthread_mutex_t>
    public init() { m = .allocate(capacity: 1); pthread_mutex_init(m, nil) }
    deinit { pthread_mutex_destroy(m); m.deallocate() }
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(m); defer { pthread_mutex_unlock(m) }
        return try body()
    }
}
