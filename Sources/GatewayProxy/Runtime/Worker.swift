import Glibc
import GatewayConfig
import GatewaySystem
import GatewayTLS

/// One event loop on one thread: its own SO_REUSEPORT listening sockets, its client
/// connections, its backend pool. Nothing here is shared with other workers.
final class Worker {
    let loop: EventLoop
    /// Buffer blocks for this worker's connections (one loop thread).
    let buffers = BufferPool()
    /// Finished exchanges, reused by the next request on any of this worker's connections.
    let exchangePool: ExchangePool
    let id: Int
    /// New connections take the current snapshot; a reload replaces it through `loop.execute`.
    var snapshot: RuntimeSnapshot { didSet { accessLogEnabled = snapshot.logs.access.enabled; startHealthChecks() } }
    private var healthCheckers: [HealthChecker] = []
    var logs: Logs { snapshot.logs }
    /// Whether the current snapshot's access log is on: read per request as a Bool, where
    /// `logs` copies the struct (its three references retained and released).
    private(set) var accessLogEnabled: Bool
    /// A `let` (not lazy): read on every request, it must cost no optional check and no retain.
    let pool: BackendPool
    let metrics = WorkerMetrics()
    var listeners: [Listener] = []
    var connectionCount: Int { live.count + pending.count + proxyReaders.count }
    /// Connections still waiting for their PROXY header (before TLS).
    var proxyReaders: [ObjectIdentifier: ProxyProtocolReader] = [:]
    /// Accepted connections whose client has sent nothing yet (no TLS state).
    var pending: [ObjectIdentifier: PendingConnection] = [:]
    /// Client and backend connections in their TLS handshake (their SSL holds OpenSSL's handshake
    /// buffers; a backend's counts from its connect).
    private(set) var handshakesInFlight = 0
    func handshakeStarted() {
        handshakesInFlight += 1
        relief.noteHandshakes(handshakesInFlight)
    }
    func handshakeEnded() { handshakesInFlight -= 1 }
    /// Memory back to the kernel once a surge of connections has passed.
    private(set) lazy var relief = MemoryRelief(worker: self)
    var draining = false
    var requestIDs = RequestIDGenerator()
    var traceIDs = TraceIDGenerator()
    /// Reused for every read: a connection only keeps bytes it could not hand on.
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
    private(set) var live: [ObjectIdentifier: ClientConnection] = [:]
    var onStopped: (() -> Void)?

    /// Ticket keys when no `ticket_key_file` is set: the main thread hands a new ring on rotation.
    var generatedTickets: TicketKeyRing

    init(id: Int, snapshot: RuntimeSnapshot, tickets: TicketKeyRing, listenFDs: [WorkerSocket]) throws(SystemError) {
        self.id = id
        self.snapshot = snapshot
        accessLogEnabled = snapshot.logs.access.enabled
        generatedTickets = tickets
        exchangePool = ExchangePool(buffers: buffers)
        loop = try EventLoop()
        pool = BackendPool(loop: loop)
        pool.worker = self
        exchangePool.worker = self
        exchangePool.loop = .passUnretained(loop)
        try addListeners(listenFDs)
    }

    /// Starts accepting on sockets bound for this worker (at start, or for blocks a reload added).
    func addListeners(_ sockets: [WorkerSocket]) throws(SystemError) {
        for s in sockets {
            let l = Listener(fd: s.fd, key: s.key, worker: self)
            try loop.register(fd: s.fd, handler: l, interest: s.shared ? [.read, .exclusive] : .read)
            listeners.append(l)
        }
    }

    /// Closes the sockets of blocks a reload removed; their open connections finish.
    func removeListeners(_ keys: Set<ListenKey>) {
        for l in listeners where keys.contains(l.key) { loop.closeAndDeregister(fd: l.fd, shared: true) }
        listeners.removeAll { keys.contains($0.key) }
    }

    /// The ticket keys a new connection seals and opens its tickets with.
    var tickets: TicketKeyRing { snapshot.fileTicketRing ?? generatedTickets }

    deinit { scratch.deallocate() }

    /// One checker per backend with `health_check`, for the current snapshot.
    func startHealthChecks() {
        for c in healthCheckers { c.stop() }
        healthCheckers = draining ? [] : snapshot.backends.values.compactMap { b in
            b.config.healthCheck.map { HealthChecker(worker: self, backend: b, check: $0) }
        }
    }

