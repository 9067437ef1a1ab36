import COpenSSL
import CGatewayShims
import Testing
@testable import GatewayTLS

/// A session that a TLS error ends after its handshake completed: the failure is kept as
/// `failureAfterHandshake` (what the gateway logs as tls_connection_failed); a clean close or an
/// EOF is not one, nor is a failed handshake (that has its own line).
@Suite struct ConnectionFailureTests {
    let f: HandshakeFixture
    init() throws { f = try HandshakeFixture() }

    /// One application-data record the client wrote, taken off the wire, changed, and put back
    /// for the server to read; the server's status for it.
    func serverReads(_ o: HandshakeOutcome, _ change: (inout [UInt8]) -> Void) -> TLSSession.Status {
        let (client, server) = o.sessions
        _ = Array("GET / HTTP/1.1\r\n\r\n".utf8).withUnsafeBytes { client.write($0) }
        var record = HandshakeFixture.readAll(SSL_get_rbio(server.ssl))
        #expect(record.count > 5 && record[0] == 23, "one application-data record: \(record.prefix(8))")
        change(&record)
        _ = record.withUnsafeBytes { BIO_write(SSL_get_wbio(client.ssl), $0.baseAddress, Int32($0.count)) }
        var buf = [UInt8](repeating: 0, count: 1024)
        return buf.withUnsafeMutableBytes { server.read(into: $0) }
    }

    @Test(arguments: ["", "max_version TLSv1.2;"])
    func aFlippedCiphertextByteIsABadRecordMAC(_ backend: String) throws {
        let o = try f.handshake(backend: backend)
        #expect(o.server == .done(0) && o.client == .done(0))
        let status = serverReads(o) { $0[$0.count - 1] ^= 0x01 }
        // TLS 1.2's AES-GCM queues the provider's "cipher operation failed" first: the queue is
        // named as OpenSSL filled it (TLSFailure.other), as for a failed handshake.
        guard case .failed(let failure) = status else { Issue.record("\(status)"); return }
        #expect(failure.description.hasSuffix("decryption failed or bad record mac"), "\(failure)")
        if backend.isEmpty {
            #expect(failure == .other(library: ERR_LIB_SSL, reason: SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC, text: "decryption failed or bad record mac"))
        }
        #expect(o.sessions.server.failureAfterHandshake == failure)
    }

    /// TLS 1.3 wants 0x0303 on every protected record, TLS 1.2 the negotiated version: 0x0301 is
    /// neither, and the reason says so (not "protocol version": no version was being negotiated).
    @Test(arguments: ["", "max_version TLSv1.2;"])
    func aWrongRecordVersionIsBadRecordVersion(_ backend: String) throws {
        let o = try f.handshake(backend: backend)
        let status = serverReads(o) { $0[2] = 0x01 }
        #expect(status == .failed(.badRecordVersion), "\(status)")
        #expect(o.sessions.server.failureAfterHandshake == .badRecordVersion)
        #expect(TLSFailure.badRecordVersion.description == "bad record version")
    }

    @Test func aCleanCloseIsNoFailure() throws {
        let o = try f.handshake()
        _ = SSL_shutdown(o.sessions.client.ssl)
        var buf = [UInt8](repeating: 0, count: 1024)
        #expect(buf.withUnsafeMutableBytes { o.sessions.server.read(into: $0) } == .closed)
        #expect(o.sessions.server.failureAfterHandshake == nil)
    }

    /// The peer's write side ends without close_notify (a TCP FIN): a close, not a TLS failure.
    @Test func anEOFIsNoFailure() throws {
        let o = try f.handshake()
        _ = BIO_ctrl(SSL_get_wbio(o.sessions.client.ssl), BIO_C_SHUTDOWN_WR, 0, nil)
        var buf = [UInt8](repeating: 0, count: 1024)
        #expect(buf.withUnsafeMutableBytes { o.sessions.server.read(into: $0) } == .closed)
        #expect(o.sessions.server.failureAfterHandshake == nil)
    }

    /// `read` and `write` do not empty the thread's error queue before they run: an error another
    /// call left there (here a cipher list OpenSSL refused) turns neither a wait, nor data, nor a
    /// clean close into a failure.
    @Test(arguments: ["", "max_version TLSv1.2;"])
    func anErrorLeftInTheQueueIsNoFailure(_ backend: String) throws {
        let o = try f.handshake(backend: backend)
        let (client, server) = o.sessions
        func leaveAnError() throws {
            let ctx = try #require(SSL_CTX_new(TLS_method()))
            defer { SSL_CTX_free(ctx) }
            #expect(SSL_CTX_set_cipher_list(ctx, "NO-SUCH-CIPHER") == 0)
            #expect(ERR_peek_error() != 0)
        }
        defer { ERR_clear_error() }
        var buf = [UInt8](repeating: 0, count: 1024)
        try leaveAnError()
        #expect(buf.withUnsafeMutableBytes { server.read(into: $0) } == .wantRead, "nothing sent yet")
        try leaveAnError()
        #expect(Array("ping".utf8).withUnsafeBytes { client.write($0) } == .done(4))
        server.noteReadable()
        try leaveAnError()
        #expect(buf.withUnsafeMutableBytes { server.read(into: $0) } == .done(4))
        _ = SSL_shutdown(client.ssl)
        server.noteReadable()
        try leaveAnError()
        #expect(buf.withUnsafeMutableBytes { server.read(into: $0) } == .closed)
        #expect(server.failureAfterHandshake == nil)
    }

    @Test func aFailedHandshakeIsNotAConnectionFailure() throws {
        let o = try f.handshake(host: "client_auth required; client_ca \(f.pki.path("ca.pem"));")
        #expect(o.serverFailure == .certificateRequired)
        #expect(o.sessions.server.failureAfterHandshake == nil)
    }
}
