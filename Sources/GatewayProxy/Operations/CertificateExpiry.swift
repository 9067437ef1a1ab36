import Glibc
import GatewayConfig
import GatewayTLS

/// SPEC §7 certificate expiry: at start, at every reload and once a day, a warning per
/// certificate inside the windows (30 and 14 days) and an error once expired; the values of
/// `gateway_certificate_expiry_timestamp_seconds`.
public enum CertificateExpiryWatch {
    public static let windowsDays = [30, 14]
    static let day: Int64 = 86_400

    /// Logs what needs logging and returns every certificate's expiry for the metric.
    @discardableResult
    public static func check(_ config: GatewayConfiguration, log: ErrorLog, now: Int64 = Int64(time(nil))) -> [CertificateExpiry] {
        var out: [CertificateExpiry] = []
        for (use, cert) in CertificateInventory.certificates(config) {
            out.append(CertificateExpiry(role: use.role.rawValue, host: use.owner, subject: cert.subject, notAfter: Int(cert.notAfter)))
            let left = cert.notAfter - now
            let fields: [(String, LogValue)] = [("role", .string(use.role.rawValue)), ("host", .string(use.owner)), ("subject", .string(cert.subject)),
                          ("days_left", .int(cert.daysLeft(now: now))), ("not_after", .string(isoDate(cert.notAfter))), ("file", .string(use.path))]
            if left <= 0 {
                log.log(.error, "certificate_expired", "\(use.role.rawValue) certificate \(cert.subject) of \(use.owner) has expired", fields)
            } else if let window = windowsDays.sorted().first(where: { left < Int64($0) * day }) {
                log.log(.warn, "certificate_expiring", "\(use.role.rawValue) certificate \(cert.subject) of \(use.owner) expires within \(window) days",
                        fields + [("window_days", .int(window))])
            }
        }
        return out
    }

    /// `2027-03-01T12:00:00Z`.
    public static func isoDate(_ t: Int64) -> String { utcTime(t, format: "%Y-%m-%dT%H:%M:%SZ") }
}
