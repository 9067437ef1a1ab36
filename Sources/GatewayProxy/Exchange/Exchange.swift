import GatewayConfig
import GatewayHTTP
import GatewayHTTP2
import GatewaySystem
import GatewayTLS

/// One request/response on a client connection (one stream), protocol-neutral: its progress
/// (`state`, a value machine), the backend connection it uses, its own deadline, and what the
/// access log will say. The connection's codec hands it request parts for its stream; it hands
/// response parts back through the connection's codec, so framing never lives here. A class:
/// many steps update it in place, the backend's events and its timer reach it, and the
/// worker's `ExchangePool` reuses it, so a keep-alive request allocates no exchange.
final class Exchange: TimerTarget, BackendUser {
    /// The connection and the stream it serves while open, held unretained and used at +0
    /// (`withClient`): an unowned reference is retained and released around every use.
    /// Unmanaged: an open exchange sits in its connection's table, and the connection detaches
    /// and closes its exchanges before it goes; a pooled exchange has none.
    var connectionRef: Unmanaged<ClientConnection>?
    var connection: ClientConnection? { connectionRef?.takeUnretainedValue() }
    /// The worker whose pool lent it, and the two of its parts every step uses, as strong `let`s:
    /// reading a `let` of a class the caller holds costs no retain, where an unowned or `var`
    /// reference, or a chain of two, is retained around each use. (nil in unit tests.)
    let worker: Worker!
    let loop: EventLoop!
    let backends: BackendPool!
    var stream: StreamID = 0
    var state = ExchangeState()

    var startedAt: UInt64 = 0
    /// For the access log only (filled when it is on): no String per request otherwise.
    var method = ""
    var path = ""
    var host: String?
    /// The three above were filled (the access log is on).
    var accessLogged = false
    /// The host block that answers (metric label), or `SnapshotCounters.none`.
    var hostIndex = SnapshotCounters.none
    var requestID = RequestID.none
    /// The traceparent sent to the backend (the client's or a new one), for the access log's `trace_id`.
    var trace: TraceContext?
    var isHEAD = false
    var clientVersionMinor = 1
    /// The host's `compress` settings when on, and whether the client accepts gzip.
    var compression: CompressionSettings?
    var acceptsGzip = false
    /// SPEC §13, for the access log: the token's `sub` (only while the log is on) or why it failed.
    var jwtSub: String?
    var jwtError: String?

    /// Where the request goes, and the connection to it while one is used. The backend is held
    /// unretained and used at +0: it belongs to the snapshot of the exchange's connection, which
    /// holds it while the exchange is open, the only time it is read (`reset` clears it).
    var backendRef: Unmanaged<BackendRuntime>?
    var backend: BackendRuntime? { backendRef?.takeUnretainedValue() }
    /// The backend's index for the metrics, at +0.
    var backendIndex: Int { backendRef?._withUnsafeGuaranteedRef { $0.index } ?? SnapshotCounters.none }
    var upstream: UpstreamSession?
    /// `protocol h2` backends: the stream on a shared connection, instead of `upstream`.
    var backendStream = BackendStream()
    var upstreamStartedAt: UInt64 = 0
    var upstreamMs: Int?

