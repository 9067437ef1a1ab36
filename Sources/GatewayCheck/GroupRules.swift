import GatewayConfig
import GatewayTLS

// GW.Host.Groups: a host whose key-exchange groups are all below 128-bit strength, as this
// OpenSSL rates them (KeyExchangeGroups), reported once where the `groups` line stands.
extension PolicyCheck {
    static let strongGroupBits = 128

    func groupFindings() -> [Finding] {
        var bitsByName: [String: Int?] = [:]
        func bits(_ n: String) -> Int? {
            if let known = bitsByName[n] { return known }
            let b = KeyExchangeGroups.securityBits(n)
            bitsByName[n] = b
            return b
        }
        let weak = config.hosts.filter { h in
            !KeyExchangeGroups.names(h.policy.groups).contains { (bits($0) ?? 0) >= Self.strongGroupBits }
        }
        return grouped(weak, by: "groups").map { at, hosts in
            let groups = hosts[0].policy.groups
            let rated = KeyExchangeGroups.names(groups).map { n in bits(n).map { "\(n) \($0)-bit" } ?? "\(n) unknown strength" }
            return Finding("GW.Host.Groups", at: at,
                           "groups \(groups) for \(Self.hostList(hosts)): no group of at least \(Self.strongGroupBits)-bit strength (\(rated.joined(separator: ", ")))")
        }
    }
}
