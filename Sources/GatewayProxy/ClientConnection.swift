import Glibc
import GatewayConfig
import GatewayHTTP
import GatewaySystem
import GatewayTLS

/// A client's TLS connection and the exchanges on it, as one state machine driven by
/// events on either its own socket or the backend connection it currently uses.
/// Every call to `drive` retries whatever can progress until everything would block,
/// then sets exactly the epoll interest that is missing.
final class ClientConnection: EventHandler, TimerTarget, BackendUser {
    enum Phase { case handshaking, awaitingHead, forwarding, tunnel, draining, closed }

    let fd: Int32
    let peer: SocketAddress
    /// The client's TLS session and the bytes read from and waiting for it.
    var io: Transport
    var tls: TLSSession { io.session }
    let snapshot: RuntimeSnapshot
    /// unowned(unsafe): a worker lives as long as the process, beyond all its connections (no refcount traffic per use).
    unowned(unsafe) let worker: Worker
    /// The ticket keys attached to this connection's SSL: kept alive as long as it is.
    let tickets: TicketKeyRing
    /// This worker's metric counters for this connection's snapshot.
    let counters: SnapshotCounters
    var phase: Phase = .handshaking
    /// The client's bytes as request parts (HTTP/1: one stream at a time).
    var codec: HTTP1ServerCodec
    /// HTTP/1: one exchange at a time, on stream 1.
    var exchanges = ExchangeTable()
    var exchange: Exchange? { exchanges[ExchangeTable.http1Stream] }
    var backend: UpstreamSession?
    var headBytesSeen = false
    var closeAfterResponse = false
    var drainBudget = 64 * 1024
    /// The handshake failed with a fatal alert: the drain reads the socket itself, not TLS.
    var lingering = false
    var deadline: UInt64 = 0
    var timerSlot = 0
    /// Set when `forward` stopped at its round limit with work left (large bodies).
    var anotherTurn = false
    lazy var clientCertificate: PeerCertificate? = tls.peerCertificate()
    lazy var clientIP = peer.ipString
    /// The 421 rule, with the last Host asked for on this connection remembered.
    var hostResolver = HostResolver()

    /// Bytes buffered toward one side before the gateway stops reading the other side.
    static let highWater = 64 * 1024

    var limits: Limits { snapshot.config.limits }
    var now: UInt64 { worker.loop.now }

    static func start(fd: Int32, peer: SocketAddress, listener: TLSListener, snapshot: RuntimeSnapshot, worker: Worker) {
        let tls: TLSSession
        let tickets = worker.tickets
        do { tls = try TLSSession(accepting: fd, listener: listener, tickets: tickets) } catch {
            worker.logs.error.log(.error, "tls_setup_failed", error.description)
            Glibc.close(fd); return
        }
        let c = ClientConnection(fd: fd, peer: peer, tls: tls, snapshot: snapshot, tickets: tickets, worker: worker)
        do { try worker.loop.register(fd: fd, handler: c, interest: [.read, .write, .edge]) } catch {
            worker.logs.error.log(.error, "register_failed", error.description)
            Glibc.close(fd); return
        }
        worker.add(c)
        c.setDeadline(snapshot.config.limits.handshakeTimeoutMs)
    }

    init(fd: Int32, peer: SocketAddress, tls: TLSSession, snapshot: RuntimeSnapshot, tickets: TicketKeyRing, worker: Worker) {
        self.fd = fd; self.peer = peer; self.snapshot = snapshot; self.tickets = tickets; self.worker = worker
        io = Transport(tls, buffers: worker.buffers)
        counters = worker.metrics.counters(for: snapshot)
        let l = snapshot.config.limits
        codec = HTTP1ServerCodec(limits: HTTPHeadLimits(maxURISize: l.maxURISize, maxHeaderSize: l.maxHeaderSize, maxHeaders: l.maxHeaders))
    }

    func handleEvent(readable: Bool, writable: Bool) {
        if readable { tls.noteReadable() }
        drive()
    }

    // MARK: - The driver

