import GatewayConfig
import GatewayJWT
import GatewayTLS

/// Why a backend exchange failed, as the `reason` label of `gateway_backend_failures_total`.
enum BackendFailureReason: Int, CaseIterable {
    case refused, reset, timeout, tls, `protocol`
    var label: String {
        switch self {
        case .refused: "refused"
        case .reset: "reset"
        case .timeout: "timeout"
        case .tls: "tls"
        case .protocol: "protocol"
        }
    }
}

/// Why the PROXY protocol reader closed a connection before its TLS handshake, as the `reason`
/// label of `gateway_proxy_protocol_rejected_total`: a fixed set, so the series stay few whatever
/// peers send (the access log line keeps the detailed text).
enum ProxyRejectReason: Int, CaseIterable {
    /// The peer is not in `proxy_protocol_from`.
    case untrustedPeer
    /// The first bytes are not a valid v1 or v2 header.
    case malformed
    /// No complete header within `handshake_timeout`.
    case timeout
    /// The peer closed or reset the connection inside the header.
    case closed
    var label: String {
        switch self {
        case .untrustedPeer: "untrusted_peer"
        case .malformed: "malformed"
        case .timeout: "timeout"
        case .closed: "closed"
        }
    }
}

/// One worker's counters for the connections of one snapshot. Touched only on the worker's
/// thread (plain integers, no lock, no atomic); keys are indices into the snapshot's hosts and
/// backends packed into one integer, so counting a request hashes a `UInt64`, never a `String`.
final class SnapshotCounters {
    let generation: Int
    let hostNames: [String]
    let backendNames: [String]
    let serverLabels: [[String]]
    let listenLabels: [String]

    private var requests: [UInt64: Int] = [:]    // host << 32 | backend << 16 | code
    var handshakes: [UInt64: Int] = [:]          // host << 40 | resumed << 32 | version << 16 | cipher id
    var cipherNames: [UInt16: String] = [:]
    var handshakeFailures: [FailureKey: Int] = [:]
    var connectionFailures: [FailureKey: Int] = [:]
    var misdirected: [Int: Int] = [:]
    var backendFailures: [UInt64: Int] = [:]     // backend << 32 | server << 16 | reason
    var proxyRejected: [Int: Int] = [:]          // listener << 8 | reason
    /// Connections by the protocol their handshake settled on: [http/1.1, h2].
    var connections = [0, 0]
    var http2Errors: [String: Int] = [:]         // reason
    var jwtFailures: [Int: Int] = [:]            // host << 8 | reason (0: no token, else JWTFailure's position + 1)

    struct FailureKey: Hashable { let host: Int; let reason: String }
    /// The index used for "no host" / "no backend" (a request refused before routing).
    static let none = 0xFFFF

    init(snapshot: RuntimeSnapshot) {
        generation = snapshot.generation
        hostNames = snapshot.tls.hosts.map(\.name)
        backendNames = snapshot.backendList.map(\.config.name)
        serverLabels = snapshot.backendList.map { $0.servers.map(\.label) }
        listenLabels = snapshot.config.listeners.map { ListenKey($0).description }
    }

    /// The key of the last request counted and how many in a row had it, not yet in `requests`:
    /// keep-alive traffic repeats one key, and a dictionary update per request cost a hash, a
    /// probe and a release.
    private var runKey: UInt64 = 0
    private var runCount = 0

    @inline(__always) func countRequest(host: Int, backend: Int, status: Int) {
        let key = UInt64(host) << 32 | UInt64(backend) << 16 | UInt64(UInt16(clamping: status))
        if key == runKey { runCount += 1; return }
        endRun()
        runKey = key
        runCount = 1
    }

    private func endRun() {
        if runCount > 0 { requests[runKey, default: 0] += runCount }
        runCount = 0
    }

    func countHandshake(host: Int, version: Int32, cipherID: UInt16, cipherName: @autoclosure () -> String, resumed: Bool) {
        if cipherNames[cipherID] == nil { cipherNames[cipherID] = cipherName() }
        let key = UInt64(host) << 40 | (resumed ? 1 << 32 : 0) | UInt64(UInt16(truncatingIfNeeded: version)) << 16 | UInt64(cipherID)
        handshakes[key, default: 0] += 1
    }

