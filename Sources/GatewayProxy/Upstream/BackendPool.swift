import GatewaySystem
import GatewayTLS
import COpenSSL

/// Per-worker backend state: idle keep-alive connections per server (reused across client
/// connections), the round-robin cursor, and the last TLS session per server for resumption.
/// Owned by one event loop thread: no locks. Keyed by the servers' `StateKeys` ids (backend
/// name and address, plus the TLS settings for connections and sessions), not by the objects
/// of one snapshot: a reload keeps the state, and holds no old snapshot alive through it.
final class BackendPool {
    /// Idle connections by pool key (small dense ids): an array, so taking and returning a
    /// connection mutates a list in place and allocates nothing.
    private var idle: [[UpstreamSession]] = []
    /// `protocol h2` connections by pool key, busy or idle: each carries many streams.
    private var h2: [[H2Upstream]] = []
    private var sessions: [Int: TLSResumption] = [:]
    private var cursor = DenseTable(0)
    /// unowned(unsafe): a worker lives as long as the process, beyond all its connections (no refcount traffic per use).
    /// Set by the worker as it starts; never nil after that.
    unowned(unsafe) var worker: Worker!
    /// A strong `let`: read per request, where the unowned worker's loop would be retained around each use.
    let loop: EventLoop

    init(loop: EventLoop) { self.loop = loop }


    /// Passive health of one server (SPEC §6 `max_fails`/`fail_timeout`, as nginx counts them).
    private struct Health: Equatable { var fails = 0; var firstFailAt: UInt64 = 0; var downUntil: UInt64 = 0 }
    private var health = DenseTable(Health())
    /// Servers the active health check found failing: out of rotation until a check passes.
    private var activeDown = DenseTable(false)
    /// Requests in flight per server, for `least_conn`.
    private var busy = DenseTable(0)

    /// The server for the next request: weighted round robin or least connections, skipping
    /// `excluding` and servers marked down. nil: no server is up (503).
    func pickServer(_ backend: BackendRuntime, excluding: Int? = nil) -> Int? {
        let id = backend.nameKey
        let now = loop.now
        func usable(_ s: Int) -> Bool { isUp(backend.servers[s].healthKey, now: now) && s != excluding }
        var c = cursor[id]
        defer { cursor[id] = c }
        if backend.config.balance == .leastConn {
            return Balancer.leastConnections(weights: backend.weights, cursor: &c,
                                             inFlight: { busy[backend.servers[$0].healthKey] }, usable: usable)
        }
        return Balancer.roundRobin(schedule: backend.schedule, cursor: &c, usable: usable)
    }

    /// Whether `pickServer` would find a server (without moving the round-robin cursor).
    func hasUsableServer(_ backend: BackendRuntime, excluding: Int?) -> Bool {
        let now = loop.now
        return backend.servers.indices.contains { s in s != excluding && isUp(backend.servers[s].healthKey, now: now) }
    }

    /// In rotation now (passive and active health), for `gateway_backend_up`.
    func isServerUp(_ backend: BackendRuntime, server: Int) -> Bool {
        isUp(backend.servers[server].healthKey, now: monotonicMilliseconds())
    }

    private func isUp(_ key: Int, now: UInt64) -> Bool {
        health[key].downUntil <= now && !activeDown[key]
    }

    /// The active health check's verdict; transitions are logged.
    func setActiveHealth(_ backend: BackendRuntime, server: Int, up: Bool, reason: String) {
        let key = backend.servers[server].healthKey
        let fields: [(String, LogValue)] = [("backend", .string(backend.config.name)), ("server", .string(backend.servers[server].label)), ("reason", .string(reason))]
        guard activeDown[key] == up else { return }   // no transition
        activeDown[key] = !up
        if up {
            worker.logs.error.log(.info, "backend_health_ok", "health check passed: back in rotation", fields)
        } else {
            worker.logs.error.log(.warn, "backend_health_failed", "health check failed: out of rotation", fields)
        }
    }

    /// A connect, TLS, protocol or timeout failure of a server: `max_fails` of them within
    /// `fail_timeout` take it out of rotation for `fail_timeout`.
    func recordFailure(_ backend: BackendRuntime, server: Int) {
        let maxFails = backend.config.maxFails
        guard maxFails > 0 else { return }
        let key = backend.servers[server].healthKey
        let now = loop.now, window = UInt64(backend.config.failTimeoutMs)
        var h = health[key]
        if h.fails == 0 || now - h.firstFailAt > window { h.fails = 0; h.firstFailAt = now }
        h.fails += 1
        if h.fails >= maxFails {
            h.downUntil = now + window
            h.fails = 0
            worker.logs.error.log(.warn, "backend_server_down", "\(maxFails) failure(s) within fail_timeout: not used for \(window) ms",
                                  [("backend", .string(backend.config.name)), ("server", .string(backend.servers[server].label))])
        }
        health[key] = h
    }

    /// The connection's server answered: its failure count starts again. (Given the connection,
    /// whose `backend` is then read at +0; passing the backend retained it for the call.)
    func recordSuccess(of c: UpstreamSession) {
        let key = c.server.healthKey
        if health[key] != Health() { health[key] = Health() }
    }

    private func finished(_ c: UpstreamSession) {
        guard c.inFlight else { return }
        c.inFlight = false
        busy[c.server.healthKey] -= 1
    }