    /// The head for the backend, built once; kept until the response starts, for a retry.
    var outgoingHead: ByteBuffer
    /// The client's body is chunked: it goes to the backend re-chunked (sizes checked, extensions dropped).
    var requestChunked = false
    var requestBodyBytes = 0
    /// The client's request trailers (HTTP/2), for the backend after the body.
    var requestTrailers: HTTP2Fields?
    /// The client said `TE: trailers`: response trailers reach an HTTP/1.1 client as chunked trailers.
    var clientTE = false
    /// An HTTP/1.1 client sent `Expect: 100-continue`: an h2 backend does not answer it, the gateway does.
    var expectsContinue = false
    /// `content-type: application/grpc…` (SPEC §12): the gateway's own answers take gRPC's form.
    var grpc = false
    /// The `grpc-timeout` as a point in time (0: none); it bounds the exchange's deadlines.
    var grpcDeadline: UInt64 = 0
    /// HTTP/2: the client ended its stream (the rest of its body is in the stream's buffer).
    var clientEnded = false
    /// The gateway answered without reading the rest of the request (413, 431, 414, 400): HTTP/1
    /// closes the connection after it, HTTP/2 resets the stream.
    var stopsReading = false
    /// HTTP/2: something happened for this stream (its backend, the client, its window) and it
    /// needs a turn; the connection moves only such streams, not all of them on every event.
    var turn = false {
        didSet { if turn && !oldValue, let c = connectionRef { c._withUnsafeGuaranteedRef { $0.queueTurn(self) } } }
    }
    /// HTTP/2: its response waits for the client to take what the stream already holds.
    var waitingOnClient = false {
        didSet { if waitingOnClient && !oldValue, let c = connectionRef { c._withUnsafeGuaranteedRef { $0.queueWaiting(self) } } }
    }
    /// HTTP/2: the connection's flush count when its answer was queued (-1: not yet), so the
    /// reset that follows an early answer waits until the answer was written.
    var answerFlush = -1
    /// Counted and logged (once: an HTTP/2 answer is logged when it is out, even while the rest
    /// of the client's request is still being dropped).
    var recorded = false
    /// The gzip filter while the response body is being compressed.
    var gzip: GzipStream?
    var bytesOut = 0

    /// Connect and response timeouts, and a client that stops reading the response.
    var deadline: UInt64 = 0
    var timerSlot = 0

    /// Set while the exchange is in its connection's table: `isOpen` answers "is this still the
    /// stream's exchange" without a table lookup (a holder keeps a closed one from reuse).
    fileprivate(set) var isOpen = false

    init(buffers: BufferPool, worker: Worker?) {
        outgoingHead = ByteBuffer(pool: buffers)
        self.worker = worker; loop = worker?.loop; backends = worker?.pool
    }

    /// The HTTP/1 backend connection at +0 for `body`. Invariant: the exchange or the pool holds
    /// it until it is closed, and a closed one is held by the loop until the end of its iteration
    /// (`UpstreamSession.close`), so it outlives `body` even when `body` lets it go.
    @inline(__always) func withUpstream<R>(_ body: (UpstreamSession) -> R) -> R? {
        guard let u = upstream.map({ Unmanaged.passUnretained($0) }) else { return nil }
        return u._withUnsafeGuaranteedRef(body)
    }

    /// The open `h2` backend connection and its session at +0 for `body`; nil when there is none
    /// or it closed (a connection has its session until it closes). Invariant: an open one is
    /// in the pool, and one that closes during `body` is held, with its session, by the loop
    /// until the end of the batch (`H2Upstream.close`).
    @inline(__always) func withBackendConnection<R>(_ body: (H2Upstream, HTTP2ClientSession) -> R) -> R? {
        guard let c = backendStream.conn.map({ Unmanaged.passUnretained($0) }) else { return nil }
        return c._withUnsafeGuaranteedRef { c in c.withSession { body(c, $0) } }
    }

    /// The open exchange's connection at +0 for `body` (no retain/release).
    @inline(__always) func withClient<R>(_ body: (ClientConnection) throws -> R) rethrows -> R {
        try connectionRef.unsafelyUnwrapped._withUnsafeGuaranteedRef(body)
    }

    /// Ready for the next request: every field back to its initial value.
    func reset(startedAt: UInt64) {
        connectionRef = nil; isOpen = false; stream = 0; state = ExchangeState()
        self.startedAt = startedAt
        // Reference-holding fields are cleared only when set: most requests leave them empty,
        // and clearing an empty one still calls the runtime to release nothing.
        if accessLogged { method = ""; path = ""; host = nil; accessLogged = false }
        hostIndex = SnapshotCounters.none
        requestID = .none; trace = nil; isHEAD = false; clientVersionMinor = 1
        if compression != nil { compression = nil }
        acceptsGzip = false
        if jwtSub != nil || jwtError != nil { jwtSub = nil; jwtError = nil }
        backendRef = nil
        if upstream != nil { upstream = nil }
        if !backendStream.isEmpty { backendStream = BackendStream() }
        upstreamStartedAt = 0; upstreamMs = nil
        if requestTrailers != nil { requestTrailers = nil }
        clientTE = false; expectsContinue = false; grpc = false; grpcDeadline = 0
        outgoingHead.clear(); outgoingHead.releaseIfEmpty()
        requestChunked = false; requestBodyBytes = 0; clientEnded = false; stopsReading = false; turn = false; waitingOnClient = false; answerFlush = -1; recorded = false
        if gzip != nil { gzip = nil }
        bytesOut = 0
        deadline = 0; timerSlot = 0
    }
}