    func countBackendFailure(backend: Int, server: Int, _ reason: BackendFailureReason) {
        backendFailures[UInt64(backend) << 32 | UInt64(server) << 16 | UInt64(reason.rawValue), default: 0] += 1
    }

    func countProxyRejected(listener: Int, _ reason: ProxyRejectReason) {
        proxyRejected[listener << 8 | reason.rawValue, default: 0] += 1
    }

    func countConnection(http2: Bool) { connections[http2 ? 1 : 0] += 1 }

    func countJWTFailure(host: Int, _ failure: JWTFailure?) {
        let reason = failure.map { f in JWTFailure.allCases.firstIndex(of: f)! + 1 } ?? 0
        jwtFailures[host << 8 | reason, default: 0] += 1
    }

    private func host(_ i: Int) -> String { i < hostNames.count ? hostNames[i] : "" }
    private func backend(_ i: Int) -> String { i < backendNames.count ? backendNames[i] : "" }

    /// The counts with their label values, for summing across workers and snapshots.
    func add(to s: inout MetricsSample) {
        endRun()
        for (k, n) in requests {
            let code = String(k & 0xFFFF)
            s.requests[[host(Int(k >> 32)), backend(Int(k >> 16 & 0xFFFF)), code], default: 0] += n
        }
        for (k, n) in handshakes {
            let cipher = cipherNames[UInt16(k & 0xFFFF)] ?? ""
            let version = Self.versionName(Int32(k >> 16 & 0xFFFF))
            s.handshakes[[host(Int(k >> 40)), version, cipher, k >> 32 & 1 == 1 ? "true" : "false"], default: 0] += n
        }
        for (k, n) in handshakeFailures { s.handshakeFailures[[host(k.host), k.reason], default: 0] += n }
        for (k, n) in connectionFailures { s.connectionFailures[[host(k.host), k.reason], default: 0] += n }
        for (h, n) in misdirected { s.misdirected[[host(h)], default: 0] += n }
        for (k, n) in backendFailures {
            let b = Int(k >> 32), srv = Int(k >> 16 & 0xFFFF)
            let server = b < serverLabels.count && srv < serverLabels[b].count ? serverLabels[b][srv] : ""
            let reason = BackendFailureReason(rawValue: Int(k & 0xFFFF))?.label ?? ""
            s.backendFailures[[backend(b), server, reason], default: 0] += n
        }
        for (k, n) in proxyRejected {
            let l = k >> 8
            let listen = l < listenLabels.count ? listenLabels[l] : ""
            s.proxyRejected[[listen, ProxyRejectReason(rawValue: k & 0xFF)?.label ?? ""], default: 0] += n
        }
        for (i, label) in ["http/1.1", "h2"].enumerated() where connections[i] > 0 { s.connections[[label], default: 0] += connections[i] }
        for (reason, n) in http2Errors { s.http2Errors[[reason], default: 0] += n }
        for (k, n) in jwtFailures {
            let r = k & 0xFF
            s.jwtFailures[[host(k >> 8), r == 0 ? "missing token" : JWTFailure.allCases[r - 1].rawValue], default: 0] += n
        }
    }

    static func versionName(_ v: Int32) -> String {
        switch v {
        case 0x0304: "TLSv1.3"
        case 0x0303: "TLSv1.2"
        case 0x0302: "TLSv1.1"
        case 0x0301: "TLSv1"
        default: "unknown"
        }
    }
}

/// Request durations as a Prometheus histogram (upper bounds in milliseconds).
struct DurationHistogram {
    static let boundsMs: [Int] = [1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000]
    /// Inline (`boundsMs.count + 1`, the last one +Inf): an array's uniqueness check before each
    /// count made the compiler retain the worker's metrics around it.
    var buckets = InlineArray<15, Int>(repeating: 0)

