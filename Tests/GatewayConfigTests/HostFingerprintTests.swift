import Testing
@testable import GatewayConfig

/// SPEC §7.2: which open connections a reload closes, decided on host fingerprints.
struct HostFingerprintTests {
    static let loc = SourceLocation(file: "gateway.conf", line: 1, column: 1)

    static func host(_ change: (inout HostConfig) -> Void = { _ in }) -> HostConfig {
        var p = TLSPolicy()
        p.clientAuth = .optional
        p.clientCA = "/c/clients-ca.pem"
        p.crl = "/c/clients.crl"
        p.clientAllow = [.cn("web"), .sanDNS("worker.example.test")]
        var h = HostConfig(names: ["api.example.test"], certificates: [CertificateFiles(certificate: "/c/api.pem", key: "/c/api.key", location: loc)],
                           policy: p, routes: [], compression: CompressionSettings(), location: loc)
        change(&h)
        return h
    }

    static let files: [String: [UInt8]] = [
        "/c/api.pem": Array("cert".utf8), "/c/api.key": Array("key".utf8),
        "/c/clients-ca.pem": Array("ca".utf8), "/c/clients.crl": Array("crl v1".utf8),
    ]

    static func print(_ h: HostConfig, _ files: [String: [UInt8]] = files) -> HostFingerprint {
        HostFingerprint(h) { files[$0] }
    }

    @Test func sameBlockSameBytesSameFingerprint() {
        #expect(Self.print(Self.host()) == Self.print(Self.host()))
        // Routes and compression are not the TLS policy: a connection may go on.
        #expect(Self.print(Self.host()) == Self.print(Self.host { $0.routes = [Route(prefix: "/x", backend: "b", stripPrefix: false, location: Self.loc)] }))
    }

    @Test func everyPolicyFieldCounts() {
        let base = Self.print(Self.host())
        let changes: [(String, (inout HostConfig) -> Void)] = [
            ("min_version", { $0.policy.minVersion = .tls1_3 }),
            ("max_version", { $0.policy.maxVersion = .tls1_2 }),
            ("ciphers", { $0.policy.ciphers = "ECDHE-RSA-AES256-GCM-SHA384" }),
            ("ciphersuites", { $0.policy.ciphersuites = "TLS_AES_256_GCM_SHA384" }),
            ("client_auth", { $0.policy.clientAuth = .required }),
            ("verify_depth", { $0.policy.verifyDepth = 5 }),
            ("session_tickets", { $0.policy.sessionTickets = false }),
            ("client_allow removed", { $0.policy.clientAllow.removeLast() }),
            ("client_allow reordered", { $0.policy.clientAllow.reverse() }),
            ("groups", { $0.policy.groups = "X25519" }),
            ("crl dropped", { $0.policy.crl = nil }),
            ("client_ca dropped", { $0.policy.clientCA = nil }),
            ("a second certificate", { $0.certificates.append($0.certificates[0]) }),
            ("names", { $0.names.append("api2.example.test") }),
        ]
        for (what, change) in changes {
            #expect(Self.print(Self.host(change)) != base, "\(what) must change the fingerprint")
        }
    }

    @Test func fileContentCountsNotItsPath() {
        let base = Self.print(Self.host())
        for path in Self.files.keys {
            var files = Self.files
            files[path]! += Array(" rewritten".utf8)
            #expect(Self.print(Self.host(), files) != base, "new bytes in \(path)")
        }
        var unreadable = Self.files
        unreadable["/c/clients.crl"] = nil
        #expect(Self.print(Self.host(), unreadable) != base)
        // The same bytes under another path: the same policy.
        var moved = Self.files
        moved["/d/clients.crl"] = moved["/c/clients.crl"]
        #expect(Self.print(Self.host { $0.policy.crl = "/d/clients.crl" }, moved) == base)
    }

    @Test func hostsToDrainByName() {
        let api = Self.print(Self.host()), other = Self.print(Self.host { $0.names = ["other.example.test"] })
        let old = [(name: "api.example.test", fingerprint: api), (name: "other.example.test", fingerprint: other)]
        #expect(ReloadJudgement.hostsToDrain(old: old, new: ["api.example.test": api, "other.example.test": other]) == [false, false])
        let raised = Self.print(Self.host { $0.policy.minVersion = .tls1_3 })
        #expect(ReloadJudgement.hostsToDrain(old: old, new: ["api.example.test": raised, "other.example.test": other]) == [true, false])
        #expect(ReloadJudgement.hostsToDrain(old: old, new: ["other.example.test": other]) == [true, false], "a host that is gone")
    }

    @Test func readsTheFilesAtLoad() {
        let f = Fixture()
        let h = Self.host {
            $0.certificates = [CertificateFiles(certificate: f.path("certs/api.pem"), key: f.path("certs/api.key"), location: Self.loc)]
            $0.policy.clientCA = f.path("certs/clients-ca.pem")
            $0.policy.crl = nil
        }
        let before = HostFingerprint.reading(h)
        #expect(HostFingerprint.reading(h) == before)
        f.write("certs/clients-ca.pem", "another CA\n")
        #expect(HostFingerprint.reading(h) != before)
    }
}
