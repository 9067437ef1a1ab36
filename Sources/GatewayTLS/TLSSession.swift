import COpenSSL
import GatewaySystem
import CGatewayShims

/// One TLS connection over a non-blocking socket that OpenSSL reads and writes itself
/// (a socket BIO: no copy through memory BIOs; a BIO pair only in the unit tests). Server or
/// client side; a failure says why as a TLSFailure.
public final class TLSSession {
    /// Internal: callers see the session, never the SSL (the callbacks and tests reach it in-module).
    let ssl: OpaquePointer
    /// Server side: the host chosen by the ClientHello callback, and the SNI the client sent.
    public internal(set) var host: TLSHost?
    public internal(set) var serverName: String?
    /// Set by a callback that refused the handshake (ClientHello, client_allow): the failure the
    /// handshake reports, whatever OpenSSL queued after the callback said no.
    public internal(set) var failureReason: TLSFailure?
    /// The TLS-level error (a fatal alert sent or received: a bad record MAC, a malformed
    /// KeyUpdate, a bad record version) that ended the session after a completed handshake.
    /// nil after a clean close, and after a reset or an EOF: those are the socket's, not TLS's.
    public private(set) var failureAfterHandshake: TLSFailure?
    private var handshakeDone = false
    private var broken = false
    /// The last read would have blocked and no readable event came since: reading again now
    /// would only cost a syscall (edge-triggered loop: the event loop calls `noteReadable`).
    public private(set) var readBlocked = false
    /// The socket BIO (the gateway's own, socket_bio.c): it tells when a read drained the socket.
    /// nil over a memory BIO (unit tests).
    private var socketBIO: OpaquePointer?

    public enum Status: Equatable {
        case done(Int)          // bytes read or written, or 0 for a finished handshake
        case wantRead, wantWrite
        case closed             // orderly close_notify or EOF
        case failed(TLSFailure)
    }

    private static let exIndex: Int32 = gw_ssl_get_ex_new_index()

    static func from(_ ssl: OpaquePointer) -> TLSSession? {
        guard let p = SSL_get_ex_data(ssl, exIndex) else { return nil }
        return Unmanaged<TLSSession>.fromOpaque(p).takeUnretainedValue()
    }

    /// Where the records go: a socket OpenSSL reads and writes itself, or one end of a BIO pair
    /// (the unit tests: a real handshake between two sessions in one thread, without a socket).
    enum Wire {
        case socket(Int32)
        case memory(OpaquePointer)   // a BIO; the session owns it from then on
    }

    /// Server side, starting from a listener's context.
    /// `tickets`: the keys this connection's tickets are sealed and opened with (the caller keeps it alive).
    public convenience init(accepting fd: Int32, listener: TLSListener, tickets: TicketKeyRing) throws(TLSError) {
        try self.init(accepting: .socket(fd), listener: listener, tickets: tickets)
    }

    /// Client side toward a backend server.
    public convenience init(connecting fd: Int32, backend: TLSBackendContext, urlHost: String, session: TLSResumption?) throws(TLSError) {
        try self.init(connecting: .socket(fd), backend: backend, urlHost: urlHost, session: session)
    }

    init(accepting wire: Wire, listener: TLSListener, tickets: TicketKeyRing) throws(TLSError) {
        guard let s = SSL_new(listener.ctx) else { throw TLSError("SSL_new") }
        ssl = s
        SSL_set_accept_state(s)
        tickets.attach(to: s)
        try attach(wire)
    }

    init(connecting wire: Wire, backend: TLSBackendContext, urlHost: String, session: TLSResumption?) throws(TLSError) {
        guard let s = SSL_new(backend.ctx) else { throw TLSError("SSL_new") }
        ssl = s
        SSL_set_connect_state(s)
        try attach(wire)
        backend.prepare(s, urlHost: urlHost)
        if let session { _ = SSL_set_session(s, session.session) }
    }

