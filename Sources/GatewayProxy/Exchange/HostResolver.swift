import Glibc
import GatewayConfig
import GatewayTLS

/// SPEC §4's 421 rule as a pure step: which host block answers a request on a connection bound
/// to its SNI host. A Host naming another block with a different policy is misdirected; a Host
/// naming no block is served by the connection's own host. Clients send the same Host on every
/// request of a connection, so the last answer is kept and a repeat costs one comparison.
struct HostResolver {
    enum Decision: Equatable {
        /// The host block (index into the snapshot's hosts) that serves it; nil: none at all.
        case serve(Int?)
        /// `requested` (normalised) belongs to a block whose policy differs from the connection's.
        case misdirected(requested: String)
    }

    /// The bytes of the last authority asked for (clients send the same Host every time):
    /// a repeat costs a compare, not a String.
    private var lastAsked: [UInt8]?
    private var lastDecision: Decision?

    /// `asked`: the request's authority (absolute-form target) or Host header bytes, nil when absent.
    /// The decision for a repeat of the last authority (the connection's host never changes),
    /// before the caller gathers what a new one needs.
    func cached(_ asked: UnsafeRawBufferPointer?) -> Decision? {
        if let d = lastDecision, Self.same(asked, lastAsked) { return d }
        return nil
    }

    mutating func resolve(asked: UnsafeRawBufferPointer?, connectionHost: Int?, table: HostTable, policies: [TLSPolicy]) -> Decision {
        if let d = cached(asked) { return d }
        let d = Self.decide(asked: asked.map { String(decoding: $0, as: UTF8.self) }, connectionHost: connectionHost,
                            table: table, policies: policies)
        lastAsked = asked.map { Array($0) }
        lastDecision = d
        return d
    }

    private static func same(_ a: UnsafeRawBufferPointer?, _ b: [UInt8]?) -> Bool {
        guard let a, let b else { return a == nil && b == nil }
        guard a.count == b.count else { return false }
        return a.count == 0 || b.withUnsafeBytes { memcmp($0.baseAddress!, a.baseAddress!, a.count) == 0 }
    }

    static func decide(asked: String?, connectionHost: Int?, table: HostTable, policies: [TLSPolicy]) -> Decision {
        guard let requested = normaliseHost(asked), let h = table.lookup(requested) else { return .serve(connectionHost) }
        if let c = connectionHost, c != h, !samePolicy(policies[c], policies[h]) {
            return .misdirected(requested: requested)
        }
        return .serve(h)
    }

    /// Lower-cased, `:port` and one trailing dot dropped; IPv6 literals lose their brackets.
    static func normaliseHost(_ h: String?) -> String? {
        guard var h, !h.isEmpty else { return nil }
        if h.hasPrefix("[") {
            if let end = h.firstIndex(of: "]") { h = String(h[h.index(after: h.startIndex)..<end]) }
        } else if let colon = h.lastIndex(of: ":") {
            h = String(h[..<colon])
        }
        return HostTable.normalise(h)
    }

    /// The fields SPEC §4 names for the 421 rule are equal (computed once per distinct Host, not per request).
    static func samePolicy(_ a: TLSPolicy, _ b: TLSPolicy) -> Bool { a.misdirectionDifferences(from: b).isEmpty }
}
