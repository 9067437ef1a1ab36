import GatewayHTTP
import GatewaySystem

/// An exchange's X-Request-Id: the client's own when it is valid (1–128 of `[A-Za-z0-9._-]`),
/// else a random version-4 UUID kept as its 128 bits and written as text only where it goes
/// (the backend's head, a log line): no String per request.
enum RequestID: Equatable {
    /// Not assigned yet (a request refused before its head was parsed).
    case none
    case generated(UInt64, UInt64)
    case client([UInt8])

    static let uuidLength = 36

    /// The client's `X-Request-ID` value when it is valid.
    static func client(_ value: UnsafeRawBufferPointer) -> RequestID? {
        guard (1...128).contains(value.count), value.allSatisfy(isRequestIDByte) else { return nil }
        return .client(Array(value))
    }

    static func isRequestIDByte(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"): true
        case UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"): true
        default: false
        }
    }

    func write(into out: inout ByteBuffer) {
        switch self {
        case .none: break
        case .client(let bytes): out.append(bytes)
        case .generated(let a, let b):
            let space = out.writableSpace(minimum: Self.uuidLength)
            Self.writeUUID(a, b, into: space)
            out.didWrite(Self.uuidLength)
        }
    }

    var text: String {
        switch self {
        case .none: ""
        case .client(let bytes): String(decoding: bytes, as: UTF8.self)
        case .generated(let a, let b):
            String(unsafeUninitializedCapacity: Self.uuidLength) { Self.writeUUID(a, b, into: UnsafeMutableRawBufferPointer($0)); return Self.uuidLength }
        }
    }

    /// Hyphenated lower-case hex of the 16 bytes, with the version (4) and variant bits set:
    /// 8-4-4-4-12 digits, written eight at a time (split words: halves in little-endian order).
    private static func writeUUID(_ a: UInt64, _ b: UInt64, into out: UnsafeMutableRawBufferPointer) {
        var words = (a, b)
        withUnsafeMutableBytes(of: &words) { r in
            r[6] = r[6] & 0x0F | 0x40
            r[8] = r[8] & 0x3F | 0x80
            func hex(_ i: Int) -> UInt64 { asciiHex8(UInt32(bigEndian: r.loadUnaligned(fromByteOffset: i, as: UInt32.self))) }
            let dash = UInt8(ascii: "-")
            out.storeBytes(of: hex(0), toByteOffset: 0, as: UInt64.self)
            out[8] = dash
            let b4 = hex(4), b8 = hex(8)
            out.storeBytes(of: UInt32(truncatingIfNeeded: b4), toByteOffset: 9, as: UInt32.self)
            out[13] = dash
            out.storeBytes(of: UInt32(truncatingIfNeeded: b4 >> 32), toByteOffset: 14, as: UInt32.self)
            out[18] = dash
            out.storeBytes(of: UInt32(truncatingIfNeeded: b8), toByteOffset: 19, as: UInt32.self)
            out[23] = dash
            out.storeBytes(of: UInt32(truncatingIfNeeded: b8 >> 32), toByteOffset: 24, as: UInt32.self)
            out.storeBytes(of: hex(12), toByteOffset: 28, as: UInt64.self)
        }
    }
}

/// Random request ids for one worker, from an xorshift generator seeded once (not a secret:
/// a correlation id needs to be unique, not unpredictable).
struct RequestIDGenerator {
    private var state: (UInt64, UInt64)
    init() {
        var rng = SystemRandomNumberGenerator()
        state = (rng.next() | 1, rng.next())
    }
    private mutating func next() -> UInt64 {
        var x = state.0
        let y = state.1
        state.0 = y
        x ^= x << 23
        state.1 = x ^ y ^ (x >> 17) ^ (y >> 26)
        return state.1 &+ y
    }
    mutating func uuid() -> RequestID { .generated(next(), next()) }
}
