/// Whether a failed backend exchange is tried again (SPEC §6): once, when nothing of the request
/// reached the failed server — on another server if there is one, or on the same one when only a
/// stale pooled connection failed (a refused connect to the only server is not retried).
enum RetryPolicy {
    struct Attempt {
        var failure: ProxyError
        /// The failed connection came from the keep-alive pool.
        var pooled: Bool
        var failedServer: Int?
        var serverCount: Int
        var bodyForwarded: Bool
        var responseStarted: Bool
        var attempts: Int
    }

    enum Decision: Equatable {
        case retry(excluding: Int?)
        case fail
    }

    /// `usable(excluding)`: whether the balancer would find a server other than `excluding`.
    static func decide(_ a: Attempt, usable: (Int?) -> Bool) -> Decision {
        let other = a.serverCount > 1 ? a.failedServer : nil
        guard a.failure.retrySafe, a.pooled || other != nil, !a.bodyForwarded, !a.responseStarted, a.attempts < 2,
              usable(other) else { return .fail }
        return .retry(excluding: other)
    }

    /// Whether the failure counts against the server's passive health: a stale pooled
    /// connection says nothing about the server, and "no server left" is not a server's fault.
    static func countsAgainstServer(_ a: Attempt) -> Bool {
        a.failure.kind != .unavailable && !(a.failure.retrySafe && a.pooled)
    }
}
