import Glibc
import GatewayConfig
import GatewayHTTP
import GatewaySystem
import GatewayTLS

/// The backend side of an exchange: choosing a server, retrying (ExchangeState, RetryPolicy),
/// failing with 502/503/504, its own deadline, and streaming the request to the backend.
extension Exchange {
    /// The connection, retained (cold paths; hot ones use `withClient`): only while the exchange is open.
    var conn: ClientConnection { connectionRef.unsafelyUnwrapped.takeUnretainedValue() }
    var now: UInt64 { loop.now }

    // MARK: - Events that reach the exchange

    /// The backend connection's events: this exchange needs a turn, which its connection gives.
    /// HTTP/2: the turn waits for the end of the event batch, so the streams whose backends
    /// answered in one batch move in one round of their connection (one pass of nghttp2's
    /// output, one write) instead of a round each.
    func drive() {
        guard isOpen, connectionRef != nil else { return }   // closed: its connection may be gone
        turn = true
        // HTTP/2 only queues the connection; HTTP/1 drives it now. Both at +0 (`withClient`): a
        // drive may close the connection, and the loop then holds it until the batch ends (the
        // +1 of its handler table moves to the loop's `closing` list).
        withClient { c in
            if !c.isHTTP2 { c.drive() }
            else if !c.batchQueued { loop.afterBatch(c) }   // asked only when needed: the queue takes a reference
        }
    }

    /// HTTP/1 has one exchange at a time: its time is kept in the connection's one timer entry
    /// (moving a deadline there is a store, not a heap insert and removal per request). HTTP/2
    /// streams keep their own, which the connection's stream timer watches.
    func setDeadline(_ ms: Int) {
        var ms = ms
        // A gRPC client's own deadline bounds the wait for the backend when it is shorter (SPEC §12).
        if grpcDeadline != 0 && !state.responseStarted { ms = min(ms, grpcDeadline > now ? Int(grpcDeadline - now) : 0) }
        if let c = connectionRef, c._withUnsafeGuaranteedRef({ !$0.isHTTP2 }) {
            c._withUnsafeGuaranteedRef { $0.setDeadline(ms) }
            return
        }
        deadline = now + UInt64(ms)
        // HTTP/2: the connection's one stream timer keeps it (no heap entry per stream).
        if let c = connectionRef { c._withUnsafeGuaranteedRef { $0.noteStreamDeadline(deadline) }; return }
        loop.schedule(self)
    }

    func deadlineExpired(now: UInt64) {
        guard let c = connection else { return }
        if state.deadlinePassed() { c.abort(self); c.drive(); return }
        if grpcDeadline != 0 && now >= grpcDeadline { grpcDeadlineExceeded(); return }
        let what = upstreamReady ? "response_timeout" : "connect_timeout"
        backendFailed(ProxyError(.timeout, "backend \(serverLabel) timed out (\(what))", metric: .timeout))
        turn = true
        c.drive()
    }

    /// Lets go of the timer and the backend connection (the exchange is over or the client went).
    func detach() {
        if deadline != 0 { loop.cancel(self) }
        dropUpstream()
    }

    /// The backend connection cannot be used again (a failure, or a request cut off midway).
    func dropUpstream() {
        backendStream.conn?.detach(self, cancel: true)
        guard let c = upstream else { return }
        c.owner = nil
        backends.discard(c)
        upstream = nil
    }

    // MARK: - Backend selection

    func connect(excluding: Int?) {
        backendRef?._withUnsafeGuaranteedRef { connect(to: $0, excluding: excluding) }
    }

    private func connect(to b: BackendRuntime, excluding: Int?) {
        guard let server = backends.pickServer(b, excluding: excluding) else {
            backendFailed(ProxyError(.unavailable, "backend \(b.config.name) has no server available", metric: nil)); return
        }
        state.attempts += 1
        state.serverIndex = server
        upstreamStartedAt = now
        do {
            if b.tls.protocol == .h2 {
                let c = try backends.h2Connection(b, server: server)
                c.attach(self)
                setDeadline(c.session != nil ? b.config.responseTimeoutMs : b.config.connectTimeoutMs)
                backendStream = BackendStream(conn: consume c)   // the pool's +1 moves in: no retain of its own
                return
            }
            let c = try backends.connection(b, server: server)
            c.attach(self)
            setDeadline(c.phase == .ready ? b.config.responseTimeoutMs : b.config.connectTimeoutMs)
            upstream = consume c   // the pool's +1 moves in
        } catch {
            backendFailed(error)
        }
    }

