import Glibc
import COpenSSL
import GatewayHTTP

/// Accepted connections, each served on its own detached thread.
final class EchoServer: @unchecked Sendable {
    // @unchecked: both fields are immutable; the SSL_CTX is shared read-only (OpenSSL locks internally).
    let context: OpaquePointer
    let name: String
    let healthStatus: Int

    init(context: OpaquePointer, name: String, healthStatus: Int) {
        self.context = context; self.name = name; self.healthStatus = healthStatus
    }

    private final class Job { let server: EchoServer; let fd: Int32; init(_ s: EchoServer, _ fd: Int32) { server = s; self.fd = fd } }

    func spawn(_ fd: Int32) {
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        pthread_attr_setstacksize(&attr, 512 * 1024)
        var tid = pthread_t()
        let job = Unmanaged.passRetained(Job(self, fd)).toOpaque()
        let rc = pthread_create(&tid, &attr, { arg in
            let job = Unmanaged<Job>.fromOpaque(arg!).takeRetainedValue()
            job.server.serve(job.fd)
            return nil
        }, job)
        pthread_attr_destroy(&attr)
        if rc != 0 { Unmanaged<Job>.fromOpaque(job).release(); close(fd) }
    }

    func serve(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        guard let ssl = SSL_new(context) else { close(fd); return }
        SSL_set_fd(ssl, fd)
        var clean = false
        if SSL_accept(ssl) == 1 {
            if EchoTLS.negotiatedH2(ssl), let h2 = EchoH2Connection(ssl: ssl, fd: fd, name: name, healthStatus: healthStatus) {
                clean = h2.run()
            } else {
                var conn = EchoConnection(ssl: ssl, name: name, healthStatus: healthStatus)
                clean = conn.run()
            }
        }
        if clean { SSL_shutdown(ssl) }
        SSL_free(ssl)
        close(fd)
    }
}

/// One client connection: requests in order, each answered after its body is read.
struct EchoConnection {
    let ssl: OpaquePointer
    let name: String
    let healthStatus: Int
    var buf: [UInt8] = []
    private var scratch = [UInt8](repeating: 0, count: 64 * 1024)

    init(ssl: OpaquePointer, name: String, healthStatus: Int) { self.ssl = ssl; self.name = name; self.healthStatus = healthStatus }

