// The TLS policy directives shared by `tls_defaults` and `host`: both write
// `TLSPolicyOverrides`, and a host's effective policy is its overrides applied
// to the defaults (SPEC §4), so one table serves both blocks.

protocol PolicyBlock: Sendable {
    var overrides: TLSPolicyOverrides { get set }
}

enum PolicyRules {
    static func rules<T: PolicyBlock>() -> [String: Rule<T>] {
        [
            "min_version": Rule(1...1) { t, d, ctx in
                if let v = ctx.tlsVersion(d) { t.overrides.minVersion = v }
            },
            "max_version": Rule(1...1) { t, d, ctx in
                if let v = ctx.tlsVersion(d) { t.overrides.maxVersion = v }
            },
            // Cipher strings are left to OpenSSL, which knows its own names.
            "ciphers": Rule(1...1) { t, d, _ in t.overrides.ciphers = d.args[0].text },
            "ciphersuites": Rule(1...1) { t, d, _ in t.overrides.ciphersuites = d.args[0].text },
            "client_auth": Rule(1...1) { t, d, ctx in
                if let v = ctx.choice(d, 0, ["off", "optional", "required"], ClientAuth.init(rawValue:)) {
                    t.overrides.clientAuth = v
                }
            },
            "client_ca": Rule(1...1) { t, d, ctx in t.overrides.clientCA = ctx.readablePath(d, what: "client CA") },
            "verify_depth": Rule(1...1) { t, d, ctx in
                if let n = ctx.integer(d, in: 0...100) { t.overrides.verifyDepth = n }
            },
            "crl": Rule(1...1) { t, d, ctx in t.overrides.crl = ctx.readablePath(d, what: "CRL") },
            "session_tickets": Rule(1...1) { t, d, ctx in
                if let v = ctx.flag(d) { t.overrides.sessionTickets = v }
            },
            // `client_allow KIND VALUE;`, repeatable: the block's lines together replace the inherited list.
            "client_allow": Rule(2...2, repeatable: true) { t, d, ctx in
                switch ClientAllowEntry.parse(kind: d.args[0].text, value: d.args[1].text) {
                case .success(let e): t.overrides.clientAllow = (t.overrides.clientAllow ?? []) + [e]
                case .failure(let f):
                    let knownKind = ["san_dns", "san_uri", "cn", "spki_sha256"].contains(d.args[0].text)
                    ctx.error(d.args[knownKind ? 1 : 0].location, f.message)
                }
            },
            "http2": Rule(1...1) { t, d, ctx in
                if let v = ctx.flag(d) { t.overrides.http2 = v }
            },
            // Checked against this OpenSSL with a real SSL_CTX, so a typo fails the load, not a handshake.
            "groups": Rule(1...1) { t, d, ctx in
                if let why = GroupList.problem(d.args[0].text) { ctx.error(d.args[0].location, why) } else {
                    t.overrides.groups = d.args[0].text
                }
            },
        ]
    }

    /// `min_version` above `max_version` in an effective policy, reported where
    /// the block that set one of them says so (else at `fallback`).
    static func checkVersions(_ policy: TLSPolicy, seen: SeenDirectives, fallback: SourceLocation,
                              _ ctx: LoadContext) {
        guard policy.minVersion > policy.maxVersion else { return }
        let at = seen["min_version"] ?? seen["max_version"] ?? fallback
        ctx.error(at, "min_version \(policy.minVersion) is above max_version \(policy.maxVersion)")
    }
}

/// `tls_defaults { ... }`: the policy every host inherits, plus the fleet's ticket keys.
struct TLSDefaultsBlock: PolicyBlock {
    var overrides = TLSPolicyOverrides()
    var ticketKeyFile: String?
    var seen: SeenDirectives = [:]

    static let rules: [String: Rule<TLSDefaultsBlock>] = PolicyRules.rules().merging([
        "ticket_key_file": Rule(1...1) { t, d, ctx in t.ticketKeyFile = ctx.readablePath(d, what: "ticket key") },
    ]) { a, _ in a }
}
