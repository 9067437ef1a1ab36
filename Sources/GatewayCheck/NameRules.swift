import GatewayConfig
import GatewayTLS

// GW.Cert.NameMismatch (every name of a host block against each of its certificates) and
// GW.Host.Fronting (two host blocks with different policies whose certificates share a name).
extension PolicyCheck {
    func nameFindings() -> [Finding] {
        mismatches() + fronting()
    }

    /// The leaf (first certificate) of each certificate file of a host, with its directive.
    private func leaves(_ h: HostConfig) -> [(files: CertificateFiles, leaf: CertificateInfo)] {
        h.certificates.compactMap { c in certificates[c.certificate]?.first.map { (c, $0) } }
    }

    private func mismatches() -> [Finding] {
        var out: [Finding] = []
        for h in config.hosts {
            for (files, leaf) in leaves(h) {
                let missing = h.names.filter {
                    !NameMatching.covers(dnsNames: leaf.dnsNames, ipAddresses: leaf.ipAddresses, name: $0)
                }
                guard !missing.isEmpty else { continue }
                let sans = leaf.subjectAltNames.isEmpty ? "no subject alternative names (clients ignore the CN)"
                                                        : "SANs " + leaf.subjectAltNames.map(\.description).joined(separator: ", ")
                out.append(Finding("GW.Cert.NameMismatch", at: files.location,
                                   "certificate \(Self.describe(leaf)) of host \(h.displayName) does not cover "
                                   + missing.joined(separator: ", ") + "; it has \(sans)"))
            }
        }
        return out
    }

    private func fronting() -> [Finding] {
        var out: [Finding] = []
        let hosts = config.hosts
        for j in hosts.indices {
            for i in 0..<j {
                let differing = Self.policyDifferences(hosts[i].policy, hosts[j].policy)
                guard !differing.isEmpty, let shared = sharedName(hosts[i], hosts[j]) else { continue }
                let at = hosts[j].certificates.first?.location ?? hosts[j].location
                out.append(Finding("GW.Host.Fronting", at: at,
                                   "certificates of host \(hosts[j].displayName) and host \(hosts[i].displayName) (\(hosts[i].location.file):\(hosts[i].location.line)) "
                                   + "both cover \(shared), but their policies differ in \(differing.joined(separator: ", ")): "
                                   + "a client that reuses a connection across them gets 421"))
            }
        }
        return out
    }

    /// A name both hosts' certificates cover, or nil.
    private func sharedName(_ a: HostConfig, _ b: HostConfig) -> String? {
        for (_, x) in leaves(a) {
            for (_, y) in leaves(b) {
                for p in x.dnsNames {
                    for q in y.dnsNames { if let n = NameMatching.overlap(p, q) { return n } }
                }
                for ip in x.ipAddresses where y.ipAddresses.contains(ip) { return ip }
            }
        }
        return nil
    }

    /// The fields of the 421 rule that differ (one definition, in GatewayConfig).
    static func policyDifferences(_ a: TLSPolicy, _ b: TLSPolicy) -> [String] { a.misdirectionDifferences(from: b) }
}
