// `host NAME... { }` and `listen ADDR:PORT { }`. Names are normalised here;
// references between blocks (route -> backend, default_host -> host) are
// checked in Validation once every block is read.

/// A name of a host block, normalised, with where it was written.
struct HostName {
    var name: String
    var location: SourceLocation
}

struct RouteDraft {
    var route: Route
    /// The backend name argument, where an undefined backend is reported.
    var backendArgument: Argument
}

struct HostBlock: PolicyBlock {
    var names: [HostName] = []
    var certificates: [CertificateFiles] = []
    var overrides = TLSPolicyOverrides()
    var routes: [RouteDraft] = []
    var compression = CompressionSettings()
    var jwt: JWTConfig?
    var location: SourceLocation
    var seen: SeenDirectives = [:]

    init(_ d: Directive, _ ctx: LoadContext) {
        location = d.location
        for arg in d.args {
            switch Values.hostName(arg.text) {
            case .success(let name): names.append(HostName(name: name, location: arg.location))
            case .failure(let invalid): ctx.error(arg.location, invalid.reason)
            }
        }
        seen = Block.apply(d.block ?? [], rules: Self.rules, context: "host", to: &self, ctx)
    }

    static let rules: [String: Rule<HostBlock>] = PolicyRules.rules().merging([
        "certificate": Rule(2...2, repeatable: true) { h, d, ctx in
            h.certificates.append(ctx.certificateFiles(d))
        },
        "jwt": Rule(0...0, block: .required) { h, d, ctx in h.jwt = JWTBlock.read(d, ctx) },
        "route": Rule(3...6, repeatable: true) { h, d, ctx in
            if let route = route(d, ctx) { h.add(route, ctx) }
        },
        "compress": Rule(1...1) { h, d, ctx in
            if let on = ctx.flag(d) { h.compression.enabled = on }
        },
        "compress_types": Rule(1...Int.max) { h, d, _ in
            h.compression.types = d.args.map { $0.text.lowercased() }
        },
        "compress_min_length": Rule(1...1) { h, d, ctx in
            if let n = ctx.size(d) { h.compression.minLength = n }
        },
    ]) { a, _ in a }

    /// `route PREFIX backend NAME [strip_prefix] [jwt off]`.
    private static func route(_ d: Directive, _ ctx: LoadContext) -> RouteDraft? {
        var ok = true
        let prefix = d.args[0]
        if !prefix.text.hasPrefix("/") {
            ctx.error(prefix.location, "route prefix \"\(prefix.text)\" must start with \"/\"")
            ok = false
        }
        if d.args[1].text != "backend" {
            ctx.badValue(d, d.args[1], expected: "backend (route PREFIX backend NAME [strip_prefix])")
            ok = false
        }
        var strip = false, jwtOff = false
        var i = 3
        while i < d.args.count {
            let a = d.args[i]
            if a.text == "strip_prefix" && !strip {
                strip = true
            } else if a.text == "jwt" && !jwtOff && i + 1 < d.args.count && d.args[i + 1].text == "off" {
                jwtOff = true
                i += 1
            } else {
                ctx.badValue(d, a, expected: a.text == "jwt" ? "jwt off" : "strip_prefix or jwt off")
                ok = false
                break
            }
            i += 1
        }
        guard ok else { return nil }
        return RouteDraft(route: Route(prefix: prefix.text, backend: d.args[2].text, stripPrefix: strip, jwtOff: jwtOff, location: d.location),
                          backendArgument: d.args[2])
    }

    private mutating func add(_ draft: RouteDraft, _ ctx: LoadContext) {
        if let other = routes.first(where: { $0.route.prefix == draft.route.prefix }) {
            ctx.error(draft.route.location, "duplicate route \"\(draft.route.prefix)\" (first at \(other.route.location))")
            return
        }
        routes.append(draft)
    }

    /// The model value, with the effective policy.
    func config(defaults: TLSPolicy) -> HostConfig {
        // Longest prefix first; equal lengths keep file order (they cannot be equal strings).
        let sorted = routes.enumerated().sorted {
            ($0.element.route.prefix.utf8.count, -$0.offset) > ($1.element.route.prefix.utf8.count, -$1.offset)
        }.map(\.element.route)
        var host = HostConfig(names: names.map(\.name), certificates: certificates, policy: overrides.applied(to: defaults),
                              routes: sorted, compression: compression, location: location)
        host.directiveLocations = seen
        host.jwt = jwt
        return host
    }
}

struct ListenBlock {
    var config: ListenConfig
    var defaultHost: Argument?
    var seen: SeenDirectives = [:]

    static let rules: [String: Rule<ListenBlock>] = [
        "default_host": Rule(1...1) { l, d, ctx in
            switch Values.hostName(d.args[0].text) {
            case .success(let name):
                l.config.defaultHost = name
                l.defaultHost = d.args[0]
            case .failure(let invalid): ctx.error(d.args[0].location, invalid.reason)
            }
        },
        "unknown_sni": Rule(1...1) { l, d, ctx in
            if let v = ctx.choice(d, 0, ["reject", "default"], UnknownSNI.init(rawValue:)) { l.config.unknownSNI = v }
        },
        "public_port": Rule(1...1) { l, d, ctx in
            if let n = ctx.integer(d, in: 1...65_535) { l.config.publicPort = UInt16(n) }
        },
        "allow": Rule(1...1, repeatable: true) { l, d, ctx in l.addRule(allow: true, d, ctx) },
        "deny": Rule(1...1, repeatable: true) { l, d, ctx in l.addRule(allow: false, d, ctx) },
        "proxy_protocol": Rule(1...1) { l, d, ctx in
            if let on = ctx.flag(d) { l.config.proxyProtocol = on }
        },
        // The load balancers allowed to send a PROXY header; anyone else is refused before the handshake.
        "proxy_protocol_from": Rule(1...Int.max, repeatable: true) { l, d, ctx in
            for i in d.args.indices {
                if let n = ctx.value(d, i, Values.network, expected: "a CIDR (10.0.0.0/8) or an IP address") {
                    l.config.proxyProtocolFrom.append(n)
                }
            }
        },
    ]

    /// nil when the address is bad (already reported).
    init?(_ d: Directive, _ ctx: LoadContext) {
        let text = d.args[0].text
        // A bare port listens on every IPv4 address, as in nginx.
        let parsed = Values.integer(text, in: 1...65535).map { ("0.0.0.0", UInt16($0)) } ?? Values.listenAddress(text)
        guard let (address, port) = parsed else {
            ctx.badValue(d, d.args[0], expected: "ADDR:PORT with an IPv4 address, [IPv6] or *, e.g. 0.0.0.0:8443")
            return nil
        }
        config = ListenConfig(address: address, port: port, location: d.location)
        seen = Block.apply(d.block ?? [], rules: Self.rules, context: "listen", to: &self, ctx)
    }

    /// `allow`/`deny` CIDR, a bare IP or `all`; first match wins at run time.
    private mutating func addRule(allow: Bool, _ d: Directive, _ ctx: LoadContext) {
        if d.args[0].text == "all" {
            config.access.append(AccessRule(allow: allow, network: nil))
        } else if let network = ctx.value(d, 0, Values.network, expected: "a CIDR (10.0.0.0/8), an IP address or all") {
            config.access.append(AccessRule(allow: allow, network: network))
        }
    }
}
