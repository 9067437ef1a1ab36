import Foundation

/// The admin endpoint as the tests reach it: curl over TCP or a unix socket.
struct Admin {
    var port: UInt16? = nil
    var unixPath: String? = nil

    func get(_ path: String, token: String? = nil, extra: [String] = []) throws -> (code: Int, body: String) {
        var args = ["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"]
        if let token { args += ["-H", "Authorization: Bearer \(token)"] }
        if let unixPath { args += ["--unix-socket", unixPath, "http://admin\(path)"] } else { args += ["http://127.0.0.1:\(port!)\(path)"] }
        let r = try run(args + extra)
        guard let nl = r.out.lastIndex(of: "\n") else { throw HarnessError("curl admin \(path): \(r.err)") }
        return (Int(r.out[r.out.index(after: nl)...]) ?? 0, String(r.out[..<nl]))
    }
}

/// A Prometheus text page as samples: `name{a="x",b="y"}` → value.
struct MetricsPage {
    let text: String
    let samples: [(name: String, labels: [String: String], value: Double)]

    init(_ text: String) {
        self.text = text
        var out: [(String, [String: String], Double)] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let sp = line.lastIndex(of: " "), let v = Double(line[line.index(after: sp)...]) else { continue }
            let series = line[..<sp]
            var labels: [String: String] = [:]
            var name = String(series)
            if let brace = series.firstIndex(of: "{") {
                name = String(series[..<brace])
                let body = series[series.index(after: brace)..<series.index(before: series.endIndex)]
                // Label values in these tests hold no commas or escaped quotes.
                for pair in body.split(separator: ",") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    labels[String(kv[0])] = String(kv[1].dropFirst().dropLast())
                }
            }
            out.append((name, labels, v))
        }
        samples = out
    }

    /// The sum of every series of `name` whose labels include `matching`.
    func sum(_ name: String, _ matching: [String: String] = [:]) -> Double {
        samples.filter { sample in sample.name == name && matching.allSatisfy { k, v in sample.labels[k] == v } }
            .reduce(0) { $0 + $1.value }
    }
}

/// Lines of a JSON-lines log that parse, as dictionaries.
func jsonLines(_ text: String) -> [[String: Any]] {
    text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
}

/// One cell of the start-up policy table in `log`: the row that starts with `host`, at the
/// offset where `column` starts in the header (cells are padded to their column's width).
func policyTableCell(_ log: String, host: String, column: String) -> String? {
    let lines = log.split(separator: "\n").map(String.init)
    guard let header = lines.first(where: { $0.hasPrefix("host ") && $0.contains("certificates") }),
          let start = header.range(of: " \(column) ").map({ header.distance(from: header.startIndex, to: $0.lowerBound) + 1 }),
          let row = lines.first(where: { $0.hasPrefix(host + " ") }), row.count > start else { return nil }
    let rest = row.dropFirst(start)
    // The cell ends where two spaces start the next column (cells hold single spaces only).
    return String(rest.range(of: "  ").map { rest[..<$0.lowerBound] } ?? rest)
}
