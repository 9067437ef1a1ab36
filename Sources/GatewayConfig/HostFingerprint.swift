// What an open connection's right to go on rests on (SPEC §7.2): its host block's effective
// TLS policy and the *content* of the files that policy reads. A reload compares a host's
// fingerprint in the snapshot a connection started on with the same host (by name) in the new
// one; a difference, or a host that is gone, closes the connection after its exchange.

/// A digest over one host block's names, every field of its effective `TLSPolicy`, and the
/// SHA-256 of the bytes of its certificates, keys, client CA and CRL (read at load, off the
/// event loops). Paths are left out on purpose: a file moved with the same bytes is the same
/// policy, a file rewritten in place (a new CRL) is not.
public struct HostFingerprint: Sendable, Hashable, CustomStringConvertible {
    /// Lower-case hex SHA-256 of the canonical encoding below.
    public let digest: String

    /// `read`: a file's bytes, nil when it cannot be read (then the fingerprint says so, and
    /// differs from any readable content).
    public init(_ host: HostConfig, read: (String) -> [UInt8]?) {
        var e = Encoding()
        let p = host.policy
        e.add("names", host.names.joined(separator: " "))
        e.add("min_version", String(p.minVersion.rawValue))
        e.add("max_version", String(p.maxVersion.rawValue))
        e.add("ciphers", p.ciphers)
        e.add("ciphersuites", p.ciphersuites)
        e.add("client_auth", p.clientAuth.rawValue)
        e.add("verify_depth", String(p.verifyDepth))
        e.add("session_tickets", p.sessionTickets ? "on" : "off")
        e.add("client_allow", p.clientAllow.map(\.description).joined(separator: "\n"))
        e.add("groups", p.groups)
        for c in host.certificates {
            e.add("certificate", Self.fileDigest(c.certificate, read))
            e.add("key", Self.fileDigest(c.key, read))
        }
        e.add("client_ca", p.clientCA.map { Self.fileDigest($0, read) } ?? "-")
        e.add("crl", p.crl.map { Self.fileDigest($0, read) } ?? "-")
        // Only with a jwt block, so hosts without one keep their fingerprint. A new key set or
        // policy closes the host's open connections after their exchange: a removed key must
        // not go on verifying on an old keep-alive connection.
        if let j = host.jwt {
            e.add("jwt", "\(j.policy.issuer)\n\(j.policy.audiences)\n\(j.policy.algorithms.map(\.rawValue))\n\(j.policy.clockSkewSeconds)\n"
                  + "\(j.policy.bindClientCert)\n\(j.claimHeaders.map { "\($0.claim)=\($0.header)" })")
            e.add("jwks", Self.fileDigest(j.jwksFile, read))
        }
        digest = Digest.sha256Hex([e.bytes])
    }

    /// The fingerprint with the files read from disk now (at load, never on an event loop).
    public static func reading(_ host: HostConfig) -> HostFingerprint {
        HostFingerprint(host) { path in
            if case .success(let bytes) = FileSystem.read(path) { return bytes }
            return nil
        }
    }

    public var description: String { digest }

    private static func fileDigest(_ path: String, _ read: (String) -> [UInt8]?) -> String {
        read(path).map { Digest.sha256Hex([$0]) } ?? "unreadable"
    }

    /// `name NUL length NUL value`: no value can run into the next field, whatever bytes it holds.
    private struct Encoding {
        var bytes: [UInt8] = []
        mutating func add(_ name: String, _ value: String) {
            bytes += Array(name.utf8) + [0] + Array(String(value.utf8.count).utf8) + [0] + Array(value.utf8)
        }
    }
}

/// The reload decision as a pure function, unit-tested apart from sockets.
public enum ReloadJudgement {
    /// For each host of the snapshot a connection started on (by host index): true when its
    /// connections must finish their exchange and close after a reload to `new` (by display name):
    /// the host is gone, or its fingerprint changed.
    public static func hostsToDrain(old: [(name: String, fingerprint: HostFingerprint)], new: [String: HostFingerprint]) -> [Bool] {
        old.map { mustDrain($0.name, $0.fingerprint, new: new) }
    }

    public static func mustDrain(_ name: String, _ fingerprint: HostFingerprint, new: [String: HostFingerprint]) -> Bool {
        new[name] != fingerprint
    }
}
