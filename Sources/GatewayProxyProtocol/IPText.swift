/// IPv4 and IPv6 text forms (as inet_ntop writes them, and what inet_pton accepts), parsed by
/// hand so the target needs nothing but the standard library.
enum IPText {
    /// Dotted quad, four decimal parts 0...255, no leading zeros (`010` is ambiguous: octal to some).
    static func v4(_ b: UnsafeRawBufferPointer) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(4)
        var value = -1, digits = 0
        for c in b {
            if c == UInt8(ascii: ".") {
                guard value >= 0, out.count < 3 else { return nil }
                out.append(UInt8(value)); value = -1; digits = 0
            } else if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
                if digits > 0 && value == 0 { return nil }
                value = max(value, 0) * 10 + Int(c - UInt8(ascii: "0"))
                digits += 1
                guard value <= 255 else { return nil }
            } else {
                return nil
            }
        }
        guard value >= 0, out.count == 3 else { return nil }
        out.append(UInt8(value))
        return out
    }

    /// Eight groups of 1-4 hex digits, one `::` for a run of zeros, an optional IPv4 tail.
    static func v6(_ b: UnsafeRawBufferPointer) -> [UInt8]? {
        guard b.count >= 2, b.count <= 45 else { return nil }
        var head: [UInt16] = [], tail: [UInt16] = []
        var sawGap = false
        var i = 0
        if b[0] == UInt8(ascii: ":") {
            guard b[1] == UInt8(ascii: ":") else { return nil }
            sawGap = true; i = 2
        }
        while i < b.count {
            // An IPv4 tail: the last group holds a dot.
            if !b[i...].contains(UInt8(ascii: ":")) && b[i...].contains(UInt8(ascii: ".")) {
                guard let v4 = v4(UnsafeRawBufferPointer(rebasing: b[i...])) else { return nil }
                let words = [UInt16(v4[0]) << 8 | UInt16(v4[1]), UInt16(v4[2]) << 8 | UInt16(v4[3])]
                if sawGap { tail += words } else { head += words }
                i = b.count
                break
            }
            var value = 0, digits = 0
            while i < b.count, let h = hex(b[i]) {
                value = value << 4 | h; digits += 1; i += 1
                guard digits <= 4 else { return nil }
            }
            guard digits > 0 else { return nil }
            if sawGap { tail.append(UInt16(value)) } else { head.append(UInt16(value)) }
            if i == b.count { break }
            guard b[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            if i < b.count, b[i] == UInt8(ascii: ":") {
                guard !sawGap else { return nil }
                sawGap = true; i += 1
                if i == b.count { break }
            } else if i == b.count {
                return nil   // a trailing single colon
            }
        }
        let count = head.count + tail.count
        guard sawGap ? count <= 7 : count == 8 else { return nil }
        let words = head + Array(repeating: 0, count: 8 - count) + tail
        var out: [UInt8] = []
        out.reserveCapacity(16)
        for w in words { out.append(UInt8(w >> 8)); out.append(UInt8(w & 0xFF)) }
        return out
    }

    private static func hex(_ c: UInt8) -> Int? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(c - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(c - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(c - UInt8(ascii: "A")) + 10
        default: nil
        }
    }
}
