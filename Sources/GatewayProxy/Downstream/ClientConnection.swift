import Glibc
import GatewayConfig
import GatewayHTTP
import GatewayHTTP2
import GatewaySystem
import GatewayTLS

/// The downstream session: a client's TLS connection, its codec, and the exchanges open on it
/// (one per stream). It owns the connection's life — handshake, reading and writing the client,
/// the handshake/head/idle deadlines, draining and closing; each exchange owns its request's
/// life (backend, retries, its own deadline). `drive` retries whatever can progress until
/// everything would block; an exchange's backend events and timer come back through it.
final class ClientConnection: EventHandler, TimerTarget, BackendUser {
    enum Phase { case handshaking, serving, tunnel, draining, closed }

    let fd: Int32
    let peer: SocketAddress
    /// The client's TLS session and the bytes read from and waiting for it.
    var io: Transport
    var tls: TLSSession { io.session }
    let snapshot: RuntimeSnapshot
    /// Strong `let`s: reading a `let` of the connection costs no retain, where an unowned
    /// reference (or a chain of two) is retained around each use. The worker drops the
    /// connection at `close`, which ends the cycle.
    let worker: Worker
    let loop: EventLoop
    let backends: BackendPool
    let exchangePool: ExchangePool
    /// The ticket keys attached to this connection's SSL: kept alive as long as it is.
    let tickets: TicketKeyRing
    /// This worker's metric counters for this connection's snapshot.
    let counters: SnapshotCounters
    var phase: Phase = .handshaking {
        didSet { if oldValue == .handshaking && phase != .handshaking { worker.handshakeEnded() } }
    }
    /// The client's bytes as request parts, and the framing of the responses: HTTP/1.1 unless
    /// ALPN chose h2, when `http2` is set after the handshake and takes over.
    var downstream: HTTP1Downstream
    /// Set once (never cleared), retained once here and released in deinit, and read at +0:
    /// it is looked at for every response part, where a `var` reference is retained per use.
    var http2Ref: Unmanaged<HTTP2Downstream>?
    var http2: HTTP2Downstream? { http2Ref?.takeUnretainedValue() }
    /// `body` with the HTTP/2 codec at +0. Invariant: `http2Ref` is set once (retained) and
    /// released only in deinit, so it outlives every call on the connection.
    @inline(__always) func withHTTP2<R>(_ body: (HTTP2Downstream) -> R) -> R? {
        guard let r = http2Ref else { return nil }
        return r._withUnsafeGuaranteedRef(body)
    }
    var isHTTP2: Bool { http2Ref != nil }
    /// The listen block the connection came in on (its position in the snapshot's list).
    let listenerIndex: Int
    var exchanges = ExchangeTable()
    /// HTTP/1: the one exchange in progress.
    var exchange: Exchange? { exchanges[HTTP1Downstream.stream] }
    /// `body` with the HTTP/1 exchange at +0. Invariant: ExchangePool recycles a closed exchange
    /// only at the end of the loop's batch, so it stays valid (and not reused) through `body`
    /// even when `body` closes it.
    @inline(__always) func withExchange<R>(_ body: (Exchange) -> R) -> R? {
        guard let u = exchanges.firstUnmanaged else { return nil }
        return u._withUnsafeGuaranteedRef(body)
    }
    /// `body` with the stream's open exchange at +0, nil if none (the same invariant as `withNewExchange`).
    @inline(__always) func withExchange<R>(_ stream: StreamID, _ body: (Exchange) -> R) -> R? {
        guard let u = exchanges.unmanaged(stream) else { return nil }
        return u._withUnsafeGuaranteedRef(body)
    }
    /// HTTP/2: exchanges whose `turn` or `waitingOnClient` was set, in order (queued as the flag
    /// is set, so a round visits only them instead of scanning every open stream), and the list
    /// a round works through (kept: no allocation per round).
    var turnQueue: [Exchange] = []
    var waitingQueue: [Exchange] = []
    var turns: [Exchange] = []
    /// After a 101: the backend connection the bytes are tunnelled to.
    var tunnelled: UpstreamSession?
    var headBytesSeen = false
    var closeAfterResponse = false
    /// Requests started on this connection (`max_requests_per_connection`).
    var requestCount = 0
    var drainBudget = 64 * 1024
    /// The handshake failed with a fatal alert: the drain reads the socket itself, not TLS.
    var lingering = false
    /// The connection's own deadline: handshake, request head, idle keep-alive, tunnel, drain.
    var deadline: UInt64 = 0
    var timerSlot = 0
    /// HTTP/2: the one timer entry for its streams' deadlines (StreamTimer.swift). Retained
    /// once when made and released by `close` (dropStreamTimer), read at +0 for every stream.
    var streamTimer: Unmanaged<StreamTimer>?
    /// Set when a step stopped at its round limit with work left (large bodies).
    var anotherTurn = false
    lazy var clientCertificate: PeerCertificate? = tls.peerCertificate()
    lazy var clientIP = peer.ipString
    /// The 421 rule, with the last Host asked for on this connection remembered.
    var hostResolver = HostResolver()

