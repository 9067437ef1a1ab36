/// The Prometheus text exposition format (version 0.0.4) of the gateway's metrics (SPEC §7, §7.1).
struct PrometheusText {
    private(set) var text = ""

    /// The whole `/metrics` page from the workers' summed sample and the gateway's status.
    static func render(_ s: MetricsSample, status: GatewayStatus, build: BuildInfo) -> String {
        var p = PrometheusText()
        p.family("gateway_build_info", .gauge, "Version of the gateway and of the OpenSSL it runs on.",
                 ["version", "openssl"], [[build.version, build.openssl]: 1])
        p.family("gateway_connections_active", .gauge, "Client connections open now, over all workers.",
                 [], [[]: s.connectionsActive])
        p.family("gateway_connections_total", .counter, "Client connections whose TLS handshake completed, by the protocol ALPN chose.",
                 ["protocol"], s.connections)
        p.family("gateway_http2_connection_errors_total", .counter, "HTTP/2 connections closed with GOAWAY for a protocol error or abuse, by reason.",
                 ["reason"], s.http2Errors)
        p.family("gateway_tls_handshakes_total", .counter, "Completed client TLS handshakes.",
                 ["host", "version", "cipher", "resumed"], s.handshakes)
        p.family("gateway_tls_handshake_failures_total", .counter, "Client TLS handshakes that failed, by reason.",
                 ["host", "reason"], s.handshakeFailures)
        p.family("gateway_tls_connection_failures_total", .counter,
                 "Client connections a fatal TLS alert or error ended after the handshake, by reason.",
                 ["host", "reason"], s.connectionFailures)
        p.family("gateway_tls_misdirected_total", .counter, "Requests answered 421: their Host has another TLS policy than the connection's host.",
                 ["host"], s.misdirected)
        p.family("gateway_jwt_failures_total", .counter, "Requests refused 401 by a host's jwt check, by reason (SPEC §13; \"missing token\" when none came).",
                 ["host", "reason"], s.jwtFailures)
        p.family("gateway_requests_total", .counter, "Requests answered, by host block, backend and status code.",
                 ["host", "backend", "code"], s.requests)
        p.histogram("gateway_request_duration_seconds", "Time from the first byte of a request to its last response byte.", s.durations)
        p.family("gateway_backend_up", .gauge, "1 while the server is in rotation on every worker (passive and active health).",
                 ["backend", "server"], s.backendUp)
        p.family("gateway_backend_failures_total", .counter, "Failed exchanges with a backend server, by reason.",
                 ["backend", "server", "reason"], s.backendFailures)
        p.family("gateway_proxy_protocol_rejected_total", .counter,
                 "Connections closed before the TLS handshake by the PROXY protocol reader, by listen address and reason.",
                 ["listen", "reason"], s.proxyRejected)
        var reloads: [[String]: Int] = [:]
        for (k, v) in status.reloads { reloads[[k]] = v }
        p.family("gateway_config_reloads_total", .counter, "Configuration reloads, by result.", ["result"], reloads)
        p.family("gateway_config_last_reload_success_timestamp_seconds", .gauge,
                 "Unix time of the last configuration load that took effect.", [], [[]: status.lastReloadSuccess])
        var expiry: [[String]: Int] = [:]
        // An ECDSA and an RSA certificate of one host often share a subject: the earlier expiry counts.
        for c in status.certificates { expiry[[c.role, c.host, c.subject]] = min(expiry[[c.role, c.host, c.subject]] ?? .max, c.notAfter) }
        p.family("gateway_certificate_expiry_timestamp_seconds", .gauge,
                 "Unix time at which each configured certificate expires.", ["role", "host", "subject"], expiry)
        return p.text
    }

    enum Kind: String { case counter, gauge, histogram }

    mutating func family(_ name: String, _ kind: Kind, _ help: String, _ labels: [String], _ values: [[String]: Int]) {
        header(name, kind, help)
        for key in values.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            sample(name, labels, key, String(values[key]!))
        }
    }

    mutating func histogram(_ name: String, _ help: String, _ h: DurationHistogram) {
        header(name, .histogram, help)
        var cumulative = 0
        for (i, bound) in DurationHistogram.boundsMs.enumerated() {
            cumulative += h.buckets[i]
            sample(name + "_bucket", ["le"], [Self.seconds(bound)], String(cumulative))
        }
        sample(name + "_bucket", ["le"], ["+Inf"], String(h.count))
        sample(name + "_sum", [], [], Self.seconds(h.sumMs))
        sample(name + "_count", [], [], String(h.count))
    }

    private mutating func header(_ name: String, _ kind: Kind, _ help: String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(kind.rawValue)\n"
    }

    private mutating func sample(_ name: String, _ labels: [String], _ values: [String], _ value: String) {
        text += name
        if !labels.isEmpty {
            text += "{" + zip(labels, values).map { "\($0)=\"\(Self.escape($1))\"" }.joined(separator: ",") + "}"
        }
        text += " " + value + "\n"
    }

    /// Milliseconds as seconds without floating-point noise (250 -> "0.25").
    static func seconds(_ ms: Int) -> String {
        let whole = ms / 1000, frac = ms % 1000
        guard frac != 0 else { return String(whole) }
        var f = String(frac)
        f = String(repeating: "0", count: 3 - f.count) + f
        while f.hasSuffix("0") { f.removeLast() }
        return "\(whole).\(f)"
    }

    static func escape(_ v: String) -> String {
        var out = ""
        for c in v.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}

/// `gateway_build_info` labels.
public struct BuildInfo: Sendable {
    public let version: String
    public let openssl: String
    public init(version: String, openssl: String) { self.version = version; self.openssl = openssl }
}
