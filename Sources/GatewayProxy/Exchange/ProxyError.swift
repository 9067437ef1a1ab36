/// Why an exchange with a backend failed, after Pingora's error type: what kind of failure it
/// is (hence the status the client gets) and whether trying again is safe (nothing of the
/// request reached the server). Client-side errors are `HTTPParseError`s answered locally.
struct ProxyError: Error {
    enum Kind { case badGateway, unavailable, timeout }
    let kind: Kind
    let reason: String
    /// Nothing of the request reached the server: another attempt cannot duplicate it.
    var retrySafe = false
    /// The metric's failure class; nil when no server was involved (503, no server left).
    let metric: BackendFailureReason?

    init(_ kind: Kind, _ reason: String, retrySafe: Bool = false, metric: BackendFailureReason?) {
        self.kind = kind; self.reason = reason; self.retrySafe = retrySafe; self.metric = metric
    }

    var status: Int {
        switch kind { case .badGateway: 502; case .unavailable: 503; case .timeout: 504 }
    }
}