    func add(_ c: ClientConnection) {
        live[ObjectIdentifier(c)] = c
        relief.noteCount(connectionCount)
    }
    func remove(_ c: ClientConnection) {
        live[ObjectIdentifier(c)] = nil
        if draining && live.isEmpty { finishDrain() }
    }

    /// This worker's metrics with label values (runs on the worker's thread, for a scrape).
    func sampleMetrics() -> MetricsSample {
        var s = metrics.sample(currentGeneration: snapshot.generation)
        s.connectionsActive = live.count + pending.count
        for b in snapshot.backendList {
            for (i, server) in b.servers.enumerated() {
                s.backendUp[[b.config.name, server.label]] = pool.isServerUp(b, server: i) ? 1 : 0
            }
        }
        return s
    }

    /// Graceful shutdown: stop accepting, close idle connections, let in-flight requests finish.
    func beginDrain() {
        draining = true
        for c in healthCheckers { c.stop() }
        healthCheckers = []
        for l in listeners { loop.closeAndDeregister(fd: l.fd, shared: true) }
        listeners = []
        for r in Array(proxyReaders.values) { r.end() }
        for p in Array(pending.values) { p.end() }
        for c in Array(live.values) { c.shutdownRequested() }
        if live.isEmpty { finishDrain() }
    }

    /// Past the shutdown timeout: close what is left; returns how many.
    func forceClose() -> Int {
        let n = live.count
        for c in Array(live.values) { c.abort() }
        finishDrain()
        return n
    }

    private func finishDrain() {
        pool.closeAll()
        loop.stop()
        onStopped?()
    }
}

/// A listening socket owned by one worker.
final class Listener: EventHandler {
    let fd: Int32
    let key: ListenKey
    unowned let worker: Worker

    init(fd: Int32, key: ListenKey, worker: Worker) { self.fd = fd; self.key = key; self.worker = worker }

    override func handleEvent(readable: Bool, writable: Bool) {
        let snap = worker.snapshot
        // Settings by address, from the snapshot in use now (a reload may have changed them).
        guard let listener = snap.listeners[key] else { return }
        let listenConfig = listener.config
        // Bounded per wake-up so one busy listener cannot starve the connections.
        for _ in 0..<64 {
            let accepted: (fd: Int32, peer: SocketAddress)?
            do { accepted = try Socket.accept(fd) } catch {
                worker.logs.error.log(.error, "accept_failed", "\(error)")
                return
            }
            guard let (cfd, peer) = accepted else { return }
            // With proxy_protocol the client's address is in the header: allow/deny wait for it (ProxyProtocolReader).
            if (!listenConfig.proxyProtocol && !AccessRules.allows(peer.ipBytes, listenConfig.access)) || worker.connectionCount >= snap.config.limits.maxConnections {
                Descriptor.close(cfd)
                continue
            }
            Socket.setNoDelay(cfd)
            if listenConfig.proxyProtocol { ProxyProtocolReader.start(fd: cfd, peer: peer, listener: listener, snapshot: snap, worker: worker); continue }
            PendingConnection.start(fd: cfd, peer: peer, listener: listener, snapshot: snap, worker: worker)
        }
    }
}

/// The logs every worker writes to. Part of the snapshot, so `error_log`/`access_log` changes
/// apply on reload; a sink whose target did not change is carried over (one open file each).
public struct Logs: Sendable {
    public let error: ErrorLog
    public let access: LogSink
    public let accessFormat: LogFormat

    public init(config: GatewayConfiguration, reusing previous: Logs? = nil) {
        func sink(_ t: LogTarget) -> LogSink {
            if let p = previous { for s in [p.error.sink, p.access] where s.target == t { return s } }
            return LogSink(t)
        }
        let errorSink = sink(config.errorLog)
        error = ErrorLog(sink: errorSink, level: config.errorLogLevel)
        access = config.accessLog == config.errorLog ? errorSink : sink(config.accessLog)
        accessFormat = config.accessLogFormat
    }

    /// Logs that write nothing (`gateway check` builds snapshots without opening log files).
    public static var discarding: Logs { Logs(error: ErrorLog(sink: LogSink(.off), level: .error), access: LogSink(.off), accessFormat: .json) }

    public init(error: ErrorLog, access: LogSink, accessFormat: LogFormat) {
        self.error = error; self.access = access; self.accessFormat = accessFormat
    }

    /// SIGUSR1: every log file is opened again at its path (logrotate's `postrotate`).
    public func reopen() -> Bool {
        error.sink.reopen() && access.reopen()
    }
}
