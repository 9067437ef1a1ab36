import COpenSSL
import CGatewayShims
import Foundation

/// The project's own blocking TLS test client on OpenSSL: sends exact bytes (for smuggling
/// and framing tests) and reads what comes back until the server closes or a timeout.
final class TLSTestClient {
    let fd: Int32
    let ctx: OpaquePointer
    let ssl: OpaquePointer

    struct Failure: Error, CustomStringConvertible { let description: String }

    init(port: UInt16, serverName: String?, caFile: String = Repo.cert("ca.pem"),
         certificate: (String, String)? = nil, timeoutSeconds: Int = 10, groups: String? = nil,
         preamble: ((Int32) throws -> Void)? = nil) throws {
        guard let fd = connectLoopback(port) else { throw Failure(description: "connect to \(port) failed") }
        self.fd = fd
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let ctx = SSL_CTX_new(TLS_client_method())!
        self.ctx = ctx
        SSL_CTX_load_verify_locations(ctx, caFile, nil)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        if let (c, k) = certificate {
            SSL_CTX_use_certificate_chain_file(ctx, c)
            SSL_CTX_use_PrivateKey_file(ctx, k, SSL_FILETYPE_PEM)
        }
        let ssl = SSL_new(ctx)!
        self.ssl = ssl
        SSL_set_fd(ssl, fd)
        if let serverName { _ = gw_ssl_set_tlsext_host_name(ssl, serverName) }
        if let groups { _ = gw_ssl_set1_groups_list(ssl, groups) }
        // Bytes the test writes on the raw socket before the ClientHello (a PROXY protocol header).
        try preamble?(fd)
        if SSL_connect(ssl) != 1 {
            var reasons: [String] = []
            while case let e = ERR_get_error(), e != 0 { reasons.append(ERR_reason_error_string(e).map { String(cString: $0) } ?? "?") }
            // Everything is initialised here, so deinit frees ssl, ctx and fd.
            throw Failure(description: "handshake failed: \(reasons.joined(separator: "; "))")
        }
    }

    deinit { SSL_free(ssl); SSL_CTX_free(ctx); close(fd) }

    func send(_ s: String) throws { try send(Data(s.utf8)) }

    func send(_ d: Data) throws {
        try d.withUnsafeBytes { b in
            var off = 0
            while off < b.count {
                let n = SSL_write(ssl, b.baseAddress! + off, Int32(b.count - off))
                if n <= 0 { throw Failure(description: "write failed") }
                off += Int(n)
            }
        }
    }

    /// Reads until the server closes (or the timeout), returning everything received.
    func readAll() -> String {
        var out = Data()
        var buf = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = SSL_read(ssl, &buf, Int32(buf.count))
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<Int(n)])
        }
        ERR_clear_error()
        return String(decoding: out, as: UTF8.self)
    }

    /// Waits up to `seconds` for the server to end the connection (close_notify or EOF), reading
    /// and dropping anything else: true when it ended, false when it was still open at the timeout.
    func closedWithin(_ seconds: Int) -> Bool {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = SSL_read(ssl, &buf, Int32(buf.count))
            if n > 0 { continue }
            let e = SSL_get_error(ssl, n), err = errno
            ERR_clear_error()
            // A receive timeout on a blocking socket comes back as "want read" (or EAGAIN).
            let timedOut = e == SSL_ERROR_WANT_READ || (e == SSL_ERROR_SYSCALL && (err == EAGAIN || err == EWOULDBLOCK))
            return !timedOut
        }
    }

    /// Reads exactly `count` bytes (or throws when the connection ends first).
    func read(count: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        while out.count < count {
            let n = SSL_read(ssl, &buf, Int32(min(buf.count, count - out.count)))
            if n <= 0 { throw Failure(description: "connection ended after \(out.count) of \(count) bytes") }
            out += buf[0..<Int(n)]
        }
        return out
    }

    /// Reads one response whose body is framed by Content-Length (enough for the gateway's own replies and echo JSON).
    func readResponse() throws -> (status: Int, head: String, body: String) {
        var data = Data()
        var buf = [UInt8](repeating: 0, count: 16384)
        while true {
            if let r = data.range(of: Data("\r\n\r\n".utf8)) {
                let head = String(decoding: data[..<r.lowerBound], as: UTF8.self)
                let lengthLine = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                let length = lengthLine.flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                if data.count - r.upperBound >= length {
                    let body = String(decoding: data[r.upperBound..<r.upperBound + length], as: UTF8.self)
                    let status = Int(head.split(separator: " ")[1]) ?? 0
                    return (status, head, body)
                }
            }
            let n = SSL_read(ssl, &buf, Int32(buf.count))
            if n <= 0 { throw Failure(description: "connection ended before a full response; got: \(String(decoding: data, as: UTF8.self))") }
            data.append(contentsOf: buf[0..<Int(n)])
        }
    }
}
