import GatewayConfig
import GatewayHTTP
import GatewayHTTP2
import GatewaySystem

/// HTTP/2 toward the client: the nghttp2 server session (GatewayHTTP2) and the translation
/// between its streams and the gateway's protocol-neutral exchanges. Response parts are queued
/// on the session's streams (nghttp2 frames them when the connection flushes), so the `out`
/// buffer HTTP/1 writes into is not used here.
final class HTTP2Downstream: DownstreamCodec {
    let session: HTTP2ServerSession
    /// Bytes of response a stream may hold for a slow client before its backend is not read
    /// (SPEC §12: at most 64 KiB per stream).
    static let streamHighWater = 64 * 1024
    /// An event taken while looking whether a request head came with END_STREAM.
    var pending: HTTP2Event?
    /// The graceful GOAWAY (RFC 9113 §6.8): notice sent, final GOAWAY sent.
    var noticed = false
    var goingAway = false
    /// Flushes that wrote frames: a stream answered before the client finished waits for one
    /// after its answer before it is reset.
    var flushes = 0
    /// Reused for the connection's local answers (error pages, gRPC trailers-only); a backend's
    /// response head goes to nghttp2 from its own bytes (`writeHead`).
    private var fields = HTTP2Fields()

    init(limits: Limits, pool: BufferPool, origins: [String]) throws(HTTP2Error) {
        var c = HTTP2Config()
        c.maxConcurrentStreams = UInt32(limits.http2MaxConcurrentStreams)
        c.maxHeaderListSize = limits.maxHeaderSize
        c.maxHeaders = limits.maxHeaders
        session = try HTTP2ServerSession(config: c, pool: pool, origins: origins)
    }

    /// The next event, the one put back first.
    func nextEvent() -> HTTP2Event? {
        if let p = pending { pending = nil; return p }
        return session.nextEvent()
    }

    /// Whether the request head just taken from `stream` ended the stream (no body follows).
    func headEndsStream(_ stream: Int32) -> Bool {
        guard let e = session.nextEvent() else { return false }
        if case .endStream(let s) = e, s == stream { return true }
        pending = e
        return false
    }

    /// The stream's request head as the HTTP/1 head the shared steps read (HostResolver, Router,
    /// HeadWriter): ranges into `head.fields.bytes`. nil for what the gateway does not proxy
    /// (CONNECT, extended CONNECT). `fields`: the view of `head.fields.fields` it shows.
    static func requestHead(_ head: HTTP2RequestHead, _ fields: HeadFields, endStream: Bool) -> HTTPRequestHead? {
        guard let path = head.path, head.connectProtocol == nil else { return nil }
        let b = head.fields.bytes
        var host = head.authority
        var framing: BodyFraming = endStream ? .none : .chunked
        for f in fields {
            if host == nil && equals(b, f.name, "host") { host = f.value }
            // nghttp2 has checked that the DATA will match it (a mismatch resets the stream).
            if equals(b, f.name, "content-length"), let n = Int(String(decoding: b[f.value], as: UTF8.self)) { framing = .contentLength(n) }
        }
        return HTTPRequestHead(method: head.method, target: path, versionMinor: 1, headers: fields, framing: framing,
                               keepAlive: true, expectContinue: false, upgrade: false, host: host, headLength: 0,
                               isHEAD: equals(b, head.method, "HEAD"))
    }

    private static func equals(_ b: [UInt8], _ r: Range<Int>, _ s: StaticString) -> Bool {
        b.withUnsafeBytes { bytesEqual(UnsafeRawBufferPointer(rebasing: $0[r]), s) }
    }

    // MARK: - Response parts (DownstreamCodec)

    /// Interim responses are not passed on over HTTP/2 (the final head follows).
    func writeInterim(_ stream: StreamID, _ b: UnsafeRawBufferPointer, _ head: HTTPResponseHead, into out: inout ByteBuffer) {}

