import Glibc
import GatewayConfig
import GatewaySystem
import GatewayTLS

/// One backend server made ready: its resolved address and URL host (for SNI / verification).
public struct ServerTarget: Sendable {
    public let config: ServerConfig
    public let address: SocketAddress
    public let label: String   // "host:port" for logs and metrics
    /// Identities that outlive a snapshot (see `StateKeys`): pooled connections and TLS sessions
    /// (backend name, server, TLS settings), and health and in-flight counts (backend name, server).
    let poolKey: Int
    let healthKey: Int
}

/// Small integers for "the same backend server" across reloads, so a worker's pool and health
/// state carry over to a new snapshot without hashing strings per request. Assigned while a
/// snapshot is built (off the event loops, under the lock); the request path only reads the
/// integers stored in the snapshot.
final class StateKeys: @unchecked Sendable {
    // @unchecked: every access goes through the mutex.
    static let shared = StateKeys()
    private let lock = Mutex()
    private var ids: [String: Int] = [:]
    func id(_ text: String) -> Int {
        lock.withLock {
            if let i = ids[text] { return i }
            let i = ids.count
            ids[text] = i
            return i
        }
    }
}

/// A backend made ready: its servers and its client TLS context.
public final class BackendRuntime: Sendable {
    public let config: BackendConfig
    public let servers: [ServerTarget]
    public let tls: TLSBackendContext
    /// Round-robin schedule expanded by weight (server indices).
    public let schedule: [Int]
    /// Each server's weight (least connections divides by it).
    let weights: [Int]
    /// Position in the configuration's backend list (metric keys).
    public let index: Int
    /// The backend's name as a `StateKeys` id (round-robin cursor).
    let nameKey: Int

    init(config: BackendConfig, index: Int) throws(ConfigLoadError) {
        self.config = config
        self.index = index
        nameKey = StateKeys.shared.id("backend \(config.name)")
        tls = try TLSBackendContext(config.tls, protocol: config.protocol, location: config.tls.verifyLocation ?? config.location)
        var servers: [ServerTarget] = []
        var errors: [ConfigDiagnostic] = []
        for s in config.servers {
            if let a = resolve(s.host, port: s.port) {
                let label = s.host.contains(":") ? "[\(s.host)]:\(s.port)" : "\(s.host):\(s.port)"
                let health = "server \(config.name) \(label)"
                servers.append(ServerTarget(config: s, address: a, label: label, poolKey: StateKeys.shared.id("\(health) \(config.tls)"),
                                            healthKey: StateKeys.shared.id(health)))
            } else {
                errors.append(ConfigDiagnostic(s.location, "cannot resolve backend server host \"\(s.host)\""))
            }
        }
        guard errors.isEmpty else { throw ConfigLoadError(errors) }
        self.servers = servers
        schedule = servers.indices.flatMap { i in repeatElement(i, count: max(1, servers[i].config.weight)) }
        weights = servers.map { $0.config.weight }
    }
}

/// Everything a connection needs, built whole from one configuration and never mutated:
/// a reload builds a new snapshot and swaps the reference; open connections keep theirs.
public final class RuntimeSnapshot: Sendable {
    public let config: GatewayConfiguration
    public let tls: TLSServerContexts
    public let backends: [String: BackendRuntime]
    /// By host index, then route position: the route's backend, resolved once here rather than
    /// by name (a String hash) per request.
    let routeBackends: [[BackendRuntime?]]
    /// Each host's effective policy, by host index (the 421 rule).
    public let hostPolicies: [TLSPolicy]
    /// By host index: the exact names a connection to that host may serve without a 421 and its
    /// certificate covers — what its HTTP/2 ORIGIN frame lists (SPEC §12).
    let originNames: [[String]]
    /// Each host's policy and file contents as one digest, by host index, and the same by the
    /// host's display name: after a reload, a connection whose host's fingerprint is not the same
    /// in the new snapshot finishes its exchange and closes (SPEC §7.2, Worker+Reload.swift).
    public let hostFingerprints: [HostFingerprint]
    public let fingerprintsByName: [String: HostFingerprint]
    /// The same backends in configuration order.
    public let backendList: [BackendRuntime]
    public let generation: Int
    public let logs: Logs
    /// Each `listen` block by its address: workers find their listener's settings by address,
    /// so a reload that reorders, changes, adds or removes blocks applies to the right socket.
    public let listeners: [ListenKey: ListenerRuntime]
    /// The keys from `ticket_key_file` (nil: the gateway's generated, rotating keys).
    public let fileTicketRing: TicketKeyRing?
    /// The first line of `admin_token_file` (never logged or shown).
    public let adminToken: [UInt8]?

