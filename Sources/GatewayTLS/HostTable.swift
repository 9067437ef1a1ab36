/// Name → host lookup shared by SNI selection and the Host-header check:
/// exact name, then the one-label wildcard (`*.example.test` matches `a.example.test`,
/// not `a.b.example.test` nor `example.test`). Names are compared lower-cased without a trailing dot.
public struct HostTable: Sendable {
    private var exact: [String: Int] = [:]
    private var wildcard: [String: Int] = [:]   // keyed by the suffix after "*."

    public init(names: [[String]]) {
        for (index, list) in names.enumerated() {
            for n in list {
                if n.hasPrefix("*.") { wildcard[String(n.dropFirst(2)), default: index] = index }
                else { exact[n, default: index] = index }
            }
        }
    }

    /// `name` must already be normalised (see `normalise`).
    public func lookup(_ name: String) -> Int? {
        if let i = exact[name] { return i }
        if let dot = name.firstIndex(of: "."), dot != name.startIndex {
            return wildcard[String(name[name.index(after: dot)...])]
        }
        return nil
    }

    /// Lower-cases and drops one trailing dot.
    public static func normalise(_ name: String) -> String {
        var n = name.lowercased()
        if n.hasSuffix(".") { n.removeLast() }
        return n
    }
}