    func writeHead(_ stream: StreamID, _ b: UnsafeRawBufferPointer, _ head: HTTPResponseHead, _ edits: ResponseEdits,
                   endStream: Bool, close: Bool, into out: inout ByteBuffer) -> Bool {
        let tokens = HeadWriter.connectionTokens(b, head.headers)
        let extra: [(StaticString, StaticString)] = edits.gzip ? (edits.vary ? Self.gzipVary : Self.gzip) : edits.vary ? Self.vary : []
        // Ending the stream with the head keeps a gRPC trailers-only answer one HEADERS frame
        // (then writeEnd finds no body to end). The fields go from the backend's head as they
        // are, without a copy: HTTP/1 hop-by-hop fields and those the Connection header lists
        // stay behind (RFC 9113 §8.2.2), and Content-Length when the body is compressed.
        try? session.respond(Int32(stream), status: head.status, raw: b, fields: head.headers, extra: extra, endStream: endStream) { h in
            HeadWriter.isHopByHop(b, h.name) || HeadWriter.isListed(b, h.name, in: tokens)
                || (edits.gzip && asciiEqualsIgnoringCase(b, h.name, "content-length"))
        }
        return false
    }

    func writeBody(_ stream: StreamID, _ bytes: UnsafeRawBufferPointer, into out: inout ByteBuffer) {
        guard bytes.count > 0 else { return }
        try? session.sendData(Int32(stream), bytes, endStream: false)
    }

    /// All of `buffer` as body bytes, leaving it empty (its memory may move to the stream).
    func writeBody(_ stream: StreamID, taking buffer: inout ByteBuffer) {
        try? session.sendData(Int32(stream), taking: &buffer)
    }

    func writeEnd(_ stream: StreamID, into out: inout ByteBuffer) {
        try? session.sendData(Int32(stream), UnsafeRawBufferPointer(start: nil, count: 0), endStream: true)
    }

    func writeTrailers(_ stream: StreamID, _ fields: HTTP2Fields, accepted: Bool, into out: inout ByteBuffer) {
        try? session.sendTrailers(Int32(stream), fields)
    }

    func writeLocal(_ stream: StreamID, status: Int, message: String, header: (name: StaticString, value: String)?, grpc: Int?,
                    close: Bool, into out: inout ByteBuffer) -> Int {
        fields.removeAll()
        if let header { fields.append(Self.lowercased(header.name), Array(header.value.utf8)) }
        if let grpc {
            // gRPC's form (SPEC §12): HTTP 200 and a trailers-only response, the status in grpc-status.
            fields.append("content-type", "application/grpc")
            fields.append(Array("grpc-status".utf8), Array(String(grpc).utf8))
            fields.append(Array("grpc-message".utf8), Array(message.utf8.map { $0 < 0x20 || $0 > 0x7E || $0 == 0x25 ? UInt8(ascii: "?") : $0 }))
            try? session.respond(Int32(stream), status: 200, headers: &fields, endStream: true)
            return 0
        }
        // An error page: a String is fine here (not the success path).
        let body = Array("\(status) \(HeadWriter.reasonPhrase(status)): \(message)\n".utf8)
        fields.append("content-type", "text/plain; charset=utf-8")
        fields.append(Array("content-length".utf8), Array(String(body.count).utf8))
        try? session.respond(Int32(stream), status: status, headers: &fields, endStream: false)
        body.withUnsafeBytes { try? session.sendData(Int32(stream), $0, endStream: true) }
        return body.count
    }

    private static let gzip: [(StaticString, StaticString)] = [("content-encoding", "gzip")]
    private static let vary: [(StaticString, StaticString)] = [("vary", "Accept-Encoding")]
    private static let gzipVary = gzip + vary

    /// HTTP/2 field names are lower case (RFC 9113 §8.2.1).
    private static func lowercased(_ s: StaticString) -> [UInt8] {
        UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount).map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
    }

    /// The periodic idle sweep (MemoryRelief): what an idle connection holds for nothing goes
    /// back (the session's pages and tables, the response-head scratch). Returns the session's
    /// bytes given back, nil when it was not (newly) idle.
    func releaseIdleMemory() -> Int? {
        guard pending == nil, let n = session.releaseIdleMemory() else { return nil }
        fields = HTTP2Fields()
        return n
    }

    /// Whether the stream can take more response bytes now.
    func canTakeResponse(_ stream: StreamID) -> Bool { session.canQueue(Int32(stream), below: Self.streamHighWater) }
}
