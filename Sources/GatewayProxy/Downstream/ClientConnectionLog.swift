import GatewayConfig
import GatewaySystem

/// What a finished exchange, a failed handshake or a connection a TLS error ended leaves
/// behind: metric counts (always) and an access-log line (when the access log is on), JSON or
/// the plain text format of SPEC §7.1.
extension ClientConnection {
    func logHandshakeFailure(_ reason: String) {
        counters.handshakeFailures[.init(host: tls.host?.index ?? SnapshotCounters.none, reason: reason), default: 0] += 1
        logTLSFailure("tls_handshake_failed", reason)
    }

    /// A fatal alert (sent or received) or another TLS error after the handshake (SPEC §7.3):
    /// a bad record MAC, a malformed KeyUpdate. Not a clean close, nor a reset or EOF.
    func logConnectionFailure(_ reason: String) {
        counters.connectionFailures[.init(host: tls.host?.index ?? SnapshotCounters.none, reason: reason), default: 0] += 1
        logTLSFailure("tls_connection_failed", reason)
    }

    private func logTLSFailure(_ event: String, _ reason: String) {
        Self.logTLSFailure(worker.logs, event, reason, client: clientIP, sni: tls.serverName)
    }

    /// A connection that sent nothing within `handshake_timeout` (a PendingConnection, which has
    /// no TLS session yet): the line and the count a started handshake's timeout gets.
    static func logHandshakeTimeout(worker: Worker, snapshot: RuntimeSnapshot, peer: SocketAddress) {
        let reason = "handshake timeout"
        worker.metrics.counters(for: snapshot).handshakeFailures[.init(host: SnapshotCounters.none, reason: reason), default: 0] += 1
        guard worker.logs.access.enabled else { return }
        logTLSFailure(worker.logs, "tls_handshake_failed", reason, client: peer.ipString, sni: nil)
    }

    private static func logTLSFailure(_ logs: Logs, _ event: String, _ reason: String, client: String, sni: String?) {
        guard logs.access.enabled else { return }
        var j = JSONLine()
        j.field("time", timestampNow())
        j.field("event", event)
        j.field("client", client)
        j.field("sni", sni)
        j.field("reason", reason)
        j.finished().withUnsafeBytes { logs.access.write($0) }
    }

    /// An HTTP/2 connection closed with GOAWAY for a protocol error or abuse (SPEC §12).
    func logHTTP2Error(_ reason: String) {
        counters.http2Errors[reason, default: 0] += 1
        guard worker.logs.access.enabled else { return }
        var j = JSONLine()
        j.field("time", timestampNow())
        j.field("event", "http2_connection_error")
        j.field("client", clientIP)
        j.field("sni", tls.serverName)
        j.field("reason", reason)
        j.finished().withUnsafeBytes { worker.logs.access.write($0) }
    }

    /// Counts an answered request and logs it.
    func record(_ ex: Exchange) {
        guard !ex.recorded else { return }
        ex.recorded = true
        let totalMs = Int(now - ex.startedAt)
        let host = ex.hostIndex != SnapshotCounters.none ? ex.hostIndex : (tls.host?.index ?? SnapshotCounters.none)
        counters.countRequest(host: host, backend: ex.backendIndex, status: ex.state.status)
        worker.metrics.durations.observe(ms: totalMs)
        guard worker.accessLogEnabled else { return }
        let logs = worker.logs
        let line = logs.accessFormat == .text ? textLine(ex, totalMs: totalMs) : jsonLine(ex, totalMs: totalMs)
        line.withUnsafeBytes { logs.access.write($0) }
    }

    private func jsonLine(_ ex: Exchange, totalMs: Int) -> [UInt8] {
        var j = JSONLine()
        j.field("time", timestampNow())
        j.field("client", clientIP)
        j.field("sni", tls.serverName)
        j.field("host", ex.host)
        j.field("tls_version", tls.protocolVersion)
        j.field("tls_cipher", tls.cipherName)
        j.field("tls_resumed", tls.sessionReused)
        let auth = tls.host?.policy.clientAuth ?? .off
        j.field("client_cert_verify", auth == .off ? nil : (clientCertificate == nil ? "NONE" : "SUCCESS"))
        j.field("client_cert_subject", auth == .off ? nil : clientCertificate?.subject)
        j.field("method", ex.method)
        j.field("path", ex.path)
        j.field("status", ex.state.status)
        j.field("bytes_in", ex.requestBodyBytes)
        j.field("bytes_out", ex.bytesOut)
        j.field("backend", ex.state.local ? nil : ex.backend?.config.name)
        j.field("server", ex.state.local ? nil : ex.state.serverIndex.flatMap { i in ex.backend.map { $0.servers[i].label } })
        if let u = ex.upstreamMs { j.field("upstream_ms", u) } else { j.field("upstream_ms", nil as String?) }
        j.field("total_ms", totalMs)
        j.field("request_id", ex.requestID.text)
        j.field("trace_id", ex.trace?.traceIDHex)
        if let sub = ex.jwtSub { j.field("jwt_sub", sub) }
        if let e = ex.jwtError { j.field("jwt_error", e) }
        j.field("protocol", http2 == nil ? "HTTP/1.1" : "HTTP/2")
        if http2 != nil { j.field("stream", Int(ex.stream)) }
        return j.finished()
    }

    /// `client - - [time] "METHOD PATH HTTP/1.x" status bytes_out "sni" "host" total_ms`
    private func textLine(_ ex: Exchange, totalMs: Int) -> [UInt8] {
        func quoted(_ s: String?) -> String {
            guard let s, !s.isEmpty else { return "\"-\"" }
            return "\"" + String(decoding: s.utf8.map { $0 == UInt8(ascii: "\"") || $0 < 0x20 || $0 == 0x7F ? UInt8(ascii: "?") : $0 }, as: UTF8.self) + "\""
        }
        let request = quoted("\(ex.method) \(ex.path) \(http2 == nil ? "HTTP/1.\(ex.clientVersionMinor)" : "HTTP/2")")
        return Array("\(clientIP) - - [\(commonLogTime())] \(request) \(ex.state.status) \(ex.bytesOut) \(quoted(tls.serverName)) \(quoted(ex.host)) \(totalMs)\n".utf8)
    }
}
