import Glibc
import GatewaySystem

/// What the admin thread reads about the gateway as a whole: readiness, reload results, the
/// snapshot in use. Written by the main thread on start, reload and shutdown, read by the admin
/// thread; never touched on the request path, so a mutex is fine here.
public final class GatewayStatus: @unchecked Sendable {
    // @unchecked: every field is read and written under `lock`.
    private let lock = Mutex()
    private var _snapshot: RuntimeSnapshot
    private var _ready = false
    private var _draining = false
    private var _reloads: [String: Int] = ["success": 0, "failure": 0]
    private var _lastSuccess: Int = 0
    private var _certificates: [CertificateExpiry] = []

    init(snapshot: RuntimeSnapshot) {
        _snapshot = snapshot
        _lastSuccess = time(nil)
    }

    var snapshot: RuntimeSnapshot { lock.withLock { _snapshot } }
    /// /readyz: every listener bound and a configuration loaded, and no shutdown begun.
    var ready: Bool { lock.withLock { _ready && !_draining } }
    var reloads: [String: Int] { lock.withLock { _reloads } }
    var lastReloadSuccess: Int { lock.withLock { _lastSuccess } }
    var certificates: [CertificateExpiry] { lock.withLock { _certificates } }

    func markReady() { lock.withLock { _ready = true } }
    func markDraining() { lock.withLock { _draining = true } }
    func reloaded(_ s: RuntimeSnapshot) {
        lock.withLock { _snapshot = s; _reloads["success", default: 0] += 1; _lastSuccess = time(nil) }
    }
    func reloadFailed() { lock.withLock { _reloads["failure", default: 0] += 1 } }
    func setCertificates(_ c: [CertificateExpiry]) { lock.withLock { _certificates = c } }
}

/// One certificate's expiry, for `gateway_certificate_expiry_timestamp_seconds`.
public struct CertificateExpiry: Sendable {
    public let role: String
    public let host: String
    public let subject: String
    public let notAfter: Int
    public init(role: String, host: String, subject: String, notAfter: Int) {
        self.role = role; self.host = host; self.subject = subject; self.notAfter = notAfter
    }
}
