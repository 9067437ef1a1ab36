import Glibc
import GatewayConfig
import GatewayHTTP
import GatewaySystem
import GatewayTLS

/// Reading a request head and turning it into an exchange: the 421 rule (HostResolver), the
/// route (Router) and the upstream head (HeadWriter), then the backend connection.
extension ClientConnection {
    // MARK: - Request head

    func readHead() {
        while true {
            if !io.input.isEmpty {
                do {
                    if case .head(let head)? = try codec.next(io.input.readable).part {
                        startExchange(head)
                        return
                    }
                } catch {
                    openExchange()
                    respondLocally(.client(error), close: true)
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

    /// Reads what the client sent into `io.input`; false when nothing more can be read now
    /// (or the connection ended, in which case it is closed).
    func readClient() -> Bool {
        switch io.read(minimum: 4096) {
        case .done: return true
        case .wantRead:
            // An idle keep-alive connection must not hold a read buffer (memory per idle connection).
            io.input.releaseIfEmpty()
            return false
        case .wantWrite: return false
        case .closed, .failed:
            if phase == .forwarding, let ex = exchange, !ex.responseStarted, !ex.requestEnded {
                worker.logs.error.log(.info, "client_aborted", "client closed the connection during the request body")
            }
            close()
            return false
        }
    }

    func startExchange(_ head: HTTPRequestHead) {
        let ex = openExchange()
        let b = io.input.readable
        let (authority, path) = Router.splitTarget(b, head.target)
        if worker.logs.access.enabled {
            ex.method = String(decoding: b[head.method], as: UTF8.self)
            ex.path = path.string(b)
            ex.host = head.host.map { String(decoding: b[$0], as: UTF8.self) }
        }
        ex.isHEAD = head.isHEAD
        ex.upgradeRequested = head.upgrade
        ex.clientVersionMinor = head.versionMinor
        ex.clientKeepAlive = head.keepAlive && !worker.draining
        ex.requestID = clientRequestID(b, head) ?? worker.requestIDs.uuid()
        let clientTrace = TraceHeaders.incoming(b, head.headers)   // SPEC §11 trace context
        let trace = clientTrace ?? worker.traceIDs.next()
        ex.trace = trace
        switch head.framing {
        case .contentLength(let n) where n > 0: ex.requestEnded = false
        case .chunked: ex.requestEnded = false; ex.requestChunked = true
        default: break
        }
        phase = .forwarding

        // Which host block this request is for, and whether this connection may ask for it.
        let hosts = snapshot.tls.hosts
        let asked = (authority ?? head.host).map { UnsafeRawBufferPointer(rebasing: b[$0]) }
        let decision = hostResolver.resolve(asked: asked, connectionHost: tls.host?.index,
                                            table: snapshot.tls.table, policies: snapshot.hostPolicies)
        var host: TLSHost?
        switch decision {
        case .misdirected(let requested):
            let c = tls.host!
            counters.misdirected[c.index, default: 0] += 1
            io.input.consume(head.headLength)
            respondLocally(.client(421, "host \(requested) is not served under this connection's TLS policy (\(c.name))"), close: false)
            return
        case .serve(let i): host = i.map { hosts[$0] }
        }
        ex.hostIndex = host?.index ?? SnapshotCounters.none
        guard let host else {
            io.input.consume(head.headLength)
            respondLocally(.client(404, "no host"), close: false); return
        }
        if case .contentLength(let n) = head.framing, n > limits.maxBodySize {
            respondLocally(.client(413, "body of \(n) bytes over max_body_size"), close: true); return
        }
        guard let route = Router.route(b, path, in: host.config.routes), let backend = snapshot.backends[route.backend] else {
            let shown = path.string(b)
            io.input.consume(head.headLength)
            respondLocally(.client(404, "no route for \(shown)"), close: false); return
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
        HeadWriter.request(b, head: head, path: path, route: route, host: head.host ?? authority, clientIP: clientIP,
                           requestID: ex.requestID, clientCert: cert,
                           trace: .init(context: trace, clientKept: clientTrace != nil), into: &ex.outgoingHead)
        ex.backend = backend
        io.input.consume(head.headLength)
        connectBackend(excluding: nil)
    }

    /// The client's X-Request-ID when it is valid (SPEC §10), kept for the backend and the logs.
    func clientRequestID(_ b: UnsafeRawBufferPointer, _ head: HTTPRequestHead) -> RequestID? {
        guard let h = head.headers.first(where: { asciiEqualsIgnoringCase(b, $0.name, "x-request-id") }) else { return nil }
        return RequestID.client(UnsafeRawBufferPointer(rebasing: b[h.value]))
    }
}
