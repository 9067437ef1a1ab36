/// A W3C `traceparent` (version 00): `00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>`,
/// as SPEC §11 validates it: exactly 55 bytes, lower-case hex, neither id all zeros. Pure:
/// the caller supplies the random bytes of a new one (the gateway uses OpenSSL's CSPRNG).
public struct TraceContext: Sendable, Hashable {
    public var traceIDHigh: UInt64
    public var traceIDLow: UInt64
    public var parentID: UInt64
    public var flags: UInt8

    public static let length = 55
    /// Random bytes a new context takes: 16 for the trace-id, 8 for the parent-id.
    public static let randomByteCount = 24

    public init(traceIDHigh: UInt64, traceIDLow: UInt64, parentID: UInt64, flags: UInt8) {
        self.traceIDHigh = traceIDHigh; self.traceIDLow = traceIDLow; self.parentID = parentID; self.flags = flags
    }

    /// A header value, or nil when it is not a valid version-00 traceparent.
    public static func parse(_ b: UnsafeRawBufferPointer) -> TraceContext? {
        guard b.count == length, b[0] == UInt8(ascii: "0"), b[1] == UInt8(ascii: "0"),
              b[2] == UInt8(ascii: "-"), b[35] == UInt8(ascii: "-"), b[52] == UInt8(ascii: "-"),
              let hi = hex(b, 3, 16), let lo = hex(b, 19, 16), let parent = hex(b, 36, 16), let flags = hex(b, 53, 2),
              hi | lo != 0, parent != 0 else { return nil }
        return TraceContext(traceIDHigh: hi, traceIDLow: lo, parentID: parent, flags: UInt8(flags))
    }

    public static func parse(_ s: String) -> TraceContext? {
        var s = s
        return s.withUTF8 { parse(UnsafeRawBufferPointer($0)) }
    }

    /// A new context: trace-id and parent-id from `random` (at least 24 bytes), sampled (flags 01).
    public static func generate(random: UnsafeRawBufferPointer) -> TraceContext {
        precondition(random.count >= randomByteCount)
        func word(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 << 8 | UInt64(random[at + $1]) } }
        var t = TraceContext(traceIDHigh: word(0), traceIDLow: word(8), parentID: word(16), flags: 0x01)
        // All-zero ids are invalid; a generator that yields 64 zero bits is broken, but stay valid anyway.
        if t.traceIDHigh | t.traceIDLow == 0 { t.traceIDLow = 1 }
        if t.parentID == 0 { t.parentID = 1 }
        return t
    }

    /// The header value (55 bytes).
    /// The 55 bytes of the header value, written into `out` (which must hold that many); no allocation.
    public func write(into out: UnsafeMutableRawBufferPointer) {
        out[0] = UInt8(ascii: "0"); out[1] = UInt8(ascii: "0"); out[2] = UInt8(ascii: "-")
        writeHex16(traceIDHigh, out, at: 3); writeHex16(traceIDLow, out, at: 19)
        out[35] = UInt8(ascii: "-")
        writeHex16(parentID, out, at: 36)
        out[52] = UInt8(ascii: "-")
        Self.writeHex(UInt64(flags), 2, out, at: 53)
    }

    public func write(into out: inout [UInt8]) {
        let start = out.count
        out += repeatElement(0, count: Self.length)
        out.withUnsafeMutableBytes { write(into: UnsafeMutableRawBufferPointer(rebasing: $0[start...])) }
    }

    public var headerValue: String {
        String(unsafeUninitializedCapacity: Self.length) { write(into: UnsafeMutableRawBufferPointer($0)); return Self.length }
    }

    /// The trace-id as 32 lower-case hex digits (the access log's `trace_id`).
    public var traceIDHex: String {
        String(unsafeUninitializedCapacity: 32) { out in
            let raw = UnsafeMutableRawBufferPointer(out)
            writeHex16(traceIDHigh, raw, at: 0); writeHex16(traceIDLow, raw, at: 16)
            return 32
        }
    }

    private static func hex(_ b: UnsafeRawBufferPointer, _ at: Int, _ n: Int) -> UInt64? {
        var v: UInt64 = 0
        for i in at..<at + n {
            let c = b[i]
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = v << 4 | UInt64(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = v << 4 | UInt64(c - UInt8(ascii: "a") + 10)
            default: return nil   // upper-case hex is invalid too
            }
        }
        return v
    }

    private static func writeHex(_ v: UInt64, _ digits: Int, _ out: UnsafeMutableRawBufferPointer, at: Int) {
        let table: StaticString = "0123456789abcdef"
        for i in 0..<digits {
            out[at + i] = table.utf8Start[Int((v >> UInt64((digits - 1 - i) * 4)) & 0xF)]
        }
    }
}
