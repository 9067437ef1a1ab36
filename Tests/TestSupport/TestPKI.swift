import Foundation

public struct TestError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// A temporary directory with a CA and the leaf certificates the tests need (shared by the
/// check rule tests and the integration tests), made with the
/// `openssl` command (`openssl ca` sets exact notBefore/notAfter, so "expired yesterday" and
/// "expires in 10 days" need no clock tricks). Keys are mode 0600, like the gateway wants.
public final class TestPKI: Sendable {
    public let dir: String

    public init() throws {
        dir = NSTemporaryDirectory() + "gw-check-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try key("ca", "ec")
        try openssl(["req", "-new", "-x509", "-key", path("ca.key"), "-out", path("ca.pem"), "-days", "3650",
                     "-subj", "/CN=check test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        try "".write(toFile: path("index.txt"), atomically: true, encoding: .utf8)
        try "1000\n".write(toFile: path("serial"), atomically: true, encoding: .utf8)
        try """
        [ca]
        default_ca = d
        [d]
        database = \(path("index.txt"))
        new_certs_dir = \(dir)
        serial = \(path("serial"))
        policy = p
        default_md = sha256
        unique_subject = no
        [p]
        commonName = supplied
        """.write(toFile: path("ca.cnf"), atomically: true, encoding: .utf8)
    }

    public func path(_ name: String) -> String { "\(dir)/\(name)" }

    /// `NAME.pem` + `NAME.key` signed by the CA: SANs like `DNS:a.test,IP:127.0.0.1`, valid until
    /// an hour before now + `days` (so whole days left = days - 1 whatever the second; negative: expired), key `ec` | `rsa1024` | `rsa2048`, digest `sha256` | `sha1`,
    /// `extensions` more x509v3 lines (e.g. `extendedKeyUsage=serverAuth`).
    @discardableResult
    public func leaf(_ name: String, sans: String, days: Double = 400, key type: String = "ec", digest: String = "sha256",
              cn: String? = nil, extensions: [String] = []) throws -> (cert: String, key: String) {
        if FileManager.default.fileExists(atPath: path("\(name).pem")) { return (path("\(name).pem"), path("\(name).key")) }
        try key(name, type)
        try openssl(["req", "-new", "-key", path("\(name).key"), "-subj", "/CN=\(cn ?? name)", "-out", path("\(name).csr")])
        try (["basicConstraints=CA:FALSE", "subjectAltName=\(sans)"] + extensions).map { $0 + "\n" }.joined().write(toFile: path("\(name).ext"), atomically: true, encoding: .utf8)
        let notBefore = Date().addingTimeInterval(min(-86_400 * 2, days * 86_400 - 86_400))
        try openssl(["ca", "-batch", "-notext", "-config", path("ca.cnf"), "-cert", path("ca.pem"), "-keyfile", path("ca.key"),
                     "-in", path("\(name).csr"), "-out", path("\(name).pem"), "-extfile", path("\(name).ext"),
                     "-startdate", Self.asn1(notBefore), "-enddate", Self.asn1(Date().addingTimeInterval(days * 86_400 - 3_600)),
                     "-md", digest])
        return (path("\(name).pem"), path("\(name).key"))
    }

    /// Revokes the leaf `NAME` and returns the path of a CRL (valid 30 days) listing every
    /// certificate revoked so far, for a host's `crl`.
    public func crl(revoking name: String) throws -> String {
        let ca = ["-config", path("ca.cnf"), "-cert", path("ca.pem"), "-keyfile", path("ca.key")]
        try openssl(["ca"] + ca + ["-revoke", path("\(name).pem")])
        return try currentCRL()
    }

    /// Writes the CRL (valid 30 days) listing what was revoked so far, none at first, always to
    /// the same path: the file is rewritten in place, as a CRL publisher does.
    @discardableResult
    public func currentCRL() throws -> String {
        try openssl(["ca", "-config", path("ca.cnf"), "-cert", path("ca.pem"), "-keyfile", path("ca.key"),
                     "-gencrl", "-crldays", "30", "-out", path("ca.crl")])
        return path("ca.crl")
    }

    private func key(_ name: String, _ type: String) throws {
        let args: [String] = switch type {
        case "rsa1024": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"]
        case "rsa2048": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
        default: ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
        }
        try openssl(["genpkey"] + args + ["-out", path("\(name).key")])
        chmod(path("\(name).key"), 0o600)
    }

    /// `YYYYMMDDHHMMSSZ`, as `openssl ca -startdate/-enddate` wants.
    public static func asn1(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMddHHmmss'Z'"
        return f.string(from: date)
    }

    private func openssl(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["openssl"] + args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw TestError("openssl \(args.prefix(2).joined(separator: " ")) failed: \(String(decoding: data, as: UTF8.self))")
        }
    }

    /// Writes `gateway.conf` (or `name`) into the PKI directory and returns its path.
    @discardableResult
    public func write(_ text: String, as name: String = "gateway.conf", mode: Int = 0o644) throws -> String {
        try text.write(toFile: path(name), atomically: true, encoding: .utf8)
        chmod(path(name), mode_t(mode))
        return path(name)
    }

    public func remove() { try? FileManager.default.removeItem(atPath: dir) }
}