    /// No SSL_free on failure: `ssl` is set, so the deinit of the half-made session frees it.
    private func attach(_ wire: Wire) throws(TLSError) {
        switch wire {
        case .socket(let fd):
            guard let b = gw_socket_bio_new(fd) else { throw TLSError("BIO_new") }
            socketBIO = b
            SSL_set_bio(ssl, b, b)   // one BIO for both directions: one reference, owned by the SSL
        case .memory(let bio):
            SSL_set_bio(ssl, bio, bio)
        }
        _ = SSL_set_ex_data(ssl, Self.exIndex, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit { SSL_free(ssl) }

    public func handshake() -> Status {
        OpenSSLErrors.clear()
        let r = SSL_do_handshake(ssl)
        if r == 1 { handshakeDone = true; return .done(0) }
        return status(r)
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) -> Status {
        if readBlocked { return .wantRead }
        if let socketBIO { gw_socket_bio_clear_drained(socketBIO) }
        let r = SSL_read(ssl, buffer.baseAddress, Int32(min(buffer.count, Int(Int32.max))))
        if r > 0 {
            // This call's socket read came back short and OpenSSL holds nothing more: the next
            // read would find EAGAIN, so it waits for the next edge instead (one syscall less).
            if let socketBIO, gw_socket_bio_drained(socketBIO) == 1, SSL_has_pending(ssl) == 0 { readBlocked = true }
            return .done(Int(r))
        }
        let s = status(r)
        if s == .wantRead { readBlocked = true }
        return s
    }

    /// The socket became readable: the next `read` tries again.
    public func noteReadable() { readBlocked = false }

    public func write(_ bytes: UnsafeRawBufferPointer) -> Status {
        guard bytes.count > 0 else { return .done(0) }
        // Partial-write mode: one record per SSL_write. When more records follow at once (the
        // caller's loop, Transport.write), MSG_MORE lets the kernel send them as one: fewer
        // segments through TCP and loopback, fewer wake-ups of the peer.
        if let socketBIO { gw_socket_bio_set_more(socketBIO, bytes.count > Self.maxRecord ? 1 : 0) }
        let r = SSL_write(ssl, bytes.baseAddress, Int32(min(bytes.count, Int(Int32.max))))
        let s: Status = r > 0 ? .done(Int(r)) : status(r)
        if let socketBIO {
            gw_socket_bio_set_more(socketBIO, 0)
            // Unless the caller writes the rest right away, what MSG_MORE held goes out now.
            if r <= 0 || Int(r) == bytes.count { gw_socket_bio_push(socketBIO) }
        }
        return s
    }

    /// No handshake message arrived yet (a TCP-level probe that connected and left).
    public var nothingReceived: Bool { SSL_get_state(ssl) == TLS_ST_BEFORE && serverName == nil && failureReason == nil }

    /// Bytes OpenSSL already decrypted or holds: epoll will not report them.
    public var hasPending: Bool { SSL_has_pending(ssl) == 1 }

    /// OpenSSL's largest record (plaintext bytes): what one SSL_write sends at most.
    static let maxRecord = 16_384

    /// Sends close_notify once, only after a completed handshake that never failed; does not wait for the peer's.
    public func shutdown() {
        guard handshakeDone, !broken else { return }
        broken = true
        OpenSSLErrors.clear()
        _ = SSL_shutdown(ssl)
        OpenSSLErrors.clear()
    }

    /// `read` and `write` do not empty the thread's error queue first (`handshake` does, once):
    /// a wait and a close are told without it, so an error some other call left there cannot make
    /// either a failure. Every failure empties the queue.
    private func status(_ r: Int32) -> Status {
        switch gw_ssl_retry(ssl) {
        case 1: return .wantRead
        case 2: return .wantWrite
        default: break
        }
        if r == 0 && gw_ssl_received_shutdown(ssl) == 1 { OpenSSLErrors.clear(); return .closed }
        let e = SSL_get_error(ssl, r)
        switch e {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        case SSL_ERROR_ZERO_RETURN: OpenSSLErrors.clear(); return .closed
        case SSL_ERROR_SYSCALL:
            broken = true
            let err = errno   // before anything else can overwrite it
            return TLSFailure.syscall(codes: OpenSSLErrors.drainCodes(), errno: err).map { .failed($0) } ?? .closed
        default:
            broken = true
            let failure = sslFailure(e)
            if handshakeDone && failureAfterHandshake == nil { failureAfterHandshake = failure }
            return .failed(failure)
        }
    }

    /// SSL_ERROR_SSL (or another code that is not the socket's): why, from the queue.
    private func sslFailure(_ e: Int32) -> TLSFailure {
        if let f = failureReason { OpenSSLErrors.clear(); return f }
        let verify = SSL_get_verify_result(ssl)
        let codes = OpenSSLErrors.drainCodes()
        if SSL_is_server(ssl) == 1 { return TLSFailure.refusedClient(codes: codes, verify: verify) }
        return TLSFailure.backend(codes: codes, verify: verify, sslError: e)
    }

    // MARK: - What the handshake negotiated (for logs and headers)

    public var protocolVersion: String { String(cString: SSL_get_version(ssl)) }
    public var cipherName: String { SSL_get_current_cipher(ssl).map { String(cString: SSL_CIPHER_get_name($0)) } ?? "" }
    public var sessionReused: Bool { SSL_session_reused(ssl) == 1 }
    /// ALPN selected `h2`: the connection speaks HTTP/2 (anything else, or nothing, is HTTP/1.1).
    public var negotiatedHTTP2: Bool {
        var p: UnsafePointer<UInt8>?
        var n: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &p, &n)
        return n == 2 && p?[0] == UInt8(ascii: "h") && p?[1] == UInt8(ascii: "2")
    }
    /// The negotiated version as its wire number (0x0304 for TLS 1.3) and the cipher's IANA
    /// number: metric keys that need no string.
    public var versionCode: Int32 { SSL_version(ssl) }
    public var cipherID: UInt16 { SSL_get_current_cipher(ssl).map { SSL_CIPHER_get_protocol_id($0) } ?? 0 }

    /// A client session worth keeping for the next connection to the same backend server.
    public func resumption() -> TLSResumption? { SSL_get1_session(ssl).map(TLSResumption.init) }

    /// The verified client certificate, if the client sent one.
    public func peerCertificate() -> PeerCertificate? {
        guard let x = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(x) }
        return PeerCertificate(x509: x)
    }
}

import Glibc

/// A TLS client session kept to resume the next connection to the same backend server: the
/// `SSL_SESSION` stays inside GatewayTLS, owned here (one reference, released with this object).
public final class TLSResumption {
    let session: OpaquePointer
    init(_ session: OpaquePointer) { self.session = session }
    deinit { SSL_SESSION_free(session) }
}
