// The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2) as a pure byte parser:
// no sockets, no allocation beyond the result, so it is tested and fuzzed by feeding bytes.

/// An address carried by a PROXY header: 4 or 16 address bytes and a port.
public struct ProxyAddress: Sendable, Hashable {
    public var bytes: [UInt8]
    public var port: UInt16
    public init(bytes: [UInt8], port: UInt16) { self.bytes = bytes; self.port = port }
    public var isIPv6: Bool { bytes.count == 16 }
}

/// A complete, valid header.
public struct ProxyHeader: Sendable, Hashable {
    public enum Command: Sendable, Hashable {
        /// The sender relays a client: `source` is that client (nil when the family is UNSPEC/UNIX or v1 UNKNOWN).
        case proxy
        /// v2 LOCAL: the sender's own connection (a health check); keep the peer's address.
        case local
    }
    public var version: Int
    public var command: Command
    public var source: ProxyAddress?
    public var destination: ProxyAddress?
    public init(version: Int, command: Command, source: ProxyAddress?, destination: ProxyAddress?) {
        self.version = version; self.command = command; self.source = source; self.destination = destination
    }
}

public enum ProxyProtocolResult: Sendable, Hashable {
    /// Every byte seen so far belongs to the header (a valid prefix of one): consuming them all is safe.
    case needMore
    /// The header ends after `consumed` bytes; what follows belongs to the proxied protocol.
    case header(ProxyHeader, consumed: Int)
    case invalid(String)
}

public enum ProxyProtocolParser {
    /// The v1 line's maximum, CRLF included (the specification's 107 bytes).
    public static let maxV1Length = 107
    /// The largest v2 header accepted (16-byte preamble + addresses + TLVs). The format allows
    /// 16 + 65535; real senders (HAProxy, AWS NLB, Envoy) stay well under this.
    public static let defaultMaxV2Length = 4096

    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    static let v1Prefix: [UInt8] = Array("PROXY ".utf8)

    /// Parses the start of a connection. The version is detected from the first bytes, so a
    /// single byte that can start neither version is already `.invalid`.
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxV2Length: Int = defaultMaxV2Length) -> ProxyProtocolResult {
        guard let first = bytes.first else { return .needMore }
        if first == v1Prefix[0] { return ProxyV1.parse(bytes) }
        if first == v2Signature[0] { return ProxyV2.parse(bytes, maxLength: maxV2Length) }
        return .invalid("not a PROXY protocol header")
    }

    public static func parse(_ bytes: [UInt8], maxV2Length: Int = defaultMaxV2Length) -> ProxyProtocolResult {
        bytes.withUnsafeBytes { parse($0, maxV2Length: maxV2Length) }
    }

    /// True when the available bytes already differ from a fixed prefix (agreeing so far: more may come).
    static func mismatch(_ b: UnsafeRawBufferPointer, _ prefix: [UInt8]) -> Bool {
        for i in 0..<min(b.count, prefix.count) where b[i] != prefix[i] { return true }
        return false
    }
}
