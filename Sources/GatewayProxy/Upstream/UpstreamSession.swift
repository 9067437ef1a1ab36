import Glibc
import GatewayHTTP
import GatewayHTTP2
import GatewaySystem
import GatewayTLS

/// Something that drives a backend connection while it uses it: its events go there.
protocol BackendUser: AnyObject {
    func drive()
}

/// One TLS connection to a backend server. While a request uses it, its events go to
/// that client connection; while it idles in the pool, it only watches for the server closing it.
final class UpstreamSession: EventHandler, TimerTarget {
    enum Phase {
        case connecting, handshaking, ready, closed
        var inHandshake: Bool { self == .connecting || self == .handshaking }
    }

    let fd: Int32
    /// The backend's TLS session and the bytes read from and waiting for it.
    var io: Transport
    var tls: TLSSession { io.session }
    let backend: BackendRuntime
    let serverIndex: Int
    /// unowned(unsafe): a worker lives as long as the process, beyond all its connections (no refcount traffic per use).
    unowned(unsafe) let worker: Worker
    /// Connect and handshake count among the worker's handshakes in flight (MemoryRelief): a burst
    /// of backend handshakes leaves OpenSSL's handshake buffers behind as free heap, as clients' do.
    var phase: Phase = .connecting {
        didSet { if oldValue.inHandshake && !phase.inHandshake { worker.handshakeEnded() } }
    }
    /// The backend's bytes as response parts; set up for each request sent on this connection.
    var codec = HTTP1ClientCodec()
    /// What uses it now (a client connection, or a health probe); nil while pooled.
    /// Strong: the owner detaches (sets nil) whenever it lets the connection go, and `close` clears it.
    var owner: (any BackendUser)? { didSet { exchangeOwner = nil } }
    /// The owner again when it is an exchange (`attach`), to drive it at +0: a copy of the
    /// existential was retained for each event. Unmanaged: `owner` holds it, and an exchange that
    /// lets go of this connection during its drive is held by its connection's table or the
    /// exchange pool until the loop's batch ends.
    private var exchangeOwner: Unmanaged<Exchange>?

    /// Serves `ex` from now on.
    func attach(_ ex: Exchange) {
        owner = ex
        exchangeOwner = .passUnretained(ex)
    }
    /// Whether it was taken from the pool (a failure before any response byte may then be retried).
    var reused = false
    /// Counted in the pool's in-flight numbers (least_conn) while a request uses it.
    var inFlight = false
    var deadline: UInt64 = 0
    var timerSlot = 0

    var server: ServerTarget { backend.servers[serverIndex] }

    init(worker: Worker, backend: BackendRuntime, serverIndex: Int, session: TLSResumption?) throws(ProxyError) {
        self.worker = worker
        self.backend = backend
        self.serverIndex = serverIndex
        let target = backend.servers[serverIndex]
        do { fd = try Socket.connect(to: target.address) } catch {
            throw ProxyError(.badGateway, "connect to \(target.label) failed: \(error)", metric: .refused)
        }
        do {
            io = Transport(try TLSSession(connecting: fd, backend: backend.tls, urlHost: target.config.host, session: session), buffers: worker.buffers)
        } catch {
            Descriptor.close(fd)
            throw ProxyError(.badGateway, "TLS setup for \(target.label) failed: \(error)", metric: .tls)
        }
        // Counted before super.init: from here on a failure ends in deinit, which uncounts it.
        worker.handshakeStarted()
        super.init()
        do { try worker.loop.register(fd: fd, handler: self, interest: [.read, .write, .edge]) } catch {
            Descriptor.close(fd)
            throw ProxyError(.badGateway, "\(error)", metric: .refused)
        }
    }

    deinit { if phase.inHandshake { worker.handshakeEnded() } }

    override func handleEvent(readable: Bool, writable: Bool) {
        if readable { tls.noteReadable() }
        if let e = exchangeOwner { e._withUnsafeGuaranteedRef { $0.drive() }; return }
        if let owner { owner.drive(); return }
        // Pooled: a readable event means the server closed it or sent garbage (a writable edge,
        // e.g. the ACK of the last request, means nothing).
        if readable { worker.pool.discard(self) }
    }

    func deadlineExpired(now: UInt64) {
        if owner == nil { worker.pool.discard(self) }
    }

    enum HandshakeProgress { case inProgress(EventLoop.Interest), ready, failed(ProxyError) }

    /// Advances connect, then the TLS handshake; says what to wait for next.
    func advanceHandshake() -> HandshakeProgress {
        if phase == .connecting {
            let err = Socket.pendingError(fd)
            if err == EINPROGRESS || err == EALREADY { return .inProgress(.write) }
            if err != 0 {
                return .failed(ProxyError(.badGateway, "connect to \(server.label) failed: \(Descriptor.describe(err))", retrySafe: true,
                                         metric: err == ECONNRESET ? .reset : .refused))
            }
            phase = .handshaking
        }
        switch tls.handshake() {
        case .done: phase = .ready; return .ready
        case .wantRead: return .inProgress(.read)
        case .wantWrite: return .inProgress(.write)
        case .closed: return .failed(ProxyError(.badGateway, "backend \(server.label) closed the connection during the TLS handshake", retrySafe: true, metric: .tls))
        case .failed(let why): return .failed(ProxyError(.badGateway, "backend \(server.label) TLS handshake failed: \(why.description)", retrySafe: true, metric: .tls))
        }
    }

    /// Request body bytes toward the backend, re-chunked when the client's body had no length
    /// (sizes checked by the server codec, extensions dropped): the upstream framing is ours.
    func sendBody(_ run: UnsafeRawBufferPointer, chunked: Bool) {
        guard chunked else { io.output.append(run); return }
        io.output.append(hex: run.count)
        io.output.append("\r\n")
        io.output.append(run)
        io.output.append("\r\n")
    }

    /// The end of a chunked request body, with the client's trailers (an HTTP/2 client's) as
    /// chunked trailers; a body with a length simply stops, and has no place for trailers.
    func sendEnd(chunked: Bool, trailers: HTTP2Fields? = nil) {
        guard chunked else { return }
        io.output.append("0\r\n")
        if let t = trailers { HeadWriter.trailerFields(t, into: &io.output) }
        io.output.append("\r\n")
    }

    func close() {
        guard phase != .closed else { return }
        phase = .closed
        worker.loop.cancel(self)
        worker.loop.keepUntilEndOfBatch(self)   // Exchange.withUpstream's invariant
        owner = nil   // breaks the owner ↔ backend cycle for good
        tls.shutdown()
        worker.loop.closeAndDeregister(fd: fd)
    }
}
