import GatewayConfig
import GatewayHTTP
import GatewayHTTP2
import GatewaySystem

/// The exchange's side of a `protocol h2` backend (SPEC §12): its request as a stream on a
/// shared connection (H2Upstream), and the response the connection recorded for it handed on to
/// the client in the client's protocol, trailers included. Retries, deadlines and the client
/// side are the same steps as over HTTP/1.1.
extension Exchange {
    /// Opens the stream with the head HeadWriter built (the same header rules as HTTP/1.1),
    /// split back into HTTP/2 fields (no parser: the bytes are HeadWriter's own): `Host` becomes `:authority`, connection-specific fields
    /// stay behind, `te: trailers` goes along when the client sent it.
    func openBackendStream() -> Bool {
        guard !state.headSent, backendStream.failure == nil else { return false }
        return withBackendConnection { c, s in openBackendStream(c, s) } ?? false
    }

    private func openBackendStream(_ c: H2Upstream, _ s: HTTP2ClientSession) -> Bool {
        let b = outgoingHead.readable
        guard let line = HeadWriter.requestLine(b) else {
            backendFailed(ProxyError(.badGateway, "request head for \(serverLabel) could not be translated to HTTP/2", metric: nil))
            return true
        }
        // The fields go to nghttp2 as ranges of the head's bytes (no copy of them first).
        c.fieldRanges.removeAll(keepingCapacity: true)
        var authority: Range<Int>?
        HeadWriter.forEachField(b, after: line.end) { name, value in
            if asciiEqualsIgnoringCase(b, name, "host") { authority = value; return }
            if expectsContinue && asciiEqualsIgnoringCase(b, name, "expect") { return }   // answered below
            c.fieldRanges.append(HTTPHeaderField(name: name, value: value))
        }
        let open = { (authority: UnsafeRawBufferPointer) in
            c.open(self, s, method: UnsafeRawBufferPointer(rebasing: b[line.method]), authority: authority,
                   path: UnsafeRawBufferPointer(rebasing: b[line.target]), head: b, fields: c.fieldRanges, trailersTE: self.clientTE,
                   endStream: self.state.requestEnded && self.requestTrailers == nil)
        }
        // The server's own name only when the request had no Host (no copy of it per request).
        let id = authority.map { open(UnsafeRawBufferPointer(rebasing: b[$0])) }
            ?? Array(c.server.config.host.utf8).withUnsafeBytes { open($0) }
        guard let id else {
            backendFailed(ProxyError(.badGateway, "backend \(serverLabel) took no new stream", retrySafe: true, metric: nil))
            return true
        }
        backendStream.id = id
        state.headSent = true
        // The stream is open, so the body has somewhere to go (under the backend's flow
        // control): the client need not wait out its Expect timeout (curl's is 1 s).
        if expectsContinue && !state.requestEnded { conn.io.output.append("HTTP/1.1 100 Continue\r\n\r\n") }
        setDeadline(c.backend.config.responseTimeoutMs)
        return true
    }

    /// Hands on what the backend sent on the stream while the client keeps up: the head, body
    /// (its window opens as the client takes it), then the end or the trailers.
    func receiveBackendStream() -> Bool {
        guard backendStream.id != 0, !state.responseEnded else { return false }
        return withBackendConnection { c, s in withClient { receiveBackendStream(c, s, $0) } } ?? false
    }

    /// The client at +0 (`withClient`'s invariant), not retained for the whole step.
    private func receiveBackendStream(_ c: H2Upstream, _ s: HTTP2ClientSession, _ client: ClientConnection) -> Bool {
        let id = backendStream.id
        var progress = false
        defer { if client.isHTTP2 { waitingOnClient = !client.canTakeResponse(self) } }
        if !state.responseStarted {
            guard let fields = backendStream.head else { return false }
            backendStream.head = nil
            let ends = backendStream.ended && s.receivedBody(id).isEmpty && backendStream.trailers == nil
            startResponse(status: backendStream.status, fields, ends: ends)
            progress = true
        }
        while client.canTakeResponse(self) {
            let body = s.receivedBody(id)
            guard body.count > 0 else { break }
            if let gzip { gzip.compress(body) { client.writeBody(self, $0) } } else { client.writeBody(self, body) }
            bytesOut += body.count
            s.consume(id, body.count)
            c.needsFlush()
            progress = true
        }
        if backendStream.ended && s.receivedBody(id).isEmpty {
            finishBody(trailers: backendStream.trailers)
            backendStream.trailers = nil
            return true
        }
        if progress { setDeadline(c.backend.config.responseTimeoutMs) }
        return progress
    }

    /// An HTTP/2 response head as the head the shared steps read (gzip, Vary, the client's framing).
    private func startResponse(status: Int, _ fields: HTTP2Fields, ends: Bool) {
        fields.bytes.withUnsafeBytes { b in
            var framing: BodyFraming = isHEAD || status == 204 || status == 304 ? .none : .chunked
            // An HTTP/1.1 client that takes trailers gets the body chunked, so the backend's
            // trailers (if it sends some) have a place; otherwise a length passes as it is.
            let chunkForTrailers = clientTE && !conn.isHTTP2 && framing == .chunked
            for f in fields.fields where !chunkForTrailers && asciiEqualsIgnoringCase(b, f.name, "content-length") {
                if let n = asciiDecimal(b, f.value) { framing = .contentLength(n) }
            }
            fields.fields.withUnsafeBufferPointer { view in
                startResponse(HTTPResponseHead(status: status, versionMinor: 1, headers: view, framing: framing, keepAlive: true, headLength: 0), b, ends: ends)
            }
        }
    }

    /// The client's `grpc-timeout` passed before the response started (SPEC §12): the backend
    /// stream is reset and the client gets grpc-status 4 DEADLINE_EXCEEDED.
    func grpcDeadlineExceeded() {
        let c = conn
        dropUpstream()
        var failure = ProxyError(.timeout, "grpc-timeout expired before the backend answered", metric: nil)
        failure.grpcCode = 4
        c.perform(state.answer(failure.status, close: false), self, failure)
        turn = true
        c.drive()
    }

    /// `grpc-timeout` (gRPC over HTTP/2: up to 8 digits and a unit H, M, S, m, u, n) in
    /// milliseconds, rounded up; nil when absent or malformed.
    static func grpcTimeoutMs(_ b: UnsafeRawBufferPointer, _ value: Range<Int>) -> Int? {
        guard value.count >= 2, value.count <= 9 else { return nil }
        var n = 0
        for i in value.lowerBound..<value.upperBound - 1 {
            let d = b[i]
            guard d >= 48 && d <= 57 else { return nil }
            n = n * 10 + Int(d - 48)
        }
        switch b[value.upperBound - 1] {
        case UInt8(ascii: "H"): return n * 3_600_000
        case UInt8(ascii: "M"): return n * 60_000
        case UInt8(ascii: "S"): return n * 1000
        case UInt8(ascii: "m"): return n
        case UInt8(ascii: "u"): return (n + 999) / 1000
        case UInt8(ascii: "n"): return (n + 999_999) / 1_000_000
        default: return nil
        }
    }
}
