import Testing
@testable import GatewayCheck
@testable import GatewayTLS

@Suite struct CheckHostRuleTests {
    @Test func hostFloorBelowTLS12() throws {
        let f = try CheckFixture()
        let own = f.config(hostExtra: "min_version TLSv1.1;")
        let found = only("GW.Host.MinTLS", try f.findings(own))
        #expect(found.count == 1)
        #expect(found.first?.severity == .high)
        #expect(found.first?.line == line(of: "min_version TLSv1.1", in: own))
        #expect(only("GW.Host.MinTLS", try f.findings(f.config(hostExtra: "min_version TLSv1.2;"))).isEmpty)
    }

    /// An inherited floor is one finding at its tls_defaults line, naming every host that inherits it;
    /// a host that sets its own TLSv1.2 floor is not among them.
    @Test func inheritedFloorIsReportedOnceAtTlsDefaults() throws {
        let f = try CheckFixture()
        let b = try f.pki.leaf("b.test", sans: "DNS:b.test")
        let c = try f.pki.leaf("c.test", sans: "DNS:c.test")
        let text = f.config(defaults: "min_version TLSv1;", otherHosts: """
            host b.test { certificate \(b.cert) \(b.key); route / backend b; }
            host c.test { certificate \(c.cert) \(c.key); route / backend b; min_version TLSv1.2; }
            """)
        let found = only("GW.Host.MinTLS", try f.findings(text))
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.line == line(of: "min_version TLSv1;", in: text))
        #expect(found.first?.message.contains("a.test, b.test") == true, "\(found)")
        #expect(found.first?.message.contains("c.test") == false)
    }

    @Test func weakCiphersAreJudgedByOpenSSLProperties() throws {
        let f = try CheckFixture()
        // `kRSA` and `aNULL` are OpenSSL aliases, not suite names: only the expansion can tell what they enable.
        for (ciphers, expected) in [("AES128-SHA", "RSA key exchange"), ("ECDHE-RSA-AES128-SHA", "CBC"),
                                    ("kRSA", "RSA key exchange")] {
            let text = f.config(hostExtra: "ciphers \"\(ciphers)\";")
            let found = only("GW.Host.WeakCipher", try f.findings(text))
            #expect(found.count == 1, "\(ciphers)")
            #expect(found.first?.severity == .high)
            #expect(found.first?.line == line(of: "ciphers", in: text))
            #expect(found.first?.message.contains(expected) == true, "\(found)")
        }
        // NULL encryption and anonymous suites exist only at security level 0 (a floor below TLSv1.2).
        let null = f.config(hostExtra: "min_version TLSv1; ciphers \"NULL-SHA:ADH-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256\";")
        let message = only("GW.Host.WeakCipher", try f.findings(null)).first?.message ?? ""
        #expect(message.contains("NULL-SHA (RSA key exchange, no forward secrecy, NULL encryption)"), "\(message)")
        #expect(message.contains("ADH-AES128-GCM-SHA256 (no server authentication)"), "\(message)")
        #expect(!message.contains("ECDHE-ECDSA-AES128-GCM-SHA256"))
    }

    @Test func strongOrUnusedCiphersAreClean() throws {
        let f = try CheckFixture()
        for extra in ["ciphers \"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305\";",
                      "ciphers \"ECDHE+AESGCM\";",
                      // A TLS 1.3-only host never uses its TLS 1.2 list.
                      "min_version TLSv1.3; ciphers \"AES128-SHA\";",
                      "ciphersuites \"TLS_AES_128_CCM_SHA256:TLS_AES_256_GCM_SHA384\";"] {
            #expect(only("GW.Host.WeakCipher", try f.findings(f.config(hostExtra: extra))).isEmpty, "\(extra)")
        }
    }

    /// The judgement of suites this OpenSSL build does not even offer (3DES, RC4, DES, export).
    @Test func judgementOfSuitesThisBuildLacks() {
        func suite(_ enc: CipherSuiteInfo.Encryption, bits: Int, aead: Bool = false,
                   kx: CipherSuiteInfo.KeyExchange = .ecdhe) -> [String] {
            CipherJudgement.weaknesses(CipherSuiteInfo(name: "x", version: "TLSv1", keyExchange: kx, anonymous: false,
                                                      isAEAD: aead, encryption: enc, bits: bits))
        }
        #expect(suite(.tripleDES, bits: 112) == ["3DES", "CBC, not AEAD"])
        #expect(suite(.rc4, bits: 128) == ["RC4"])
        #expect(suite(.des, bits: 56) == ["DES", "CBC, not AEAD"])
        #expect(suite(.modern, bits: 40, kx: .rsa) == ["RSA key exchange, no forward secrecy", "40-bit (export-grade) encryption", "CBC, not AEAD"])
        #expect(suite(.modern, bits: 128, aead: true, kx: .psk) == ["no forward secrecy"])
        #expect(suite(.modern, bits: 256, aead: true, kx: .tls13).isEmpty)
    }

    @Test func adminExposed() throws {
        let f = try CheckFixture()
        let text = f.config(top: "admin 0.0.0.0:9901;")
        let found = only("GW.Admin.Exposed", try f.findings(text))
        #expect(found.count == 1)
        #expect(found.first?.severity == .critical)
        #expect(found.first?.line == line(of: "admin 0.0.0.0", in: text))
        try f.pki.write("secret\n", as: "token", mode: 0o600)
        for top in ["admin 127.0.0.1:9901;", "admin [::1]:9901;", "admin unix:admin.sock;",
                    "admin 0.0.0.0:9901;\nadmin_token_file token;"] {
            #expect(only("GW.Admin.Exposed", try f.findings(f.config(top: top))).isEmpty, "\(top)")
        }
    }

    @Test func ticketsWithoutSharedKeyAcrossListeners() throws {
        let f = try CheckFixture()
        let two = "listen 127.0.0.1:8443;\nlisten 127.0.0.1:8444;"
        let text = f.config(listen: two)
        let found = only("GW.Ticket.NoSharedKey", try f.findings(text))
        #expect(found.count == 1)
        #expect(found.first?.severity == .low)
        #expect(found.first?.line == line(of: "listen 127.0.0.1:8444", in: text))
        // Written in tls_defaults: that line.
        let explicit = f.config(defaults: "session_tickets on;", listen: two)
        #expect(only("GW.Ticket.NoSharedKey", try f.findings(explicit)).first?.line == line(of: "session_tickets on", in: explicit))

        try f.pki.write(String(repeating: "ab", count: 80) + "\n", as: "tickets.key", mode: 0o600)
        for clean in [f.config(), f.config(defaults: "session_tickets off;", listen: two),
                      f.config(defaults: "ticket_key_file tickets.key;", listen: two)] {
            #expect(only("GW.Ticket.NoSharedKey", try f.findings(clean)).isEmpty)
        }
    }

    /// client_auth without client_ca stays a load error naming the rule, at the client_auth line.
    @Test func clientAuthWithoutCAIsALoadError() throws {
        let f = try CheckFixture()
        let text = f.config(hostExtra: "client_auth required;")
        let errors = try f.loadErrors(text)
        #expect(errors.count == 1)
        #expect(errors.first?.contains("\(f.configPath):\(line(of: "client_auth", in: text)):") == true, "\(errors)")
        #expect(errors.first?.contains("GW.mTLS.NoCA") == true)
        let ca = f.pki.path("ca.pem")
        #expect(try f.loadErrors(f.config(hostExtra: "client_auth required; client_ca \(ca);")).isEmpty)
    }
}