    public init(config: GatewayConfiguration, generation: Int, logs: Logs) throws(ConfigLoadError) {
        self.config = config
        self.generation = generation
        self.logs = logs
        tls = try TLSServerContexts(config: config)
        hostPolicies = tls.hosts.map(\.policy)
        originNames = Self.originNames(config.hosts)
        // Reads the certificate, key, CA and CRL files once more: here, off the event loops.
        hostFingerprints = tls.hosts.map { HostFingerprint.reading($0.config) }
        fingerprintsByName = Dictionary(zip(tls.hosts.map(\.name), hostFingerprints), uniquingKeysWith: { a, _ in a })
        var backends: [String: BackendRuntime] = [:]
        var errors: [ConfigDiagnostic] = []
        switch config.ticketKeyFile.map(TicketKeys.load) {
        case .failure(let e): errors += e.diagnostics; fileTicketRing = nil
        case .success(let k): fileTicketRing = TicketKeyRing(k)
        case nil: fileTicketRing = nil
        }
        adminToken = config.adminTokenFile.flatMap(Files.firstLine)
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
        routeBackends = tls.hosts.map { h in h.config.routes.map { backends[$0.backend] } }
        backendList = list
        var byAddress: [ListenKey: ListenerRuntime] = [:]
        for (i, (l, t)) in zip(config.listeners, tls.listeners).enumerated() { byAddress[ListenKey(l)] = ListenerRuntime(config: l, tls: t, index: i) }
        listeners = byAddress
    }
}

extension RuntimeSnapshot {
    /// For each host: the exact names of every host with an identical policy (itself included)
    /// that its certificates cover. Certificates are read here, off the event loops.
    static func originNames(_ hosts: [HostConfig]) -> [[String]] {
        let leaves = hosts.map { h in h.certificates.compactMap { try? CertificateInfo.load(pemFile: $0.certificate).first } }
        return hosts.indices.map { i in
            var names: [String] = []
            for other in hosts where other.policy.misdirectionDifferences(from: hosts[i].policy).isEmpty {
                for n in other.names where !n.hasPrefix("*") && !names.contains(n)
                    && leaves[i].contains(where: { NameMatching.covers(dnsNames: $0.dnsNames, ipAddresses: $0.ipAddresses, name: n) }) {
                    names.append(n)
                }
            }
            return names
        }
    }

    /// The ORIGIN frame's entries for a connection to `host` under `name` (its SNI, else the
    /// listener's default host) on `listener`: that name first, then the others; the port is
    /// the listener's `public_port` (else its own), left out when it is 443.
    func origins(host: Int, name: String, listener: ListenConfig) -> [String] {
        let port = listener.publicPort ?? listener.port
        let suffix = port == 443 ? "" : ":\(port)"
        return ([name] + originNames[host].filter { $0 != name }).map { "https://\($0)\(suffix)" }
    }

    /// Per host of this snapshot (by index): must its connections close after a reload to `next`?
    func hostsToDrain(reloadingTo next: RuntimeSnapshot) -> [Bool] {
        ReloadJudgement.hostsToDrain(old: zip(tls.hosts, hostFingerprints).map { (name: $0.name, fingerprint: $1) },
                                     new: next.fingerprintsByName)
    }
}

/// A listening address as the configuration writes it (numeric IP without brackets, port).
public struct ListenKey: Hashable, Sendable, CustomStringConvertible {
    public let address: String
    public let port: UInt16
    public init(_ l: ListenConfig) { address = l.address; port = l.port }
    public var description: String { address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)" }
}

public struct ListenerRuntime: Sendable {
    public let config: ListenConfig
    public let tls: TLSListener
    /// Position in the configuration's listener list (metric keys).
    public let index: Int
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
