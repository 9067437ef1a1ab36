import GatewayJWT

// The validated, immutable configuration. The parser produces a `GatewayConfiguration`;
// the running gateway holds one as a snapshot and a reload replaces it whole.
// Every path is already resolved against the directory of the file that named it.

/// Where a directive stands in the configuration, for error messages and `check` findings.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public init(file: String, line: Int, column: Int) {
        self.file = file; self.line = line; self.column = column
    }
    public var description: String { "\(file):\(line):\(column)" }
}

/// Where each directive of one block first stood, by directive name (`min_version`, `ciphers`...),
/// so `gateway check` can point at the line that set a value.
public typealias DirectiveLocations = [String: SourceLocation]

/// One load problem, printed as `FILE:LINE:COL: error: message`.
/// Warnings (`GatewayConfiguration.warnings`) print `warning:` instead: the file loads anyway.
public struct ConfigDiagnostic: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable { case error, warning }
    public var location: SourceLocation
    public var message: String
    public var severity: Severity = .error
    public init(_ location: SourceLocation, _ message: String) {
        self.location = location; self.message = message
    }
    public static func warning(_ location: SourceLocation, _ message: String) -> ConfigDiagnostic {
        var d = ConfigDiagnostic(location, message)
        d.severity = .warning
        return d
    }
    public var description: String { "\(location): \(severity.rawValue): \(message)" }
}

/// Every problem found while loading: all are reported, then nothing starts.
public struct ConfigLoadError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [ConfigDiagnostic]
    /// sha256 of the bytes that were read (main file, then includes), for the audit line of a rejection.
    public var sha256 = ""
    public init(_ diagnostics: [ConfigDiagnostic], sha256: String = "") { self.diagnostics = diagnostics; self.sha256 = sha256 }
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

public enum TLSVersion: Int, Sendable, Hashable, Comparable, CustomStringConvertible {
    case tls1_0 = 0x0301, tls1_1 = 0x0302, tls1_2 = 0x0303, tls1_3 = 0x0304
    public static func < (a: TLSVersion, b: TLSVersion) -> Bool { a.rawValue < b.rawValue }
    public var description: String {
        switch self {
        case .tls1_0: "TLSv1"
        case .tls1_1: "TLSv1.1"
        case .tls1_2: "TLSv1.2"
        case .tls1_3: "TLSv1.3"
        }
    }
}

public enum ClientAuth: String, Sendable, Hashable { case off, optional, required }

/// A host's effective TLS policy: `tls_defaults` overridden field by field by the host block.
/// Two hosts with equal policies are interchangeable for the 421 rule.
public struct TLSPolicy: Sendable, Hashable {
    public var minVersion: TLSVersion = .tls1_2
    public var maxVersion: TLSVersion = .tls1_3
    public var ciphers: String = TLSPolicy.defaultCiphers
    public var ciphersuites: String = TLSPolicy.defaultCiphersuites
    public var clientAuth: ClientAuth = .off
    public var clientCA: String? = nil
    public var verifyDepth: Int = 3
    public var crl: String? = nil
    public var sessionTickets: Bool = true
    /// `client_allow`: with entries, a verified client certificate must match one (SPEC §11).
    public var clientAllow: [ClientAllowEntry] = []
    /// `groups`: key-exchange groups in OpenSSL's colon-separated form.
    public var groups: String = TLSPolicy.defaultGroups
    /// `http2 on|off`: whether ALPN may select `h2` for this host (SPEC §12).
    public var http2: Bool = true
    public init() {}

    public static let defaultGroups = "X25519:P-256:P-384"
    public static let defaultCiphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
    public static let defaultCiphersuites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
}

extension TLSPolicy {
    /// The fields SPEC §4 names for the 421 rule that differ from `other` (by directive name):
    /// empty means a connection under one policy may serve requests for a host under the other.
    public func misdirectionDifferences(from other: TLSPolicy) -> [String] {
        var out: [String] = []
        if minVersion != other.minVersion { out.append("min_version") }
        if maxVersion != other.maxVersion { out.append("max_version") }
        if ciphers != other.ciphers { out.append("ciphers") }
        if ciphersuites != other.ciphersuites { out.append("ciphersuites") }
        if clientAuth != other.clientAuth { out.append("client_auth") }
        if clientCA != other.clientCA { out.append("client_ca") }
        if clientAllow != other.clientAllow { out.append("client_allow") }   // SPEC §11: both are part of the policy
        if groups != other.groups { out.append("groups") }
        if http2 != other.http2 { out.append("http2") }   // SPEC §12: part of the policy identity
        return out
    }
}

