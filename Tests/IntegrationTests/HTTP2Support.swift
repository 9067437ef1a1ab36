import Foundation
import Testing

/// The frame-level HTTP/2 client (h2client.py beside this file, on the PyPI `h2`/`hyperframe`/
/// `hpack` packages that scripts/test installs) run against a Stack: one scenario per run, one
/// JSON line back. Every wait inside it is "until a frame arrives or the connection closes".
enum H2Client {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("h2client.py").path

    static func scenario(_ s: Stack, _ scenario: String, sni: String = "api.example.test", _ extra: [String] = [],
                    timeout: Double = 120) throws -> [String: Any] {
        let r = try run(["python3", script, scenario, "--port", String(s.gatewayPort), "--ca", Repo.cert("ca.pem"),
                                          "--sni", sni] + extra, timeout: timeout)
        guard r.status == 0, let line = r.out.split(separator: "\n").last,
              let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw HarnessError("h2client.py \(scenario) failed (\(r.status)): \(r.err.suffix(1500)) \(r.out.suffix(500))")
        }
        return json
    }

    /// One connection's part of a result (`conn`, `attack`, `bystander`).
    static func conn(_ result: [String: Any], _ key: String = "conn") -> H2Conn { H2Conn(raw: result[key] as? [String: Any] ?? [:]) }
}

/// What h2conn.Conn.result() recorded for one connection.
struct H2Conn: CustomStringConvertible {
    let raw: [String: Any]
    struct GoAway: Equatable, CustomStringConvertible {
        let code: Int, last: Int
        var description: String { "GOAWAY(code \(code), last \(last))" }
    }

    func stream(_ id: Int) -> [String: Any] { (raw["streams"] as? [String: Any])?[String(id)] as? [String: Any] ?? [:] }
    func status(_ id: Int) -> Int? { stream(id)["status"] as? Int }
    /// The RST_STREAM error code the gateway sent on the stream, nil if none.
    func reset(_ id: Int) -> Int? { stream(id)["reset"] as? Int }
    func body(_ id: Int) -> String { stream(id)["body"] as? String ?? "" }
    func echo(_ id: Int) throws -> EchoReply { try decodeEcho(body(id)) }
    var streamIDs: [Int] { (raw["streams"] as? [String: Any])?.keys.compactMap { Int($0) }.sorted() ?? [] }
    var goaways: [GoAway] {
        (raw["goaways"] as? [[String: Any]] ?? []).map { GoAway(code: $0["code"] as? Int ?? -1, last: $0["last_stream"] as? Int ?? -1) }
    }
    var origin: [String]? { raw["origin"] as? [String] }
    var frames: [String] { raw["frames"] as? [String] ?? [] }
    var alpn: String? { raw["alpn"] as? String }
    /// The gateway closed the connection (EOF or reset seen while reading).
    var closed: Bool { raw["closed"] as? Bool ?? false }
    var description: String {
        let data = try? JSONSerialization.data(withJSONObject: raw.filter { $0.key != "settings" }, options: [.sortedKeys])
        return String(decoding: (data ?? Data()).prefix(3000), as: UTF8.self)
    }
}

/// RFC 9113 §7 codes as the tests assert them.
enum H2Code {
    static let noError = 0x0, protocolError = 0x1, refusedStream = 0x7, enhanceYourCalm = 0xb
    /// The last-stream id of the first, "shutting down soon" GOAWAY (RFC 9113 §6.8).
    static let maxStream = Int(Int32.max)
}

extension Stack {
    /// The default test config with `limits { ... }` replaced.
    func config(limits: String, hostExtra: String = "", topExtra: String = "", routes: String? = nil, extraHosts: String = "") -> String {
        config(hostExtra: hostExtra, topExtra: topExtra, routes: routes)
            .replacingOccurrences(of: "limits { header_timeout 2s; idle_timeout 10s; max_body_size 64m; }", with: "limits { \(limits) }")
            + extraHosts
    }

    /// A host block on the wildcard certificate.
    static func wildcardHost(_ names: String, _ extra: String = "") -> String {
        "\nhost \(names) {\n    certificate \(Repo.certs)/wildcard.example.test.pem \(Repo.certs)/wildcard.example.test.key;\n    route / backend echo;\n    \(extra)\n}\n"
    }

    /// The gateway's access-log lines (JSON) so far.
    var accessLog: [[String: Any]] { jsonLines(gateway?.stdout ?? "") }

    /// The HTTP/2 request lines of the access log.
    var http2Lines: [[String: Any]] { accessLog.filter { $0["protocol"] as? String == "HTTP/2" } }
}