    /// Retries once on another server when nothing of the request reached the failed one;
    /// otherwise answers 502/503/504 (or cuts a started response off) and logs why.
    func backendFailed(_ failure: ProxyError) {
        let label = serverLabel
        let pooled = upstream?.reused == true || backendStream.conn?.reused == true
        let attempt = RetryPolicy.Attempt(failure: failure, pooled: pooled, failedServer: state.serverIndex,
                                          serverCount: backend?.servers.count ?? 0, bodyForwarded: state.bodyForwarded,
                                          responseStarted: state.responseStarted, attempts: state.attempts)
        if RetryPolicy.countsAgainstServer(attempt), let b = backend, let s = state.serverIndex {
            worker.pool.recordFailure(b, server: s)
            if let m = failure.metric { conn.counters.countBackendFailure(backend: b.index, server: s, m) }
        }
        dropUpstream()
        let pool = worker.pool, b = backend
        let action = state.backendFailed(failure, pooled: pooled, serverCount: b?.servers.count ?? 0,
                                         usable: { other in b.map { pool.hasUsableServer($0, excluding: other) } ?? false })
        if case .connect = action {
            worker.logs.error.log(.warn, "backend_retry", failure.reason, [("backend", .string(b?.config.name ?? "")), ("server", .string(label)), ("request_id", .string(requestID.text))])
        } else {
            worker.logs.error.log(.error, "backend_error", failure.reason,
                                  [("backend", .string(b?.config.name ?? "")), ("server", .string(label)), ("request_id", .string(requestID.text))])
        }
        conn.perform(action, self, failure)
    }

    // MARK: - Sending the request

    /// Advances the backend connection's connect and handshake; false while it is not ready.
    func advanceUpstream() -> Bool {
        if let c = backendStream.conn {
            if let f = backendStream.failure { backendFailed(f); return true }
            return c.session != nil   // connecting: the connection gives this exchange a turn when it is ready
        }
        guard let c = upstream, c.phase != .ready else { return true }
        switch c.advanceHandshake() {
        case .inProgress:
            return false
        case .failed(let failure):
            backendFailed(failure)
        case .ready:
            setDeadline(c.backend.config.responseTimeoutMs)
        }
        return true
    }

    /// The request head, once per backend connection (again after a retry).
    func sendHead() -> Bool {
        if backendStream.conn != nil { return openBackendStream() }
        return withUpstream { c in
            guard c.phase == .ready, !state.headSent else { return false }
            c.io.output.append(outgoingHead.readable)
            c.codec.expectResponse(toHEAD: isHEAD, upgradeRequested: state.upgradeRequested)
            state.headSent = true
            return true
        } ?? false
    }

    /// The backend connection is ready for body bytes.
    var canTakeBody: Bool { (upstream?.phase == .ready || backendStream.id != 0) && state.headSent }

    /// A backend connection (or stream) is in use.
    var hasUpstream: Bool { upstream != nil || backendStream.conn != nil }

    /// The backend connection is past its handshake.
    var upstreamReady: Bool { upstream?.phase == .ready || backendStream.conn?.session != nil }

    var serverLabel: String { upstream?.server.label ?? backendStream.conn?.server.label ?? "" }

    /// Whether the client's body may be read on: the backend is not backed up (a body being
    /// dropped after a local answer is always read).
    var wantsBody: Bool {
        if backendStream.conn != nil {
            let id = backendStream.id
            return withBackendConnection { _, s in id != 0 && s.outgoingBuffered(id) < ClientConnection.highWater } ?? (id != 0)
        }
        guard let c = upstream else { return true }
        return c.phase == .ready && c.io.output.readableCount < ClientConnection.highWater
    }

    func requestBody(_ run: UnsafeRawBufferPointer) {
        if backendStream.conn != nil {
            withBackendConnection { c, s in
                try? s.sendData(backendStream.id, run, endStream: false)
                c.needsFlush()
                if !wantsBody { c.bodyBlocked(self) }
            }
        } else {
            upstream?.sendBody(run, chunked: requestChunked)
        }
        state.bodyForwarded = true
    }

    /// The end of the request body, with the client's trailers where the backend's framing can carry them.
    func requestEnd() {
        if backendStream.conn != nil {
            withBackendConnection { c, s in
                if let t = requestTrailers { try? s.sendTrailers(backendStream.id, t) }
                else { try? s.sendData(backendStream.id, UnsafeRawBufferPointer(start: nil, count: 0), endStream: true) }
                c.needsFlush()
            }
        } else {
            upstream?.sendEnd(chunked: requestChunked, trailers: requestTrailers)
        }
    }

    func flushUpstream() -> Bool { withUpstream { flushUpstream($0) } ?? false }

    private func flushUpstream(_ c: UpstreamSession) -> Bool {
        guard c.phase == .ready, !c.io.output.isEmpty else { return false }
        var progress = false
        guard c.io.flush(progress: &progress) else {
            backendFailed(ProxyError(.badGateway, "backend \(c.server.label) failed while sending the request",
                                     retrySafe: c.reused && !state.bodyForwarded, metric: .reset))
            return true
        }
        c.io.output.releaseIfEmpty()
        return progress
    }
}