    /// Serves until the client or a response ends the connection; true if it ended cleanly.
    mutating func run() -> Bool {
        var parser = HTTPRequestParser(limits: HTTPHeadLimits(maxURISize: 64 * 1024, maxHeaderSize: 1 << 20, maxHeaders: 1000))
        while true {
            var head: HTTPRequestHead?
            while head == nil {
                let r: Result<HTTPRequestHead?, HTTPParseError> = buf.withUnsafeBytes { b in
                    do throws(HTTPParseError) { return .success(try parser.parse(b)) } catch { return .failure(error) }
                }
                switch r {
                case .failure(let e):
                    send(status: e.status, type: "text/plain", body: Array("\(e.reason)\n".utf8), head: false, close: true)
                    return true
                case .success(let h): head = h
                }
                if head == nil { guard fill() else { return buf.isEmpty } }
            }
            parser.reset()
            let request = EchoRequest(head!, buf)
            buf.removeFirst(head!.headLength)
            if head!.upgrade, let key = request.header("sec-websocket-key") {
                return echoUpgraded(key: key)
            }
            if head!.expectContinue { guard write(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)) else { return false } }
            guard let body = readBody(head!.framing) else { return false }
            guard respond(request, body: body, keepAlive: head!.keepAlive) else { return false }
            if !head!.keepAlive { return true }
        }
    }

    /// `Upgrade: websocket`: answers 101 with the RFC 6455 accept key, then sends back every
    /// byte it receives (frames included, unparsed) until the client closes.
    private mutating func echoUpgraded(key: String) -> Bool {
        let accept = base64(sha1(Array((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8)))
        guard write(Array("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(accept)\r\n\r\n".utf8)) else { return false }
        while true {
            if !buf.isEmpty { guard write(buf) else { return false }; buf.removeAll() }
            guard fill() else { return true }
        }
    }

    /// Reads more bytes; false at the end of the stream or on an error.
    private mutating func fill() -> Bool {
        let n = scratch.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
        guard n > 0 else { return false }
        buf += scratch[0..<Int(n)]
        return true
    }

    /// The body's length and SHA-256, digested as it streams in.
    private mutating func readBody(_ framing: BodyFraming) -> (length: Int, sha256: String)? {
        let digest = SHA256Digest()
        var length = 0
        switch framing {
        case .none, .untilClose: break
        case .contentLength(var remaining):
            while remaining > 0 {
                if buf.isEmpty { guard fill() else { return nil } }
                let n = min(remaining, buf.count)
                buf.withUnsafeBytes { digest.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                buf.removeFirst(n)
                remaining -= n; length += n
            }
        case .chunked:
            var decoder = ChunkedDecoder()
            while true {
                var done = false, consumed = 0, failed = false
                buf.withUnsafeBytes { b in
                    do throws(HTTPParseError) {
                        (consumed, done) = try decoder.decode(b) { r in
                            digest.update(UnsafeRawBufferPointer(rebasing: b[r])); length += r.count
                        }
                    } catch { failed = true }
                }
                if failed { return nil }
                buf.removeFirst(consumed)
                if done { break }
                guard fill() else { return nil }
            }
        }
        return (length, digest.finish())
    }

    private mutating func respond(_ r: EchoRequest, body: (length: Int, sha256: String), keepAlive: Bool) -> Bool {
        let path = r.target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let parts = path.split(separator: "/")
        let number = parts.count == 2 ? Int(parts[1]) : nil
        switch (parts.first, number) {
        case ("healthz", nil) where parts.count == 1:
            return send(status: healthStatus, type: "text/plain", body: Array("health \(healthStatus)\n".utf8), head: r.isHEAD, close: !keepAlive)
        case ("ok", nil) where parts.count == 1:
            return send(status: 200, type: "text/plain", body: Array("ok\n".utf8), head: r.isHEAD, close: !keepAlive)
        case ("16k", nil) where parts.count == 1:
            return send(status: 200, type: "application/octet-stream", body: [UInt8](repeating: UInt8(ascii: "a"), count: 16384), head: r.isHEAD, close: !keepAlive)
        case ("bytes", let n?): return sendPattern(n, framing: .length, head: r.isHEAD, close: !keepAlive)
        case ("text", let n?): return sendPattern(n, framing: .length, head: r.isHEAD, close: !keepAlive, text: true)
        case ("chunked", let n?): return sendPattern(n, framing: .chunked, head: r.isHEAD, close: !keepAlive)
        case ("close", let n?): _ = sendPattern(n, framing: .close, head: r.isHEAD, close: true); return false
        case ("status", let n?) where (200...599).contains(n):
            let empty = n == 204 || n == 304
            return send(status: n, type: "text/plain", body: empty ? [] : Array("status \(n)\n".utf8), head: r.isHEAD, close: !keepAlive, noLength: empty)
        case ("delay", let ms?):
            usleep(UInt32(min(ms, 600_000)) * 1000)
            fallthrough
        default:
            return send(status: 200, type: "application/json", body: Array(r.json(server: name, body: body, ssl: ssl).utf8), head: r.isHEAD, close: !keepAlive)
        }
    }

    enum Framing { case length, chunked, close }

    /// N bytes where byte i is i % 251 (or, with `text`, repeated lines of text/plain), written in
    /// 64 KiB pieces (never built whole).
    private mutating func sendPattern(_ n: Int, framing: Framing, head: Bool, close: Bool, text: Bool = false) -> Bool {
        var h = "HTTP/1.1 200 OK\r\nServer: gateway-echo\r\nContent-Type: \(text ? "text/plain; charset=utf-8" : "application/octet-stream")\r\n"
        switch framing {
        case .length: h += "Content-Length: \(n)\r\n"
        case .chunked: h += "Transfer-Encoding: chunked\r\n"
        case .close: break
        }
        if close { h += "Connection: close\r\n" }
        guard write(Array((h + "\r\n").utf8)) else { return false }
        if head { return true }
        let line = Array("the quick brown fox jumps over the lazy dog 0123456789\n".utf8)
        // A whole number of periods, so every piece continues the pattern.
        let piece: [UInt8]
        if text { piece = (0..<(line.count * 1170)).map { (i: Int) -> UInt8 in line[i % line.count] } }
        else { piece = (0..<(251 * 256)).map { (i: Int) -> UInt8 in UInt8(i % 251) } }
        var left = n
        while left > 0 {
            let k = min(left, piece.count)
            switch framing {
            case .chunked:
                guard write(Array((String(k, radix: 16) + "\r\n").utf8) + piece[0..<k] + Array("\r\n".utf8)) else { return false }
            default:
                guard write(Array(piece[0..<k])) else { return false }
            }
            left -= k
        }
        if framing == .chunked { return write(Array("0\r\n\r\n".utf8)) }
        return true
    }

    @discardableResult
    private func send(status: Int, type: String, body: [UInt8], head: Bool, close: Bool, noLength: Bool = false) -> Bool {
        var h = "HTTP/1.1 \(status) \(status < 300 ? "OK" : "Status")\r\nServer: gateway-echo\r\nContent-Type: \(type)\r\n"
        if !noLength { h += "Content-Length: \(body.count)\r\n" }
        if close { h += "Connection: close\r\n" }
        return write(Array((h + "\r\n").utf8) + (head ? [] : body))
    }

    private func write(_ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { SSL_write(ssl, $0.baseAddress! + off, Int32(bytes.count - off)) }
            guard n > 0 else { return false }
            off += Int(n)
        }
        return true
    }
}

