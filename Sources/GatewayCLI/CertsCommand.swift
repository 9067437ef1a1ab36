import Glibc
import GatewayConfig
import GatewaySystem
import GatewayProxy
import GatewayTLS

/// `gateway certs`: every certificate the configuration names (SPEC §2, §10), as a table or JSON.
/// Exit 1 when one is expired or inside the first (widest) warning window, 2 when the file does not load.
enum CertsCommand {
    struct Row {
        let role, host, subject, sans, issuer, key, notAfter: String
        let sanList: [String]
        let daysLeft: Int
    }

    static func run(path: String, warnDays: [Int], json: Bool) -> Int32 {
        let config: GatewayConfiguration
        do { config = try ConfigLoader.load(path: path) } catch {
            for d in error.diagnostics { Descriptor.printError(d.description) }
            return 2
        }
        let now = Int64(time(nil))
        let rows = CertificateInventory.certificates(config).map { use, c in
            let sans = c.subjectAltNames.map(\.description)
            return Row(role: use.role.rawValue, host: use.owner, subject: c.subject, sans: sans.joined(separator: ","),
                       issuer: c.issuer, key: c.keyDescription, notAfter: CertificateExpiryWatch.isoDate(c.notAfter),
                       sanList: sans, daysLeft: c.daysLeft(now: now))
        }
        print(json ? renderJSON(rows) : renderTable(rows))
        let first = warnDays.max() ?? 0
        let flagged = CertificateInventory.certificates(config).contains { _, c in c.notAfter - now < Int64(first) * 86_400 }
        return flagged ? 1 : 0
    }

    static func renderJSON(_ rows: [Row]) -> String {
        JSONValue.object([("certificates", .array(rows.map { r in
            .object([("role", .string(r.role)), ("host", .string(r.host)), ("subject", .string(r.subject)),
                     ("sans", .array(r.sanList.map { .string($0) })), ("issuer", .string(r.issuer)), ("key", .string(r.key)),
                     ("not_after", .string(r.notAfter)), ("days_left", .int(r.daysLeft))])
        }))]).text
    }

    /// The JSON's columns as an aligned table.
    static func renderTable(_ rows: [Row]) -> String {
        let header = ["role", "host", "subject", "sans", "issuer", "key", "not_after", "days_left"]
        let cells = [header] + rows.map { [$0.role, $0.host, $0.subject, $0.sans.isEmpty ? "-" : $0.sans, $0.issuer, $0.key, $0.notAfter, String($0.daysLeft)] }
        let widths = header.indices.map { c in cells.map { $0[c].count }.max() ?? 0 }
        return cells.map { row in
            row.enumerated().map { c, v in c == row.count - 1 ? v : v + String(repeating: " ", count: widths[c] - v.count) }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