/// The fields of `TLSPolicy` a block may set; nil = inherit.
public struct TLSPolicyOverrides: Sendable, Hashable {
    public var minVersion: TLSVersion?
    public var maxVersion: TLSVersion?
    public var ciphers: String?
    public var ciphersuites: String?
    public var clientAuth: ClientAuth?
    public var clientCA: String?
    public var verifyDepth: Int?
    public var crl: String?
    public var sessionTickets: Bool?
    /// A block's own `client_allow` lines replace the inherited list as a whole.
    public var clientAllow: [ClientAllowEntry]?
    public var groups: String?
    public var http2: Bool?
    public init() {}

    public func applied(to base: TLSPolicy) -> TLSPolicy {
        var p = base
        if let v = minVersion { p.minVersion = v }
        if let v = maxVersion { p.maxVersion = v }
        if let v = ciphers { p.ciphers = v }
        if let v = ciphersuites { p.ciphersuites = v }
        if let v = clientAuth { p.clientAuth = v }
        if let v = clientCA { p.clientCA = v }
        if let v = verifyDepth { p.verifyDepth = v }
        if let v = crl { p.crl = v }
        if let v = sessionTickets { p.sessionTickets = v }
        if let v = clientAllow { p.clientAllow = v }
        if let v = groups { p.groups = v }
        if let v = http2 { p.http2 = v }
        return p
    }
}

/// A certificate chain file and its private key (PEM), with where the directive stands.
public struct CertificateFiles: Sendable, Hashable {
    public var certificate: String
    public var key: String
    public var location: SourceLocation
    public init(certificate: String, key: String, location: SourceLocation) {
        self.certificate = certificate; self.key = key; self.location = location
    }
}

public struct Route: Sendable, Hashable {
    /// Path prefix, matched on a segment boundary, case-sensitive.
    public var prefix: String
    public var backend: String
    public var stripPrefix: Bool
    /// `jwt off`: the host's token check does not apply to this route (SPEC §13).
    public var jwtOff: Bool
    public var location: SourceLocation
    public init(prefix: String, backend: String, stripPrefix: Bool, jwtOff: Bool = false, location: SourceLocation) {
        self.prefix = prefix; self.backend = backend; self.stripPrefix = stripPrefix; self.jwtOff = jwtOff; self.location = location
    }
}

public struct CompressionSettings: Sendable, Hashable {
    public var enabled = false
    public var types: [String] = ["text/html", "text/plain", "text/css", "application/json", "application/javascript"]
    public var minLength = 1024
    public init() {}
}

public struct HostConfig: Sendable, Hashable {
    /// Names as written, lower-cased, trailing dot dropped; `*.example.test` for a wildcard.
    public var names: [String]
    public var certificates: [CertificateFiles]
    /// The effective policy (defaults already applied).
    public var policy: TLSPolicy
    /// Routes sorted longest prefix first.
    public var routes: [Route]
    public var compression: CompressionSettings
    public var location: SourceLocation
    /// The host block's own directives (inherited fields are in `GatewayConfiguration.tlsDefaultsLocations`).
    public var directiveLocations: DirectiveLocations = [:]
    /// `jwt { }` (SPEC §13): not a TLS policy field, not inherited, not part of the 421 identity.
    public var jwt: JWTConfig?
    public init(names: [String], certificates: [CertificateFiles], policy: TLSPolicy, routes: [Route],
                compression: CompressionSettings, location: SourceLocation) {
        self.names = names; self.certificates = certificates; self.policy = policy
        self.routes = routes; self.compression = compression; self.location = location
    }
    /// The name used in logs and metric labels: the first name as written.
    public var displayName: String { names[0] }
}