    /// A pooled connection to that server, or a new one.
    func connection(_ backend: BackendRuntime, server: Int) throws(ProxyError) -> UpstreamSession {
        let key = backend.servers[server].poolKey
        while key < idle.count, let c = idle[key].popLast() {
            guard c.phase == .ready else { continue }
            c.reused = true
            c.deadline = 0
            return checkedOut(c, backend, server)
        }
        let session = backend.config.tls.sessionReuse ? sessions[key] : nil
        return checkedOut(try UpstreamSession(worker: worker, backend: backend, serverIndex: server, session: session), backend, server)
    }

    /// Consumed and returned: the pool's reference (or the new one) moves on to the caller.
    private func checkedOut(_ c: consuming UpstreamSession, _ backend: BackendRuntime, _ server: Int) -> UpstreamSession {
        c.inFlight = true
        busy[backend.servers[server].healthKey] += 1
        return c
    }

    /// Keeps a connection whose last exchange ended cleanly, up to `keepalive` per server.
    /// Consumed: the caller's reference moves into the idle list (no retain of its own).
    func release(_ c: consuming UpstreamSession) {
        c.owner = nil
        finished(c)
        let key = c.server.poolKey
        // TLS 1.3 tickets arrive after the handshake: by now the session is resumable,
        // whether or not the connection itself is kept.
        if !c.reused && c.phase == .ready { rememberSession(of: c) }
        guard c.phase == .ready, c.io.input.isEmpty, c.io.output.isEmpty, !c.io.session.hasPending,   // `tls` (computed) retained it
              idleCount(key) < c.backend.config.keepalive else {
            c.close(); return
        }
        c.io.input.releaseIfEmpty()
        c.io.output.releaseIfEmpty()
        if key >= idle.count { idle += Array(repeating: [], count: key + 1 - idle.count) }
        c.deadline = loop.now + UInt64(c.backend.config.keepaliveTimeoutMs)
        loop.schedule(c)
        idle[key].append(consume c)
    }

    // MARK: - HTTP/2 backends

    /// A connection to that `h2` server with room for one more stream, or a new one (SPEC §12:
    /// streams multiplex up to the backend's SETTINGS_MAX_CONCURRENT_STREAMS).
    func h2Connection(_ backend: BackendRuntime, server: Int) throws(ProxyError) -> H2Upstream {
        let key = backend.servers[server].poolKey
        if key >= h2.count { h2 += Array(repeating: [], count: key + 1 - h2.count) }
        let c: H2Upstream
        if let open = h2[key].firstUnretained(where: { $0.acceptsStream }) {
            c = open
        } else {
            let session = backend.config.tls.sessionReuse ? sessions[key] : nil
            c = try H2Upstream(worker: worker, backend: backend, serverIndex: server, session: session)
            h2[key].append(c)
        }
        busy[backend.servers[server].healthKey] += 1
        return c
    }

    /// One of its streams is over. With none left it idles, up to `keepalive` idle connections
    /// per server for `keepalive_timeout`; past that, or after a GOAWAY, it closes.
    func streamEnded(_ c: H2Upstream) {
        busy[c.server.healthKey] -= 1
        guard c.load == 0, !c.closed else { return }
        if c.session != nil { rememberSession(of: c.link) }
        let key = c.server.poolKey
        let idleCount = h2[key].reduce(0) { $0 + ($1.load == 0 ? 1 : 0) }
        guard !c.goingAway, c.session != nil, idleCount <= c.backend.config.keepalive else { discard(c); return }
        c.deadline = loop.now + UInt64(c.backend.config.keepaliveTimeoutMs)
        loop.schedule(c)
    }

    func discard(_ c: H2Upstream) {
        let key = c.server.poolKey
        if key < h2.count { h2[key].removeAll { $0 === c } }
        c.close()
    }

    private func idleCount(_ key: Int) -> Int { key < idle.count ? idle[key].count : 0 }

    func discard(_ c: UpstreamSession) {
        finished(c)
        let key = c.server.poolKey
        if key < idle.count { idle[key].removeAll { $0 === c } }
        c.close()
    }

    private func rememberSession(of c: UpstreamSession) {
        guard c.backend.config.tls.sessionReuse, let s = c.tls.resumption() else { return }
        let key = c.server.poolKey
        sessions[key] = s
    }

    func closeAll() {
        for list in idle { for c in list { c.close() } }
        idle = []
        for list in h2 { for c in list { c.close() } }
        h2 = []
    }
}

/// Per-key state of the pool by `StateKeys` id (small and dense): an array read per request
/// instead of a hashed lookup; keys past the end read as `initial`.
private struct DenseTable<Value> {
    private var values: [Value] = []
    private let initial: Value
    init(_ initial: Value) { self.initial = initial }
    subscript(key: Int) -> Value {
        get { key < values.count ? values[key] : initial }
        set {
            if key >= values.count { values += Array(repeating: initial, count: key + 1 - values.count) }
            values[key] = newValue
        }
    }
}

extension BackendPool {
    /// The idle-memory sweep for `protocol h2` backend connections, as for client ones: one idle
    /// for a whole sweep lets go of its spare stream objects (up to a stream limit's worth after
    /// a burst, ~1 KB each) and nghttp2's unused pages.
    func releaseIdleHTTP2Memory() {
        for list in h2 { for u in list { _ = u.session?.releaseIdleMemory() } }
    }
}

