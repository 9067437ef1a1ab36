import GatewayConfig

/// Each host's effective TLS policy as one readable table, printed at start-up so an operator
/// sees what inheritance produced (SPEC §4) without reading the configuration twice.
enum PolicyTable {
    static func render(_ config: GatewayConfiguration) -> String {
        let header = ["host", "versions", "TLS1.2 ciphers", "TLS1.3 suites", "groups", "client_auth", "client_ca", "client_allow",
                      "tickets", "http2", "jwt", "certificates"]
        var rows = [header]
        for h in config.hosts {
            let p = h.policy
            rows.append([
                h.names.joined(separator: " "),
                p.minVersion == p.maxVersion ? "\(p.minVersion)" : "\(p.minVersion)-\(p.maxVersion)",
                p.ciphers == TLSPolicy.defaultCiphers ? "default (ECDHE+AEAD)" : p.ciphers,
                p.ciphersuites == TLSPolicy.defaultCiphersuites ? "default" : p.ciphersuites,
                p.groups,   // short enough to show as is, and which groups are allowed is the point
                p.clientAuth.rawValue,
                p.clientCA.map(lastComponent) ?? "-",
                // Entries contain a space (`san_uri spiffe://example.test/*`): a comma separates them.
                p.clientAllow.isEmpty ? "-" : p.clientAllow.map(\.description).joined(separator: ", "),
                p.sessionTickets ? "on" : "off",
                p.http2 ? "on" : "off",
                jwt(h.jwt),
                String(h.certificates.count),
            ])
        }
        let widths = header.indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
        return rows.map { row in
            row.indices.map { i in row[i] + String(repeating: " ", count: widths[i] - row[i].count) }
                .joined(separator: "  ").trimmingTrailingSpaces()
        }.joined(separator: "\n")
    }

    /// `iss aud=A,B keys=K1,K2 bound`: enough to see which issuer and keys a host trusts.
    private static func jwt(_ j: JWTConfig?) -> String {
        guard let j else { return "-" }
        return "\(j.policy.issuer) aud=\(j.policy.audiences.joined(separator: ",")) keys=\(j.verifier.keys.keyIDs.joined(separator: ","))"
            + (j.policy.bindClientCert ? " bound" : " unbound")
    }

    private static func lastComponent(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }
}

private extension String {
    func trimmingTrailingSpaces() -> String {
        var s = Substring(self)
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
