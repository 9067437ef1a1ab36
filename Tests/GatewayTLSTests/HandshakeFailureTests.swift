import COpenSSL
import CGatewayShims
import Testing
@testable import GatewayTLS

/// Real handshakes that fail, each for one reason: the server side (a refused client) and the
/// client side (a refused backend) must name it as a TLSFailure decided from OpenSSL's codes,
/// whose description is the reason the access log and the metric label carry.
@Suite struct HandshakeFailureTests {
    let f: HandshakeFixture
    init() throws { f = try HandshakeFixture() }

    @Test func policiesThatAgreeShakeHands() throws {
        let o = try f.handshake(host: "client_auth required; client_ca \(f.pki.path("ca.pem"));",
                                backend: "certificate \(f.pki.path("client.pem")) \(f.pki.path("client.key"));")
        #expect(o.client == .done(0) && o.server == .done(0), "\(o.client) / \(o.server)")
        #expect(o.sessions.server.host?.name == "a.test")
    }

    @Test func noVersionInCommonIsProtocolVersion() throws {
        let o = try f.handshake(host: "min_version TLSv1.3;", backend: "max_version TLSv1.2;")
        #expect(o.serverFailure == .protocolVersion)
        #expect(o.serverFailure?.description == "protocol version")
        // The client hears the server's alert: OpenSSL's reason for it, kept as it is.
        #expect(o.clientFailure == .other(library: ERR_LIB_SSL, reason: SSL_R_TLSV1_ALERT_PROTOCOL_VERSION,
                                          text: "tlsv1 alert protocol version"))
    }

    @Test func disjointTLS12CiphersAreNoSharedCipher() throws {
        let o = try f.handshake(host: #"max_version TLSv1.2; ciphers "ECDHE-ECDSA-AES128-GCM-SHA256";"#,
                                backend: #"max_version TLSv1.2; ciphers "ECDHE-ECDSA-AES256-GCM-SHA384";"#)
        #expect(o.serverFailure == .noSharedCipher)
        #expect(o.serverFailure?.description == "no shared cipher")
    }

    /// TLS 1.3 with a host's `groups` the client does not offer (no backend directive sets a
    /// client's groups: set on its SSL).
    @Test func disjointTLS13GroupsAreNoSharedGroup() throws {
        let o = try f.handshake(host: "groups P-384;") { _ = gw_ssl_set1_groups_list($0, "P-256") }
        #expect(o.serverFailure == .noSharedGroup)
        #expect(o.serverFailure?.description == "no suitable key share")
    }

    @Test func requiredCertificateNotSentIsCertificateRequired() throws {
        let o = try f.handshake(host: "client_auth required; client_ca \(f.pki.path("ca.pem"));")
        #expect(o.serverFailure == .certificateRequired)
        #expect(o.serverFailure?.description == "certificate required")
    }

    @Test func clientCertificateOfAnUnknownCAIsUnknownCA() throws {
        let o = try f.handshake(host: "client_auth required; client_ca \(f.pki.path("ca.pem"));",
                                backend: "certificate \(f.rogue.path("client.pem")) \(f.rogue.path("client.key"));")
        #expect(o.serverFailure == .unknownCA)
        #expect(o.serverFailure?.description == "unknown ca")
    }

    @Test func expiredClientCertificateIsCertificateExpired() throws {
        let old = try f.pki.leaf("old-client", sans: "DNS:client.test", days: -2)
        let o = try f.handshake(host: "client_auth optional; client_ca \(f.pki.path("ca.pem"));",
                                backend: "certificate \(old.cert) \(old.key);")
        #expect(o.serverFailure == .certificateExpired)
        #expect(o.serverFailure?.description == "certificate expired")
    }

    @Test func revokedClientCertificateIsCertificateRevoked() throws {
        let crl = try f.pki.crl(revoking: "client")
        let o = try f.handshake(host: "client_auth required; client_ca \(f.pki.path("ca.pem")); crl \(crl);",
                                backend: "certificate \(f.pki.path("client.pem")) \(f.pki.path("client.key"));")
        #expect(o.serverFailure == .certificateRevoked)
        #expect(o.serverFailure?.description == "certificate revoked")
    }

    /// A verify failure without a short name of its own keeps OpenSSL's verify code: here a
    /// certificate only for servers, presented by a client.
    @Test func otherVerifyFailuresAreBadCertificate() throws {
        let server = try f.pki.leaf("server-only", sans: "DNS:client.test", extensions: ["extendedKeyUsage=serverAuth"])
        let o = try f.handshake(host: "client_auth required; client_ca \(f.pki.path("ca.pem"));",
                                backend: "certificate \(server.cert) \(server.key);")
        #expect(o.serverFailure == .badCertificate(verifyCode: Int(X509_V_ERR_INVALID_PURPOSE)))
        #expect(o.serverFailure?.description == "bad certificate: unsuitable certificate purpose")
    }

    @Test func certificateOutsideClientAllowIsNotAllowed() throws {
        let o = try f.handshake(host: "client_auth required; client_ca \(f.pki.path("ca.pem")); client_allow san_dns other.test;",
                                backend: "certificate \(f.pki.path("client.pem")) \(f.pki.path("client.key"));")
        #expect(o.serverFailure == .notAllowed)
        #expect(o.serverFailure?.description == "client certificate not allowed")
        #expect(o.sessions.server.failureReason == .notAllowed, "set by the verify callback")
    }

    @Test func unknownNameOnARejectingListenerIsUnrecognizedName() throws {
        let o = try f.handshake(listen: "unknown_sni reject;", backend: "server_name b.test;")
        #expect(o.serverFailure == .unrecognizedName)
        #expect(o.serverFailure?.description == "unrecognized name")
        #expect(o.sessions.server.serverName == "b.test")
    }

    /// OpenSSL sends the name it is given; the gateway's parser refuses an empty label.
    @Test func malformedServerNameKeepsTheParsersReason() throws {
        let o = try f.handshake { _ = gw_ssl_set_tlsext_host_name($0, "a..test") }
        #expect(o.serverFailure == .malformedServerName("empty label in server name"))
        #expect(o.serverFailure?.description == "malformed server_name: empty label in server name")
    }

    /// The gateway as a client: a backend certificate from a CA it does not trust.
    @Test func backendCertificateOfAnUnknownCAIsBackendVerify() throws {
        let o = try f.handshake(backendCA: f.rogue.path("ca.pem"))
        #expect(o.clientFailure == .backendVerify(verifyCode: Int(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY)))
        #expect(o.clientFailure?.description == "certificate verify failed: unable to get local issuer certificate")
        // The server hears the client's alert: OpenSSL's words for it.
        #expect(o.serverFailure == .other(library: ERR_LIB_SSL, reason: SSL_R_TLSV1_ALERT_UNKNOWN_CA, text: "tlsv1 alert unknown ca"))
    }

    @Test func backendCertificateForAnotherNameIsBackendVerify() throws {
        let o = try f.handshake { _ = SSL_set1_host($0, "b.test") }
        #expect(o.clientFailure == .backendVerify(verifyCode: Int(X509_V_ERR_HOSTNAME_MISMATCH)))
        #expect(o.clientFailure?.description == "certificate verify failed: hostname mismatch")
    }
}
