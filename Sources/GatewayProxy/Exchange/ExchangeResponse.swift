import Glibc
import GatewayConfig
import GatewayHTTP
import GatewayHTTP2
import GatewaySystem
import GatewayTLS

/// The response side of an exchange: reading the backend's response parts and handing them to
/// the connection's codec for the client (through the gzip filter when compressing).
extension Exchange {
    /// Reads the backend's response while the client keeps up.
    func receiveResponse() -> Bool {
        if backendStream.conn != nil { return receiveBackendStream() }
        return withUpstream { c in
            guard c.phase == .ready, !state.responseEnded, state.headSent else { return false }
            return withClient { receiveResponse(c, $0) }
        } ?? false
    }

    private func receiveResponse(_ c: UpstreamSession, _ client: ClientConnection) -> Bool {
        var progress = false
        defer { if client.isHTTP2 { waitingOnClient = !client.canTakeResponse(self) } }
        while true {
            // Hand on every part already buffered (a head and its body often share one read)
            // before reading again, while the client keeps up.
            while !(c.io.input.isEmpty && c.codec.awaitingHead) {   // else nothing to hand on yet
                guard client.canTakeResponse(self) else { return progress }
                guard let more = handOnResponsePart(c, client) else { return true }
                guard more else { break }
                progress = true
                if state.responseEnded { return true }
            }
            switch c.io.read() {
            case .done:
                progress = true
                setDeadline(c.backend.config.responseTimeoutMs)
            case .wantRead, .wantWrite: return progress
            case .closed, .failed(_):
                backendEnded(c)
                return true
            }
        }
    }

    /// The backend closed (or broke) its connection.
    func backendEnded(_ c: UpstreamSession) {
        if c.codec.inputEnded() != nil {
            state.responseEndedByClose()
            finishBody()
            return
        }
        if c.codec.awaitingHead {
            let stale = c.reused && c.io.input.isEmpty && !state.bodyForwarded
            backendFailed(ProxyError(.badGateway, "backend \(c.server.label) closed the connection before responding", retrySafe: stale, metric: .reset))
            return
        }
        worker.logs.error.log(.error, "backend_error", "backend \(c.server.label) closed the connection mid-response",
                              [("request_id", .string(requestID.text))])
        conn.counters.countBackendFailure(backend: c.backend.index, server: c.serverIndex, .reset)
        conn.abort(self)
    }

    /// Takes the next response part from the backend's buffered bytes to the client.
    /// true: a part was handed on; false: more bytes are needed; nil: the exchange failed.
    func handOnResponsePart(_ c: UpstreamSession, _ client: ClientConnection) -> Bool? {
        let input = c.io.input.readable
        let step: (part: HTTP1ClientCodec.Part?, consumed: Int)
        do { step = try c.codec.next(input) } catch {
            c.io.input.consume(input.count)
            if !state.responseStarted {
                backendFailed(ProxyError(.badGateway, "backend \(c.server.label) sent an invalid response: \(error.reason)", metric: .protocol))
                return nil
            }
            worker.logs.error.log(.error, "backend_error", "backend \(c.server.label) sent a bad chunk: \(error.reason)")
            client.counters.countBackendFailure(backend: c.backend.index, server: c.serverIndex, .protocol)
            client.abort(self); return nil
        }
        switch step.part {
        case nil:
            c.io.input.consume(step.consumed)
            return step.consumed > 0
        case .interim(let head)?:
            client.writeInterim(self, input, head)
        case .switched(let head)?:
            // Switching protocols: the head goes to the client, then bytes flow both ways as they are.
            client.downstream.writeSwitch(input, head, into: &client.io.output)   // HTTP/1 only: HTTP/2 has no upgrade
            upstreamMs = Int(now - upstreamStartedAt)
            state.switched()
        case .head(let head)?:
            startResponse(head, input)
        case .body(let range)?:
            if range.count == input.count, step.consumed == input.count, gzip == nil, client.isHTTP2 {
                // The whole read is body: its buffer moves to the HTTP/2 stream instead of being
                // copied, and the backend reads into the stream's empty one next.
                bytesOut += range.count
                _ = client.withHTTP2 { $0.writeBody(stream, taking: &c.io.input) }
                return true
            }
            let run = UnsafeRawBufferPointer(rebasing: input[range])
            if let gzip {
                gzip.compress(run) { client.writeBody(self, $0) }
            } else {
                client.writeBody(self, run)
            }
            bytesOut += range.count
        case .end?:
            finishBody()
        }
        c.io.input.consume(step.consumed)
        return true
    }

    /// The response is complete: the gzip trailer, then the codec's end of body (with the
    /// backend's trailers, where it had some).
    func finishBody(trailers: HTTP2Fields? = nil) {
        withClient { finishBody(trailers, $0) }
    }

    private func finishBody(_ trailers: HTTP2Fields?, _ client: ClientConnection) {
        state.responseEnded = true
        if let g = gzip {
            g.finish { client.writeBody(self, $0) }
            gzip = nil
        }
        if let trailers { client.writeTrailers(self, trailers) } else { client.writeEnd(self) }
    }

    /// The final response head, with the gateway's edits (gzip, Vary), in the client's protocol.
    /// `ends`: the backend sent no body (HTTP/2 passes a trailers-only gRPC answer on as one).
    func startResponse(_ head: HTTPResponseHead, _ input: UnsafeRawBufferPointer, ends: Bool = false) {
        withClient { startResponse(head, input, ends, $0) }
    }

    private func startResponse(_ head: HTTPResponseHead, _ input: UnsafeRawBufferPointer, _ ends: Bool, _ client: ClientConnection) {
        state.responseHead(status: head.status, keepAlive: head.keepAlive)
        upstreamMs = Int(now - upstreamStartedAt)
        let (compress, vary) = compressionFor(head, input)
        if compress { gzip = GzipStream() }
        client.writeHead(self, input, head, ResponseEdits(gzip: compress, vary: vary), ends: ends && !compress)
        outgoingHead.clear()
        outgoingHead.releaseIfEmpty()
    }

    /// SPEC §5 gzip: (compress this response, add Vary).
    func compressionFor(_ head: HTTPResponseHead, _ b: UnsafeRawBufferPointer) -> (Bool, Bool) {
        guard let c = compression, !isHEAD, head.status == 200 else { return (false, false) }
        var type = "", encoded = false
        for h in head.headers {
            if asciiEqualsIgnoringCase(b, h.name, "content-type") { type = String(decoding: b[h.value], as: UTF8.self) }
            if asciiEqualsIgnoringCase(b, h.name, "content-encoding") { encoded = true }
        }
        guard !encoded, CompressionDecision.typeListed(type, in: c.types) else { return (false, false) }
        switch head.framing {
        case .none: return (false, true)
        case .contentLength(let n) where n < max(c.minLength, 1): return (false, true)
        default: return (acceptsGzip, true)
        }
    }
}
