import Glibc
import GatewayConfig
import GatewayHTTP
import GatewaySystem
import GatewayTLS

/// The client's side of serving: reading request parts through the codec, turning a head into an
/// exchange (the 421 rule, the route, the upstream head), and handing body parts to it.
extension ClientConnection {
    /// One turn of serving: a head when no exchange is open, then the open exchange's progress.
    func serve() {
        if exchanges.isEmpty { readHead() }
        _ = withExchange { forward($0) }
    }

    // MARK: - Request head

    func readHead() {
        while true {
            if !io.input.isEmpty {
                do {
                    if case .head(let head)? = try downstream.next(io.input.readable).part {
                        startExchange(head, io.input.readable)
                        return
                    }
                } catch {
                    respondLocally(openExchange(), .client(error), close: true)
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
            if let ex = exchange, !ex.state.responseStarted, !ex.state.requestEnded {
                worker.logs.error.log(.info, "client_aborted", "client closed the connection during the request body")
            }
            close()
            return false
        }
    }

    /// A request head (its ranges point into `b`, the codec's input): which host answers it, the
    /// route, the head toward the backend; then the exchange connects. The head is used up here,
    /// so nothing refers to the client's buffer afterwards.
    func startExchange(_ head: HTTPRequestHead, _ b: UnsafeRawBufferPointer, stream: StreamID = HTTP1Downstream.stream) {
        withNewExchange(stream) { startExchange($0, head, b) }
    }

    private func startExchange(_ ex: Exchange, _ head: HTTPRequestHead, _ b: UnsafeRawBufferPointer) {
        requestCount += 1
        if requestCount >= limits.maxRequestsPerConnection { closeAfterResponse = true }
        let (authority, path) = Router.splitTarget(b, head.target)
        if worker.accessLogEnabled {
            ex.method = String(decoding: b[head.method], as: UTF8.self)
            ex.path = path.string(b)
            ex.host = head.host.map { String(decoding: b[$0], as: UTF8.self) }
            ex.accessLogged = true
        }
        ex.isHEAD = head.isHEAD
        ex.expectsContinue = head.expectContinue
        ex.state.upgradeRequested = head.upgrade
        ex.clientVersionMinor = head.versionMinor
        ex.state.clientKeepAlive = head.keepAlive && !worker.draining
        ex.requestID = clientRequestID(b, head) ?? worker.requestIDs.uuid()
        for h in head.headers where asciiEqualsIgnoringCase(b, h.name, "te") {
            forEachListElement(b, h.value) { t in if asciiEqualsIgnoringCase(b, t, "trailers") { ex.clientTE = true } }
        }
        if isGRPC(b, head) {
            ex.grpc = true
            if let h = head.headers.first(where: { asciiEqualsIgnoringCase(b, $0.name, "grpc-timeout") }),
               let ms = Exchange.grpcTimeoutMs(b, h.value) { ex.grpcDeadline = now + UInt64(ms) }
        }
        let clientTrace = TraceHeaders.incoming(b, head.headers)   // SPEC §11 trace context
        let trace = clientTrace ?? worker.traceIDs.next()
        ex.trace = trace
        switch head.framing {
        case .contentLength(let n) where n > 0: ex.state.requestEnded = false
        case .chunked: ex.state.requestEnded = false; ex.requestChunked = true
        default: break
        }

        // Which host block this request is for, and whether this connection may ask for it.
        let asked = (authority ?? head.host).map { UnsafeRawBufferPointer(rebasing: b[$0]) }
        let decision = hostResolver.cached(asked) ?? hostResolver.resolve(asked: asked, connectionHost: tls.host?.index,
                                                                          table: snapshot.tls.table, policies: snapshot.hostPolicies)
        switch decision {
        case .misdirected(let requested):
            let c = tls.host!
            counters.misdirected[c.index, default: 0] += 1
            io.input.consume(head.headLength)
            respondLocally(ex, .client(421, "host \(requested) is not served under this connection's TLS policy (\(c.name))"), close: false)
        case .serve(nil):
            ex.hostIndex = SnapshotCounters.none
            io.input.consume(head.headLength)
            respondLocally(ex, .client(404, "no host"), close: false)
        case .serve(let i?):
            ex.hostIndex = i
            // At +0: this connection's snapshot holds its hosts (a host read into a local was retained twice).
            Unmanaged.passUnretained(snapshot.tls.hosts[i])._withUnsafeGuaranteedRef {
                route(ex, head, b, host: $0, path: path, authority: authority, trace: trace, clientTraceKept: clientTrace != nil)
            }
        }
    }

    /// The rest of `startExchange` once the host is known: limits, route, token, the head toward
    /// the backend, and the connection to it.
    private func route(_ ex: Exchange, _ head: HTTPRequestHead, _ b: UnsafeRawBufferPointer, host: TLSHost,
                       path: Router.Path, authority: Range<Int>?, trace: TraceContext, clientTraceKept: Bool) {
        if case .contentLength(let n) = head.framing, n > limits.maxBodySize {
            respondLocally(ex, .client(413, "body of \(n) bytes over max_body_size"), close: true); return
        }
        guard let ri = Router.routeIndex(b, path, in: host.config.routes), let backendRef = snapshot.routeBackends[host.index][ri].map(Unmanaged.passUnretained) else {
            let shown = path.string(b)
            io.input.consume(head.headLength)
            respondLocally(ex, .client(404, "no route for \(shown)"), close: false); return
        }
        if host.config.compression.enabled {
            ex.compression = host.config.compression
            ex.acceptsGzip = head.headers.contains { asciiEqualsIgnoringCase(b, $0.name, "accept-encoding")
                && CompressionDecision.clientAcceptsGzip(b, $0.value) }
        }
        // SPEC §13: the token, after the 421 rule and the route, before the backend.
        var claims: HeadWriter.ClaimHeadersOut?
        if let jwt = host.config.jwt {
            var values: [String?] = []
            if !host.config.routes[ri].jwtOff {
                guard let v = checkToken(ex, jwt, host: host, b, head) else { return }
                values = v
            }
            claims = HeadWriter.ClaimHeadersOut(headers: jwt.claimHeaders, values: values)
        }
        // gRPC needs HTTP/2 end to end (its status is in trailers an HTTP/1.1 backend does not
        // send); judged after the token, so an unauthenticated client learns nothing of the backend.
        if ex.grpc, let name = backendRef._withUnsafeGuaranteedRef({ $0.tls.protocol != .h2 ? $0.config.name : nil }) {
            io.input.consume(head.headLength)
            respondLocally(ex, ProxyError(.unavailable, "grpc needs an h2 backend (backend \(name) is http/1.1)", metric: nil), close: false)
            return
        }
        var cert: HeadWriter.ClientCertHeaders?
        if host.policy.clientAuth != .off {
            let c = clientCertificate
            cert = HeadWriter.ClientCertHeaders(verify: c == nil ? "NONE" : "SUCCESS", cert: c)
        }
        let strip = host.config.routes[ri].stripPrefix ? host.config.routes[ri].prefix.utf8.count : 0
        HeadWriter.request(b, head: head, path: path, strip: strip, host: head.host ?? authority, clientIP: clientIP,
                           requestID: ex.requestID, clientCert: cert,
                           trace: .init(context: trace, clientKept: clientTraceKept), claims: claims, into: &ex.outgoingHead)
        ex.backendRef = backendRef   // the snapshot's: see `Exchange.backendRef`
        io.input.consume(head.headLength)
        ex.connect(excluding: nil)
    }

    /// The client's X-Request-ID when it is valid (SPEC §10), kept for the backend and the logs.
    func clientRequestID(_ b: UnsafeRawBufferPointer, _ head: HTTPRequestHead) -> RequestID? {
        guard let h = head.headers.first(where: { asciiEqualsIgnoringCase(b, $0.name, "x-request-id") }) else { return nil }
        return RequestID.client(UnsafeRawBufferPointer(rebasing: b[h.value]))
    }

    // MARK: - Request body

    /// Body parts from `io.input` to the exchange while it can take them, and more from the client.
    func sendRequest(_ ex: Exchange) -> Bool {
        var progress = ex.sendHead()
        while true {
            if consumeRequestBody(ex) { progress = true }
            if ex.flushUpstream() { progress = true }
            guard ex.isOpen, !ex.state.requestEnded, phase == .serving, ex.wantsBody, io.input.isEmpty else { break }
            guard readClient() else { break }
            progress = true
        }
        return progress
    }

    /// Hands request body parts from `io.input` to the exchange (or drops them after a local answer).
    func consumeRequestBody(_ ex: Exchange) -> Bool {
        guard !ex.state.requestEnded, !io.input.isEmpty else { return false }
        let dropping = ex.state.local || !ex.hasUpstream
        if !dropping && !ex.canTakeBody { return false }
        var progress = false
        while !ex.state.requestEnded {
            let step: (stream: StreamID, part: RequestPart?, consumed: Int)
            do { step = try downstream.next(io.input.readable) } catch {
                io.input.consume(io.input.readableCount)
                failRequest(ex, .client(error))
                return true
            }
            switch step.part {
            case .body(let range)?:
                let run = UnsafeRawBufferPointer(rebasing: io.input.readable[range])
                if !dropping { ex.requestBody(run) }
                ex.requestBodyBytes += run.count
            case .end?:
                if !dropping { ex.requestEnd() }
                ex.state.requestEnded = true
            case .head?, nil:
                break
            }
            io.input.consume(step.consumed)
            if step.consumed > 0 { progress = true }
            if step.part == nil { break }
        }
        if ex.requestBodyBytes > limits.maxBodySize {
            failRequest(ex, .client(413, "body over max_body_size"))
        }
        return progress
    }

    /// A request that went bad mid-body: the backend connection is useless, the client's framing is lost.
    func failRequest(_ ex: Exchange, _ failure: ProxyError) {
        ex.dropUpstream()
        respondLocally(ex, failure, close: true)
    }
}
