// Drafts -> the model, with the checks that need more than one block:
// names unique, references resolved, effective policies coherent, private keys
// not exposed. Runs even after earlier errors, so one load reports them all.

struct Validation {
    let draft: ConfigDraft
    let ctx: LoadContext
    /// Where whole-file findings (no `listen`) are reported.
    let mainFile: String

    func run() -> GatewayConfiguration {
        var config = draft.config
        let defaults = draft.defaults.overrides.applied(to: TLSPolicy())
        PolicyRules.checkVersions(defaults, seen: draft.defaults.seen, fallback: start, ctx)
        config.tlsDefaults = defaults
        config.ticketKeyFile = draft.defaults.ticketKeyFile
        config.topLevelLocations = draft.seen
        config.tlsDefaultsLocations = draft.defaults.seen

        config.backends = backends()
        config.hosts = hosts(defaults: defaults, backendNames: config.backends.map(\.name))
        config.listeners = listeners(hostNames: Set(config.hosts.flatMap(\.names)))
        if draft.hosts.isEmpty { ctx.error(start, "no \"host\" block: the gateway has no certificate to serve") }
        checkAdmin(config)
        checkPrivateKeys(allowInsecure: config.allowInsecureKeyPermissions)
        return config
    }

    private var start: SourceLocation { SourceLocation(file: mainFile, line: 1, column: 1) }

    private func backends() -> [BackendConfig] {
        var byName: [String: SourceLocation] = [:]
        var out: [BackendConfig] = []
        for b in draft.backends {
            if let first = byName[b.config.name] {
                ctx.error(b.config.location, "duplicate backend \"\(b.config.name)\" (first at \(first))")
                continue
            }
            byName[b.config.name] = b.config.location
            out.append(b.config)
        }
        return out
    }

    private func hosts(defaults: TLSPolicy, backendNames: [String]) -> [HostConfig] {
        var byName: [String: SourceLocation] = [:]
        var out: [HostConfig] = []
        var allowReported = false
        for h in draft.hosts {
            for n in h.names {
                if let first = byName[n.name] {
                    ctx.error(n.location, "duplicate host name \"\(n.name)\" (first at \(first))")
                } else {
                    byName[n.name] = n.location
                }
            }
            let label = h.names.first.map { "host \"\($0.name)\"" } ?? "host"
            if h.certificates.isEmpty && !h.seen.keys.contains("certificate") {
                ctx.error(h.location, "\(label) has no \"certificate\"")
            }
            for r in h.routes where !backendNames.contains(r.route.backend) {
                let hint = Suggest.hint(for: r.route.backend, among: backendNames)
                ctx.error(r.backendArgument.location, "route to undefined backend \"\(r.route.backend)\"\(hint)")
            }
            if h.jwt == nil && !h.seen.keys.contains("jwt") {
                for r in h.routes where r.route.jwtOff {
                    ctx.error(r.route.location, "route \"\(r.route.prefix)\" says jwt off, but \(label) has no jwt block")
                }
            }
            let host = h.config(defaults: defaults)
            // A conflict wholly inherited is reported once, in tls_defaults.
            if h.seen["min_version"] != nil || h.seen["max_version"] != nil {
                PolicyRules.checkVersions(host.policy, seen: h.seen, fallback: h.location, ctx)
            }
            checkClientCA(host.policy, block: h, label: label)
            checkClientAllow(host.policy, block: h, label: label, reported: &allowReported)
            if !h.names.isEmpty { out.append(host) }
        }
        return out
    }

    /// `client_auth optional|required` needs a CA to verify against (GW.mTLS.NoCA).
    private func checkClientCA(_ policy: TLSPolicy, block h: HostBlock, label: String) {
        guard policy.clientAuth != .off, policy.clientCA == nil else { return }
        if let at = h.seen["client_auth"] {
            ctx.error(at, "client_auth \(policy.clientAuth.rawValue) without client_ca (GW.mTLS.NoCA)")
        } else {
            ctx.error(h.location, "\(label) inherits client_auth \(policy.clientAuth.rawValue) from tls_defaults "
                      + "but has no client_ca (GW.mTLS.NoCA)")
        }
    }

