import Glibc
import GatewayConfig
import GatewayHTTP
import GatewayHTTP2
import GatewaySystem
import GatewayTLS

/// Builds the heads the gateway sends: the request toward the backend (hop-by-hop and
/// spoofable headers removed, forwarding headers added) and the response toward the client.
enum HeadWriter {
    /// Headers never forwarded in either direction (RFC 9110 §7.6.1), plus the framing we redo ourselves.
    static func isHopByHop(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Bool {
        asciiEqualsIgnoringCase(b, r, "connection") || asciiEqualsIgnoringCase(b, r, "keep-alive")
            || asciiEqualsIgnoringCase(b, r, "proxy-connection") || asciiEqualsIgnoringCase(b, r, "te")
            || asciiEqualsIgnoringCase(b, r, "trailer") || asciiEqualsIgnoringCase(b, r, "transfer-encoding")
            || asciiEqualsIgnoringCase(b, r, "upgrade")
    }

    /// Headers the gateway sets toward the backend: a client's own copies are dropped so they cannot be spoofed.
    static func isGatewayOwned(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Bool {
        hasPrefixIgnoringCase(b, r, "x-forwarded-") || hasPrefixIgnoringCase(b, r, "x-client-cert-")
            || asciiEqualsIgnoringCase(b, r, "x-request-id")
    }

    /// Names listed in a Connection header (also hop-by-hop), lower-cased; nil when there are
    /// none, the usual case (even an empty array is a release per head).
    static func connectionTokens(_ b: UnsafeRawBufferPointer, _ headers: HeadFields) -> [String]? {
        var out: [String]?
        for h in headers where asciiEqualsIgnoringCase(b, h.name, "connection") {
            // The usual value, a backend's `keep-alive` (or `close`), lists nothing to drop: no
            // list walk (a closure call per element; callgrind: ~170 instructions per response).
            if asciiEqualsIgnoringCase(b, h.value, "keep-alive") || asciiEqualsIgnoringCase(b, h.value, "close") { continue }
            forEachListElement(b, h.value) { t in
                if asciiEqualsIgnoringCase(b, t, "close") || asciiEqualsIgnoringCase(b, t, "keep-alive")
                    || asciiEqualsIgnoringCase(b, t, "upgrade") { return }
                let token = String(decoding: b[t], as: UTF8.self).lowercased()
                if out == nil { out = [token] } else { out!.append(token) }
            }
        }
        return out
    }

    static func isListed(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, in tokens: [String]?) -> Bool {
        guard let tokens else { return false }
        let name = String(decoding: b[r], as: UTF8.self).lowercased()
        return tokens.contains(name)
    }

    /// The trace context sent on: the client's own (`clientKept`: its `tracestate` goes along) or a new one.
    struct TraceHeadersOut {
        var context: TraceContext
        var clientKept: Bool
    }

    /// A JWT host's `claim_header`s: client copies removed, then the verified claims' values
    /// (empty on a `jwt off` route, so the names are only removed).
    struct ClaimHeadersOut {
        var headers: [ClaimHeader]
        var values: [String?]

        func isClaimHeader(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Bool {
            headers.contains { h in r.count == h.lowercased.count && zip(b[r], h.lowercased).allSatisfy { ($0 &- 65 < 26 ? $0 | 0x20 : $0) == $1 } }
        }
    }

    struct ClientCertHeaders {
        var verify: String
        var cert: PeerCertificate?
    }

    /// The request head toward the backend, written into `out` straight from the client's bytes.
    /// `host`: the authority to send when the client sent no Host (an absolute-form target).
    static func request(_ b: UnsafeRawBufferPointer, head: HTTPRequestHead, path: Router.Path, strip: Int,
                        host: Range<Int>?, clientIP: String, requestID: RequestID, clientCert: ClientCertHeaders?,
                        trace: TraceHeadersOut, claims: ClaimHeadersOut? = nil, into out: inout ByteBuffer) {
        // An upgrade (WebSocket) keeps its Upgrade header and says so in Connection.
        let upgrade = head.upgrade
        out.append(UnsafeRawBufferPointer(rebasing: b[head.method]))
        out.append(byte: 0x20)
        Router.writeUpstreamPath(b, path, strip: strip, into: &out)
        out.append(" HTTP/1.1\r\n")
        let tokens = connectionTokens(b, head.headers)
        var sawHost = false
        for h in head.headers {
            let keep = upgrade && asciiEqualsIgnoringCase(b, h.name, "upgrade")
            if !keep && (isHopByHop(b, h.name) || isGatewayOwned(b, h.name) || isListed(b, h.name, in: tokens)) { continue }
            if let claims, claims.isClaimHeader(b, h.name) { continue }   // SPEC §13: clients cannot spoof claims
            // traceparent is written below; tracestate only travels with the client's own valid traceparent.
            if TraceHeaders.isTraceHeader(b, h.name),
               !trace.clientKept || asciiEqualsIgnoringCase(b, h.name, "traceparent") { continue }
            if asciiEqualsIgnoringCase(b, h.name, "host") { sawHost = true }
            field(UnsafeRawBufferPointer(rebasing: b[h.name]), UnsafeRawBufferPointer(rebasing: b[h.value]), into: &out)
        }
        let hostBytes = host.map { UnsafeRawBufferPointer(rebasing: b[$0]) }
        if !sawHost, let hostBytes { field("Host", hostBytes, into: &out) }
        if case .chunked = head.framing { out.append("Transfer-Encoding: chunked\r\n") }
        if upgrade { out.append("Connection: upgrade\r\n") }
        out.append("X-Forwarded-For: "); out.append(clientIP); out.append("\r\nX-Forwarded-Proto: https\r\n")
        if let hostBytes { field("X-Forwarded-Host", hostBytes, into: &out) }
        out.append("X-Request-Id: "); requestID.write(into: &out); out.append("\r\n")
        if let claims {
            for (h, value) in zip(claims.headers, claims.values) {
                // A claim with a control character would split the head: it is not sent.
                guard let value, !value.utf8.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) else { continue }
                out.append(h.header); out.append(": "); out.append(value); out.append("\r\n")
            }
        }
        if let cc = clientCert {
            out.append("X-Client-Cert-Verify: "); out.append(cc.verify); out.append("\r\n")
            if let c = cc.cert {
                out.append("X-Client-Cert-Subject: "); out.append(c.subject)
                out.append("\r\nX-Client-Cert-Issuer: "); out.append(c.issuer)
                out.append("\r\nX-Client-Cert-Serial: "); out.append(c.serial)
                out.append("\r\nX-Client-Cert-SHA256: "); out.append(c.sha256); out.append("\r\n")
                if let uri = c.uri { out.append("X-Client-Cert-URI: "); out.append(uri); out.append("\r\n") }
                if !c.dnsNames.isEmpty {
                    out.append("X-Client-Cert-DNS: ")
                    for (i, name) in c.dnsNames.enumerated() { if i > 0 { out.append(byte: UInt8(ascii: ",")) }; out.append(name) }
                    out.append("\r\n")
                }
            }
        }
        out.append("traceparent: ")
        trace.context.write(into: out.writableSpace(minimum: TraceContext.length))
        out.didWrite(TraceContext.length)
        out.append("\r\n\r\n")
    }

    /// The method and target of a request head `request` wrote, and where its field lines start.
    static func requestLine(_ b: UnsafeRawBufferPointer) -> (method: Range<Int>, target: Range<Int>, end: Int)? {
        guard let sp1 = find(0x20, b, from: 0), let sp2 = find(0x20, b, from: sp1 + 1), let lf = find(0x0A, b, from: sp2) else { return nil }
        return (0..<sp1, (sp1 + 1)..<sp2, lf + 1)
    }

    /// memchr: the first `byte` in `b` at or after `from`.
    private static func find(_ byte: UInt8, _ b: UnsafeRawBufferPointer, from: Int) -> Int? {
        guard from < b.count, let base = b.baseAddress, let p = memchr(base + from, Int32(byte), b.count - from) else { return nil }
        return base.distance(to: UnsafeRawPointer(p))
    }

    /// The field lines of a head `request` wrote, from `start` to the empty line: each is
    /// `Name: value` CRLF, one field per line (its own output, so no parsing rules apply).
    static func forEachField(_ b: UnsafeRawBufferPointer, after start: Int, _ body: (_ name: Range<Int>, _ value: Range<Int>) -> Void) {
        var i = start
        while i < b.count && b[i] != 0x0D {
            guard let colon = find(UInt8(ascii: ":"), b, from: i), let cr = find(0x0D, b, from: colon) else { return }
            body(i..<colon, min(colon + 2, cr)..<cr)
            i = cr + 2
        }
    }

    /// HTTP/2 trailers as HTTP/1.1 chunked-trailer lines (hop-by-hop fields stay behind).
    static func trailerFields(_ t: HTTP2Fields, into out: inout ByteBuffer) {
        t.bytes.withUnsafeBytes { b in
            for f in t.fields where !isHopByHop(b, f.name) {
                field(UnsafeRawBufferPointer(rebasing: b[f.name]), UnsafeRawBufferPointer(rebasing: b[f.value]), into: &out)
            }
        }
    }

    private static func field(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, into out: inout ByteBuffer) {
        out.append(name); out.append(": "); out.append(value); out.append("\r\n")
    }

    private static func field(_ name: StaticString, _ value: UnsafeRawBufferPointer, into out: inout ByteBuffer) {
        out.append(name); out.append(": "); out.append(value); out.append("\r\n")
    }

    /// The response head toward the client; `chunked` / `close` say how the gateway frames the body.
    /// `gzip`: the gateway compresses the body (Content-Length dropped, Content-Encoding added);
    /// `vary`: the body could be compressed for another client, so caches must key on Accept-Encoding.
    static func response(_ b: UnsafeRawBufferPointer, head: HTTPResponseHead, chunked: Bool, close: Bool,
                         gzip: Bool = false, vary: Bool = false, into out: inout ByteBuffer) {
        let upgrade = head.status == 101
        out.append("HTTP/1.1 ")
        out.append(decimal: head.status)
        out.append(byte: 0x20)
        out.append(reasonPhrase(head.status))
        out.append("\r\n")
        let tokens = connectionTokens(b, head.headers)
        for h in head.headers {
            let keep = upgrade && asciiEqualsIgnoringCase(b, h.name, "upgrade")
            if !keep && (isHopByHop(b, h.name) || isListed(b, h.name, in: tokens)) { continue }
            if (chunked || gzip) && asciiEqualsIgnoringCase(b, h.name, "content-length") { continue }
            out.append(UnsafeRawBufferPointer(rebasing: b[h.name]))
            out.append(": ")
            out.append(UnsafeRawBufferPointer(rebasing: b[h.value]))
            out.append("\r\n")
        }
        if chunked { out.append("Transfer-Encoding: chunked\r\n") }
        if gzip { out.append("Content-Encoding: gzip\r\n") }
        if vary { out.append("Vary: Accept-Encoding\r\n") }
        if upgrade { out.append("Connection: upgrade\r\n") } else if close { out.append("Connection: close\r\n") }
        out.append("\r\n")
    }

    /// A gateway-generated response with a short plain-text body.
    static func errorResponse(status: Int, message: String, header: (name: StaticString, value: String)? = nil, close: Bool,
                              into out: inout ByteBuffer) -> Int {
        let body = "\(status) \(reasonPhrase(status)): \(message)\n"
        let before = out.readableCount
        out.append("HTTP/1.1 ")
        out.append(decimal: status)
        out.append(byte: 0x20)
        out.append(reasonPhrase(status))
        if let header { out.append("\r\n"); out.append(header.name); out.append(": "); out.append(header.value) }
        out.append("\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ")
        out.append(decimal: body.utf8.count)
        out.append(close ? "\r\nConnection: close\r\n\r\n" : "\r\n\r\n")
        out.append(body)
        return out.readableCount - before
    }

    static func reasonPhrase(_ status: Int) -> StaticString {
        switch status {
        case 100: "Continue"; case 101: "Switching Protocols"; case 102: "Processing"; case 103: "Early Hints"
        case 200: "OK"; case 201: "Created"; case 202: "Accepted"; case 204: "No Content"; case 206: "Partial Content"
        case 301: "Moved Permanently"; case 302: "Found"; case 303: "See Other"; case 304: "Not Modified"
        case 307: "Temporary Redirect"; case 308: "Permanent Redirect"
        case 400: "Bad Request"; case 401: "Unauthorized"; case 403: "Forbidden"; case 404: "Not Found"
        case 405: "Method Not Allowed"; case 408: "Request Timeout"; case 409: "Conflict"; case 410: "Gone"
        case 411: "Length Required"; case 413: "Content Too Large"; case 414: "URI Too Long"
        case 415: "Unsupported Media Type"; case 421: "Misdirected Request"; case 422: "Unprocessable Content"
        case 429: "Too Many Requests"; case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"; case 501: "Not Implemented"; case 502: "Bad Gateway"
        case 503: "Service Unavailable"; case 504: "Gateway Timeout"; case 505: "HTTP Version Not Supported"
        default: "Status"
        }
    }
}

func hasPrefixIgnoringCase(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, _ prefix: StaticString) -> Bool {
    let n = prefix.utf8CodeUnitCount
    guard r.count >= n else { return false }
    let p = prefix.utf8Start
    for i in 0..<n {
        var c = b[r.lowerBound + i]
        if c >= 65 && c <= 90 { c += 32 }
        if c != p[i] { return false }
    }
    return true
}
