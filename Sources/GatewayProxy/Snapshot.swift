import Glibc
import GatewayConfig
import GatewaySystem
import GatewayTLS

/// One backend server made ready: its resolved address and URL host (for SNI / verification).
public struct ServerTarget: Sendable {
    public let config: ServerConfig
    public let address: SocketAddress
    public let label: String   // "host:port" for logs and metrics
}

/// A backend made ready: its servers and its client TLS context.
public final class BackendRuntime: Sendable {
    public let config: BackendConfig
    public let servers: [ServerTarget]
    public let tls: TLSBackendContext
    /// Round-robin schedule expanded by weight (server indices).
    public let schedule: [Int]
    /// Position in the configuration's backend list (metric keys).
    public let index: Int

    init(config: BackendConfig, index: Int) throws(ConfigLoadError) {
        self.config = config
        self.index = index
        tls = try TLSBackendContext(config.tls, location: config.tls.verifyLocation ?? config.location)
        var servers: [ServerTarget] = []
        var errors: [ConfigDiagnostic] = []
        for s in config.servers {
            if let a = resolve(s.host, port: s.port) {
                let label = s.host.contains(":") ? "[\(s.host)]:\(s.port)" : "\(s.host):\(s.port)"
                servers.append(ServerTarget(config: s, address: a, label: label))
            } else {
                errors.append(ConfigDiagnostic(s.location, "cannot resolve backend server host \"\(s.host)\""))
            }
        }
        guard errors.isEmpty else { throw ConfigLoadError(errors) }
        self.servers = servers
        schedule = servers.indices.flatMap { i in repeatElement(i, count: max(1, servers[i].config.weight)) }
    }
}

/// Everything a connection needs, built whole from one configuration and never mutated:
/// a reload builds a new snapshot and swaps the reference; open connections keep theirs.
public final class RuntimeSnapshot: Sendable {
    public let config: GatewayConfiguration
    public let tls: TLSServerContexts
    public let backends: [String: BackendRuntime]
    /// The same backends in configuration order.
    public let backendList: [BackendRuntime]
    public let generation: Int
    /// From `ticket_key_file`; nil: the gateway's generated, rotating keys.
    public let ticketKeys: [[UInt8]]?
    public let logs: Logs
    /// The first line of `admin_token_file` (never logged or shown).
    public let adminToken: [UInt8]?

    public init(config: GatewayConfiguration, generation: Int, logs: Logs) throws(ConfigLoadError) {
        self.config = config
        self.generation = generation
        self.logs = logs
        tls = try TLSServerContexts(config: config)
        var backends: [String: BackendRuntime] = [:]
        var errors: [ConfigDiagnostic] = []
        switch config.ticketKeyFile.map(TicketKeys.load) {
        case .failure(let e): errors += e.diagnostics; ticketKeys = nil
        case .success(let k): ticketKeys = k
        case nil: ticketKeys = nil
        }
        adminToken = config.adminTokenFile.flatMap(readFirstLine)
        if config.adminTokenFile != nil && (adminToken ?? []).isEmpty {
            errors.append(ConfigDiagnostic(config.adminTokenLocation ?? SourceLocation(file: config.files.first ?? "", line: 1, column: 1),
                                           "admin_token_file is empty or unreadable: its first line is the token"))
        }
        var list: [BackendRuntime] = []
        for (i, b) in config.backends.enumerated() {
            do {
                let r = try BackendRuntime(config: b, index: i)
                backends[b.name] = r
                list.append(r)
            } catch { errors += error.diagnostics }
        }
        guard errors.isEmpty else { throw ConfigLoadError(errors) }
        self.backends = backends
        backendList = list
    }
}

/// Resolves a backend host once, at load (blocking is fine off the event loops).
func resolve(_ host: String, port: UInt16) -> SocketAddress? {
    if let a = SocketAddress(ip: host, port: port) { return a }
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var res: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, String(port), &hints, &res) == 0, let first = res else { return nil }
    defer { freeaddrinfo(res) }
    var st = sockaddr_storage()
    withUnsafeMutableBytes(of: &st) { $0.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen))) }
    return SocketAddress(storage: st, length: first.pointee.ai_addrlen)
}

/// The first line of a small secret file, without its line end; nil if unreadable.
func readFirstLine(_ path: String) -> [UInt8]? {
    guard let f = fopen(path, "r") else { return nil }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    while bytes.count < 4096 {
        let c = fgetc(f)
        if c == EOF || c == 0x0A { break }
        bytes.append(UInt8(truncatingIfNeeded: c))
    }
    while bytes.last == 0x0D || bytes.last == 0x20 || bytes.last == 0x09 { bytes.removeLast() }
    return bytes
}
