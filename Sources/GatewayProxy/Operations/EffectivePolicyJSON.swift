import GatewayConfig

/// `/config` and `/hosts/NAME`: the effective configuration as JSON. Paths of certificates and
/// CAs are shown; private keys, key passwords and the admin token never are (not even their paths).
enum EffectivePolicyJSON {
    static func config(_ c: GatewayConfiguration, generation: Int) -> JSONValue {
        .object([
            ("generation", .int(generation)),
            ("files", .array(c.files.map { .string($0) })),
            ("sha256", .string(c.sha256)),
            ("workers", c.workers.map { .int($0) } ?? .string("auto")),
            ("listeners", .array(c.listeners.map(listener))),
            ("hosts", .array(c.hosts.map(host))),
            ("backends", .array(c.backends.map(backend))),
        ])
    }

    static func host(_ h: HostConfig) -> JSONValue {
        .object([
            ("names", .array(h.names.map { .string($0) })),
            ("certificates", .array(h.certificates.map { .string($0.certificate) })),
            ("tls", policy(h.policy)),
            ("routes", .array(h.routes.map { r in
                .object([("prefix", .string(r.prefix)), ("backend", .string(r.backend)), ("strip_prefix", .bool(r.stripPrefix)),
                         ("jwt", .bool(h.jwt != nil && !r.jwtOff))])
            })),
            ("compress", .bool(h.compression.enabled)),
            ("jwt", jwt(h.jwt)),
        ])
    }

    /// SPEC §13 settings: key ids, not keys (public keys, but the ids are what an operator checks).
    static func jwt(_ j: JWTConfig?) -> JSONValue {
        guard let j else { return .string(nil) }   // null: no jwt block
        return .object([
            ("issuer", .string(j.policy.issuer)),
            ("audiences", .array(j.policy.audiences.map { .string($0) })),
            ("jwks_file", .string(j.jwksFile)),
            ("key_ids", .array(j.verifier.keys.keyIDs.map { .string($0) })),
            ("algorithms", .array(j.policy.algorithms.map { .string($0.rawValue) })),
            ("clock_skew_s", .int(j.policy.clockSkewSeconds)),
            ("claim_headers", .array(j.claimHeaders.map { .object([("claim", .string($0.claim)), ("header", .string($0.header))]) })),
            ("bind_client_cert", .bool(j.policy.bindClientCert)),
        ])
    }

    /// `/hosts/NAME`: the block's names, certificates and effective TLS settings.
    static func hostTLS(_ h: HostConfig) -> JSONValue {
        .object([
            ("names", .array(h.names.map { .string($0) })),
            ("certificates", .array(h.certificates.map { .string($0.certificate) })),
            ("tls", policy(h.policy)),
            ("jwt", jwt(h.jwt)),
        ])
    }

    static func policy(_ p: TLSPolicy) -> JSONValue {
        .object([
            ("min_version", .string(p.minVersion.description)),
            ("max_version", .string(p.maxVersion.description)),
            ("ciphers", .string(p.ciphers)),
            ("ciphersuites", .string(p.ciphersuites)),
            ("groups", .string(p.groups)),
            ("client_auth", .string(p.clientAuth.rawValue)),
            ("client_ca", .string(p.clientCA)),
            // In the configuration's syntax, normalised (`san_uri spiffe://example.test/*`, san_dns
            // lower-cased); [] when any verified certificate is allowed. Names and SPKI hashes are
            // public: nothing to redact.
            ("client_allow", .array(p.clientAllow.map { .string($0.description) })),
            ("verify_depth", .int(p.verifyDepth)),
            ("crl", .string(p.crl)),
            ("session_tickets", .bool(p.sessionTickets)),
            ("http2", .bool(p.http2)),
        ])
    }

    private static func listener(_ l: ListenConfig) -> JSONValue {
        .object([
            ("address", .string(l.address.contains(":") ? "[\(l.address)]:\(l.port)" : "\(l.address):\(l.port)")),
            ("default_host", .string(l.defaultHost)),
            ("unknown_sni", .string(l.unknownSNI.rawValue)),
            ("access_rules", .int(l.access.count)),
        ])
    }

    private static func backend(_ b: BackendConfig) -> JSONValue {
        let ca: String? = switch b.tls.ca { case .system: "system"; case .file(let f): f }
        return .object([
            ("name", .string(b.name)),
            ("servers", .array(b.servers.map { s in
                .object([("url", .string("https://\(s.host.contains(":") ? "[\(s.host)]" : s.host):\(s.port)")), ("weight", .int(s.weight))])
            })),
            ("protocol", .string(b.protocol.rawValue)),
            ("balance", .string(b.balance.rawValue)),
            ("connect_timeout_ms", .int(b.connectTimeoutMs)),
            ("response_timeout_ms", .int(b.responseTimeoutMs)),
            ("keepalive", .int(b.keepalive)),
            ("max_fails", .int(b.maxFails)),
            ("fail_timeout_ms", .int(b.failTimeoutMs)),
            ("health_check", .string(b.healthCheck?.path)),
            ("tls", .object([
                ("min_version", .string(b.tls.minVersion.description)),
                ("max_version", .string(b.tls.maxVersion.description)),
                ("ciphers", .string(b.tls.ciphers)),
                ("ciphersuites", .string(b.tls.ciphersuites)),
                ("ca", .string(ca)),
                ("server_name", .string(b.tls.serverName)),
                ("client_certificate", .string(b.tls.clientCertificate?.certificate)),
                ("verify", .bool(b.tls.verify)),
                ("session_reuse", .bool(b.tls.sessionReuse)),
            ])),
        ])
    }
}
