import COpenSSL
import CGatewayShims
import Foundation
import Testing

/// SPEC §4 with real clients: three hosts whose effective policies differ.
///   api.example.test  TLS 1.3 only, client certificate required (clients-ca), ECDSA + RSA certificates
///   *.example.test    TLS 1.2 only, one TLS 1.2 cipher
///   other.test        nothing set: inherits tls_defaults (1.2-1.3, two TLS 1.3 suites)
@Suite(.serialized)
struct PolicyTests {
    static func config(_ s: Stack, tickets: String = "on", ticketKeyFile: String? = nil) -> String {
        let c = Repo.certs
        return """
        workers 1;
        error_log stderr info;
        access_log stdout json;
        tls_defaults {
            min_version TLSv1.2;
            ciphersuites "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256";
            session_tickets \(tickets);
            \(ticketKeyFile.map { "ticket_key_file \($0);" } ?? "")
        }
        listen 127.0.0.1:\(s.gatewayPort) { default_host api.example.test; unknown_sni reject; }
        host api.example.test {
            certificate \(c)/api.example.test.pem \(c)/api.example.test.key;
            certificate \(c)/api.example.test-rsa.pem \(c)/api.example.test-rsa.key;
            min_version TLSv1.3;
            client_auth required;
            client_ca \(c)/clients-ca.pem;
            route / backend echo;
        }
        host *.example.test {
            certificate \(c)/wildcard.example.test.pem \(c)/wildcard.example.test.key;
            max_version TLSv1.2;
            ciphers "ECDHE-ECDSA-AES128-GCM-SHA256";
            route / backend echo;
        }
        host other.test {
            certificate \(c)/other.test.pem \(c)/other.test.key;
            route / backend echo;
        }
        backend echo {
            server https://127.0.0.1:\(s.echoPort);
            tls {
                ca \(c)/backend-ca.pem;
                server_name echo.internal.test;
                certificate \(c)/gateway-client.pem \(c)/gateway-client.key;
            }
        }
        """
    }

    static func start(tickets: String = "on", ticketKeyFile: String? = nil) throws -> Stack {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(config(s, tickets: tickets, ticketKeyFile: ticketKeyFile))
        return s
    }

    /// `openssl s_client` through a whole handshake and one HTTP/1.0 request (so TLS 1.3
    /// tickets arrive before it exits); returns success and everything it printed.
    static func sClient(_ s: Stack, _ name: String?, _ args: [String]) throws -> (ok: Bool, out: String) {
        var cmd = ["openssl", "s_client", "-connect", "127.0.0.1:\(s.gatewayPort)", "-CAfile", Repo.cert("ca.pem"), "-ign_eof"]
        cmd += name.map { ["-servername", $0] } ?? ["-noservername"]
        let r = try run(cmd + args, stdin: Data("GET /ok HTTP/1.0\r\nHost: \(name ?? "api.example.test")\r\n\r\n".utf8), timeout: 20)
        let out = r.out + r.err
        return (out.contains("HTTP/1.1 200") || out.contains("HTTP/1.1 404"), out)
    }

    static let client1 = ["-cert", Repo.cert("client1.pem"), "-key", Repo.cert("client1.key")]

