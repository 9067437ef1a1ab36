import Testing
@testable import GatewayConfig

/// SPEC §11 directives: proxy_protocol / proxy_protocol_from (listen), client_allow and groups
/// (tls_defaults and host, inherited), and their load errors with FILE:LINE:COL.
@Suite struct EdgeConfigTests {
    static let listenPP = minimalConfig.replacing("listen 127.0.0.1:8443;", with: "listen 127.0.0.1:8443 {\n    proxy_protocol on;\n    proxy_protocol_from 10.0.0.0/8 192.0.2.7;\n    proxy_protocol_from [2001:db8::]/32;\n}")

    @Test func proxyProtocolWithTrustedPeersLoads() throws {
        let f = Fixture()
        f.config(Self.listenPP)
        let l = try f.load().listeners[0]
        #expect(l.proxyProtocol)
        #expect(l.proxyProtocolFrom.map(\.bits) == [8, 32, 32])
        #expect(l.proxyProtocolFrom[1].contains([192, 0, 2, 7]) && !l.proxyProtocolFrom[1].contains([192, 0, 2, 8]))
        f.config(minimalConfig)
        #expect(try !f.load().listeners[0].proxyProtocol, "off by default")
    }

    @Test func proxyProtocolOpenToAnyoneIsALoadError() {
        let f = Fixture()
        f.config(minimalConfig.replacing("listen 127.0.0.1:8443;", with: "listen 127.0.0.1:8443 {\n    proxy_protocol on;\n}"))
        #expect(f.errors() == [
            "\(f.main):2:5: error: proxy_protocol on without proxy_protocol_from: any peer could claim any client address (GW.Listen.ProxyProtocolOpen)",
        ])
    }

    @Test func badProxyProtocolValues() {
        let f = Fixture()
        f.config(minimalConfig.replacing("listen 127.0.0.1:8443;", with: "listen 127.0.0.1:8443 {\n    proxy_protocol maybe;\n    proxy_protocol_from 10.0.0.0/8 10.0.0.300;\n}"))
        #expect(f.errors() == [
            "\(f.main):2:20: error: invalid value \"maybe\" for \"proxy_protocol\"; expected on or off",
            "\(f.main):3:36: error: invalid value \"10.0.0.300\" for \"proxy_protocol_from\"; expected a CIDR (10.0.0.0/8) or an IP address",
        ])
    }

    static func withAuth(_ host: String, defaults: String = "") -> String {
        defaults + minimalConfig.replacing("    route /", with: host + "    route /")
    }

    @Test func clientAllowEntriesAreParsedAndNormalised() throws {
        let f = Fixture()
        f.config(Self.withAuth("""
                client_auth required;
                client_ca certs/clients-ca.pem;
                client_allow san_uri spiffe://example.test/ns/prod/sa/web;
                client_allow san_uri spiffe://example.test/ns/dev/*;
                client_allow san_dns Worker.Example.TEST.;
                client_allow cn "billing client";
                client_allow spki_sha256 \(String(repeating: "AB", count: 32));

            """))
        let p = try f.load().hosts[0].policy
        #expect(p.clientAllow == [.sanURI("spiffe://example.test/ns/prod/sa/web"), .sanURIPrefix("spiffe://example.test/ns/dev/"),
                                  .sanDNS("worker.example.test"), .cn("billing client"), .spkiSHA256([UInt8](repeating: 0xAB, count: 32))])
    }

    @Test func clientAllowIsInheritedAndAHostsOwnListReplacesIt() throws {
        let f = Fixture()
        let defaults = "tls_defaults {\n    client_auth required;\n    client_ca certs/clients-ca.pem;\n    client_allow san_dns a.test;\n}\n"
        f.config(Self.withAuth("", defaults: defaults) + "host b.example.test {\n    certificate certs/api.pem certs/api.key;\n    client_allow cn b;\n}\n")
        let c = try f.load()
        #expect(c.hosts[0].policy.clientAllow == [.sanDNS("a.test")])
        #expect(c.hosts[1].policy.clientAllow == [.cn("b")])
    }

    @Test func clientAllowWithoutClientAuthIsALoadError() {
        let f = Fixture()
        f.config(Self.withAuth("    client_allow san_dns a.test;\n"))
        #expect(f.errors() == [
            "\(f.main):4:5: error: client_allow on host \"api.example.test\" whose client_auth is off: no certificate is asked for (GW.mTLS.AllowWithoutAuth)",
        ])
        // Inherited both ways: reported once, at the tls_defaults line.
        f.config(Self.withAuth("", defaults: "tls_defaults {\n    client_allow san_dns a.test;\n}\n")
                 + "host b.example.test {\n    certificate certs/api.pem certs/api.key;\n}\n")
        #expect(f.errors() == [
            "\(f.main):2:5: error: client_allow in tls_defaults with client_auth off: no certificate is asked for (GW.mTLS.AllowWithoutAuth)",
        ])
        // A host that turns client_auth off under an inherited list.
        f.config(Self.withAuth("    client_auth off;\n", defaults: "tls_defaults {\n    client_auth required;\n    client_ca certs/clients-ca.pem;\n    client_allow san_dns a.test;\n}\n"))
        #expect(f.errors() == [
            "\(f.main):9:5: error: client_auth off on host \"api.example.test\", which inherits client_allow from tls_defaults (GW.mTLS.AllowWithoutAuth)",
        ])
    }

    @Test func badClientAllowValues() {
        let f = Fixture()
        f.config(Self.withAuth("""
                client_auth required;
                client_ca certs/clients-ca.pem;
                client_allow ip 10.0.0.1;
                client_allow spki_sha256 abcd;
                client_allow san_uri spiffe://a/*/b;
                client_allow san_uri no-scheme;

            """))
        #expect(f.errors() == [
            "\(f.main):6:18: error: unknown client_allow kind \"ip\"; expected san_dns, san_uri, cn or spki_sha256",
            "\(f.main):7:30: error: spki_sha256 wants 64 hex digits (a SHA-256 of the DER public key), got \"abcd\"",
            "\(f.main):8:26: error: san_uri \"spiffe://a/*/b\": \"*\" is only allowed as a final \"/*\" (a path prefix)",
            "\(f.main):9:26: error: san_uri \"no-scheme\" is not a URI (no scheme)",
        ])
    }

    @Test func groupsAreCheckedByOpenSSLAndInherited() throws {
        let f = Fixture()
        f.config("tls_defaults {\n    groups P-384:X25519;\n}\n" + minimalConfig + "host b.example.test {\n    certificate certs/api.pem certs/api.key;\n    groups P-384;\n}\n")
        let c = try f.load()
        #expect(c.hosts[0].policy.groups == "P-384:X25519")
        #expect(c.hosts[1].policy.groups == "P-384")
        f.config(minimalConfig)
        #expect(try f.load().hosts[0].policy.groups == "X25519:P-256:P-384", "the default")
        f.config(minimalConfig.replacing("    route /", with: "    groups X25519:P-999;\n    route /"))
        #expect(f.errors() == [
            "\(f.main):4:12: error: groups \"X25519:P-999\" names a group this OpenSSL does not offer (see `openssl list -kem-algorithms`; names like X25519, P-256, P-384, ffdhe3072)",
        ])
        f.config(minimalConfig.replacing("    route /", with: "    groups X25519::P-256;\n    route /"))
        #expect(f.errors() == ["\(f.main):4:12: error: groups \"X25519::P-256\" is not a colon-separated list of group names"])
    }
}