    func drive() {
        var guardCount = 0
        while phase != .closed && guardCount < 64 {
            guardCount += 1
            let before = phase
            switch phase {
            case .handshaking: handshake()
            case .awaitingHead: readHead()
            case .forwarding: forward()
            case .tunnel: tunnel()
            case .draining: drain()
            case .closed: break
            }
            if phase == before { break }
        }
        guard phase != .closed else { return }
        if anotherTurn {
            anotherTurn = false
            // Strong: kept until the turn runs (soon), where a closed connection does nothing.
            worker.loop.execute { self.drive() }
        }
    }

    func setDeadline(_ ms: Int) {
        deadline = now + UInt64(ms)
        worker.loop.schedule(self)
    }

    func deadlineExpired(now: UInt64) {
        switch phase {
        case .handshaking:
            logHandshakeFailure("handshake timeout")
            close()
        case .awaitingHead:
            if headBytesSeen {
                openExchange()
                respondLocally(.client(408, "request head not received within header_timeout"), close: true)
                drive()
            } else {
                close()   // idle keep-alive connection
            }
        case .forwarding:
            guard let ex = exchange else { close(); return }
            if ex.responseStarted || ex.local { abort(); return }
            let what = backend?.phase == .ready ? "response_timeout" : "connect_timeout"
            let reason = "backend \(backend?.server.label ?? "") timed out (\(what))"
            ex.attempts = 9   // no retry after a timeout
            backendFailed(ProxyError(.timeout, reason, metric: .timeout))
            drive()
        case .tunnel, .draining, .closed:
            close()
        }
    }

    // MARK: - TLS handshake

    func handshake() {
        switch tls.handshake() {
        case .done:
            phase = .awaitingHead
            setDeadline(limits.headerTimeoutMs)
            counters.countHandshake(host: tls.host?.index ?? SnapshotCounters.none, version: tls.versionCode,
                                    cipherID: tls.cipherID, cipherName: tls.cipherName, resumed: tls.sessionReused)
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

    // MARK: - Local responses, draining, closing

    /// An error response from the gateway itself. With `close`, the framing is lost or untrusted:
    /// stop reading, then drain briefly so the client can read the response before the close.
    func respondLocally(_ failure: ProxyError, close: Bool) {
        guard let ex = exchange else { return }
        if ex.responseStarted { abort(); return }
        let status = failure.status
        ex.local = true
        ex.status = status
        ex.responseEnded = true
        ex.responseStarted = true
        if close { ex.requestEnded = true; closeAfterResponse = true }
        ex.bytesOut += HeadWriter.errorResponse(status: status, message: failure.reason, close: close || closeAfterResponse, into: &io.output)
        // A 404 is an answer, not an incident; any other refusal is worth a line, at error level
        // only when the gateway's or a backend's side failed.
        if status != 404 {
            worker.logs.error.log(failure.side == .client ? .info : .error, "request_error", failure.reason,
                                  [("status", String(status)), ("side", failure.side.rawValue), ("client", clientIP),
                                   ("request_id", ex.requestID.text)])
        }
        phase = .forwarding
        if close { io.input.clear() }
    }

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
        switch phase {
        case .handshaking, .awaitingHead:
            if !headBytesSeen { close() }
        default: closeAfterResponse = true
        }
    }

    /// Ends the connection at once (e.g. a backend broke mid-response: the client must not see a truncated body as complete).
    func abort() {
        if let ex = exchange, ex.status != 0 { record(ex) }
        closeExchange()
        close()
    }

    @discardableResult
    func openExchange() -> Exchange {
        exchanges.open(ExchangeTable.http1Stream, startedAt: now, pool: worker.exchangePool)
    }

    func closeExchange() { exchanges.close(ExchangeTable.http1Stream, pool: worker.exchangePool) }

    func close() {
        guard phase != .closed else { return }
        // Every way a TLS error ends an established connection comes here (a read, a write, a tunnel, a drain).
        if let failure = tls.failureAfterHandshake { logConnectionFailure(failure.description) }
        phase = .closed
        worker.loop.cancel(self)
        if let b = backend { b.owner = nil; worker.pool.discard(b); backend = nil }
        worker.loop.closeAndDeregister(fd: fd)
        worker.remove(self)
    }
}