    /// Bytes buffered toward one side before the gateway stops reading the other side.
    static let highWater = 64 * 1024
    /// HTTP/1 response bodies: pending output this large is written out before a part that would
    /// grow the buffer (ClientConnection.writeBody).
    static let flushBeforeGrowth = 4 * 1024

    var limits: Limits { snapshot.config.limits }
    var now: UInt64 { loop.now }

    /// Starts the TLS side of an accepted socket. From a PendingConnection (`registered`): the
    /// socket is already in epoll with this connection's interest and became readable (the edge
    /// is passed on), and the handshake keeps the accept's deadline.
    static func start(fd: Int32, peer: SocketAddress, listener: ListenerRuntime, snapshot: RuntimeSnapshot, worker: Worker,
                      registered: Bool = false, handshakeDeadline: UInt64 = 0, writable: Bool = false) {
        let tls: TLSSession
        let tickets = worker.tickets
        do { tls = try TLSSession(accepting: fd, listener: listener.tls, tickets: tickets) } catch {
            worker.logs.error.log(.error, "tls_setup_failed", error.description)
            if registered { worker.loop.closeAndDeregister(fd: fd) } else { Descriptor.close(fd) }
            return
        }
        let c = ClientConnection(fd: fd, peer: peer, tls: tls, snapshot: snapshot, tickets: tickets, listenerIndex: listener.index, worker: worker)
        if registered {
            worker.loop.replaceHandler(fd: fd, with: c)
        } else {
            do { try worker.loop.register(fd: fd, handler: c, interest: [.read, .write, .edge]) } catch {
                worker.logs.error.log(.error, "register_failed", error.description)
                Descriptor.close(fd); return
            }
        }
        worker.add(c)
        worker.handshakeStarted()
        if handshakeDeadline != 0 {
            c.deadline = handshakeDeadline
            worker.loop.schedule(c)
        } else {
            c.setDeadline(snapshot.config.limits.handshakeTimeoutMs)
        }
        if registered { c.handleEvent(readable: true, writable: writable) }
    }

    init(fd: Int32, peer: SocketAddress, tls: TLSSession, snapshot: RuntimeSnapshot, tickets: TicketKeyRing, listenerIndex: Int, worker: Worker) {
        self.fd = fd; self.peer = peer; self.snapshot = snapshot; self.tickets = tickets; self.worker = worker; loop = worker.loop
        backends = worker.pool
        exchangePool = worker.exchangePool
        self.listenerIndex = listenerIndex
        io = Transport(tls, buffers: worker.buffers)
        counters = worker.metrics.counters(for: snapshot)
        let l = snapshot.config.limits
        downstream = HTTP1Downstream(limits: HTTPHeadLimits(maxURISize: l.maxURISize, maxHeaderSize: l.maxHeaderSize, maxHeaders: l.maxHeaders))
    }

    deinit { http2Ref?.release() }

    /// Only an HTTP/2 connection asks for a turn after the batch (ClientConnectionHTTP2.swift).
    override func endOfBatch() { endOfHTTP2Batch() }

    override func handleEvent(readable: Bool, writable: Bool) {
        if readable { tls.noteReadable() }
        drive()
    }

    // MARK: - The driver

