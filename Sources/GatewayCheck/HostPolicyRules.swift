import GatewayConfig
import GatewayTLS

// GW.Host.MinTLS and GW.Host.WeakCipher (each host's effective policy), and the whole-file
// rules GW.Ticket.NoSharedKey and GW.Admin.Exposed.
extension PolicyCheck {
    func hostPolicyFindings() -> [Finding] {
        var out: [Finding] = []
        let lowFloor = config.hosts.filter { $0.policy.minVersion < .tls1_2 }
        for (at, hosts) in grouped(lowFloor, by: "min_version") {
            let floors = Set(hosts.map(\.policy.minVersion)).sorted().map(\.description).joined(separator: ", ")
            let inherited = hosts[0].directiveLocations["min_version"] == nil ? " (inherited from tls_defaults)" : ""
            out.append(Finding("GW.Host.MinTLS", at: at,
                               "\(Self.hostList(hosts)) accept\(hosts.count == 1 ? "s" : "") \(floors)\(inherited)"))
        }

        var weakByHost: [(HostConfig, [String])] = []
        for h in config.hosts {
            let suites = (try? CipherInspection.enabledSuites(h.policy)) ?? []
            let weak = suites.compactMap { s in
                let why = CipherJudgement.weaknesses(s)
                return why.isEmpty ? nil : "\(s.name) (\(why.joined(separator: ", ")))"
            }
            if !weak.isEmpty { weakByHost.append((h, weak)) }
        }
        for (at, hosts) in grouped(weakByHost.map(\.0), by: "ciphers") {
            var names: [String] = []
            for (h, weak) in weakByHost where hosts.contains(h) {
                for w in weak where !names.contains(w) { names.append(w) }
            }
            let shown = names.prefix(6).joined(separator: "; ") + (names.count > 6 ? "; and \(names.count - 6) more" : "")
            out.append(Finding("GW.Host.WeakCipher", at: at,
                               "ciphers enables \(names.count) weak suite\(names.count == 1 ? "" : "s") for \(Self.hostList(hosts)): \(shown)"))
        }
        return out
    }

    func topLevelFindings() -> [Finding] {
        var out: [Finding] = []
        let addresses = Set(config.listeners.map { "\($0.address)|\($0.port)" })
        let ticketsOn = config.hosts.isEmpty ? config.tlsDefaults.sessionTickets : config.hosts.contains { $0.policy.sessionTickets }
        if ticketsOn, addresses.count > 1, config.ticketKeyFile == nil {
            let at = config.tlsDefaultsLocations["session_tickets"] ?? config.listeners[1].location
            out.append(Finding("GW.Ticket.NoSharedKey", at: at,
                               "session tickets are on for \(addresses.count) listen addresses without ticket_key_file: "
                               + "each process generates its own keys, so tickets do not survive a restart or cross a fleet"))
        }
        if let admin = config.admin, !admin.isLocalOnly, config.adminTokenFile == nil,
           case .tcp(let address, let port) = admin {
            out.append(Finding("GW.Admin.Exposed", at: config.topLevelLocations["admin"] ?? SourceLocation(file: config.files.first ?? "", line: 1, column: 1),
                               "admin endpoint on \(address.contains(":") ? "[\(address)]" : address):\(port) answers anyone who can reach it: plain HTTP, no admin_token_file"))
        }
        return out
    }
}

/// Why a cipher suite is weak, from OpenSSL's own properties of it (not its name).
enum CipherJudgement {
    static func weaknesses(_ s: CipherSuiteInfo) -> [String] {
        var why: [String] = []
        switch s.keyExchange {
        case .rsa, .rsaPSK: why.append("RSA key exchange, no forward secrecy")
        case let kx where !kx.hasForwardSecrecy: why.append("no forward secrecy")
        default: break
        }
        if s.anonymous { why.append("no server authentication") }
        switch s.encryption {
        case .none: why.append("NULL encryption")
        case .rc4: why.append("RC4")
        case .tripleDES: why.append("3DES")
        case .des: why.append("DES")
        case .modern, .other: break
        }
        if s.encryption == .modern || s.encryption == .other, s.bits < 128 { why.append("\(s.bits)-bit (export-grade) encryption") }
        if !s.isAEAD, s.encryption != .none, s.encryption != .rc4 { why.append("CBC, not AEAD") }
        return why
    }
}
