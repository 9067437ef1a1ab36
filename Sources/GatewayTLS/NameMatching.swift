// RFC 6125 name matching, as clients apply it to the gateway's certificates:
// `*` only as the whole left-most label of a DNS SAN, matching exactly one
// non-empty label; an IP host name against IP SANs only; no CN fallback.

public enum NameMatching {
    /// Lower-cased, trailing dot dropped.
    public static func normalise(_ name: String) -> String {
        var n = name.lowercased()
        if n.hasSuffix(".") { n.removeLast() }
        return n
    }

    /// A certificate with `dnsNames` and `ipAddresses` covers host name `name` (a host block name,
    /// possibly `*.x`: covered only by a `*.x` SAN, since a client may ask for any one label).
    public static func covers(dnsNames: [String], ipAddresses: [String], name: String) -> Bool {
        let n = normalise(name)
        if isIPLiteral(n) { return ipAddresses.contains { $0.lowercased() == n } }
        return dnsNames.contains { sanCovers(normalise($0), n) }
    }

    /// One DNS SAN against one name; a wildcard name needs the identical wildcard SAN.
    public static func sanCovers(_ san: String, _ name: String) -> Bool {
        if san == name { return true }
        guard !name.hasPrefix("*."), let suffix = wildcardSuffix(san) else { return false }
        guard let dot = name.firstIndex(of: ".") else { return false }
        let first = name[..<dot], rest = name[name.index(after: dot)...]
        return !first.isEmpty && !first.contains("*") && rest == suffix
    }

    /// `example.test` for the SAN `*.example.test`; nil when the SAN is not a valid wildcard
    /// (`f*.example.test`, `*.*.test`, or `*.test`, which RFC 6125 clients refuse as too broad).
    public static func wildcardSuffix(_ san: String) -> Substring? {
        guard san.hasPrefix("*.") else { return nil }
        let suffix = san.dropFirst(2)
        guard suffix.contains("."), !suffix.contains("*"), !suffix.split(separator: ".", omittingEmptySubsequences: false).contains("") else {
            return nil
        }
        return suffix
    }

    /// A name both patterns cover (exact names or `*.x` SANs), for GW.Host.Fronting; nil if none.
    public static func overlap(_ a: String, _ b: String) -> String? {
        let a = normalise(a), b = normalise(b)
        if a == b { return a }
        if wildcardSuffix(a) != nil, !b.hasPrefix("*"), sanCovers(a, b) { return b }
        if wildcardSuffix(b) != nil, !a.hasPrefix("*"), sanCovers(b, a) { return a }
        return nil
    }

    public static func isIPLiteral(_ s: String) -> Bool {
        if s.contains(":") { return true }
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isNumber) && Int(p)! <= 255 }
    }
}