    @Test func eachHostGetsItsOwnFloorCeilingAndCiphers() throws {
        let s = try Self.start()
        // api.example.test: TLS 1.3 only.
        #expect(try !Self.sClient(s, "api.example.test", ["-tls1_2"] + Self.client1).ok)
        #expect(try Self.sClient(s, "api.example.test", ["-tls1_3"] + Self.client1).ok)
        // *.example.test: TLS 1.2 only, one cipher.
        #expect(try !Self.sClient(s, "foo.example.test", ["-tls1_3"]).ok)
        #expect(try !Self.sClient(s, "foo.example.test", ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"]).ok)
        let ok = try Self.sClient(s, "foo.example.test", ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"])
        #expect(ok.ok, "\(ok.out)")
        #expect(ok.out.contains("ECDHE-ECDSA-AES128-GCM-SHA256"))
        _ = eventually { s.gateway!.stdout.contains(#""sni":"foo.example.test","reason":"no shared cipher""#) }
        let log = s.gateway!.stdout
        #expect(log.contains(#""sni":"api.example.test","reason":"protocol version""#), "\(log)")
        #expect(log.contains(#""sni":"foo.example.test","reason":"no shared cipher""#), "\(log)")
    }

    @Test func aHostWithoutOverridesInheritsTLSDefaults() throws {
        let s = try Self.start()
        #expect(try !Self.sClient(s, "other.test", ["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]).ok, "floor TLSv1.2 inherited")
        #expect(try Self.sClient(s, "other.test", ["-tls1_2"]).ok)
        #expect(try Self.sClient(s, "other.test", ["-tls1_3"]).ok, "ceiling TLSv1.3 inherited")
        #expect(try !Self.sClient(s, "other.test", ["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"]).ok,
                "TLS 1.3 suites inherited")
        #expect(try Self.sClient(s, "other.test", ["-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"]).ok)
        // The start-up table shows what inheritance produced.
        #expect(s.gateway!.stderr.contains("effective TLS policy per host"))
        #expect(s.gateway!.stderr.split(separator: "\n").contains { $0.hasPrefix("other.test") && $0.contains("TLSv1.2-TLSv1.3") })
        #expect(policyTableCell(s.gateway!.stderr, host: "other.test", column: "groups") == "X25519:P-256:P-384", "\(s.gateway!.stderr)")
        #expect(policyTableCell(s.gateway!.stderr, host: "other.test", column: "client_allow") == "-")
    }

    @Test func noSNIGetsTheDefaultHostAndItsPolicy() throws {
        let s = try Self.start()
        let r = try Self.sClient(s, nil, ["-tls1_3"] + Self.client1)
        #expect(r.ok, "\(r.out)")
        #expect(r.out.contains("CN = api.example.test") || r.out.contains("CN=api.example.test"))
        #expect(try !Self.sClient(s, nil, ["-tls1_2"] + Self.client1).ok, "the default host's floor applies")
    }

    @Test func requiredClientCertificate() throws {
        let s = try Self.start()
        let base = ["--tlsv1.3", "--resolve", "api.example.test:\(s.gatewayPort):127.0.0.1", "--cacert", Repo.cert("ca.pem"), "-sS"]
        let url = "https://api.example.test:\(s.gatewayPort)/echo"
        let none = try run(["curl"] + base + [url])
        #expect(none.status != 0, "no certificate: the handshake must fail, not answer HTTP")
        #expect(!none.out.contains("HTTP/1.1"))
        let rogue = try run(["curl"] + base + ["--cert", Repo.cert("rogue-client.pem"), "--key", Repo.cert("rogue-client.key"), url])
        #expect(rogue.status != 0)
        let good = try run(["curl"] + base + ["--cert", Repo.cert("client1.pem"), "--key", Repo.cert("client1.key"), url])
        let e = try decodeEcho(good.out)
        #expect(e.headers["x-client-cert-verify"] == "SUCCESS")
        #expect(e.headers["x-client-cert-subject"] == "CN=client1,O=Example")
        _ = eventually { s.gateway!.stdout.contains(#""reason":"unknown ca""#) }
        let log = s.gateway!.stdout
        #expect(log.contains(#""reason":"certificate required""#), "\(log)")
        #expect(log.contains(#""reason":"unknown ca""#), "\(log)")
    }

    @Test func optionalClientCertificateMustVerifyWhenPresented() throws {
        let s = try Stack()          // the default test config: api.example.test has client_auth optional
        try s.startEcho()
        try s.startGateway()
        let none = try s.curl("/")
        #expect(try decodeEcho(none.out).headers["x-client-cert-verify"] == "NONE")
        #expect(try decodeEcho(none.out).headers["x-client-cert-subject"] == nil)
        let rogue = try s.curl("/", ["--cert", Repo.cert("rogue-client.pem"), "--key", Repo.cert("rogue-client.key")])
        #expect(rogue.status != 0, "an untrusted certificate fails the handshake even under optional")
    }

    @Test func dualCertificatesArePickedByTheClientsSignatureAlgorithms() throws {
        // The default test config (client_auth optional, so the client needs no certificate of
        // its own to sign with) plus an RSA certificate beside the ECDSA one.
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(s.config(hostExtra: "certificate \(Repo.cert("api.example.test-rsa.pem")) \(Repo.cert("api.example.test-rsa.key"));"))
        let rsa = try Self.sClient(s, "api.example.test", ["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"])
        #expect(rsa.ok, "\(rsa.out)")
        #expect(rsa.out.contains("rsaEncryption, 2048 (bit)"), "\(rsa.out)")
        let ec = try Self.sClient(s, "api.example.test", ["-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256"])
        #expect(ec.ok, "\(ec.out)")
        #expect(ec.out.contains("id-ecPublicKey, 256 (bit)"), "\(ec.out)")
        let tls12 = try Self.sClient(s, "api.example.test", ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"])
        #expect(tls12.ok && tls12.out.contains("rsaEncryption"), "TLS 1.2 RSA cipher picks the RSA certificate: \(tls12.out)")
    }

    /// A session resumes on its own host (TLS 1.2 and 1.3), never on a host with another policy.
    @Test func sessionsResumeOnlyUnderTheSamePolicy() throws {
        let s = try Self.start()
        let file = "\(s.dir)/session.pem"
        for version in ["-tls1_2", "-tls1_3"] {
            let first = try Self.sClient(s, "other.test", [version, "-sess_out", file])
            #expect(first.ok && first.out.contains("New,"), "\(first.out)")
            let again = try Self.sClient(s, "other.test", [version, "-sess_in", file])
            #expect(again.out.contains("Reused,"), "\(version) same host: \(again.out)")
            if version == "-tls1_3" {
                // A resumed TLS 1.3 connection gets a fresh ticket: clients use each ticket once.
                #expect(again.out.contains("Post-Handshake New Session Ticket"), "\(again.out)")
            }
        }
        // A TLS 1.2 session of other.test offered to foo.example.test (another policy, same cipher).
        _ = try Self.sClient(s, "other.test", ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256", "-sess_out", file])
        let cross = try Self.sClient(s, "foo.example.test", ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256", "-sess_in", file])
        #expect(cross.ok, "\(cross.out)")
        #expect(cross.out.contains("New,"), "must not resume across policies: \(cross.out)")
    }

    @Test func sessionTicketsOffStillResumesFromTheCacheButIssuesNoTicket() throws {
        let s = try Self.start(tickets: "off")
        let file = "\(s.dir)/session.pem"
        let first = try Self.sClient(s, "other.test", ["-tls1_2", "-sess_out", file])
        #expect(first.ok)
        #expect(!first.out.contains("TLS session ticket:"), "no ticket issued: \(first.out)")
        let again = try Self.sClient(s, "other.test", ["-tls1_2", "-sess_in", file])
        #expect(again.out.contains("Reused,"), "session id cache: \(again.out)")
    }

    /// Two gateways with the same `ticket_key_file` resume each other's TLS 1.3 tickets (a fleet);
    /// with generated keys they do not.
    @Test func ticketKeyFileIsSharedAcrossAFleet() throws {
        let dir = try makeTempDir()
        let keyFile = "\(dir)/tickets.keys"
        let key = try run(["openssl", "rand", "-hex", "80"]).out
        try "# current key\n\(key)".write(toFile: keyFile, atomically: true, encoding: .utf8)
        chmod(keyFile, 0o600)
        let a = try Self.start(ticketKeyFile: keyFile), b = try Self.start(ticketKeyFile: keyFile)
        let file = "\(dir)/session.pem"
        let first = try Self.sClient(a, "other.test", ["-tls1_3", "-sess_out", file])
        #expect(first.ok && first.out.contains("New,"), "\(first.out)")
        let onB = try Self.sClient(b, "other.test", ["-tls1_3", "-sess_in", file])
        #expect(onB.out.contains("Reused,"), "same ticket keys: \(onB.out)")

        let c = try Self.start()   // generated keys
        let onC = try Self.sClient(c, "other.test", ["-tls1_3", "-sess_in", file])
        #expect(onC.ok && onC.out.contains("New,"), "other keys must not resume: \(onC.out)")
    }

    @Test func badTicketKeyFileIsALoadError() throws {
        let s = try Stack()
        let keyFile = "\(s.dir)/bad.keys"
        try "abcd\n".write(toFile: keyFile, atomically: true, encoding: .utf8)
        try Self.config(s, ticketKeyFile: keyFile).write(toFile: s.configPath, atomically: true, encoding: .utf8)
        let r = try run([try Repo.binary("gateway"), "check", "-c", s.configPath])
        #expect(r.status == 2)
        #expect(r.err.contains("\(keyFile):1:1: error:"), "\(r.err)")
    }

    /// A malformed server_name extension fails the handshake whatever unknown_sni says, and
    /// the gateway goes on serving.
    @Test func malformedServerNameIsRefused() throws {
        let s = try Self.start()
        let name = "foo.example.test"
        // A NUL inside the name (same length, so every other length stays valid).
        #expect(throws: (any Error).self) {
            _ = try SplitHelloClient.handshake(port: s.gatewayPort, serverName: name, pieces: 1) { hello in
                SplitHelloClient.replacing(Array(name.utf8), with: Array("foo\u{0}example.test".utf8), in: hello)
            }
        }
        // The name's length field one byte too long for the extension.
        #expect(throws: (any Error).self) {
            _ = try SplitHelloClient.handshake(port: s.gatewayPort, serverName: name, pieces: 1) { hello in
                var h = hello
                if let i = SplitHelloClient.index(of: Array(name.utf8), in: h) { h[i - 1] &+= 1 }
                return h
            }
        }
        // An empty label (found by fuzzing: `f.example.test..` came out as `f.example.test.`, a name nothing matches).
        #expect(throws: (any Error).self) {
            _ = try SplitHelloClient.handshake(port: s.gatewayPort, serverName: name, pieces: 1) { hello in
                SplitHelloClient.replacing(Array(name.utf8), with: Array("f.example.test..".utf8), in: hello)
            }
        }
        #expect(eventually { s.gateway!.stdout.contains("malformed server_name") }, "\(s.gateway!.stdout)")
        #expect(eventually { s.gateway!.stdout.contains("malformed server_name: empty label") }, "\(s.gateway!.stdout)")
        #expect(try SplitHelloClient.handshake(port: s.gatewayPort, serverName: name, pieces: 1) == "TLSv1.2 CN=*.example.test")
    }

    /// `min_version TLSv1` works for the host that asks for it (security level 0 there only).
    @Test func legacyFloorOnOneHostOnly() throws {
        let s = try Stack()
        try s.startEcho()
        let text = Self.config(s).replacingOccurrences(of: """
            host other.test {
                certificate
            """, with: """
            host other.test {
                min_version TLSv1;
                ciphers "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256";
                certificate
            """)
        #expect(text.contains("min_version TLSv1;"))
        try s.startGateway(text)
        let legacy = ["-tls1", "-cipher", "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"]
        let r = try Self.sClient(s, "other.test", legacy)
        #expect(r.ok, "\(r.out)")
        #expect(r.out.contains("TLSv1,") || r.out.contains("Protocol  : TLSv1\n"), "\(r.out)")
        #expect(try !Self.sClient(s, "foo.example.test", legacy).ok, "other hosts keep their floor")
    }

    /// `crl` on a host refuses a revoked client certificate.
    @Test func revokedClientCertificateIsRefused() throws {
        let s = try Stack()
        let ca = "\(s.dir)/ca"
        try FileManager.default.createDirectory(atPath: ca, withIntermediateDirectories: true)
        try "".write(toFile: "\(ca)/index.txt", atomically: true, encoding: .utf8)
        try "01\n".write(toFile: "\(ca)/crlnumber", atomically: true, encoding: .utf8)
        try """
        [ca]
        default_ca = d
        [d]
        database = \(ca)/index.txt
        crlnumber = \(ca)/crlnumber
        default_md = sha256
        default_crl_days = 30
        """.write(toFile: "\(ca)/ca.cnf", atomically: true, encoding: .utf8)
        let caArgs = ["-config", "\(ca)/ca.cnf", "-keyfile", Repo.cert("clients-ca.key"), "-cert", Repo.cert("clients-ca.pem")]
        let revoke = try run(["openssl", "ca"] + caArgs + ["-revoke", Repo.cert("client1.pem")])
        #expect(revoke.status == 0, "\(revoke.err)")
        let crl = try run(["openssl", "ca"] + caArgs + ["-gencrl", "-out", "\(ca)/clients.crl"])
        #expect(crl.status == 0, "\(crl.err)")
        try s.startEcho()
        try s.startGateway(Self.config(s).replacingOccurrences(of: "client_ca \(Repo.certs)/clients-ca.pem;",
                                                                 with: "client_ca \(Repo.certs)/clients-ca.pem;\n    crl \(ca)/clients.crl;"))
        let r = try run(["curl", "-sS", "--tlsv1.3", "--cacert", Repo.cert("ca.pem"), "--resolve", "api.example.test:\(s.gatewayPort):127.0.0.1",
                         "--cert", Repo.cert("client1.pem"), "--key", Repo.cert("client1.key"), "https://api.example.test:\(s.gatewayPort)/"])
        #expect(r.status != 0, "a revoked certificate must not get through: \(r.out)")
        #expect(eventually { s.gateway!.stdout.contains(#""reason":"certificate revoked""#) }, "\(s.gateway!.stdout)")
    }

    /// The ClientHello cut into several TLS records (sent as separate TCP segments) must get
    /// the same host and policy as a whole one.
    @Test func fragmentedClientHelloGetsTheSamePolicy() throws {
        let s = try Self.start()
        let whole = try SplitHelloClient.handshake(port: s.gatewayPort, serverName: "foo.example.test", pieces: 1)
        let split = try SplitHelloClient.handshake(port: s.gatewayPort, serverName: "foo.example.test", pieces: 7)
        #expect(whole == "TLSv1.2 CN=*.example.test")
        #expect(split == whole, "fragmented hello fell back to another policy")
    }

    @Test func misdirectedAcrossPoliciesAndFineWithinOne() throws {
        let s = try Self.start()
        let c = try TLSTestClient(port: s.gatewayPort, serverName: "other.test")
        try c.send("GET / HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
        #expect(try c.readResponse().status == 421, "SNI other.test must not reach the mTLS host")
        try c.send("GET / HTTP/1.1\r\nHost: other.test:\(s.gatewayPort)\r\n\r\n")
        #expect(try c.readResponse().status == 200)
        try c.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        #expect(try c.readResponse().status == 200, "a Host matching no block is served by the connection's host")
    }
}

/// A client that cuts its ClientHello record into `pieces` records, each written alone.
enum SplitHelloClient {
    struct Failure: Error, CustomStringConvertible { let description: String }

    /// Returns "VERSION SUBJECT-CN" of the finished handshake.
    static func handshake(port: UInt16, serverName: String, pieces: Int, transform: ([UInt8]) -> [UInt8] = { $0 }) throws -> String {
        guard let fd = connectLoopback(port) else { throw Failure(description: "connect failed") }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))

        let ctx = SSL_CTX_new(TLS_client_method())!
        defer { SSL_CTX_free(ctx) }
        SSL_CTX_load_verify_locations(ctx, Repo.cert("ca.pem"), nil)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        let ssl = SSL_new(ctx)!
        defer { SSL_free(ssl) }
        let rbio = BIO_new(BIO_s_mem())!, wbio = BIO_new(BIO_s_mem())!
        SSL_set_bio(ssl, rbio, wbio)
        SSL_set_connect_state(ssl)
        _ = gw_ssl_set_tlsext_host_name(ssl, serverName)

        var first = true
        var buf = [UInt8](repeating: 0, count: 16384)
        while true {
            let r = SSL_do_handshake(ssl)
            // Send what OpenSSL wrote; the very first flight is the ClientHello record, cut up.
            var out: [UInt8] = []
            while true {
                let n = buf.withUnsafeMutableBytes { BIO_read(wbio, $0.baseAddress, Int32($0.count)) }
                if n <= 0 { break }
                out += buf[0..<Int(n)]
            }
            if !out.isEmpty {
                let records = first ? split(transform(out), pieces: pieces) : [out]
                first = false
                for rec in records {
                    guard rec.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == rec.count else { throw Failure(description: "send failed") }
                    usleep(20_000)   // separate TCP segments
                }
            }
            if r == 1 { break }
            guard SSL_get_error(ssl, r) == SSL_ERROR_WANT_READ else { throw Failure(description: "handshake failed") }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw Failure(description: "connection closed during the handshake") }
            _ = buf.withUnsafeBytes { BIO_write(rbio, $0.baseAddress, Int32(n)) }
        }
        let version = String(cString: SSL_get_version(ssl))
        guard let cert = SSL_get1_peer_certificate(ssl) else { throw Failure(description: "no certificate") }
        defer { X509_free(cert) }
        var cn = [CChar](repeating: 0, count: 256)
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, &cn, 256)
        return "\(version) CN=\(String(decoding: cn.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))"
    }

    static func index(of needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        return (0...(hay.count - needle.count)).first { Array(hay[$0..<$0 + needle.count]) == needle }
    }

    static func replacing(_ needle: [UInt8], with new: [UInt8], in hay: [UInt8]) -> [UInt8] {
        guard let i = index(of: needle, in: hay) else { return hay }
        return Array(hay[..<i]) + new + Array(hay[(i + needle.count)...])
    }

    /// One handshake record (type 22) becomes `pieces` records carrying consecutive slices.
    static func split(_ bytes: [UInt8], pieces: Int) -> [[UInt8]] {
        guard pieces > 1, bytes.count > 5, bytes[0] == 22 else { return [bytes] }
        let length = Int(bytes[3]) << 8 | Int(bytes[4])
        let body = Array(bytes[5..<5 + length])
        let rest = Array(bytes[(5 + length)...])
        let size = (body.count + pieces - 1) / pieces
        var out: [[UInt8]] = []
        var i = 0
        while i < body.count {
            let slice = body[i..<min(body.count, i + size)]
            out.append([22, bytes[1], bytes[2], UInt8(slice.count >> 8), UInt8(slice.count & 0xFF)] + slice)
            i += size
        }
        if !rest.isEmpty { out.append(rest) }
        return out
    }
}
