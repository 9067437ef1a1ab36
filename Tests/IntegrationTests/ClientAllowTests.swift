import Foundation
import Testing
import TestSupport

/// SPEC §11 client_allow with real clients (curl), client certificates from a test PKI:
///   api.example.test   client_auth required; SPIFFE prefix, DNS SAN, CN and SPKI pin entries
///   opt.example.test   client_auth optional; one exact SPIFFE ID
///   open.example.test  client_auth optional, same CA, no client_allow (differs from opt only there)
@Suite(.serialized)
struct ClientAllowTests {
    final class Setup: @unchecked Sendable {
        let s: Stack
        let pki: TestPKI
        init() throws {
            s = try Stack()
            pki = try TestPKI()
            try pki.leaf("spiffe-web", sans: "URI:spiffe://example.test/ns/prod/sa/web,DNS:web.example.test,DNS:web2.example.test", cn: "web")
            try pki.leaf("spiffe-other", sans: "URI:spiffe://other.test/ns/prod/sa/web", cn: "other")
            try pki.leaf("spiffe-dev", sans: "URI:spiffe://example.test/ns/dev/sa/web", cn: "dev")
            try pki.leaf("dns-client", sans: "DNS:worker.example.test", cn: "worker")
            try pki.leaf("cn-client", sans: "DNS:nothing.test", cn: "billing")
            try pki.leaf("pinned", sans: "DNS:pinned.test", cn: "pinned")
            try pki.leaf("nomatch", sans: "DNS:nomatch.test", cn: "nomatch")
            let pin = try run(["sh", "-c", "openssl x509 -in \(pki.path("pinned.pem")) -pubkey -noout | openssl pkey -pubin -outform der | sha256sum"])
            let hex = String(pin.out.prefix(64))
            let c = Repo.certs
            try s.startEcho()
            let text = s.config(hostExtra: "") .replacingOccurrences(of: """
                client_auth optional;
                client_ca \(c)/clients-ca.pem;
            """, with: """
                client_auth required;
                client_ca \(pki.path("ca.pem"));
                client_allow san_uri spiffe://example.test/ns/prod/*;
                client_allow san_dns Worker.Example.Test;
                client_allow cn billing;
                client_allow spki_sha256 \(hex);
            """) + """

            host opt.example.test {
                certificate \(c)/wildcard.example.test.pem \(c)/wildcard.example.test.key;
                client_auth optional;
                client_ca \(pki.path("ca.pem"));
                client_allow san_uri spiffe://example.test/ns/prod/sa/web;
                route / backend echo;
            }
            host open.example.test {
                certificate \(c)/wildcard.example.test.pem \(c)/wildcard.example.test.key;
                client_auth optional;
                client_ca \(pki.path("ca.pem"));
                route / backend echo;
            }
            """
            try s.startGateway(text)
        }
        deinit { s.stop(); pki.remove() }

        func cert(_ name: String) -> [String] { ["--cert", pki.path("\(name).pem"), "--key", pki.path("\(name).key")] }
    }

    @Test func requiredAllowsEachKindOfEntryAndRefusesTheRest() throws {
        let t = try Setup()
        for allowed in ["spiffe-web", "dns-client", "cn-client", "pinned"] {
            let r = try t.s.curl("/", t.cert(allowed))
            let e = try decodeEcho(r.out)
            #expect(e.headers["x-client-cert-verify"] == "SUCCESS", "\(allowed)")
        }
        for refused in ["spiffe-other", "spiffe-dev", "nomatch"] {
            let r = try t.s.curl("/", t.cert(refused))
            #expect(r.status != 0, "\(refused): the handshake fails, no HTTP answer")
            #expect(!r.out.contains("HTTP/1.1") && !r.out.contains("x-client-cert"), "\(refused): \(r.out)")
        }
        _ = eventually { t.s.gateway!.stdout.components(separatedBy: "client certificate not allowed").count > 3 }
        let log = t.s.gateway!.stdout
        #expect(log.components(separatedBy: #""sni":"api.example.test","reason":"client certificate not allowed""#).count == 4, "\(log)")
        // The TLS alert OpenSSL's verify path sends reaches the client: a TLS failure, not a reset.
        let raw = try run(["openssl", "s_client", "-connect", "127.0.0.1:\(t.s.gatewayPort)", "-servername", "api.example.test",
                           "-CAfile", Repo.cert("ca.pem"), "-cert", t.pki.path("nomatch.pem"), "-key", t.pki.path("nomatch.key"), "-tls1_2"],
                          stdin: Data(), timeout: 20)
        #expect((raw.out + raw.err).contains("alert"), "\(raw.out)\(raw.err)")
    }

    @Test func optionalLetsAClientWithoutACertificateThroughAndSendsURIAndDNS() throws {
        let t = try Setup()
        let none = try decodeEcho(try t.s.curl("/", host: "opt.example.test").out)
        #expect(none.headers["x-client-cert-verify"] == "NONE")
        #expect(none.headers["x-client-cert-uri"] == nil && none.headers["x-client-cert-dns"] == nil)
        let web = try decodeEcho(try t.s.curl("/", host: "opt.example.test", t.cert("spiffe-web")).out)
        #expect(web.headers["x-client-cert-verify"] == "SUCCESS")
        #expect(web.headers["x-client-cert-uri"] == "spiffe://example.test/ns/prod/sa/web")
        #expect(web.headers["x-client-cert-dns"] == "web.example.test,web2.example.test")
        #expect(try t.s.curl("/", host: "opt.example.test", t.cert("dns-client")).status != 0, "a presented certificate must be allowed")
    }

    @Test func spoofedCertificateHeadersAreStripped() throws {
        let t = try Setup()
        let spoof = ["-H", "X-Client-Cert-URI: spiffe://example.test/ns/prod/sa/admin", "-H", "x-client-cert-dns: admin.example.test"]
        let none = try decodeEcho(try t.s.curl("/", host: "open.example.test", spoof).out)
        #expect(none.headers["x-client-cert-uri"] == nil && none.headers["x-client-cert-dns"] == nil)
        let withCert = try decodeEcho(try t.s.curl("/", host: "open.example.test", spoof + t.cert("dns-client")).out)
        #expect(withCert.headers["x-client-cert-uri"] == nil, "the certificate has no URI SAN")
        #expect(withCert.headers["x-client-cert-dns"] == "worker.example.test")
    }

    /// opt and open differ only in client_allow: a connection made for one gets 421 for the other.
    @Test func hostsThatDifferOnlyInClientAllowGet421() throws {
        let t = try Setup()
        let base = ["--resolve", "opt.example.test:\(t.s.gatewayPort):127.0.0.1", "--resolve", "open.example.test:\(t.s.gatewayPort):127.0.0.1"]
        let r = try t.s.curl("/", host: "opt.example.test", base + ["-H", "Host: open.example.test", "-o", "/dev/null", "-w", "%{http_code}"])
        #expect(r.out == "421", "\(r.out)\(r.err)")
        let back = try t.s.curl("/", host: "open.example.test", base + ["-H", "Host: opt.example.test", "-o", "/dev/null", "-w", "%{http_code}"])
        #expect(back.out == "421", "\(back.out)\(back.err)")
        let same = try t.s.curl("/", host: "open.example.test", base + ["-H", "Host: open.example.test", "-o", "/dev/null", "-w", "%{http_code}"])
        #expect(same.out == "200")
    }
}
