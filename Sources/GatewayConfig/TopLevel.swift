// The top level of the file and `limits { }`. Blocks read into drafts that keep
// where things were written; Validation turns the drafts into the model.

struct ConfigDraft {
    var config = GatewayConfiguration()
    var defaults = TLSDefaultsBlock()
    var listeners: [ListenBlock] = []
    var hosts: [HostBlock] = []
    var backends: [BackendBlock] = []
    var seen: SeenDirectives = [:]
}

enum TopLevel {
    static let rules: [String: Rule<ConfigDraft>] = [
        "workers": Rule(1...1) { c, d, ctx in
            if d.args[0].text == "auto" { c.config.workers = nil; return }
            if let n = ctx.value(d, 0, { Values.integer($0, in: 1...1024) }, expected: "auto or an integer from 1 to 1024") {
                c.config.workers = n
            }
        },
        "error_log": Rule(1...2) { c, d, ctx in
            c.config.errorLog = logTarget(d, ctx)
            if d.args.count == 2, let level = ctx.choice(d, 1, ["debug", "info", "warn", "error"], logLevel) {
                c.config.errorLogLevel = level
            }
        },
        "access_log": Rule(1...2) { c, d, ctx in
            c.config.accessLog = logTarget(d, ctx)
            if d.args.count == 2, let format = ctx.choice(d, 1, ["json", "text"], LogFormat.init(rawValue:)) {
                c.config.accessLogFormat = format
            }
        },
        "admin": Rule(1...1) { c, d, ctx in c.config.admin = adminAddress(d, ctx) },
        "admin_token_file": Rule(1...1) { c, d, ctx in
            c.config.adminTokenFile = ctx.readablePath(d, what: "admin token")
            c.config.adminTokenLocation = d.location
        },
        "shutdown_timeout": Rule(1...1) { c, d, ctx in
            if let ms = ctx.durationMs(d) { c.config.shutdownTimeoutMs = ms }
        },
        "reload_on_change": Rule(1...1) { c, d, ctx in
            if let on = ctx.flag(d) { c.config.reloadOnChange = on }
        },
        "allow_insecure_key_permissions": Rule(1...1) { c, d, ctx in
            if let on = ctx.flag(d) { c.config.allowInsecureKeyPermissions = on }
        },
        "limits": Rule(0...0, block: .required) { c, d, ctx in
            Block.apply(d.block ?? [], rules: LimitsBlock.rules, context: "limits", to: &c.config.limits, ctx)
        },
        "tls_defaults": Rule(0...0, block: .required) { c, d, ctx in
            c.defaults.seen = Block.apply(d.block ?? [], rules: TLSDefaultsBlock.rules, context: "tls_defaults",
                                          to: &c.defaults, ctx)
        },
        "listen": Rule(1...1, repeatable: true, block: .optional) { c, d, ctx in
            if let listen = ListenBlock(d, ctx) { c.listeners.append(listen) }
        },
        "host": Rule(1...Int.max, repeatable: true, block: .required) { c, d, ctx in
            c.hosts.append(HostBlock(d, ctx))
        },
        "backend": Rule(1...1, repeatable: true, block: .required) { c, d, ctx in
            c.backends.append(BackendBlock(d, ctx))
        },
    ]

    /// `off | stdout | stderr | PATH` (a path relative to the file naming it).
    private static func logTarget(_ d: Directive, _ ctx: LoadContext) -> LogTarget {
        switch d.args[0].text {
        case "off": .off
        case "stdout": .stdout
        case "stderr": .stderr
        default: .file(ctx.path(d))
        }
    }

    private static func logLevel(_ text: String) -> LogLevel? {
        switch text {
        case "debug": .debug
        case "info": .info
        case "warn": .warn
        case "error": .error
        default: nil
        }
    }

    /// `ADDR:PORT` (IPv4, `[v6]`, `*`, `localhost`) or `unix:PATH`.
    private static func adminAddress(_ d: Directive, _ ctx: LoadContext) -> AdminAddress? {
        let text = d.args[0].text
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else {
                ctx.badValue(d, d.args[0], expected: "ADDR:PORT or unix:PATH")
                return nil
            }
            return .unix(FileSystem.resolve(path, relativeTo: d.args[0].location.file))
        }
        let spelled = text.hasPrefix("localhost:") ? "127.0.0.1" + text.dropFirst("localhost".count) : text
        guard let (address, port) = Values.listenAddress(spelled) else {
            ctx.badValue(d, d.args[0], expected: "ADDR:PORT (127.0.0.1:9901, [::1]:9901) or unix:PATH")
            return nil
        }
        return .tcp(address: address, port: port)
    }
}

/// `limits { }`: written straight into the model's `Limits`.
enum LimitsBlock {
    static let rules: [String: Rule<Limits>] = [
        "max_connections": Rule(1...1) { l, d, ctx in
            if let n = ctx.integer(d, in: 1...10_000_000) { l.maxConnections = n }
        },
        "handshake_timeout": Rule(1...1) { l, d, ctx in
            if let ms = ctx.durationMs(d) { l.handshakeTimeoutMs = ms }
        },
        "header_timeout": Rule(1...1) { l, d, ctx in
            if let ms = ctx.durationMs(d) { l.headerTimeoutMs = ms }
        },
        "idle_timeout": Rule(1...1) { l, d, ctx in
            if let ms = ctx.durationMs(d) { l.idleTimeoutMs = ms }
        },
        "max_header_size": Rule(1...1) { l, d, ctx in
            if let n = ctx.size(d) { l.maxHeaderSize = n }
        },
        "max_headers": Rule(1...1) { l, d, ctx in
            if let n = ctx.integer(d, in: 1...100_000) { l.maxHeaders = n }
        },
        "max_body_size": Rule(1...1) { l, d, ctx in
            if let n = ctx.size(d) { l.maxBodySize = n }
        },
        "max_uri_size": Rule(1...1) { l, d, ctx in
            if let n = ctx.size(d) { l.maxURISize = n }
        },
        "http2_max_concurrent_streams": Rule(1...1) { l, d, ctx in
            if let n = ctx.integer(d, in: 1...100_000) { l.http2MaxConcurrentStreams = n }
        },
        "max_requests_per_connection": Rule(1...1) { l, d, ctx in
            if let n = ctx.integer(d, in: 1...100_000_000) { l.maxRequestsPerConnection = n }
        },
    ]
}