    /// The index of the first bound `ms` does not exceed (`boundsMs.count`: +Inf), as compares:
    /// reading the static array per request retained and released it.
    @inline(__always) static func bucket(_ ms: Int) -> Int {
        if ms <= 100 {
            if ms <= 10 { return ms <= 1 ? 0 : ms <= 5 ? 1 : 2 }
            return ms <= 25 ? 3 : ms <= 50 ? 4 : 5
        }
        if ms <= 2_500 { return ms <= 250 ? 6 : ms <= 500 ? 7 : ms <= 1_000 ? 8 : 9 }
        return ms <= 5_000 ? 10 : ms <= 10_000 ? 11 : ms <= 30_000 ? 12 : ms <= 60_000 ? 13 : 14
    }
    var sumMs = 0
    var count = 0

    @inline(__always) mutating func observe(ms: Int) {
        buckets[Self.bucket(ms)] += 1
        sumMs += ms
        count += 1
    }

    mutating func add(_ o: DurationHistogram) {
        for i in buckets.indices { buckets[i] += o.buckets[i] }
        sumMs += o.sumMs
        count += o.count
    }
}

/// A worker's metrics: counters per snapshot its connections used, and the duration histogram.
/// Owned by the worker's thread; `sample` runs there too (through `loop.execute`) and copies.
final class WorkerMetrics {
    private var sets: [SnapshotCounters] = []
    /// Counts of snapshots no connection uses any more, already turned into labels.
    private var retired = MetricsSample()
    var durations = DurationHistogram()

    /// The counters for `snapshot` (a connection looks them up once, at accept).
    func counters(for snapshot: RuntimeSnapshot) -> SnapshotCounters {
        if let last = sets.last, last.generation == snapshot.generation { return last }
        if let s = sets.first(where: { $0.generation == snapshot.generation }) { return s }
        let s = SnapshotCounters(snapshot: snapshot)
        sets.append(s)
        return s
    }

    /// Everything counted so far with label values. Sets of older snapshots that no connection
    /// holds any more are folded into `retired`, so a thousand reloads keep one small table.
    func sample(currentGeneration: Int) -> MetricsSample {
        var kept: [SnapshotCounters] = []
        for i in sets.indices {
            if sets[i].generation != currentGeneration && isKnownUniquelyReferenced(&sets[i]) {
                sets[i].add(to: &retired)
            } else {
                kept.append(sets[i])
            }
        }
        sets = kept
        var s = retired
        for c in sets { c.add(to: &s) }
        s.durations = durations
        return s
    }
}

/// Metric values with their labels, summed over workers when `/metrics` is scraped.
struct MetricsSample {
    var requests: [[String]: Int] = [:]            // host, backend, code
    var handshakes: [[String]: Int] = [:]          // host, version, cipher, resumed
    var handshakeFailures: [[String]: Int] = [:]   // host, reason
    var connectionFailures: [[String]: Int] = [:]  // host, reason
    var misdirected: [[String]: Int] = [:]         // host
    var backendFailures: [[String]: Int] = [:]     // backend, server, reason
    var proxyRejected: [[String]: Int] = [:]       // listen, reason
    var connections: [[String]: Int] = [:]         // protocol
    var http2Errors: [[String]: Int] = [:]         // reason
    var jwtFailures: [[String]: Int] = [:]         // host, reason
    var backendUp: [[String]: Int] = [:]           // backend, server: 1 while every worker has it in rotation
    var durations = DurationHistogram()
    var connectionsActive = 0

    mutating func add(_ o: MetricsSample) {
        requests.merge(o.requests, uniquingKeysWith: +)
        handshakes.merge(o.handshakes, uniquingKeysWith: +)
        handshakeFailures.merge(o.handshakeFailures, uniquingKeysWith: +)
        connectionFailures.merge(o.connectionFailures, uniquingKeysWith: +)
        misdirected.merge(o.misdirected, uniquingKeysWith: +)
        backendFailures.merge(o.backendFailures, uniquingKeysWith: +)
        proxyRejected.merge(o.proxyRejected, uniquingKeysWith: +)
        connections.merge(o.connections, uniquingKeysWith: +)
        http2Errors.merge(o.http2Errors, uniquingKeysWith: +)
        jwtFailures.merge(o.jwtFailures, uniquingKeysWith: +)
        backendUp.merge(o.backendUp, uniquingKeysWith: min)
        durations.add(o.durations)
        connectionsActive += o.connectionsActive
    }
}
