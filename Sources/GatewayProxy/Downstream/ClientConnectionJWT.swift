import Glibc
import GatewayConfig
import GatewayHTTP
import GatewayJWT
import GatewayTLS

/// SPEC §13 on the request path: the bearer token of a request to a host with a `jwt` block,
/// checked after the 421 rule and the route, before any backend is contacted — the same step
/// for an HTTP/1.1 request and for every HTTP/2 stream. A host without a block never gets here.
extension ClientConnection {
    /// The verified claims' header values, or nil after answering 401 (the exchange is then a
    /// local answer: its body, if any, is dropped and the connection or stream goes on).
    func checkToken(_ ex: Exchange, _ jwt: JWTConfig, host: TLSHost, _ b: UnsafeRawBufferPointer, _ head: HTTPRequestHead) -> [String?]? {
        var token: Range<Int>?
        var authorizations = 0
        for h in head.headers where asciiEqualsIgnoringCase(b, h.name, "authorization") {
            authorizations += 1
            token = h.value
        }
        // Only `Authorization: Bearer TOKEN`; another scheme is no token at all (RFC 6750 §3).
        guard var t = token, hasPrefixIgnoringCase(b, t, "bearer ") else {
            reject(ex, nil, host: host, head, grpc: isGRPC(b, head))
            return nil
        }
        t = (t.lowerBound + 7)..<t.upperBound
        while !t.isEmpty && b[t.lowerBound] == 0x20 { t = (t.lowerBound + 1)..<t.upperBound }
        // One header, one token: two Authorization headers are not a choice the gateway makes.
        let verdict = authorizations > 1 ? .invalid(.malformed)
            : jwt.verifier.verify(UnsafeRawBufferPointer(rebasing: b[t]), now: Int64(time(nil)),
                                  clientCertSHA256Hex: self.clientCertificate?.sha256)
        switch verdict {
        case .valid(let claims):
            if worker.logs.access.enabled { ex.jwtSub = claims.subject }
            return claims.values
        case .invalid(let failure):
            reject(ex, failure, host: host, head, grpc: isGRPC(b, head))
            return nil
        }
    }

    /// 401 with RFC 6750's challenge: without `error` when no token came, else `invalid_token`
    /// and the reason. Counted by host and reason; the access log's `jwt_error` says it too.
    private func reject(_ ex: Exchange, _ failure: JWTFailure?, host: TLSHost, _ head: HTTPRequestHead, grpc: Bool) {
        let reason = failure?.rawValue ?? "missing token"
        ex.jwtError = reason
        counters.countJWTFailure(host: host.index, failure)
        var challenge = "Bearer realm=\"\(host.name)\""
        if let failure { challenge += ", error=\"invalid_token\", error_description=\"\(failure.rawValue)\"" }
        var e = ProxyError.client(401, failure == nil ? "missing bearer token" : "invalid token: \(reason)")
        e.header = ("WWW-Authenticate", challenge)
        e.grpc = grpc
        io.input.consume(head.headLength)
        respondLocally(ex, e, close: false)
    }

    /// `content-type: application/grpc…` (SPEC §12).
    func isGRPC(_ b: UnsafeRawBufferPointer, _ head: HTTPRequestHead) -> Bool {
        head.headers.contains { asciiEqualsIgnoringCase(b, $0.name, "content-type") && hasPrefixIgnoringCase(b, $0.value, "application/grpc") }
    }
}
