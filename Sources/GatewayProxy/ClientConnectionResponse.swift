import Glibc
import GatewayConfig
import GatewayHTTP
import GatewaySystem
import GatewayTLS

/// The response side: reading the backend's response, re-framing (and gzipping) it toward the
/// client, and finishing the exchange.
extension ClientConnection {
    /// Reads the backend's response while the client keeps up, turning it into the client's framing.
    func receiveResponse() -> Bool {
        guard let b = backend, b.phase == .ready, let ex = exchange, !ex.responseEnded, ex.headSent else { return false }
        var progress = false
        while io.output.readableCount < Self.highWater {
            // Hand on every part already buffered (a head and its body often share one read)
            // before reading again.
            while io.output.readableCount < Self.highWater {
                guard let more = handOnResponsePart(b, ex) else { return true }
                guard more else { break }
                progress = true
                if ex.responseEnded { return true }
            }
            switch b.io.read() {
            case .done:
                progress = true
                setDeadline(b.backend.config.responseTimeoutMs)
            case .wantRead, .wantWrite: return progress
            case .closed, .failed(_):
                backendEnded(b)
                return true
            }
        }
        return progress
    }

    /// The backend closed (or broke) its connection.
    func backendEnded(_ b: UpstreamSession) {
        guard let ex = exchange else { return }
        if b.codec.inputEnded() != nil {
            ex.responseEnded = true
            ex.body.finish(into: &io.output)
            ex.backendKeepAlive = false
            return
        }
        if b.codec.awaitingHead {
            let stale = b.reused && b.io.input.isEmpty && !ex.bodyForwarded
            backendFailed(ProxyError(.badGateway, "backend \(b.server.label) closed the connection before responding", retrySafe: stale, metric: .reset))
            return
        }
        worker.logs.error.log(.error, "backend_error", "backend \(b.server.label) closed the connection mid-response",
                              [("request_id", .string(ex.requestID.text))])
        counters.countBackendFailure(backend: b.backend.index, server: b.serverIndex, .reset)
        abort()
    }

    /// Takes the next response part from the backend's buffered bytes to the client.
    /// true: a part was handed on; false: more bytes are needed; nil: the exchange failed.
    func handOnResponsePart(_ b: UpstreamSession, _ ex: Exchange) -> Bool? {
        let input = b.io.input.readable
        let step: (part: HTTP1ClientCodec.Part?, consumed: Int)
        do { step = try b.codec.next(input) } catch {
            b.io.input.consume(input.count)
            if !ex.responseStarted {
                backendFailed(ProxyError(.badGateway, "backend \(b.server.label) sent an invalid response: \(error.reason)", metric: .protocol))
                return nil
            }
            worker.logs.error.log(.error, "backend_error", "backend \(b.server.label) sent a bad chunk: \(error.reason)")
            counters.countBackendFailure(backend: b.backend.index, server: b.serverIndex, .protocol)
            abort(); return nil
        }
        switch step.part {
        case nil:
            b.io.input.consume(step.consumed)
            return step.consumed > 0
        case .interim(let head)?:
            // Interim responses (100 Continue, 103) pass through to HTTP/1.1 clients; a 101 nobody asked for does not.
            if head.status != 101 && ex.clientVersionMinor >= 1 {
                HeadWriter.response(input, head: head, chunked: false, close: false, into: &io.output)
            }
        case .switched(let head)?:
            // Switching protocols: the head goes to the client, then bytes flow both ways as they are.
            HeadWriter.response(input, head: head, chunked: false, close: false, into: &io.output)
            ex.status = 101
            ex.upstreamMs = Int(now - ex.upstreamStartedAt)
            ex.responseStarted = true
            ex.responseEnded = true
            ex.requestEnded = true
        case .head(let head)?:
            startResponse(head, input, ex)
        case .body(let range)?:
            ex.body.write(UnsafeRawBufferPointer(rebasing: input[range]), into: &io.output)
            ex.bytesOut += range.count
        case .end?:
            ex.responseEnded = true
            ex.body.finish(into: &io.output)
        }
        b.io.input.consume(step.consumed)
        return true
    }

    /// The final response head: the client's framing (re-chunked, gzipped or close-delimited) and the head itself.
    func startResponse(_ head: HTTPResponseHead, _ input: UnsafeRawBufferPointer, _ ex: Exchange) {
        ex.status = head.status
        ex.backendKeepAlive = head.keepAlive
        ex.upstreamMs = Int(now - ex.upstreamStartedAt)
        switch head.framing {
        case .none, .contentLength: ex.body.framing = .asIs
        case .chunked, .untilClose: ex.body.framing = ex.clientVersionMinor >= 1 ? .chunked : .close
        }
        let (gzip, vary) = compressionFor(head, input, ex)
        if gzip {
            ex.body.gzip = GzipStream()
            ex.body.framing = ex.clientVersionMinor >= 1 ? .chunked : .close
        }
        if ex.body.framing == .close { closeAfterResponse = true }
        let closing = closeAfterResponse || !ex.clientKeepAlive
        HeadWriter.response(input, head: head, chunked: ex.body.framing == .chunked, close: closing,
                            gzip: ex.body.gzip != nil, vary: vary, into: &io.output)
        ex.responseStarted = true
        ex.outgoingHead.clear()
        ex.outgoingHead.releaseIfEmpty()
    }

    /// SPEC §5 gzip: (compress this response, add Vary).
    func compressionFor(_ head: HTTPResponseHead, _ b: UnsafeRawBufferPointer, _ ex: Exchange) -> (Bool, Bool) {
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

    func flushClient() -> Bool {
        guard !io.output.isEmpty else { return false }
        var progress = false
        guard io.flush(progress: &progress) else { close(); return true }
        if progress && phase == .forwarding { setDeadline(max(limits.idleTimeoutMs, 1)) }
        return progress
    }

    /// Response fully written and request fully read: log, recycle, and get ready for the next request.
    func finishIfDone() -> Bool {
        guard let next = settleExchange() else { return false }
        closeExchange()   // after `settleExchange` returned: nothing holds the exchange, so it is reused
        switch next {
        case .tunnel:
            phase = .tunnel
            setDeadline(limits.idleTimeoutMs)
        case .close:
            beginClose()
        case .nextRequest:
            phase = .awaitingHead
            headBytesSeen = !io.input.isEmpty
            codec.reset()
            io.input.releaseIfEmpty()
            io.output.releaseIfEmpty()
            setDeadline(headBytesSeen ? limits.headerTimeoutMs : limits.idleTimeoutMs)
        }
        return true
    }

    enum AfterExchange { case tunnel, close, nextRequest }

    /// When the exchange is complete: records it, returns the backend connection to the pool
    /// (or drops it), and says what the connection does next. nil: not complete yet.
    private func settleExchange() -> AfterExchange? {
        guard let ex = exchange, ex.responseEnded, ex.requestEnded || ex.local, io.output.isEmpty, phase == .forwarding else { return nil }
        record(ex)
        if ex.status == 101, ex.upgradeRequested, backend != nil { return .tunnel }
        if let b = backend {
            backend = nil
            worker.pool.recordSuccess(b.backend, server: b.serverIndex)
            if ex.requestEnded && ex.backendKeepAlive && b.phase == .ready && !worker.draining {
                worker.pool.release(b)
            } else {
                b.owner = nil
                worker.pool.discard(b)
            }
        }
        return closeAfterResponse || !ex.clientKeepAlive || !ex.requestEnded || worker.draining ? .close : .nextRequest
    }
}