/// Finished exchanges of one worker, reset and handed out again: a keep-alive request
/// allocates no exchange, and an idle connection holds none. One loop thread: no locks.
///
/// An exchange closed during a batch of the loop's events comes back at the end of that batch
/// (`endOfBatch`), never sooner: so an exchange read from a connection's table stays what it
/// was for the rest of the batch, and the steps that may close it can take it at +0
/// (`ClientConnection.withExchange`) instead of a retain guarding it from reuse.
final class ExchangePool: EventHandler {
    /// The worker that owns this pool (set once it exists; nil in unit tests).
    /// unowned(unsafe): workers live as long as the process.
    unowned(unsafe) var worker: Worker?
    /// The loop whose batches closed exchanges wait out (the worker's; nil: recycled at once).
    /// Unmanaged, used at +0: the worker owns both, and the loop lives as long as the worker.
    var loop: Unmanaged<EventLoop>?
    /// Closed during the current batch: recycled at its end.
    private var closing: [Exchange] = []
    private var spare: [Exchange] = []
    /// Closed exchanges some caller up the stack still held at `close` (the step that finished
    /// an exchange usually holds it): they come back once nothing else does.
    private var retired: [Exchange] = []
    private let buffers: BufferPool
    /// Spares kept: as many as a worker's HTTP/2 clients keep in flight at once (h2load -c4
    /// -m250: ~500), else a batch of answers freed the excess and the next batch allocated it
    /// again (0.29 exchanges allocated per request). A few hundred bytes each, and cut back to
    /// `keptAfterSurge` when a surge of connections has passed (MemoryRelief).
    private let limit = 1024
    static let keptAfterSurge = 256

    init(buffers: BufferPool) { self.buffers = buffers }

    func take(startedAt: UInt64) -> Exchange {
        if spare.isEmpty { reclaim() }
        let ex = spare.popLast() ?? Exchange(buffers: buffers, worker: worker)
        ex.startedAt = startedAt
        return ex
    }

    /// Reset as it comes back, not as it goes out: a spare must hold nothing — no compressor,
    /// no buffer block, and above all no backend of an old snapshot (its TLS contexts) after a reload.
    func give(_ ex: consuming Exchange) {
        ex.reset(startedAt: 0)
        if spare.count < limit { spare.append(ex) }
    }

    /// The table let `ex` go. With a loop, it comes back at the end of the batch; without one
    /// (unit tests), now when nothing else holds it.
    func closed(_ ex: consuming Exchange) {
        guard let loop else { recycle(consume ex); return }
        closing.append(ex)
        // `held`: the pool lives as long as its worker, and so longer than the loop's batch.
        if !batchQueued { loop._withUnsafeGuaranteedRef { $0.afterBatch(self, held: true) } }
    }

    override func endOfBatch() {
        // Moved out one by one: a copy would make none of them uniquely referenced.
        while let ex = closing.popLast() { recycle(consume ex) }
    }

    /// Reset and spare when nothing else holds it (a queue of its connection, a backend stream
    /// table), else retired until nothing does.
    private func recycle(_ ex: consuming Exchange) {
        if isKnownUniquelyReferenced(&ex) { give(ex) } else { retire(ex) }
    }

    var spareCount: Int { spare.count }
    var retiredCount: Int { retired.count }