    func drive() {
        var turns = 0
        while phase != .closed && turns < 64 {
            turns += 1
            let before = phase, open = exchanges.count
            switch phase {
            case .handshaking: handshake()
            case .serving: if withHTTP2({ serveHTTP2($0) }) == nil { serve() }
            case .tunnel: tunnel()
            case .draining: drain()
            case .closed: break
            }
            if phase == before && exchanges.count == open { break }
        }
        guard phase != .closed else { return }
        if anotherTurn {
            anotherTurn = false
            // Strong: kept until the turn runs (soon), where a closed connection does nothing.
            loop.execute { self.drive() }
        }
    }

    func setDeadline(_ ms: Int) {
        deadline = now + UInt64(ms)
        loop.schedule(self)
    }

    func deadlineExpired(now: UInt64) {
        switch phase {
        case .handshaking:
            logHandshakeFailure("handshake timeout")
            close()
        case .serving where http2 != nil:
            http2DeadlineExpired(http2!)
        case .serving:
            if let ex = exchange { ex.deadlineExpired(now: now); return }   // HTTP/1: the exchange's time
            if headBytesSeen {
                respondLocally(openExchange(), .client(408, "request head not received within header_timeout"), close: true)
                drive()
            } else {
                close()   // idle keep-alive connection
            }
        case .tunnel, .draining, .closed:
            close()
        }
    }

    // MARK: - TLS handshake

    func handshake() {
        switch tls.handshake() {
        case .done:
            phase = .serving
            counters.countConnection(http2: tls.negotiatedHTTP2)
            if tls.negotiatedHTTP2 { startHTTP2() } else { setDeadline(limits.headerTimeoutMs) }
            counters.countHandshake(host: tls.host?.index ?? SnapshotCounters.none, version: tls.versionCode,
                                    cipherID: tls.cipherID, cipherName: tls.cipherName, resumed: tls.sessionReused)
            if handshakeEndedOnStaleSnapshot { beginClose() }   // SPEC §7.2 (Worker+Reload.swift)
        case .wantRead, .wantWrite: break   // the next edge drives it on
        case .closed:
            // A port probe (load balancer, health check) that connects and leaves is not a TLS failure.
            if !tls.nothingReceived { logHandshakeFailure(tls.failureReason?.description ?? "connection closed during handshake") }
            close()
        case .failed(let why):
            logHandshakeFailure(why.description)
            // The socket itself failed: no alert went out, nothing to linger for.
            if case .system = why { close() } else { lingerAfterAlert() }
        }
    }

    /// After a fatal alert during the handshake, as `openssl s_server` does: a FIN after the
    /// alert, then the drain of a closing response. A close with the client's first flight (or
    /// pipelined data) still unread would send a RST, and a client that is still writing, or
    /// reads after the RST came, gets "connection reset" instead of the alert. OpenSSL has
    /// written the alert to the socket before SSL_do_handshake returned.
    func lingerAfterAlert() {
        Socket.shutdownWrite(fd)
        lingering = true
        beginClose()
    }

    // MARK: - Exchanges

    @discardableResult
    func openExchange(_ stream: StreamID = HTTP1Downstream.stream) -> Exchange {
        withNewExchange(stream) { $0 }
    }

    /// `body` with a new exchange at +0. Invariant: the table holds it while it is open, and once
    /// it closes the pool holds it until the end of the batch (`ExchangePool.closed`).
    @inline(__always) func withNewExchange<R>(_ stream: StreamID, _ body: (Exchange) -> R) -> R {
        // HTTP/1: the connection's timer now keeps the exchange's time (its first deadline
        // replaces the head timeout); HTTP/2 keeps the connection's idle timer beside the streams'.
        exchanges.open(stream, startedAt: now, pool: exchangePool)._withUnsafeGuaranteedRef { ex in
            ex.connectionRef = Unmanaged.passUnretained(self)
            return body(ex)
        }
    }

    /// The exchange is over: its timer and backend are let go, then it goes back to the pool.
    func closeExchange(_ ex: Exchange) {
        ex.detach()
        exchanges.close(ex.stream, pool: exchangePool)
    }

    /// An error response from the gateway itself. With `close`, the framing is lost or untrusted:
    /// stop reading, then drain briefly so the client can read the response before the close.
    func respondLocally(_ ex: Exchange, _ failure: ProxyError, close: Bool) {
        perform(ex.state.answer(failure.status, close: close), ex, failure)
    }

