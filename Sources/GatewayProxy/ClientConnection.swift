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
    let tls: TLSStream
    let snapshot: RuntimeSnapshot
    unowned let worker: Worker
    /// The ticket keys attached to this connection's SSL: kept alive as long as it is.
    let tickets: TicketKeyRing
    /// This worker's metric counters for this connection's snapshot.
    let counters: SnapshotCounters
    var phase: Phase = .handshaking
    var inBuf = ByteBuffer()
    var outBuf = ByteBuffer()
    var parser: HTTPRequestParser
    var exchange: Exchange?
    var backend: BackendConnection?
    var headBytesSeen = false
    var closeAfterResponse = false
    var drainBudget = 64 * 1024
    var deadline: UInt64 = 0
    var scheduledDeadline: UInt64 = 0
    /// What the last TLS calls on each socket need to continue; becomes the epoll interest.
    private var clientNeeds: EventLoop.Interest = []
    private var backendNeeds: EventLoop.Interest = []
    /// A read already found nothing during this drive: trying again before the next epoll
    /// event only costs a syscall (it saved one read per request).
    private var clientReadBlocked = false
    private var backendReadBlocked = false
    /// Set when `forward` stopped at its round limit with work left (large bodies).
    private var anotherTurn = false
    lazy var clientCertificate: PeerCertificate? = tls.peerCertificate()
    lazy var clientIP = peer.ipString
    /// The last Host (or authority) asked for on this connection and what it resolved to.
    private var lastAskedHost: String?
    private var lastRequested: String?
    private var lastRequestedHost: TLSHost?

    /// Bytes buffered toward one side before the gateway stops reading the other side.
    private static let highWater = 64 * 1024

    private var limits: Limits { snapshot.config.limits }
    var now: UInt64 { worker.loop.now }

    static func start(fd: Int32, peer: SocketAddress, listener: TLSListener, snapshot: RuntimeSnapshot, worker: Worker) {
        let tls: TLSStream
        let tickets = worker.tickets
        do { tls = try TLSStream(accepting: fd, listener: listener, tickets: tickets) } catch {
            worker.logs.error.log(.error, "tls_setup_failed", error.description)
            Glibc.close(fd); return
        }
        let c = ClientConnection(fd: fd, peer: peer, tls: tls, snapshot: snapshot, tickets: tickets, worker: worker)
        do { try worker.loop.register(fd: fd, handler: c, interest: .read) } catch {
            worker.logs.error.log(.error, "register_failed", error.description)
            Glibc.close(fd); return
        }
        worker.add(c)
        c.setDeadline(snapshot.config.limits.handshakeTimeoutMs)
    }

    private init(fd: Int32, peer: SocketAddress, tls: TLSStream, snapshot: RuntimeSnapshot, tickets: TicketKeyRing, worker: Worker) {
        self.fd = fd; self.peer = peer; self.tls = tls; self.snapshot = snapshot; self.tickets = tickets; self.worker = worker
        counters = worker.metrics.counters(for: snapshot)
        let l = snapshot.config.limits
        parser = HTTPRequestParser(limits: HTTPHeadLimits(maxURISize: l.maxURISize, maxHeaderSize: l.maxHeaderSize, maxHeaders: l.maxHeaders))
    }

    func handleEvent(readable: Bool, writable: Bool) { drive() }

    // MARK: - The driver

    func drive() {
        clientNeeds = []
        backendNeeds = []
        clientReadBlocked = false
        backendReadBlocked = false
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
            worker.loop.execute { [weak self] in self?.drive() }
        }
        worker.loop.setInterest(fd: fd, clientNeeds)
        if let b = backend, b.phase != .closed { worker.loop.setInterest(fd: b.fd, backendNeeds) }
    }

    private func setDeadline(_ ms: Int) {
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
                exchange = Exchange(startedAt: now)
                respondLocally(status: 408, reason: "request head not received within header_timeout", close: true)
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
            backendFailed(ProxyFailure(.timeout, reason, metric: .timeout))
            drive()
        case .tunnel, .draining, .closed:
            close()
        }
    }

    // MARK: - TLS handshake

    private func handshake() {
        switch tls.handshake() {
        case .done:
            phase = .awaitingHead
            setDeadline(limits.headerTimeoutMs)
            counters.countHandshake(host: tls.host?.index ?? SnapshotCounters.none, version: tls.versionCode,
                                    cipherID: tls.cipherID, cipherName: tls.cipherName, resumed: tls.sessionReused)
        case .wantRead: clientNeeds.insert(.read)
        case .wantWrite: clientNeeds.insert(.write)
        case .closed:
            // A port probe (load balancer, health check) that connects and leaves is not a TLS failure.
            if !tls.nothingReceived { logHandshakeFailure(tls.failureReason ?? "connection closed during handshake") }
            close()
        case .failed(let why):
            logHandshakeFailure(why)
            close()
        }
    }

    // MARK: - Request head

    private func readHead() {
        while true {
            if !inBuf.isEmpty {
                do {
                    if let head = try parser.parse(inBuf.readable) {
                        startExchange(head)
                        return
                    }
                } catch {
                    exchange = Exchange(startedAt: now)
                    respondLocally(status: error.status, reason: error.reason, close: true)
                    return
                }
            }
            guard readClient() else { return }
            if !headBytesSeen {
                headBytesSeen = true
                setDeadline(limits.headerTimeoutMs)
            }
        }
    }

    /// Reads what the client sent into `inBuf`; false when nothing more can be read now
    /// (or the connection ended, in which case it is closed).
    private func readClient() -> Bool {
        if clientReadBlocked { clientNeeds.insert(.read); return false }
        let space = inBuf.writableSpace(minimum: 4096)
        switch tls.read(into: space) {
        case .done(let n): inBuf.didWrite(n); return true
        case .wantRead:
            clientReadBlocked = true
            // An idle keep-alive connection must not hold a read buffer (memory per idle connection).
            inBuf.releaseIfEmpty()
            clientNeeds.insert(.read); return false
        case .wantWrite: clientNeeds.insert(.write); return false
        case .closed, .failed:
            if phase == .forwarding, let ex = exchange, !ex.responseStarted, !ex.requestBodyDone {
                worker.logs.error.log(.info, "client_aborted", "client closed the connection during the request body")
            }
            close()
            return false
        }
    }

    private func startExchange(_ head: HTTPRequestHead) {
        let ex = Exchange(startedAt: now)
        let b = inBuf.readable
        if worker.logs.access.enabled { ex.method = String(decoding: b[head.method], as: UTF8.self) }
        let rawTarget = String(decoding: b[head.target], as: UTF8.self)
        ex.isHEAD = head.isHEAD
        ex.upgradeRequested = head.upgrade
        ex.clientVersionMinor = head.versionMinor
        ex.clientKeepAlive = head.keepAlive && !worker.draining
        let hostHeader = head.host.map { String(decoding: b[$0], as: UTF8.self) }
        ex.host = hostHeader
        let (authority, path) = Self.splitTarget(rawTarget)
        ex.path = path
        ex.requestID = validRequestID(b, head) ?? worker.requestIDs.uuid()
        let clientTrace = TraceHeaders.incoming(b, head.headers)   // SPEC §11 trace context
        ex.trace = clientTrace ?? worker.traceIDs.next()
        switch head.framing {
        case .contentLength(let n) where n > 0:
            ex.requestBody = .length(n); ex.requestBodyDone = false
        case .chunked:
            ex.requestBody = .chunked(ChunkedDecoder()); ex.requestBodyDone = false
        default: break
        }
        exchange = ex
        phase = .forwarding

        // Which host block this request is for, and whether this connection may ask for it.
        let connHost = tls.host
        let asked = authority ?? hostHeader
        // Clients send the same Host on every request of a connection: resolve it once.
        if asked != lastAskedHost {
            lastAskedHost = asked
            lastRequested = Self.normaliseHost(asked)
            lastRequestedHost = lastRequested.flatMap { snapshot.tls.host(named: $0) }
        }
        let requested = lastRequested
        var host = connHost
        if let requested, let h = lastRequestedHost {
            if let c = connHost, c !== h, !Self.samePolicy(c.policy, h.policy) {
                counters.misdirected[c.index, default: 0] += 1
                inBuf.consume(head.headLength)
                respondLocally(status: 421, reason: "host \(requested) is not served under this connection's TLS policy (\(c.name))", close: false)
                return
            }
            host = h
        }
        ex.hostIndex = host?.index ?? SnapshotCounters.none
        guard let host else {
            inBuf.consume(head.headLength)
            respondLocally(status: 404, reason: "no host", close: false); return
        }
        if case .contentLength(let n) = head.framing, n > limits.maxBodySize {
            respondLocally(status: 413, reason: "body of \(n) bytes over max_body_size", close: true); return
        }
        guard let route = Self.route(path, in: host.config.routes), let backend = snapshot.backends[route.backend] else {
            inBuf.consume(head.headLength)
            respondLocally(status: 404, reason: "no route for \(path)", close: false); return
        }
        var target = path
        if route.stripPrefix {
            target = String(path.dropFirst(route.prefix.count))
            if !target.hasPrefix("/") { target = "/" + target }
        }
        if host.config.compression.enabled {
            ex.compression = host.config.compression
            ex.acceptsGzip = head.headers.contains { asciiEqualsIgnoringCase(b, $0.name, "accept-encoding")
                && CompressionDecision.clientAcceptsGzip(b, $0.value) }
        }
        var cert: HeadWriter.ClientCertHeaders?
        if host.policy.clientAuth != .off {
            let c = clientCertificate
            cert = HeadWriter.ClientCertHeaders(verify: c == nil ? "NONE" : "SUCCESS", cert: c)
        }
        ex.outgoingHead = HeadWriter.request(b, head: head, target: target, hostHeader: hostHeader ?? authority,
                                                   clientIP: clientIP, requestID: ex.requestID, clientCert: cert,
                                                   trace: ex.trace.map { .init(context: $0, clientKept: clientTrace != nil) })
        ex.backend = backend
        inBuf.consume(head.headLength)
        connectBackend(excluding: nil)
    }

    private func validRequestID(_ b: UnsafeRawBufferPointer, _ head: HTTPRequestHead) -> String? {
        guard let h = head.headers.first(where: { asciiEqualsIgnoringCase(b, $0.name, "x-request-id") }) else { return nil }
        let v = b[h.value]
        guard (1...128).contains(v.count), v.allSatisfy(Self.isRequestIDByte) else { return nil }
        return String(decoding: v, as: UTF8.self)
    }

    private static func isRequestIDByte(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"): true
        case UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"): true
        default: false
        }
    }

    /// Absolute-form targets carry the authority; the path always goes to the backend in origin form.
    static func splitTarget(_ t: String) -> (authority: String?, path: String) {
        guard !t.hasPrefix("/"), let colon = t.firstIndex(of: ":"), t[colon...].hasPrefix("://") else { return (nil, t) }
        let rest = t[t.index(colon, offsetBy: 3)...]
        if let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) {
            let p = String(rest[slash...])
            return (String(rest[..<slash]), p.hasPrefix("?") ? "/" + p : p)
        }
        return (String(rest), "/")
    }

    /// Lower-cased, `:port` and one trailing dot dropped; IPv6 literals keep their brackets off.
    static func normaliseHost(_ h: String?) -> String? {
        guard var h, !h.isEmpty else { return nil }
        if h.hasPrefix("[") {
            if let end = h.firstIndex(of: "]") { h = String(h[h.index(after: h.startIndex)..<end]) }
        } else if let colon = h.lastIndex(of: ":") {
            h = String(h[..<colon])
        }
        return HostTable.normalise(h)
    }

    /// The fields SPEC §4 names for the 421 rule.
    static func samePolicy(_ a: TLSPolicy, _ b: TLSPolicy) -> Bool {
        a.minVersion == b.minVersion && a.maxVersion == b.maxVersion && a.ciphers == b.ciphers
            && a.ciphersuites == b.ciphersuites && a.clientAuth == b.clientAuth && a.clientCA == b.clientCA
            && a.clientAllow == b.clientAllow && a.groups == b.groups   // SPEC §11: both are part of the policy
    }

    /// Longest prefix on a path-segment boundary (routes arrive sorted longest first).
    static func route(_ path: String, in routes: [Route]) -> Route? {
        let p = path.utf8
        for r in routes {
            let pre = r.prefix.utf8
            guard p.starts(with: pre) else { continue }
            if p.count == pre.count || pre.last == UInt8(ascii: "/") { return r }
            let next = p[p.index(p.startIndex, offsetBy: pre.count)]
            if next == UInt8(ascii: "/") || next == UInt8(ascii: "?") { return r }
        }
        return nil
    }

    // MARK: - Backend selection

    private func connectBackend(excluding: Int?) {
        guard let ex = exchange, let b = ex.backend else { return }
        guard let server = worker.pool.pickServer(b, excluding: excluding) else {
            backendFailed(ProxyFailure(.unavailable, "backend \(b.config.name) has no server available", metric: nil)); return
        }
        ex.attempts += 1
        ex.serverIndex = server
        ex.upstreamStartedAt = now
        do {
            let c = try worker.pool.connection(b, server: server)
            c.owner = self
            backend = c
            backendReadBlocked = false
            setDeadline(c.phase == .ready ? b.config.responseTimeoutMs : b.config.connectTimeoutMs)
        } catch {
            backendFailed(error)
        }
    }

    /// Retries once on another server when nothing of the request reached the failed one;
    /// otherwise answers 502/503/504 and logs why.
    private func backendFailed(_ failure: ProxyFailure) {
        guard let ex = exchange else { return }
        let failedServer = ex.serverIndex
        let label = backend?.server.label ?? ""
        let wasPooled = backend?.reused == true
        // A stale pooled connection says nothing about the server's health; anything else counts.
        if failure.kind != .unavailable, !(failure.retryable && wasPooled), let b = ex.backend, let s = failedServer {
            worker.pool.recordFailure(b, server: s)
            if let m = failure.metric { counters.countBackendFailure(backend: b.index, server: s, m) }
        }
        if let c = backend {
            c.owner = nil
            worker.pool.discard(c)
            backend = nil
        }
        let other = (ex.backend?.servers.count ?? 0) > 1 ? failedServer : nil
        // Retry once when nothing was sent: on another server, or on the same one when only a
        // stale pooled connection failed (a refused connect to the only server is not retried).
        if failure.retryable && (wasPooled || other != nil) && !ex.bodyForwarded && !ex.responseStarted && ex.attempts < 2, let b = ex.backend,
           worker.pool.hasUsableServer(b, excluding: other) {
            ex.headSent = false
            ex.responseParser.reset()
            worker.logs.error.log(.warn, "backend_retry", failure.reason, [("backend", b.config.name), ("server", label), ("request_id", ex.requestID)])
            connectBackend(excluding: other)
            return
        }
        worker.logs.error.log(.error, "backend_error", failure.reason,
                              [("backend", ex.backend?.config.name ?? ""), ("server", label), ("request_id", ex.requestID)])
        if ex.responseStarted { abort(); return }
        respondLocally(status: failure.status, reason: failure.reason, close: false)
    }

    // MARK: - Forwarding

    private func forward() {
        guard exchange != nil else { phase = .awaitingHead; return }
        var progress = true
        var rounds = 0
        while progress && phase == .forwarding && rounds < 256 {
            progress = false
            rounds += 1
            if let b = backend, b.phase != .ready {
                switch b.advanceHandshake() {
                case .inProgress(let interest):
                    backendNeeds = interest
                    return
                case .failed(let failure):
                    backendFailed(failure); progress = true; continue
                case .ready:
                    setDeadline(b.backend.config.responseTimeoutMs)
                }
            }
            if sendRequest() { progress = true }
            if receiveResponse() { progress = true }
            if flushClient() { progress = true }
            if finishIfDone() { return }
        }
        // Stopped by the round limit (a fair share for other connections) while both sides could
        // still go on: no epoll event will come for that, so ask the loop for another turn.
        if progress && phase == .forwarding { anotherTurn = true }
    }

    /// Head, then body bytes from `inBuf` (decoded and re-framed), then reading more from the client.
    private func sendRequest() -> Bool {
        guard let ex = exchange else { return false }
        var progress = false
        if let b = backend, b.phase == .ready, !ex.headSent {
            ex.outgoingHead.withUnsafeBytes { b.outBuf.append($0) }
            ex.headSent = true
            progress = true
        }
        while true {
            if consumeRequestBody() { progress = true }
            if flushBackend() { progress = true }
            guard let ex = exchange, !ex.requestBodyDone, phase == .forwarding else { break }
            if let b = backend, b.outBuf.readableCount >= Self.highWater { break }
            if backend != nil && backend?.phase != .ready { break }
            guard inBuf.isEmpty else { break }
            guard readClient() else { break }
            progress = true
        }
        return progress
    }

    /// Moves request body bytes from `inBuf` to the backend (or drops them for a local response).
    private func consumeRequestBody() -> Bool {
        guard let ex = exchange, !ex.requestBodyDone, !inBuf.isEmpty else { return false }
        let sink = (ex.local || backend == nil) ? nil : backend
        if let sink, sink.phase != .ready || !ex.headSent { return false }
        let input = inBuf.readable
        var consumed = 0
        switch ex.requestBody {
        case .none:
            ex.requestBodyDone = true
        case .length(let remaining):
            let n = min(remaining, input.count)
            sink?.outBuf.append(UnsafeRawBufferPointer(rebasing: input[0..<n]))
            consumed = n
            ex.requestBody = .length(remaining - n)
            ex.requestBodyBytes += n
            if remaining == n { ex.requestBodyDone = true }
        case .chunked(var decoder):
            do {
                var payload = 0
                let r = try decoder.decode(input) { range in
                    payload += range.count
                    guard let sink else { return }
                    sink.outBuf.append(hex: range.count)
                    sink.outBuf.append("\r\n")
                    sink.outBuf.append(UnsafeRawBufferPointer(rebasing: input[range]))
                    sink.outBuf.append("\r\n")
                }
                consumed = r.consumed
                ex.requestBodyBytes += payload
                if r.done {
                    sink?.outBuf.append("0\r\n\r\n")
                    ex.requestBodyDone = true
                }
                ex.requestBody = .chunked(decoder)
            } catch {
                inBuf.consume(input.count)
                failRequest(status: error.status, reason: error.reason)
                return true
            }
        }
        if sink != nil && consumed > 0 { ex.bodyForwarded = true }
        inBuf.consume(consumed)
        if ex.requestBodyBytes > limits.maxBodySize {
            failRequest(status: 413, reason: "body over max_body_size")
        }
        return consumed > 0
    }

    /// A request that went bad mid-body: the backend connection is useless, the client's framing is lost.
    private func failRequest(status: Int, reason: String) {
        if let c = backend { c.owner = nil; worker.pool.discard(c); backend = nil }
        if exchange?.responseStarted == true { abort(); return }
        respondLocally(status: status, reason: reason, close: true)
    }

    private func flushBackend() -> Bool {
        guard let b = backend, b.phase == .ready, !b.outBuf.isEmpty else { return false }
        var progress = false
        while !b.outBuf.isEmpty {
            switch b.tls.write(b.outBuf.readable) {
            case .done(let n): b.outBuf.consume(n); progress = true
            case .wantWrite: backendNeeds.insert(.write); return progress
            case .wantRead: backendNeeds.insert(.read); return progress
            case .closed, .failed(_):
                let failure = ProxyFailure(.badGateway, "backend \(b.server.label) failed while sending the request",
                                           retryable: b.reused && !(exchange?.bodyForwarded ?? true), metric: .reset)
                backendFailed(failure)
                return true
            }
        }
        b.outBuf.releaseIfEmpty()
        return progress
    }

    /// Reads the backend's response while the client keeps up, turning it into the client's framing.
    private func receiveResponse() -> Bool {
        guard let b = backend, b.phase == .ready, let ex = exchange, !ex.responseDone, ex.headSent else { return false }
        var progress = false
        while outBuf.readableCount < Self.highWater {
            // Hand on everything already buffered (a head and its body often share one read)
            // before reading again.
            while !b.inBuf.isEmpty && outBuf.readableCount < Self.highWater {
                let before = b.inBuf.readableCount
                let wasDone = exchange?.responseDone ?? true
                processResponseBytes(b)
                guard backend === b, phase == .forwarding else { return true }
                if exchange?.responseDone ?? true { return true }
                guard b.inBuf.readableCount != before || exchange?.responseDone != wasDone else { break } // needs more bytes
                progress = true
            }
            if backendReadBlocked { backendNeeds.insert(.read); return progress }
            let space = b.inBuf.writableSpace(minimum: 16 * 1024)
            switch b.tls.read(into: space) {
            case .done(let n):
                b.inBuf.didWrite(n)
                progress = true
                setDeadline(b.backend.config.responseTimeoutMs)
            case .wantRead: backendReadBlocked = true; backendNeeds.insert(.read); return progress
            case .wantWrite: backendNeeds.insert(.write); return progress
            case .closed, .failed(_):
                backendEnded(b)
                return true
            }
        }
        return progress
    }

    /// The backend closed (or broke) its connection.
    private func backendEnded(_ b: BackendConnection) {
        guard let ex = exchange else { return }
        if case .untilClose = ex.responseBody {
            ex.responseBody = .done
            endResponseBody(ex)
            ex.backendKeepAlive = false
            return
        }
        if case .awaitingHead = ex.responseBody {
            let stale = b.reused && b.inBuf.isEmpty && !ex.bodyForwarded
            backendFailed(ProxyFailure(.badGateway, "backend \(b.server.label) closed the connection before responding", retryable: stale, metric: .reset))
            return
        }
        worker.logs.error.log(.error, "backend_error", "backend \(b.server.label) closed the connection mid-response",
                              [("request_id", ex.requestID)])
        counters.countBackendFailure(backend: b.backend.index, server: b.serverIndex, .reset)
        abort()
    }

    private func processResponseBytes(_ b: BackendConnection) {
        guard let ex = exchange else { return }
        let input = b.inBuf.readable
        switch ex.responseBody {
        case .awaitingHead:
            let head: HTTPResponseHead?
            do { head = try ex.responseParser.parse(input, requestWasHEAD: ex.isHEAD) } catch {
                b.inBuf.consume(input.count)
                backendFailed(ProxyFailure(.badGateway, "backend \(b.server.label) sent an invalid response: \(error.reason)", metric: .protocol))
                return
            }
            guard let head else { return }
            if head.status == 101 && ex.upgradeRequested {
                // Switching protocols: the head goes to the client, then bytes flow both ways as they are.
                HeadWriter.response(input, head: head, chunked: false, close: false, into: &outBuf)
                b.inBuf.consume(head.headLength)
                ex.status = 101
                ex.upstreamMs = Int(now - ex.upstreamStartedAt)
                ex.responseStarted = true
                ex.responseBody = .done
                ex.requestBodyDone = true
                return
            }
            if head.status >= 100 && head.status < 200 {
                // Interim responses (100 Continue, 103) pass through to HTTP/1.1 clients.
                if head.status != 101 && ex.clientVersionMinor >= 1 {
                    HeadWriter.response(input, head: head, chunked: false, close: false, into: &outBuf)
                }
                b.inBuf.consume(head.headLength)
                ex.responseParser.reset()
                return
            }
            ex.status = head.status
            ex.backendKeepAlive = head.keepAlive
            ex.upstreamMs = Int(now - ex.upstreamStartedAt)
            switch head.framing {
            case .none: ex.responseBody = .done; ex.clientFraming = .asIs
            case .contentLength(let n): ex.responseBody = n == 0 ? .done : .length(n); ex.clientFraming = .asIs
            case .chunked: ex.responseBody = .chunked(ChunkedDecoder())
                ex.clientFraming = ex.clientVersionMinor >= 1 ? .chunked : .close
            case .untilClose: ex.responseBody = .untilClose
                ex.clientFraming = ex.clientVersionMinor >= 1 ? .chunked : .close
            }
            let (gzip, vary) = compressionFor(head, input, ex)
            if gzip {
                ex.gzip = GzipStream()
                ex.clientFraming = ex.clientVersionMinor >= 1 ? .chunked : .close
            }
            if ex.clientFraming == .close { closeAfterResponse = true }
            let closing = closeAfterResponse || !ex.clientKeepAlive
            HeadWriter.response(input, head: head, chunked: ex.clientFraming == .chunked, close: closing,
                                gzip: ex.gzip != nil, vary: vary, into: &outBuf)
            ex.responseStarted = true
            ex.outgoingHead = []
            b.inBuf.consume(head.headLength)
        case .length(let remaining):
            let n = min(remaining, input.count)
            appendBody(UnsafeRawBufferPointer(rebasing: input[0..<n]), framing: ex.clientFraming)
            ex.bytesOut += n
            b.inBuf.consume(n)
            if remaining == n { ex.responseBody = .done; endResponseBody(ex) } else { ex.responseBody = .length(remaining - n) }
        case .chunked(var decoder):
            do {
                let framing = ex.clientFraming
                var out = 0
                let r = try decoder.decode(input) { range in
                    appendBody(UnsafeRawBufferPointer(rebasing: input[range]), framing: framing)
                    out += range.count
                }
                ex.bytesOut += out
                b.inBuf.consume(r.consumed)
                if r.done {
                    ex.responseBody = .done
                    endResponseBody(ex)
                } else {
                    ex.responseBody = .chunked(decoder)
                }
            } catch {
                worker.logs.error.log(.error, "backend_error", "backend \(b.server.label) sent a bad chunk: \(error.reason)")
                counters.countBackendFailure(backend: b.backend.index, server: b.serverIndex, .protocol)
                abort(); return
            }
        case .untilClose:
            appendBody(input, framing: ex.clientFraming)
            ex.bytesOut += input.count
            b.inBuf.consume(input.count)
        case .done:
            break
        }
    }

    private func appendBody(_ bytes: UnsafeRawBufferPointer, framing: Exchange.ClientFraming) {
        guard bytes.count > 0 else { return }
        if let gzip = exchange?.gzip {
            gzip.compress(bytes) { appendFramed($0, framing: framing) }
        } else {
            appendFramed(bytes, framing: framing)
        }
    }

    /// The last bytes of a response body: the gzip trailer, then the last chunk.
    private func endResponseBody(_ ex: Exchange) {
        if let gzip = ex.gzip {
            gzip.finish { appendFramed($0, framing: ex.clientFraming) }
            ex.gzip = nil
        }
        if ex.clientFraming == .chunked { outBuf.append("0\r\n\r\n") }
    }

    /// SPEC §5 gzip: (compress this response, add Vary).
    private func compressionFor(_ head: HTTPResponseHead, _ b: UnsafeRawBufferPointer, _ ex: Exchange) -> (Bool, Bool) {
        guard let c = ex.compression, !ex.isHEAD, head.status == 200 else { return (false, false) }
        var type = "", encoded = false
        for h in head.headers {
            if asciiEqualsIgnoringCase(b, h.name, "content-type") { type = String(decoding: b[h.value], as: UTF8.self) }
            if asciiEqualsIgnoringCase(b, h.name, "content-encoding") { encoded = true }
        }
        guard !encoded, CompressionDecision.typeListed(type, in: c.types) else { return (false, false) }
        switch head.framing {
        case .none: return (false, true)
        case .contentLength(let n) where n < max(c.minLength, 1): return (false, true)
        default: return (ex.acceptsGzip, true)
        }
    }

    private func appendFramed(_ bytes: UnsafeRawBufferPointer, framing: Exchange.ClientFraming) {
        guard bytes.count > 0 else { return }
        if framing == .chunked {
            outBuf.append(hex: bytes.count)
            outBuf.append("\r\n")
            outBuf.append(bytes)
            outBuf.append("\r\n")
        } else {
            outBuf.append(bytes)
        }
    }

    private func flushClient() -> Bool {
        var progress = false
        while !outBuf.isEmpty {
            switch tls.write(outBuf.readable) {
            case .done(let n):
                outBuf.consume(n); progress = true
                if phase == .forwarding { setDeadline(max(limits.idleTimeoutMs, 1)) }
            case .wantWrite: clientNeeds.insert(.write); return progress
            case .wantRead: clientNeeds.insert(.read); return progress
            case .closed, .failed(_):
                close(); return true
            }
        }
        return progress
    }

    /// Response fully written and request fully read: log, recycle, and get ready for the next request.
    private func finishIfDone() -> Bool {
        guard let ex = exchange, ex.responseDone, ex.requestBodyDone || ex.local, outBuf.isEmpty, phase == .forwarding else { return false }
        record(ex)
        if ex.status == 101, ex.upgradeRequested, backend != nil {
            exchange = nil
            phase = .tunnel
            setDeadline(limits.idleTimeoutMs)
            return true
        }
        if let b = backend {
            backend = nil
            worker.pool.recordSuccess(b.backend, server: b.serverIndex)
            if ex.requestBodyDone && ex.backendKeepAlive && b.phase == .ready && !worker.draining {
                worker.pool.release(b)
            } else {
                b.owner = nil
                worker.pool.discard(b)
            }
        }
        exchange = nil
        if closeAfterResponse || !ex.clientKeepAlive || !ex.requestBodyDone || worker.draining {
            beginClose()
            return true
        }
        phase = .awaitingHead
        headBytesSeen = !inBuf.isEmpty
        parser.reset()
        inBuf.releaseIfEmpty()
        outBuf.releaseIfEmpty()
        setDeadline(headBytesSeen ? limits.headerTimeoutMs : limits.idleTimeoutMs)
        return true
    }

    // MARK: - Upgraded connections

    /// After a 101: client bytes go to the backend and backend bytes to the client, unchanged,
    /// each direction pausing at the high-water mark, until either side closes.
    private func tunnel() {
        guard let b = backend, b.phase == .ready else { close(); return }
        var progress = true, open = true
        while progress && open {
            progress = false
            open = Self.flush(b.tls, &inBuf, &backendNeeds, &progress)
                && Self.flush(tls, &b.inBuf, &clientNeeds, &progress)
                && (inBuf.readableCount >= Self.highWater || Self.fill(tls, &inBuf, &clientNeeds, &progress))
                && (b.inBuf.readableCount >= Self.highWater || Self.fill(b.tls, &b.inBuf, &backendNeeds, &progress))
            if progress { setDeadline(limits.idleTimeoutMs) }
        }
        if !open {
            // One side ended: hand on what is already here, then end the other.
            var ignored = false
            _ = Self.flush(b.tls, &inBuf, &backendNeeds, &ignored)
            _ = Self.flush(tls, &b.inBuf, &clientNeeds, &ignored)
            close()
        }
    }

    /// Reads from `src` into `buf` up to the high-water mark; false when `src` closed or failed.
    private static func fill(_ src: TLSStream, _ buf: inout ByteBuffer, _ needs: inout EventLoop.Interest, _ progress: inout Bool) -> Bool {
        while buf.readableCount < highWater {
            switch src.read(into: buf.writableSpace(minimum: 16 * 1024)) {
            case .done(let n): buf.didWrite(n); progress = true
            case .wantRead: needs.insert(.read); return true
            case .wantWrite: needs.insert(.write); return true
            case .closed, .failed: return false
            }
        }
        return true
    }

    /// Writes `buf` to `dst`; false when `dst` closed or failed.
    private static func flush(_ dst: TLSStream, _ buf: inout ByteBuffer, _ needs: inout EventLoop.Interest, _ progress: inout Bool) -> Bool {
        while !buf.isEmpty {
            switch dst.write(buf.readable) {
            case .done(let n): buf.consume(n); progress = true
            case .wantWrite: needs.insert(.write); return true
            case .wantRead: needs.insert(.read); return true
            case .closed, .failed: return false
            }
        }
        return true
    }

    // MARK: - Local responses, draining, closing

    /// An error response from the gateway itself. With `close`, the framing is lost or untrusted:
    /// stop reading, then drain briefly so the client can read the response before the close.
    private func respondLocally(status: Int, reason: String, close: Bool) {
        guard let ex = exchange else { return }
        if ex.responseStarted { abort(); return }
        ex.local = true
        ex.status = status
        ex.responseBody = .done
        ex.responseStarted = true
        if close { ex.requestBodyDone = true; closeAfterResponse = true }
        ex.bytesOut += HeadWriter.errorResponse(status: status, message: reason, close: close || closeAfterResponse, into: &outBuf)
        if status >= 500 || status == 400 || status == 421 || status == 408 || status == 413 || status == 414 || status == 431 {
            worker.logs.error.log(status >= 500 ? .error : .info, "request_error", reason,
                                  [("status", String(status)), ("client", clientIP), ("request_id", ex.requestID)])
        }
        phase = .forwarding
        if close { inBuf.clear() }
    }

    /// After the last response: flush, send close_notify, read and discard at most 64 KiB or 1 s, close.
    private func beginClose() {
        phase = .draining
        drainBudget = 64 * 1024
        setDeadline(1000)
    }

    private func drain() {
        _ = flushClient()
        guard phase == .draining else { return }
        if !outBuf.isEmpty { return }
        tls.shutdown()
        while drainBudget > 0 {
            inBuf.clear()
            let space = inBuf.writableSpace(minimum: 4096)
            switch tls.read(into: space) {
            case .done(let n): drainBudget -= n
            case .wantRead: clientNeeds.insert(.read); return
            case .wantWrite: clientNeeds.insert(.write); return
            case .closed, .failed: close(); return
            }
        }
        close()
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
        exchange = nil
        close()
    }

    private func close() {
        guard phase != .closed else { return }
        phase = .closed
        deadline = 0
        if let b = backend { b.owner = nil; worker.pool.discard(b); backend = nil }
        worker.loop.closeAndDeregister(fd: fd)
        worker.remove(self)
    }
}
