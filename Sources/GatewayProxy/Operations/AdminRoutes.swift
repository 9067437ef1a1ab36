import GatewayConfig
import GatewayHTTP
import GatewayTLS

/// What each admin path answers (SPEC §7.1). `/healthz` and `/readyz` are probes and never need
/// the token; every other path answers 401 without `Authorization: Bearer TOKEN` when
/// `admin_token_file` is set.
struct AdminRoutes: Sendable {
    let status: GatewayStatus
    let build: BuildInfo
    /// Sums every worker's metrics (asks each worker's loop, waits for the answers).
    let scrape: @Sendable () -> MetricsSample

    func respond(to head: HTTPRequestHead, _ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        let method = String(decoding: bytes[head.method], as: UTF8.self)
        var path = String(decoding: bytes[head.target], as: UTF8.self)
        if let q = path.firstIndex(of: "?") { path = String(path[..<q]) }
        guard method == "GET" || method == "HEAD" else {
            return Self.page(status: 405, body: "only GET and HEAD\n", extra: "Allow: GET, HEAD\r\n")
        }
        let headOnly = method == "HEAD"
        switch path {
        case "/healthz": return Self.page(status: 200, body: "ok\n", headOnly: headOnly)
        case "/readyz":
            return status.ready ? Self.page(status: 200, body: "ready\n", headOnly: headOnly)
                                : Self.page(status: 503, body: "not ready\n", headOnly: headOnly)
        default: break
        }
        let snapshot = status.snapshot
        if let token = snapshot.adminToken, !Self.authorized(head, bytes, token: token) {
            return Self.page(status: 401, body: "a valid Authorization: Bearer token is required\n",
                             extra: "WWW-Authenticate: Bearer\r\n", headOnly: headOnly)
        }
        switch path {
        case "/metrics":
            let text = PrometheusText.render(scrape(), status: status, build: build)
            return Self.page(status: 200, body: text, type: "text/plain; version=0.0.4; charset=utf-8", headOnly: headOnly)
        case "/config":
            let json = EffectivePolicyJSON.config(snapshot.config, generation: snapshot.generation).text + "\n"
            return Self.page(status: 200, body: json, type: "application/json", headOnly: headOnly)
        case _ where path.hasPrefix("/hosts/"):
            let name = HostTable.normalise(String(path.dropFirst("/hosts/".count)))
            guard let h = snapshot.config.hosts.first(where: { $0.names.contains(name) }) else {
                return Self.page(status: 404, body: "no host block named \(name)\n", headOnly: headOnly)
            }
            let json = EffectivePolicyJSON.hostTLS(h).text + "\n"
            return Self.page(status: 200, body: json, type: "application/json", headOnly: headOnly)
        default:
            return Self.page(status: 404, body: "no such admin path\n", headOnly: headOnly)
        }
    }

    /// `Authorization: Bearer TOKEN`, compared in time that does not depend on where the bytes differ.
    static func authorized(_ head: HTTPRequestHead, _ bytes: UnsafeRawBufferPointer, token: [UInt8]) -> Bool {
        guard let h = head.headers.first(where: { asciiEqualsIgnoringCase(bytes, $0.name, "authorization") }) else { return false }
        let value = Array(bytes[h.value])
        let prefix = Array("Bearer ".utf8)
        guard value.count > prefix.count, value[0..<prefix.count].map({ $0 | 0x20 }) == prefix.map({ $0 | 0x20 }) else { return false }
        return constantTimeEqual(Array(value[prefix.count...]), token)
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt(a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            let x = i < a.count ? a[i] : 0, y = i < b.count ? b[i] : 0
            diff |= UInt(x ^ y)
        }
        return diff == 0
    }

    static func page(status: Int, body: String, type: String = "text/plain; charset=utf-8", extra: String = "", headOnly: Bool = false) -> [UInt8] {
        let reason = String(describing: HeadWriter.reasonPhrase(status))
        var head = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\n"
        head += "Cache-Control: no-store\r\n\(extra)Connection: close\r\n\r\n"
        return Array(head.utf8) + (headOnly ? [] : Array(body.utf8))
    }
}
