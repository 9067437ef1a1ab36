import GatewayConfig

/// Routing as pure steps (SPEC §10): the request target split into authority and path, the
/// longest route prefix on a path-segment boundary, and the path the backend gets.
enum Router {
    /// Absolute-form targets carry the authority; the path always goes to the backend in origin form.
    static func splitTarget(_ t: String) -> (authority: String?, path: String) {
        guard !t.hasPrefix("/"), let colon = t.firstIndex(of: ":"), t[colon...].hasPrefix("://") else { return (nil, t) }
        let rest = t[t.index(colon, offsetBy: 3)...]
        if let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) {
            let p = String(rest[slash...])
            return (String(rest[..<slash]), p.hasPrefix("?") ? "/" + p : p)
        }
        return (String(rest), "/")
    }

    /// Longest prefix on a path-segment boundary (routes arrive sorted longest first); case-sensitive.
    static func route(_ path: String, in routes: [Route]) -> Route? {
        let p = path.utf8
        for r in routes {
            let pre = r.prefix.utf8
            guard p.starts(with: pre) else { continue }
            if p.count == pre.count || pre.last == UInt8(ascii: "/") { return r }
            let next = p[p.index(p.startIndex, offsetBy: pre.count)]
            if next == UInt8(ascii: "/") || next == UInt8(ascii: "?") { return r }
        }
        return nil
    }

    /// The path toward the backend: with `strip_prefix` the prefix is removed, leaving at least `/`.
    static func upstreamPath(_ path: String, _ route: Route) -> String {
        guard route.stripPrefix else { return path }
        let rest = String(path.dropFirst(route.prefix.count))
        return rest.hasPrefix("/") ? rest : "/" + rest
    }
}
