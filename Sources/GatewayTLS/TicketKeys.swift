import COpenSSL
import GatewaySystem
import CGatewayShims
import GatewayConfig

/// Session ticket keys of the whole process. With `ticket_key_file` a fleet shares them;
/// without, the gateway generates a key at start and rotates it hourly, keeping the two
/// previous keys so tickets issued in the last hours still resume.
public enum TicketKeys {
    public static let keySize = Int(GW_TICKET_KEY_SIZE)
    public static let maxKeys = 4

    /// `ticket_key_file` format: one key per line, 160 hex digits (80 bytes: a 16-byte key name,
    /// a 32-byte HMAC-SHA256 secret, a 32-byte AES-256 key, like nginx's 80-byte key files);
    /// `#` comments and blank lines are ignored. The first key encrypts new tickets; up to three
    /// more only decrypt (list the previous key second when rotating a fleet).
    /// `openssl rand -hex 80` makes one key.
    public static func load(_ path: String) -> Result<[[UInt8]], ConfigLoadError> {
        guard let text = readText(path) else {
            return .failure(ConfigLoadError([ConfigDiagnostic(SourceLocation(file: path, line: 1, column: 1), "cannot read ticket key file")]))
        }
        var keys: [[UInt8]] = []
        var errors: [ConfigDiagnostic] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0].filter { $0 != " " && $0 != "\t" && $0 != "\r" }
            if line.isEmpty { continue }
            let loc = SourceLocation(file: path, line: n + 1, column: 1)
            guard let key = hexBytes(line), key.count == keySize else {
                errors.append(ConfigDiagnostic(loc, "a ticket key is \(keySize * 2) hex digits (got \(line.count) characters)")); continue
            }
            keys.append(key)
        }
        if errors.isEmpty && keys.isEmpty { errors.append(ConfigDiagnostic(SourceLocation(file: path, line: 1, column: 1), "no ticket key in the file")) }
        if keys.count > maxKeys { errors.append(ConfigDiagnostic(SourceLocation(file: path, line: 1, column: 1), "at most \(maxKeys) ticket keys")) }
        return errors.isEmpty ? .success(keys) : .failure(ConfigLoadError(errors))
    }

    public static func generate() -> [UInt8] {
        var k = [UInt8](repeating: 0, count: keySize)
        _ = RAND_bytes(&k, Int32(keySize))
        return k
    }

    private static func hexBytes(_ s: String) -> [UInt8]? {
        var out: [UInt8] = []
        var hi: UInt8?
        for c in s.utf8 {
            guard let v = c.hexDigitValue else { return nil }
            if let h = hi { out.append(h << 4 | v); hi = nil } else { hi = v }
        }
        return hi == nil ? out : nil
    }

    private static func readText(_ path: String) -> String? {
        guard case .success(let bytes) = Files.read(path) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// An immutable set of ticket keys (first = current) in the layout the C ticket callback reads.
/// Each server SSL points at the ring it was accepted under, and its connection keeps the ring
/// alive; a rotation or reload makes a new ring instead of changing one under readers.
public final class TicketKeyRing: @unchecked Sendable {
    // @unchecked: written once in init, then only read (by OpenSSL's ticket callback, any thread).
    let ring: UnsafeMutablePointer<gw_ticket_ring>

    public init(_ keys: [[UInt8]]) {
        ring = .allocate(capacity: 1)
        ring.initialize(to: gw_ticket_ring())
        let used = keys.prefix(TicketKeys.maxKeys)
        ring.pointee.count = Int32(used.count)
        withUnsafeMutableBytes(of: &ring.pointee.keys) { dst in
            for (i, k) in used.enumerated() { dst.baseAddress!.advanced(by: i * TicketKeys.keySize).copyMemory(from: k, byteCount: TicketKeys.keySize) }
        }
    }

    deinit {
        OPENSSL_cleanse(ring, MemoryLayout<gw_ticket_ring>.size)
        ring.deallocate()
    }

    /// Attaches the ring to a server SSL (before its handshake).
    func attach(to ssl: OpaquePointer) { _ = gw_ssl_set_ticket_ring(ssl, ring) }
}

/// Generated keys, rotated on the main thread's clock: a new key every hour, the two previous
/// ones kept for decryption.
public struct TicketKeyRotation {
    public static let intervalMs: UInt64 = 3_600_000
    private var keys: [[UInt8]] = [TicketKeys.generate()]
    public private(set) var ring: TicketKeyRing
    private var rotatedAt: UInt64

    public init(now: UInt64) {
        rotatedAt = now
        ring = TicketKeyRing(keys)
    }

    /// A new current key once an interval has passed; true when the ring changed.
    public mutating func rotateIfDue(now: UInt64) -> Bool {
        guard now - rotatedAt >= Self.intervalMs else { return false }
        keys = [TicketKeys.generate()] + keys.prefix(2)
        ring = TicketKeyRing(keys)
        rotatedAt = now
        return true
    }
}

private extension UInt8 {
    var hexDigitValue: UInt8? {
        switch self {
        case 48...57: self - 48
        case 97...102: self - 87
        case 65...70: self - 55
        default: nil
        }
    }
}