/// What the JSON echo reports about a request.
struct EchoRequest {
    let method: String
    let target: String
    let headers: [(String, String)]
    let isHEAD: Bool

    init(_ h: HTTPRequestHead, _ buf: [UInt8]) {
        func s(_ r: Range<Int>) -> String { String(decoding: buf[r], as: UTF8.self) }
        method = s(h.method); target = s(h.target); isHEAD = h.isHEAD
        var merged: [(String, String)] = []
        for f in h.headers {
            let name = s(f.name).lowercased(), value = s(f.value)
            if let i = merged.firstIndex(where: { $0.0 == name }) { merged[i].1 += ", " + value } else { merged.append((name, value)) }
        }
        headers = merged
    }

    func header(_ name: String) -> String? { headers.first { $0.0 == name }?.1 }

    func json(server: String, body: (length: Int, sha256: String), ssl: OpaquePointer) -> String {
        let headerFields = headers.map { "\(quote($0.0)): \(quote($0.1))" }.joined(separator: ", ")
        let version = String(cString: SSL_get_version(ssl))
        let cipher = SSL_get_current_cipher(ssl).flatMap { SSL_CIPHER_get_name($0) }.map { String(cString: $0) } ?? ""
        let subject = EchoTLS.peerSubject(ssl).map(quote) ?? "null"
        let sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name).map { quote(String(cString: $0)) } ?? "null"
        let resumed = SSL_session_reused(ssl) == 1
        return """
        {"server": \(quote(server)), "method": \(quote(method)), "path": \(quote(target)), "headers": {\(headerFields)}, \
        "body_length": \(body.length), "body_sha256": "\(body.sha256)", \
        "tls": {"version": \(quote(version)), "cipher": \(quote(cipher)), "client_cert_subject": \(subject), \
        "sni": \(sni), "resumed": \(resumed)}}

        """
    }
}

func quote(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 { out += "\\u" + String(repeating: "0", count: 4 - String(u.value, radix: 16).count) + String(u.value, radix: 16) }
            else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}

/// Incremental SHA-256 through OpenSSL's EVP interface.
struct SHA256Digest: ~Copyable {
    private let ctx = EVP_MD_CTX_new()
    init() { EVP_DigestInit_ex(ctx, EVP_sha256(), nil) }
    deinit { EVP_MD_CTX_free(ctx) }
    func update(_ b: UnsafeRawBufferPointer) { if b.count > 0 { EVP_DigestUpdate(ctx, b.baseAddress, b.count) } }
    consuming func finish() -> String {
        var md = [UInt8](repeating: 0, count: 32)
        var n: UInt32 = 0
        EVP_DigestFinal_ex(ctx, &md, &n)
        return md.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}

func sha1(_ bytes: [UInt8]) -> [UInt8] {
    var md = [UInt8](repeating: 0, count: 20)
    var n: UInt32 = 0
    _ = EVP_Digest(bytes, bytes.count, &md, &n, EVP_sha1(), nil)
    return md
}

func base64(_ bytes: [UInt8]) -> String {
    var out = [UInt8](repeating: 0, count: (bytes.count + 2) / 3 * 4 + 1)
    let n = EVP_EncodeBlock(&out, bytes, Int32(bytes.count))
    return String(decoding: out[0..<Int(n)], as: UTF8.self)
}
