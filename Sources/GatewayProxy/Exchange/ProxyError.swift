/// Why an exchange failed, in the shape of Pingora's error type: which side failed (the client,
/// a backend, the gateway itself), what kind of failure it is (hence the status the client
/// gets), and whether trying again is safe (nothing of the request reached the server).
struct ProxyError: Error {
    enum Side { case client, backend, `internal` }
    enum Kind { case badGateway, unavailable, timeout }
    let side: Side
    let kind: Kind
    let reason: String
    /// Nothing of the request reached the server: another attempt cannot duplicate it.
    var retrySafe = false
    /// The metric's failure class; nil when no server was involved (503, no server left).
    let metric: BackendFailureReason?

    init(_ kind: Kind, _ reason: String, retrySafe: Bool = false, metric: BackendFailureReason?, side: Side = .backend) {
        self.kind = kind; self.reason = reason; self.retrySafe = retrySafe; self.metric = metric; self.side = side
    }

    var status: Int {
        switch kind { case .badGateway: 502; case .unavailable: 503; case .timeout: 504 }
    }
}
