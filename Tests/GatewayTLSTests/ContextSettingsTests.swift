import COpenSSL
import CGatewayShims
import Testing
@testable import GatewayTLS

/// Settings of the server contexts that save work per handshake: renegotiation refused, no
/// server-side session cache while tickets carry resumption (which must still resume).
@Suite struct ContextSettingsTests {
    let f: HandshakeFixture
    init() throws { f = try HandshakeFixture() }

    @Test func everyServerContextRefusesRenegotiation() throws {
        let (contexts, _) = try f.contexts()
        #expect(contexts.listeners[0].options & gw_ssl_op_no_renegotiation() != 0)
        #expect(SSL_CTX_get_options(contexts.hosts[0].ctx) & gw_ssl_op_no_renegotiation() != 0)
    }

    /// A TLS 1.2 client that asks to renegotiate gets a no_renegotiation alert; its handshake
    /// fails, the server's session goes on waiting for records.
    @Test func aTLS12RenegotiationIsRefused() throws {
        let o = try f.handshake(backend: "max_version TLSv1.2;")
        let (client, server) = o.sessions
        #expect(o.client == .done(0) && o.server == .done(0))
        _ = SSL_clear_options(client.ssl, gw_ssl_op_no_renegotiation())   // the gateway's client side refuses it too
        #expect(SSL_renegotiate(client.ssl) == 1)
        #expect(client.handshake() == .wantRead)   // its ClientHello is on the wire
        var buf = [UInt8](repeating: 0, count: 1024)
        #expect(buf.withUnsafeMutableBytes { server.read(into: $0) } == .wantRead)
        let answer = client.handshake()
        guard case .failed(let failure) = answer else { Issue.record("renegotiation went on: \(answer)"); return }
        #expect(failure.description.contains("no renegotiation"), "\(failure)")
        #expect(server.failureAfterHandshake == nil)
    }

    @Test func noSessionCacheWhileEveryHostIssuesTickets() throws {
        let (on, _) = try f.contexts()
        #expect(on.listeners[0].sessionCacheMode == gw_ssl_sess_cache_off())
        let (off, _) = try f.contexts(host: "session_tickets off;")
        #expect(off.listeners[0].sessionCacheMode == gw_ssl_sess_cache_server())
    }

    /// Without the cache a ticket still resumes, in TLS 1.3 and 1.2; a ticket names its policy's
    /// session id context, so it does not resume under another policy.
    @Test(arguments: ["", "max_version TLSv1.2;"])
    func aTicketResumesWithoutTheCache(_ backend: String) throws {
        let first = try f.handshake(backend: backend)
        #expect(first.client == .done(0) && first.server == .done(0))
        var buf = [UInt8](repeating: 0, count: 64)
        _ = buf.withUnsafeMutableBytes { first.sessions.client.read(into: $0) }   // the TLS 1.3 ticket
        let ticket = try #require(first.sessions.client.resumption())
        let again = try f.handshake(backend: backend) { _ = SSL_set_session($0, ticket.session) }
        #expect(again.client == .done(0) && again.server == .done(0))
        #expect(again.sessions.server.sessionReused)
        let otherPolicy = try f.handshake(host: #"ciphersuites "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256";"#, backend: backend) { _ = SSL_set_session($0, ticket.session) }
        #expect(otherPolicy.server == .done(0))
        #expect(!otherPolicy.sessions.server.sessionReused)
    }
}