    /// Lets go of spares beyond `count`.
    func trim(to count: Int) {
        if spare.count > count { spare.removeSubrange(count...) }
    }

    /// A closed exchange that may still be held: reset and reused only once nothing else holds it.
    /// What still holds one at the end of its batch (its connection's turn queue, a backend's
    /// stream table) can hold hundreds at h2load -c4 -m250: all of them are kept up to the limit,
    /// or the excess was freed and allocated again (0.2 exchanges per request with 256).
    func retire(_ ex: Exchange) {
        if retired.count + spare.count < limit { retired.append(ex) }
    }

    /// Retired exchanges nothing holds any more become spares: when `take` runs out of spares,
    /// and at MemoryRelief's sweep (so none keeps an old snapshot's backend for long).
    func reclaim() {
        var i = 0
        while i < retired.count {
            if isKnownUniquelyReferenced(&retired[i]) {
                retired.swapAt(i, retired.count - 1)
                give(retired.removeLast())
            } else {
                i += 1
            }
        }
    }
}

/// A connection's exchanges by stream. HTTP/1 is the single-stream case (one exchange at a
/// time, stream 1 again for every request); an HTTP/2 codec keeps one per open stream.
struct ExchangeTable {

    private var first: (stream: StreamID, exchange: Exchange)?
    private var more = StreamMap<Exchange>()
    /// Open exchanges, kept apart so "any open?" reads no reference (no retain).
    private(set) var count = 0

    subscript(stream: StreamID) -> Exchange? {
        if let f = first, f.stream == stream { return f.exchange }
        return more.isEmpty ? nil : more[Int32(bitPattern: stream)]
    }

    var isEmpty: Bool { count == 0 }

    /// HTTP/2: the table keeps room for `streams` open exchanges when it empties (regrowing it
    /// after each run of streams rehashed every exchange), until `releaseStorage`.
    mutating func keepRoom(for streams: Int) {
        if more.isEmpty { more = StreamMap(keepingRoomFor: streams) }
    }

    /// An idle connection's table storage goes (MemoryRelief's sweep).
    mutating func releaseStorage() {
        if more.isEmpty { more.removeAll() }
    }

    /// Every open exchange (closing a connection).
    var all: [Exchange] { (first.map { [$0.exchange] } ?? []) + more.values }

    /// The new exchange, unretained: the pool's reference moves into the table, which holds it
    /// while it is open (and the pool until the end of the batch once it closes).
    mutating func open(_ stream: StreamID, startedAt: UInt64, pool: ExchangePool) -> Unmanaged<Exchange> {
        let ex = pool.take(startedAt: startedAt)
        ex.stream = stream
        ex.isOpen = true
        count += 1
        let u = Unmanaged.passUnretained(ex)
        if first == nil { first = (stream, consume ex) } else { more.insert(Int32(bitPattern: stream), consume ex) }
        return u
    }

    /// The stream's exchange is over: the pool has it back (at the end of the loop's batch, and
    /// only when nothing else holds it then: a reused exchange must never be seen by an old holder).
    mutating func close(_ stream: StreamID, pool: ExchangePool) {
        let taken: Exchange?   // moved out of the table (take), not copied and cleared
        if first?.stream == stream { taken = first.take()?.exchange } else { taken = more.removeValue(forKey: Int32(bitPattern: stream)) }
        guard let ex = consume taken else { return }
        ex.isOpen = false
        count -= 1
        pool.closed(consume ex)   // the table's reference moves on: nothing left here to hold it
    }

    /// The stream's open exchange unretained, if any (`ClientConnection.withExchange(_:_:)`).
    func unmanaged(_ stream: StreamID) -> Unmanaged<Exchange>? {
        if let f = first, f.stream == stream { return Unmanaged.passUnretained(f.exchange) }
        return more.isEmpty ? nil : more.unmanaged(Int32(bitPattern: stream))
    }

    /// The HTTP/1 exchange (the first opened) unretained, if any.
    var firstUnmanaged: Unmanaged<Exchange>? {
        guard let f = first else { return nil }
        return Unmanaged.passUnretained(f.exchange)
    }
}
