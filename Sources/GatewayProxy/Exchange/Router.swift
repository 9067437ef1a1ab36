import GatewayConfig
import GatewaySystem

/// Routing as pure steps (SPEC §10) over the request's bytes, without building a String: the
/// request target split into authority and path, the longest route prefix on a path-segment
/// boundary, and the path the backend gets.
enum Router {
    /// The path part of a target in origin form: `impliedSlash` + the bytes of `range`
    /// (an absolute-form target `https://h?q` has the path `/?q`, `https://h` the path `/`).
    struct Path: Equatable {
        var range: Range<Int>
        var impliedSlash = false
        var count: Int { range.count + (impliedSlash ? 1 : 0) }
        func byte(_ b: UnsafeRawBufferPointer, _ i: Int) -> UInt8 {
            impliedSlash ? (i == 0 ? UInt8(ascii: "/") : b[range.lowerBound + i - 1]) : b[range.lowerBound + i]
        }
        func string(_ b: UnsafeRawBufferPointer) -> String {
            (impliedSlash ? "/" : "") + String(decoding: b[range], as: UTF8.self)
        }
    }

    /// Absolute-form targets carry the authority; the path always goes to the backend in origin form.
    static func splitTarget(_ b: UnsafeRawBufferPointer, _ t: Range<Int>) -> (authority: Range<Int>?, path: Path) {
        guard let first = t.first, b[first] != UInt8(ascii: "/"),
              let colon = t.first(where: { b[$0] == UInt8(ascii: ":") }),
              colon + 3 <= t.upperBound, b[colon + 1] == UInt8(ascii: "/"), b[colon + 2] == UInt8(ascii: "/")
        else { return (nil, Path(range: t)) }
        let rest = colon + 3..<t.upperBound
        guard let slash = rest.first(where: { b[$0] == UInt8(ascii: "/") || b[$0] == UInt8(ascii: "?") }) else {
            return (rest, Path(range: t.upperBound..<t.upperBound, impliedSlash: true))
        }
        return (rest.lowerBound..<slash, Path(range: slash..<t.upperBound, impliedSlash: b[slash] == UInt8(ascii: "?")))
    }

    /// The longest-prefix route (routes are kept longest first) whose prefix ends on a segment boundary.
    static func route(_ b: UnsafeRawBufferPointer, _ path: Path, in routes: [Route]) -> Route? {
        routeIndex(b, path, in: routes).map { routes[$0] }
    }

    /// The same route by its position (the request path reads its fields in place: no copy of its strings).
    static func routeIndex(_ b: UnsafeRawBufferPointer, _ path: Path, in routes: [Route]) -> Int? {
        for i in routes.indices where hasPrefix(b, path, routes[i].prefix) {
            let n = routes[i].prefix.utf8.count
            if path.count == n || routes[i].prefix.utf8.last == UInt8(ascii: "/") { return i }
            let next = path.byte(b, n)
            if next == UInt8(ascii: "/") || next == UInt8(ascii: "?") { return i }
        }
        return nil
    }

    private static func hasPrefix(_ b: UnsafeRawBufferPointer, _ path: Path, _ prefix: String) -> Bool {
        var i = 0
        for c in prefix.utf8 {
            guard i < path.count, path.byte(b, i) == c else { return false }
            i += 1
        }
        return true
    }

    /// Writes the path the backend gets: `strip_prefix` removes the route's prefix, leaving at least `/`.
    static func writeUpstreamPath(_ b: UnsafeRawBufferPointer, _ path: Path, _ route: Route, into out: inout ByteBuffer) {
        writeUpstreamPath(b, path, strip: route.stripPrefix ? route.prefix.utf8.count : 0, into: &out)
    }

    /// `strip`: the length of the prefix `strip_prefix` removes (0: none).
    static func writeUpstreamPath(_ b: UnsafeRawBufferPointer, _ path: Path, strip: Int, into out: inout ByteBuffer) {
        var from = 0
        if strip > 0 {
            from = strip
            if from >= path.count || path.byte(b, from) != UInt8(ascii: "/") { out.append(byte: UInt8(ascii: "/")) }
        }
        if path.impliedSlash && from == 0 { out.append(byte: UInt8(ascii: "/")); from = 1 }
        let skip = from - (path.impliedSlash ? 1 : 0)
        out.append(UnsafeRawBufferPointer(rebasing: b[path.range.lowerBound + skip..<path.range.upperBound]))
    }
}