/// An IPv4 or IPv6 network; `bits` = prefix length. Bytes are 4 or 16 long.
public struct IPNetwork: Sendable, Hashable {
    public var address: [UInt8]
    public var bits: Int
    public init(address: [UInt8], bits: Int) { self.address = address; self.bits = bits }
    public func contains(_ ip: [UInt8]) -> Bool {
        guard ip.count == address.count else { return false }
        var remaining = bits
        for i in 0..<ip.count where remaining > 0 {
            let take = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - take))
            if ip[i] & mask != address[i] & mask { return false }
            remaining -= take
        }
        return true
    }
}

public struct AccessRule: Sendable, Hashable {
    public var allow: Bool
    /// nil = `all`.
    public var network: IPNetwork?
    public init(allow: Bool, network: IPNetwork?) { self.allow = allow; self.network = network }
}

public enum UnknownSNI: String, Sendable, Hashable { case reject, `default` }

public struct ListenConfig: Sendable, Hashable {
    /// Numeric IPv4 or IPv6 literal (without brackets).
    public var address: String
    public var port: UInt16
    public var defaultHost: String?
    public var unknownSNI: UnknownSNI = .reject
    public var access: [AccessRule] = []
    /// `proxy_protocol on`: every connection starts with a PROXY v1/v2 header from a peer in `proxyProtocolFrom`.
    public var proxyProtocol = false
    public var proxyProtocolFrom: [IPNetwork] = []
    /// `public_port`: the port clients connect to (behind a load balancer), for ORIGIN frames.
    public var publicPort: UInt16?
    public var location: SourceLocation
    public init(address: String, port: UInt16, location: SourceLocation) {
        self.address = address; self.port = port; self.location = location
    }
}

/// All durations in milliseconds, sizes in bytes.
public struct Limits: Sendable, Hashable {
    public var maxConnections = 10_000
    public var handshakeTimeoutMs = 10_000
    public var headerTimeoutMs = 10_000
    public var idleTimeoutMs = 60_000
    public var maxHeaderSize = 16 * 1024
    public var maxHeaders = 100
    public var maxBodySize = 10 * 1024 * 1024
    public var maxURISize = 8 * 1024
    /// SETTINGS_MAX_CONCURRENT_STREAMS the gateway announces on HTTP/2 connections.
    public var http2MaxConcurrentStreams = 128
    /// Requests on one connection before it ends (HTTP/1.1: `Connection: close`; HTTP/2: GOAWAY).
    public var maxRequestsPerConnection = 10_000
    public init() {}
}

public enum CASource: Sendable, Hashable { case system, file(String) }

public struct BackendTLS: Sendable, Hashable {
    public var minVersion: TLSVersion = .tls1_2
    public var maxVersion: TLSVersion = .tls1_3
    public var ciphers: String?
    public var ciphersuites: String?
    public var ca: CASource = .system
    public var serverName: String?
    public var clientCertificate: CertificateFiles?
    public var keyPasswordFile: String?
    public var verify = true
    public var sessionReuse = true
    /// Where `verify off` stands, for the warning and the `check` finding.
    public var verifyLocation: SourceLocation?
    /// The `tls { }` block's directives, for `check` findings (`min_version`, `ca`...).
    public var directiveLocations: DirectiveLocations = [:]
    public init() {}
}

public struct ServerConfig: Sendable, Hashable {
    /// Host of the URL as written (IP literal without brackets, or a DNS name).
    public var host: String
    public var port: UInt16
    public var weight = 1
    public var location: SourceLocation
    public init(host: String, port: UInt16, location: SourceLocation) {
        self.host = host; self.port = port; self.location = location
    }
}

public enum BalanceMethod: String, Sendable, Hashable { case roundRobin = "round_robin", leastConn = "least_conn" }

public struct HealthCheck: Sendable, Hashable {
    public var path: String
    public var intervalMs = 5_000
    public var timeoutMs = 2_000
    public init(path: String) { self.path = path }
}

