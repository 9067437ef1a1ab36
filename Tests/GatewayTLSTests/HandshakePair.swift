import COpenSSL
import Foundation
import GatewayConfig
@testable import GatewayTLS
import TestSupport

/// Two PKIs and a gateway configuration, loaded as `gateway run` loads it: the server side of a
/// handshake is a session of the listener (the real ClientHello callback and host policies), the
/// client side a session of the backend's context (the gateway as a client). No socket: the two
/// sessions talk through a BIO pair, in one thread, so a handshake is a few calls in a loop.
final class HandshakeFixture: Sendable {
    /// The CA of the host and of the clients the hosts trust.
    let pki: TestPKI
    /// A CA no one in the configuration trusts, with certificates of the same names.
    let rogue: TestPKI

    init() throws {
        pki = try TestPKI()
        rogue = try TestPKI()
        for p in [pki, rogue] {
            try p.leaf("a.test", sans: "DNS:a.test")
            try p.leaf("client", sans: "DNS:client.test")
        }
    }

    deinit { pki.remove(); rogue.remove() }

    /// The contexts of a configuration with one listener, the host `a.test` (its certificate from
    /// `pki`, plus `host` directives) and a backend whose `tls` block (trusting `pki`, plus
    /// `backend` directives; `backendCA` for another trust) is the handshake's client.
    /// `backendBlock`: directives of the backend block itself (`protocol h2`).
    func contexts(host: String = "", listen: String = "", backend: String = "", backendCA: String? = nil,
                  backendBlock: String = "") throws -> (TLSServerContexts, TLSBackendContext) {
        let leaf = try pki.leaf("a.test", sans: "DNS:a.test")
        let path = try pki.write("""
            access_log off;
            listen 127.0.0.1:8443 { \(listen) }
            host a.test {
                certificate \(leaf.cert) \(leaf.key);
                route / backend b;
                \(host)
            }
            backend b {
                server https://127.0.0.1:9443;
                \(backendBlock)
                tls { ca \(backendCA ?? pki.path("ca.pem")); \(backend) }
            }
            """)
        let config = try ConfigLoader.load(path: path)
        let b = config.backends[0]
        return (try TLSServerContexts(config: config), try TLSBackendContext(b.tls, protocol: b.protocol, location: b.location))
    }

    /// A handshake between a listener session and a backend session, driven until neither waits
    /// for the other. `client` adjusts the client's SSL first (what no backend directive says).
    func handshake(host: String = "", listen: String = "", backend: String = "", backendCA: String? = nil,
                   backendBlock: String = "", client adjust: (OpaquePointer) -> Void = { _ in }) throws -> HandshakeOutcome {
        let (contexts, backendContext) = try self.contexts(host: host, listen: listen, backend: backend, backendCA: backendCA,
                                                           backendBlock: backendBlock)
        var serverEnd: OpaquePointer?, clientEnd: OpaquePointer?
        guard BIO_new_bio_pair(&serverEnd, 0, &clientEnd, 0) == 1, let serverEnd, let clientEnd else {
            throw TestError("BIO_new_bio_pair failed")
        }
        let server = try TLSSession(accepting: .memory(serverEnd), listener: contexts.listeners[0], tickets: Self.tickets)
        let client = try TLSSession(connecting: .memory(clientEnd), backend: backendContext, urlHost: "a.test", session: nil)
        adjust(client.ssl)
        var c = TLSSession.Status.wantWrite, s = TLSSession.Status.wantRead
        // A handshake takes at most three round trips; a side that finished or failed is left
        // alone (a second call on a failed SSL would report an empty queue, not the failure).
        for _ in 0..<16 where c.waiting || s.waiting {
            if c.waiting { c = client.handshake() }
            if s.waiting { s = server.handshake() }
        }
        return HandshakeOutcome(client: c, server: s, contexts: contexts, sessions: (client, server), backend: backendContext)
    }

    static let tickets = TicketKeyRing([[UInt8](repeating: 7, count: TicketKeys.keySize)])
}

struct HandshakeOutcome {
    let client: TLSSession.Status
    let server: TLSSession.Status
    /// Kept alive with the sessions: the listener's ClientHello callback points into them.
    let contexts: TLSServerContexts
    let sessions: (client: TLSSession, server: TLSSession)
    let backend: TLSBackendContext

    var serverFailure: TLSFailure? { if case .failed(let f) = server { f } else { nil } }
    var clientFailure: TLSFailure? { if case .failed(let f) = client { f } else { nil } }
}

extension TLSSession.Status {
    var waiting: Bool { self == .wantRead || self == .wantWrite }
}
