import Glibc
import GatewayConfig
import GatewayTLS

// GW.Cert.Expired, GW.Cert.Expiring, GW.Cert.WeakKey and GW.Key.Permissions.
extension PolicyCheck {
    static let day: Int64 = 86_400

    /// Every certificate file of the configuration with where it is named (shared with `gateway certs`).
    static func certificateUses(_ config: GatewayConfiguration) -> [CertificateUse] { CertificateInventory.uses(config) }

    static func roleText(_ u: CertificateUse) -> String {
        switch u.role { case .server: "host"; case .clientCA: "client CA"; case .backendCA: "backend CA"; case .backendClient: "backend client" }
    }
    static func ownerText(_ u: CertificateUse) -> String {
        u.role == .server || u.role == .clientCA ? "host \(u.owner)" : "backend \(u.owner)"
    }

    func certificateFindings() -> [Finding] {
        var out: [Finding] = []
        for use in Self.certificateUses(config) {
            for cert in certificates[use.path] ?? [] {
                let what = "\(Self.roleText(use)) certificate \(Self.describe(cert)) of \(Self.ownerText(use))"
                if let f = validity(cert, what, use.location) { out.append(f) }
                if use.presented { out += weakness(cert, what, use.location) }
            }
        }
        return out
    }

    private func validity(_ cert: CertificateInfo, _ what: String, _ at: SourceLocation) -> Finding? {
        let left = cert.notAfter - now
        let date = Self.utcDate(cert.notAfter)
        if left <= 0 {
            let ago = (now - cert.notAfter) / Self.day
            return Finding("GW.Cert.Expired", at: at, "\(what) expired on \(date) ("
                           + (ago == 0 ? "today" : "\(ago) day\(ago == 1 ? "" : "s") ago") + ")")
        }
        guard left < 30 * Self.day else { return nil }
        let days = cert.daysLeft(now: now)
        return Finding("GW.Cert.Expiring", left < 14 * Self.day ? .high : .medium, at: at,
                       "\(what) expires on \(date) (in \(days) day\(days == 1 ? "" : "s"))")
    }

    private func weakness(_ cert: CertificateInfo, _ what: String, _ at: SourceLocation) -> [Finding] {
        var out: [Finding] = []
        if cert.keyType == .rsa, cert.keyBits < 2048 {
            out.append(Finding("GW.Cert.WeakKey", at: at, "\(what) has an \(cert.keyDescription) key (under 2048 bits)"))
        }
        // A self-signed certificate's own signature is never what a client relies on.
        if !cert.isSelfSigned, let digest = cert.signatureDigest, digest == "SHA1" || digest == "MD5" {
            out.append(Finding("GW.Cert.WeakKey", at: at, "\(what) is signed with \(digest) (\(cert.signatureAlgorithm))"))
        }
        return out
    }

    /// Group- or world-readable private keys and ticket key files.
    func keyPermissionFindings() -> [Finding] {
        var keys: [(path: String, owner: String, at: SourceLocation)] = []
        for h in config.hosts { for c in h.certificates { keys.append((c.key, "host \(h.displayName)", c.location)) } }
        for b in config.backends {
            if let c = b.tls.clientCertificate { keys.append((c.key, "backend \(b.name)", c.location)) }
        }
        if let file = config.ticketKeyFile {
            keys.append((file, "tls_defaults ticket_key_file", config.tlsDefaultsLocations["ticket_key_file"] ?? SourceLocation(file: config.files.first ?? "", line: 1, column: 1)))
        }
        var out: [Finding] = []
        var seen = Set<String>()
        for k in keys where seen.insert("\(k.path)|\(k.at)").inserted {
            var st = stat()
            guard stat(k.path, &st) == 0 else { continue }
            let mode = UInt32(st.st_mode) & 0o777
            guard mode & 0o044 != 0 else { continue }
            let who = mode & 0o004 != 0 ? "other users" : "its group"
            out.append(Finding("GW.Key.Permissions", at: k.at,
                               "key file \(k.path) of \(k.owner) is readable by \(who) (mode 0\(String(mode, radix: 8)))"))
        }
        return out
    }

    /// `CN=x (file.pem)`, or `CN=x (file.pem, #2)` for a later certificate of a chain file.
    static func describe(_ cert: CertificateInfo) -> String {
        let file = cert.file.split(separator: "/").last.map(String.init) ?? cert.file
        return "\(cert.subject.isEmpty ? "(no subject)" : cert.subject) (\(file)\(cert.index > 0 ? ", #\(cert.index + 1)" : ""))"
    }

    /// `2026-12-31 23:59 UTC`.
    static func utcDate(_ seconds: Int64) -> String {
        var t = time_t(seconds)
        var tm = Glibc.tm()
        gmtime_r(&t, &tm)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday)) \(two(tm.tm_hour)):\(two(tm.tm_min)) UTC"
    }
}