public struct BackendConfig: Sendable, Hashable {
    public var name: String
    public var servers: [ServerConfig]
    public var balance: BalanceMethod = .roundRobin
    public var connectTimeoutMs = 5_000
    public var responseTimeoutMs = 60_000
    public var keepalive = 32
    public var keepaliveTimeoutMs = 60_000
    public var maxFails = 3
    public var failTimeoutMs = 10_000
    public var healthCheck: HealthCheck?
    /// `protocol`: what the pooled connections speak (SPEC §12). `h2` backends must negotiate
    /// it by ALPN; the TLS context offers only `h2` to them.
    public var `protocol`: BackendProtocol = .http11
    public var tls = BackendTLS()
    public var location: SourceLocation
    /// The backend block's own directives (`tls`, `server`...).
    public var directiveLocations: DirectiveLocations = [:]
    public init(name: String, servers: [ServerConfig], location: SourceLocation) {
        self.name = name; self.servers = servers; self.location = location
    }
}

/// A backend's application protocol (`protocol http/1.1 | h2`); the raw value is the config
/// word and the ALPN name.
public enum BackendProtocol: String, Sendable, Hashable {
    case http11 = "http/1.1"
    case h2
}

public enum LogFormat: String, Sendable, Hashable { case json, text }
public enum LogTarget: Sendable, Hashable { case off, stdout, stderr, file(String) }
public enum LogLevel: Int, Sendable, Hashable, Comparable {
    case debug, info, warn, error
    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

public enum AdminAddress: Sendable, Hashable {
    case tcp(address: String, port: UInt16)
    case unix(String)

    /// Reachable from this machine only: a unix socket, 127.0.0.0/8 or ::1 (GW.Admin.Exposed).
    public var isLocalOnly: Bool {
        switch self {
        case .unix: true
        case .tcp(let address, _): address.hasPrefix("127.") || address == "::1"
        }
    }
}

public struct GatewayConfiguration: Sendable {
    /// nil = `auto` (one per CPU).
    public var workers: Int?
    public var errorLog: LogTarget = .stderr
    public var errorLogLevel: LogLevel = .info
    public var accessLog: LogTarget = .stdout
    public var accessLogFormat: LogFormat = .json
    public var admin: AdminAddress?
    public var adminTokenFile: String?
    public var adminTokenLocation: SourceLocation?
    public var shutdownTimeoutMs = 30_000
    /// `reload_on_change`: reload one second after any file the configuration names changes.
    public var reloadOnChange = true
    public var allowInsecureKeyPermissions = false
    public var limits = Limits()
    public var tlsDefaults = TLSPolicy()
    public var listeners: [ListenConfig] = []
    public var hosts: [HostConfig] = []
    public var backends: [BackendConfig] = []
    /// The main file, then each included file in include order.
    public var files: [String] = []
    /// sha256 (lower-case hex) of the main file's bytes followed by each included file's bytes.
    public var sha256: String = ""
    /// `ticket_key_file` from `tls_defaults`: session ticket keys shared by a fleet (nil = generated, rotated).
    public var ticketKeyFile: String? = nil
    /// Problems that do not stop the load (group-readable keys, `verify off`...), for the log and `check`.
    public var warnings: [ConfigDiagnostic] = []
    /// Top-level directives (`admin`, `tls_defaults`...) and those of `tls_defaults`, for `check` findings.
    public var topLevelLocations: DirectiveLocations = [:]
    public var tlsDefaultsLocations: DirectiveLocations = [:]
    public init() {}

    public func backend(named name: String) -> BackendConfig? { backends.first { $0.name == name } }

    /// Every file the configuration reads (for `reload_on_change`): the main file and its
    /// includes, certificates, keys, CAs, CRLs, JWKS files, ticket keys, key passwords, the admin token.
    public var watchedFiles: [String] {
        var out = files
        for h in hosts {
            for c in h.certificates { out += [c.certificate, c.key] }
            if let ca = h.policy.clientCA { out.append(ca) }
            if let crl = h.policy.crl { out.append(crl) }
            if let jwks = h.jwt?.jwksFile { out.append(jwks) }   // a new key set is a reload
        }
        for b in backends {
            if let c = b.tls.clientCertificate { out += [c.certificate, c.key] }
            if case .file(let ca) = b.tls.ca { out.append(ca) }
            if let p = b.tls.keyPasswordFile { out.append(p) }
        }
        out += [ticketKeyFile, adminTokenFile].compactMap { $0 }
        var seen = Set<String>()
        return out.filter { seen.insert($0).inserted }
    }
}
