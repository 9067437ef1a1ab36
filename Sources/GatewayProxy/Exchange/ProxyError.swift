import GatewayHTTP

/// Why an exchange failed, after Pingora's error type: which side caused it (the client's
/// request, the backend, or the gateway itself), what kind of failure it is (hence the
/// status the client gets) and whether trying again is safe (nothing of the request reached
/// the server). The side decides how it is logged: a client's mistake is news, not an alarm.
struct ProxyError: Error {
    enum Side: String { case client, backend, gateway }
    enum Kind: Equatable {
        /// The request cannot be served as sent: its status (400, 404, 408, 413, 414, 421, 431, 501, 505).
        case refused(status: Int)
        case badGateway, unavailable, timeout
    }
    let side: Side
    let kind: Kind
    let reason: String
    /// Nothing of the request reached the server: another attempt cannot duplicate it.
    var retrySafe = false
    /// The metric's failure class; nil when no server was involved (503, no server left).
    let metric: BackendFailureReason?
    /// One header the local answer carries (the 401's WWW-Authenticate, SPEC §13).
    var header: (name: StaticString, value: String)?
    /// The request is gRPC: answer in gRPC's form over HTTP/2 (200, trailers-only, grpc-status; SPEC §12).
    var grpc = false
    /// The grpc-status to answer with, where SPEC §12's mapping of the HTTP status is not it
    /// (4 DEADLINE_EXCEEDED for an expired grpc-timeout).
    var grpcCode: Int?

    /// The grpc-status of the gateway's answer to a gRPC request; nil for any other request,
    /// and for a 421, which stays a 421.
    var grpcAnswer: Int? { grpc && status != 421 ? grpcCode ?? Self.grpcStatus(status) : nil }

    /// A backend failure (502, 503, 504).
    init(_ kind: Kind, _ reason: String, retrySafe: Bool = false, metric: BackendFailureReason?) {
        side = .backend
        self.kind = kind; self.reason = reason; self.retrySafe = retrySafe; self.metric = metric
    }

    /// A request the gateway refuses, with the status it answers.
    static func client(_ status: Int, _ reason: String) -> ProxyError { ProxyError(side: .client, .refused(status: status), reason) }
    static func client(_ e: HTTPParseError) -> ProxyError { client(e.status, e.reason) }

    private init(side: Side, _ kind: Kind, _ reason: String) {
        self.side = side; self.kind = kind; self.reason = reason; metric = nil
    }

    /// SPEC §12's HTTP-to-gRPC mapping for a local answer to a gRPC request.
    static func grpcStatus(_ http: Int) -> Int {
        switch http {
        case 400: 13
        case 401: 16
        case 403: 7
        case 404: 12
        case 413, 431: 8
        case 429, 502, 503, 504: 14
        default: 2
        }
    }

    var status: Int {
        switch kind {
        case .refused(let status): status
        case .badGateway: 502
        case .unavailable: 503
        case .timeout: 504
        }
    }
}
