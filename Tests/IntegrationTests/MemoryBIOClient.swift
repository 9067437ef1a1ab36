import COpenSSL
import CGatewayShims
import Foundation

/// A TLS client whose records the test carries itself: OpenSSL on memory BIOs, a blocking
/// socket the test writes and reads. So a test decides what goes out in one write (a whole
/// flight plus more), can change a record before it is sent, and sees a reset as a reset.
/// The server's certificate is not verified: these tests are about what happens on the wire.
final class MemoryBIOClient {
    let fd: Int32
    let ctx: OpaquePointer
    let ssl: OpaquePointer
    /// Bytes from the server for OpenSSL, and OpenSSL's bytes for the server.
    let fromServer: OpaquePointer, toServer: OpaquePointer

    struct Failure: Error, CustomStringConvertible { let description: String }

    init(port: UInt16, serverName: String, maxVersion: Int32 = TLS1_3_VERSION,
         certificate: (String, String)? = nil, timeoutSeconds: Int = 10) throws {
        guard let fd = connectLoopback(port) else { throw Failure(description: "connect to \(port) failed") }
        self.fd = fd
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        ctx = SSL_CTX_new(TLS_client_method())!
        _ = gw_ssl_ctx_set_max_proto_version(ctx, maxVersion)
        if let (c, k) = certificate {
            SSL_CTX_use_certificate_chain_file(ctx, c)
            SSL_CTX_use_PrivateKey_file(ctx, k, SSL_FILETYPE_PEM)
        }
        ssl = SSL_new(ctx)!
        fromServer = BIO_new(BIO_s_mem())!
        toServer = BIO_new(BIO_s_mem())!
        SSL_set_bio(ssl, fromServer, toServer)   // the SSL owns both
        SSL_set_connect_state(ssl)
        _ = gw_ssl_set_tlsext_host_name(ssl, serverName)
    }

    deinit { SSL_free(ssl); SSL_CTX_free(ctx); close(fd) }

    /// What OpenSSL has written and not yet sent.
    func pendingOutput() -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        while case let n = buf.withUnsafeMutableBytes({ BIO_read(toServer, $0.baseAddress, Int32($0.count)) }), n > 0 { out += buf[0..<Int(n)] }
        return out
    }

    /// Everything in one send(2) call (and its continuations if the kernel takes part of it).
    func send(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, $0.count - off, 0) }
            if n <= 0 { throw Failure(description: "send: \(String(cString: strerror(errno)))") }
            off += n
        }
    }

    /// One recv(2): the bytes, or nil at EOF; a reset or a timeout throws.
    func receive() throws -> [UInt8]? {
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 { throw Failure(description: "recv: \(String(cString: strerror(errno)))") }
        return n == 0 ? nil : Array(buf[0..<n])
    }

    /// Reads until the server's EOF; a reset throws (with what had arrived).
    func receiveUntilEOF() throws -> [UInt8] {
        var all: [UInt8] = []
        do { while let b = try receive() { all += b } } catch {
            throw Failure(description: "\(error) after \(all.count) bytes")
        }
        return all
    }

    func feed(_ bytes: [UInt8]) { _ = bytes.withUnsafeBytes { BIO_write(fromServer, $0.baseAddress, Int32($0.count)) } }

    /// Sends the ClientHello, then reads the server's flight until OpenSSL has its own second
    /// flight ready, and returns it unsent (TLS 1.3: Certificate, Finished; TLS 1.2: Certificate,
    /// ClientKeyExchange, ChangeCipherSpec, Finished). Empty when the handshake ended without one.
    func secondFlight() throws -> [UInt8] {
        _ = SSL_do_handshake(ssl)
        try send(pendingOutput())
        while true {
            guard let bytes = try receive() else { throw Failure(description: "server closed during the handshake") }
            feed(bytes)
            let r = SSL_do_handshake(ssl)
            let out = pendingOutput()
            if !out.isEmpty || r == 1 { return out }
            guard SSL_get_error(ssl, r) == SSL_ERROR_WANT_READ else { throw Failure(description: "handshake failed: \(Self.reasons())") }
        }
    }

    /// Completes a handshake (sending every flight as OpenSSL makes it).
    func handshake() throws {
        var flight = try secondFlight()
        while SSL_is_init_finished(ssl) != 1 {
            try send(flight)
            guard let bytes = try receive() else { throw Failure(description: "server closed during the handshake") }
            feed(bytes)
            let r = SSL_do_handshake(ssl)
            flight = pendingOutput()
            guard r == 1 || SSL_get_error(ssl, r) == SSL_ERROR_WANT_READ else { throw Failure(description: "handshake failed: \(Self.reasons())") }
        }
        try send(flight)
    }

    /// Application data as OpenSSL protects it, unsent: one record for a short message.
    func protect(_ text: String) -> [UInt8] {
        _ = Array(text.utf8).withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
        return pendingOutput()
    }

    /// OpenSSL's reason codes (ERR_GET_REASON) for what `bytes` from the server hold, read as
    /// the rest of the handshake or as application data: an alert the server sent shows up as
    /// SSL_R_SSLV3_ALERT_* / SSL_R_TLSV13_ALERT_*.
    func reasons(reading bytes: [UInt8]) -> [Int32] {
        feed(bytes)
        ERR_clear_error()
        var buf = [UInt8](repeating: 0, count: 16384)
        if SSL_is_init_finished(ssl) != 1 { _ = SSL_do_handshake(ssl) }
        if SSL_is_init_finished(ssl) == 1 { while buf.withUnsafeMutableBytes({ SSL_read(ssl, $0.baseAddress, Int32($0.count)) }) > 0 {} }
        var codes: [Int32] = []
        while case let e = ERR_get_error(), e != 0 { codes.append(ERR_GET_REASON(e)) }
        return codes
    }

    static func reasons() -> String {
        var out: [String] = []
        while case let e = ERR_get_error(), e != 0 { out.append(ERR_reason_error_string(e).map { String(cString: $0) } ?? "?") }
        return out.joined(separator: "; ")
    }
}