    /// `client_allow` only means something when client certificates are asked for (GW.mTLS.AllowWithoutAuth).
    /// Reported where the host says so, else once at the `tls_defaults` line both came from.
    private func checkClientAllow(_ policy: TLSPolicy, block h: HostBlock, label: String, reported: inout Bool) {
        guard !policy.clientAllow.isEmpty, policy.clientAuth == .off else { return }
        if let at = h.seen["client_allow"] {
            ctx.error(at, "client_allow on \(label) whose client_auth is off: no certificate is asked for (GW.mTLS.AllowWithoutAuth)")
        } else if let at = h.seen["client_auth"] {
            ctx.error(at, "client_auth off on \(label), which inherits client_allow from tls_defaults (GW.mTLS.AllowWithoutAuth)")
        } else if !reported, let at = draft.defaults.seen["client_allow"] {
            reported = true
            ctx.error(at, "client_allow in tls_defaults with client_auth off: no certificate is asked for (GW.mTLS.AllowWithoutAuth)")
        }
    }

    private func listeners(hostNames: Set<String>) -> [ListenConfig] {
        if draft.listeners.isEmpty && !draft.seen.keys.contains("listen") {
            ctx.error(start, "no \"listen\" directive: the gateway would accept no connection")
        }
        var byAddress: [String: SourceLocation] = [:]
        var out: [ListenConfig] = []
        for l in draft.listeners {
            let key = "\(l.config.address)|\(l.config.port)"
            if let first = byAddress[key] {
                ctx.error(l.config.location, "duplicate listen \(l.config.address):\(l.config.port) (first at \(first))")
                continue
            }
            byAddress[key] = l.config.location
            if let name = l.config.defaultHost, let arg = l.defaultHost, !hostNames.contains(name) {
                let hint = Suggest.hint(for: name, among: hostNames)
                ctx.error(arg.location, "default_host \"\(name)\" names no host block\(hint)")
            }
            if l.config.unknownSNI == .default, l.config.defaultHost == nil {
                ctx.error(l.seen["unknown_sni"] ?? l.config.location, "unknown_sni default needs a default_host")
            }
            // Anyone could claim any client address otherwise (GW.Listen.ProxyProtocolOpen).
            if l.config.proxyProtocol, l.config.proxyProtocolFrom.isEmpty, !l.seen.keys.contains("proxy_protocol_from") {
                ctx.error(l.seen["proxy_protocol"] ?? l.config.location,
                          "proxy_protocol on without proxy_protocol_from: any peer could claim any client address (GW.Listen.ProxyProtocolOpen)")
            }
            out.append(l.config)
        }
        return out
    }

    /// The admin endpoint is plain HTTP: off loopback it needs a token (GW.Admin.Exposed).
    private func checkAdmin(_ config: GatewayConfiguration) {
        guard let admin = config.admin, case .tcp(let address, _) = admin, config.adminTokenFile == nil,
              let at = draft.seen["admin"] else { return }
        if !admin.isLocalOnly {
            ctx.warning(at, "admin endpoint on \(address) without admin_token_file (GW.Admin.Exposed)")
        }
    }

    /// Keys readable by others are refused (unless allowed); by the group, reported (GW.Key.Permissions).
    private func checkPrivateKeys(allowInsecure: Bool) {
        var judged = Set<String>()
        for (path, location) in ctx.privateKeys {
            guard judged.insert("\(path)|\(location)").inserted,
                  let mode = FileSystem.permissions(path) else { continue }
            let octal = "0" + String(mode, radix: 8)
            if mode & 0o004 != 0 {
                if allowInsecure {
                    ctx.warning(location, "private key file \"\(path)\" is readable by other users (mode \(octal)); "
                                + "loaded because allow_insecure_key_permissions is on (GW.Key.Permissions)")
                } else {
                    ctx.error(location, "private key file \"\(path)\" is readable by other users (mode \(octal)) "
                              + "(GW.Key.Permissions); chmod 600 it, or set allow_insecure_key_permissions on")
                }
            } else if mode & 0o040 != 0 {
                ctx.warning(location, "private key file \"\(path)\" is readable by its group (mode \(octal)) (GW.Key.Permissions)")
            }
        }
    }
}
