import COpenSSL
import Testing
import GatewayConfig
@testable import GatewayTLS

/// SPEC §12: a `protocol h2` backend's connections offer only `h2` by ALPN, and a server that
/// does not select it is named (`backend did not negotiate h2`) instead of spoken HTTP/1.1 to.
/// The server side is the gateway's own listener (ALPN follows its host's `http2`).
@Suite struct BackendALPNTests {
    let fixture: HandshakeFixture
    init() throws { fixture = try HandshakeFixture() }

    @Test func h2BackendNegotiatesH2() throws {
        let o = try fixture.handshake(backendBlock: "protocol h2;")
        #expect(o.client == .done(0) && o.server == .done(0), "\(o.client) / \(o.server)")
        #expect(o.backend.protocol == .h2)
        #expect(o.sessions.client.negotiatedHTTP2 && o.sessions.server.negotiatedHTTP2)
        #expect(o.backend.protocolMismatch(o.sessions.client) == nil)
    }

    @Test func h2BackendOffersOnlyH2() throws {
        // The server speaks only HTTP/1.1 for this host: had the client offered http/1.1 too,
        // the server would have selected it; with only h2 offered nothing is selected.
        let o = try fixture.handshake(host: "http2 off;", backendBlock: "protocol h2;")
        #expect(o.client == .done(0) && o.server == .done(0), "\(o.client) / \(o.server)")
        #expect(!o.sessions.client.negotiatedHTTP2 && o.sessions.client.alpnSelected.isEmpty)
        #expect(o.backend.protocolMismatch(o.sessions.client) == "backend did not negotiate h2")
    }

    @Test func http11BackendOffersOnlyHTTP11() throws {
        let o = try fixture.handshake()
        #expect(o.client == .done(0) && o.backend.protocol == .http11)
        #expect(o.sessions.client.alpnSelected == "http/1.1", "h2 is not offered even to a host that allows it")
        #expect(o.backend.protocolMismatch(o.sessions.client) == nil)
    }
}

extension TLSSession {
    /// The protocol ALPN selected ("" for none).
    var alpnSelected: String {
        var p: UnsafePointer<UInt8>?
        var n: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &p, &n)
        return p.map { String(decoding: UnsafeBufferPointer(start: $0, count: Int(n)), as: UTF8.self) } ?? ""
    }
}
