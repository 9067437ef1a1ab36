// `backend NAME { server ...; tls { ... } }`. Backends are HTTPS only (SPEC §6):
// a server URL with any other scheme is a load error naming GW.Backend.HTTPS.

struct BackendBlock {
    var config: BackendConfig
    var seen: SeenDirectives = [:]

    init(_ d: Directive, _ ctx: LoadContext) {
        config = BackendConfig(name: d.args[0].text, servers: [], location: d.location)
        seen = Block.apply(d.block ?? [], rules: Self.rules, context: "backend", to: &self, ctx)
        config.directiveLocations = seen
        if config.servers.isEmpty && !seen.keys.contains("server") {
            ctx.error(d.location, "backend \"\(config.name)\" has no \"server\"")
        }
    }

    static let rules: [String: Rule<BackendBlock>] = [
        "server": Rule(1...3, repeatable: true) { b, d, ctx in
            if let server = server(d, ctx) { b.config.servers.append(server) }
        },
        "balance": Rule(1...1) { b, d, ctx in
            if let v = ctx.choice(d, 0, ["round_robin", "least_conn"], BalanceMethod.init(rawValue:)) { b.config.balance = v }
        },
        "connect_timeout": Rule(1...1) { b, d, ctx in
            if let v = ctx.durationMs(d) { b.config.connectTimeoutMs = v }
        },
        "response_timeout": Rule(1...1) { b, d, ctx in
            if let v = ctx.durationMs(d) { b.config.responseTimeoutMs = v }
        },
        "keepalive": Rule(1...1) { b, d, ctx in
            if let v = ctx.integer(d, in: 0...100_000) { b.config.keepalive = v }
        },
        "keepalive_timeout": Rule(1...1) { b, d, ctx in
            if let v = ctx.durationMs(d) { b.config.keepaliveTimeoutMs = v }
        },
        "max_fails": Rule(1...1) { b, d, ctx in
            if let v = ctx.integer(d, in: 0...100_000) { b.config.maxFails = v }
        },
        "fail_timeout": Rule(1...1) { b, d, ctx in
            if let v = ctx.durationMs(d) { b.config.failTimeoutMs = v }
        },
        "protocol": Rule(1...1) { b, d, ctx in
            if let v = ctx.choice(d, 0, ["http/1.1", "h2"], BackendProtocol.init(rawValue:)) { b.config.protocol = v }
        },
        "health_check": Rule(1...5) { b, d, ctx in
            b.config.healthCheck = healthCheck(d, ctx)
        },
        "tls": Rule(0...0, block: .required) { b, d, ctx in
            var tls = BackendTLSBlock(config: b.config.tls)
            tls.seen = Block.apply(d.block ?? [], rules: BackendTLSBlock.rules, context: "backend tls", to: &tls, ctx)
            tls.finish(backend: b.config.name, at: d.location, ctx)
            b.config.tls = tls.config
            b.config.tls.directiveLocations = tls.seen
        },
    ]

    /// `server https://HOST[:PORT] [weight N]`.
    private static func server(_ d: Directive, _ ctx: LoadContext) -> ServerConfig? {
        let url = d.args[0]
        var weight = 1
        if d.args.count > 1 {
            guard d.args.count == 3, d.args[1].text == "weight" else {
                ctx.error(d.args[1].location, "expected \"weight N\" after the server URL")
                return nil
            }
            guard let w = ctx.integer(d, 2, in: 1...1000) else { return nil }
            weight = w
        }
        let scheme = "https://"
        guard url.text.lowercased().hasPrefix(scheme) else {
            ctx.error(url.location, "backend server must be https:// (GW.Backend.HTTPS): \"\(url.text)\"")
            return nil
        }
        switch Values.backendAuthority(url.text.dropFirst(scheme.count)) {
        case .failure(let invalid):
            ctx.error(url.location, "invalid backend server URL \"\(url.text)\": \(invalid.reason)")
            return nil
        case .success(let (host, port)):
            var server = ServerConfig(host: host, port: port, location: d.location)
            server.weight = weight
            return server
        }
    }

    /// `health_check PATH [interval DUR] [timeout DUR]`.
    private static func healthCheck(_ d: Directive, _ ctx: LoadContext) -> HealthCheck? {
        let path = d.args[0]
        guard path.text.hasPrefix("/") else {
            ctx.error(path.location, "health_check path \"\(path.text)\" must start with \"/\"")
            return nil
        }
        var check = HealthCheck(path: path.text)
        var i = 1
        while i < d.args.count {
            let key = d.args[i]
            guard i + 1 < d.args.count, key.text == "interval" || key.text == "timeout" else {
                ctx.error(key.location, "expected \"interval DUR\" or \"timeout DUR\" after the health_check path, got \"\(key.text)\"")
                return nil
            }
            guard let ms = ctx.durationMs(d, i + 1) else { return nil }
            if key.text == "interval" { check.intervalMs = ms } else { check.timeoutMs = ms }
            i += 2
        }
        return check
    }
}

/// `tls { }` inside a backend: the backend's own client-side TLS settings.
struct BackendTLSBlock {
    var config: BackendTLS
    var seen: SeenDirectives = [:]

    static let rules: [String: Rule<BackendTLSBlock>] = [
        "min_version": Rule(1...1) { t, d, ctx in
            if let v = ctx.tlsVersion(d) { t.config.minVersion = v }
        },
        "max_version": Rule(1...1) { t, d, ctx in
            if let v = ctx.tlsVersion(d) { t.config.maxVersion = v }
        },
        "ciphers": Rule(1...1) { t, d, _ in t.config.ciphers = d.args[0].text },
        "ciphersuites": Rule(1...1) { t, d, _ in t.config.ciphersuites = d.args[0].text },
        "ca": Rule(1...1) { t, d, ctx in
            t.config.ca = d.args[0].text == "system" ? .system : .file(ctx.readablePath(d, what: "CA"))
        },
        "server_name": Rule(1...1) { t, d, ctx in
            switch Values.hostName(d.args[0].text) {
            case .success(let name) where !name.hasPrefix("*"): t.config.serverName = name
            case .success: ctx.error(d.args[0].location, "server_name cannot be a wildcard")
            case .failure(let invalid): ctx.error(d.args[0].location, invalid.reason)
            }
        },
        "certificate": Rule(2...2) { t, d, ctx in t.config.clientCertificate = ctx.certificateFiles(d) },
        "key_password_file": Rule(1...1) { t, d, ctx in
            t.config.keyPasswordFile = ctx.readablePath(d, what: "key password")
        },
        "verify": Rule(1...1) { t, d, ctx in
            guard let on = ctx.flag(d) else { return }
            t.config.verify = on
            t.config.verifyLocation = on ? nil : d.location
        },
        "session_reuse": Rule(1...1) { t, d, ctx in
            if let on = ctx.flag(d) { t.config.sessionReuse = on }
        },
    ]

    /// Checks that need the whole block.
    func finish(backend name: String, at location: SourceLocation, _ ctx: LoadContext) {
        if config.minVersion > config.maxVersion {
            ctx.error(seen["min_version"] ?? seen["max_version"] ?? location,
                      "min_version \(config.minVersion) is above max_version \(config.maxVersion)")
        }
        if let at = config.verifyLocation {
            ctx.warning(at, "backend \"\(name)\": certificate verification is off (GW.Backend.Verify)")
        }
        if config.keyPasswordFile != nil && config.clientCertificate == nil {
            ctx.error(seen["key_password_file"] ?? location, "key_password_file without a client \"certificate\"")
        }
    }
}