    /// Carries out what an exchange's state decided after `failure`.
    func perform(_ action: ExchangeState.Action, _ ex: Exchange, _ failure: ProxyError) {
        var failure = failure
        if ex.grpc { failure.grpc = true }
        let close: Bool
        switch action {
        case .abort: abort(ex); return
        case .connect(let other): ex.connect(excluding: other); return
        case .answer(let c):
            close = c && !isHTTP2   // an HTTP/2 stream fails alone: its request is reset after the answer
            ex.stopsReading = c
        }
        if close { closeAfterResponse = true }
        if let h2 = http2 {
            ex.bytesOut += h2.writeLocal(ex.stream, status: failure.status, message: failure.reason, header: failure.header,
                                         grpc: failure.grpcAnswer, close: false, into: &io.output)
        } else {
            ex.bytesOut += downstream.writeLocal(ex.stream, status: failure.status, message: failure.reason, header: failure.header,
                                                 grpc: failure.grpcAnswer, close: close || closeAfterResponse, into: &io.output)
        }
        // A 404 is an answer, not an incident; any other refusal is worth a line, at error level
        // only when the gateway's or a backend's side failed.
        if failure.status != 404 {
            worker.logs.error.log(failure.side == .client ? .info : .error, "request_error", failure.reason,
                                  [("status", .int(failure.status)), ("side", .string(failure.side.rawValue)), ("client", .string(clientIP)),
                                   ("request_id", .string(ex.requestID.text))])
        }
        // A client that does not read its answer is not waited for beyond idle_timeout.
        ex.setDeadline(max(limits.idleTimeoutMs, 1))
        if close { io.input.clear() }
    }

    // MARK: - Draining, closing

    /// After the last response (or a fatal alert): flush, send close_notify, read and discard at
    /// most 64 KiB or 1 s, close.
    func beginClose() {
        phase = .draining
        drainBudget = 64 * 1024
        setDeadline(1000)
    }

    func drain() {
        _ = flushClient()
        guard phase == .draining else { return }
        if !io.output.isEmpty { return }
        tls.shutdown()   // nothing after a failed handshake: the session knows
        while drainBudget > 0 {
            io.input.clear()
            switch drainRead() {
            case .done(let n): drainBudget -= n
            case .wantRead, .wantWrite: return
            case .closed, .failed: close(); return
            }
        }
        close()
    }

    /// One read of what the client still sends, to be discarded: through TLS after a response,
    /// from the socket itself after a fatal alert (a failed SSL would only repeat its error).
    private func drainRead() -> TLSSession.Status {
        guard lingering else { return io.read(minimum: 4096) }
        switch Socket.receive(fd, into: io.input.writableSpace(minimum: 4096), peek: false) {
        case .bytes(let n): return .done(n)
        case .wouldBlock: return .wantRead
        case .closed, .failed: return .closed
        }
    }

    func shutdownRequested() {
        if let h2 = http2, phase == .serving { goAway(h2); return }
        switch phase {
        case .handshaking: close()
        case .serving where exchanges.isEmpty && !headBytesSeen: close()
        default: closeAfterResponse = true
        }
    }

    /// Ends the connection at once (shutdown_timeout): every started exchange is logged.
    func abort() {
        for ex in exchanges.all where ex.state.status != 0 { record(ex) }
        close()
    }

    /// Ends one exchange at once (a backend broke mid-response, a client stopped reading): the
    /// client must not take a truncated body for a whole one. HTTP/1 can only say so by closing
    /// the connection; HTTP/2 resets the stream and the connection goes on.
    func abort(_ ex: Exchange) {
        guard let h2 = http2 else { abort(); return }
        if ex.state.status != 0 { record(ex) }
        h2.session.reset(Int32(ex.stream), code: HTTP2ErrorCode.internalError)
        closeExchange(ex)
        if exchanges.isEmpty { setDeadline(limits.idleTimeoutMs) }
    }

    func close() {
        guard phase != .closed else { return }
        // Every way a TLS error ends an established connection comes here (a read, a write, a tunnel, a drain).
        if let failure = tls.failureAfterHandshake { logConnectionFailure(failure.description) }
        phase = .closed
        loop.cancel(self)
        dropStreamTimer()
        for ex in exchanges.all { closeExchange(ex) }
        turnQueue = []; waitingQueue = []
        if let t = tunnelled { t.owner = nil; backends.discard(t); tunnelled = nil }
        loop.closeAndDeregister(fd: fd)
        worker.remove(self)
    }
}
