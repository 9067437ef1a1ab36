// `method SP request-target SP HTTP/1.x`, checked byte by byte as it arrives (HeadScanner
// calls it), so an over-long target is a 414 before the line ends and every error of the
// line is decided at the same byte however the line was segmented.

struct RequestLineChecker: StartLineChecker {
    static var checksBytes: Bool { true }
    private enum Phase { case method, target, version }
    let maxURISize: Int
    private var phase = Phase.method
    private var length = 0          // bytes of the current element so far
    private var methodLength = 0
    private var targetLength = 0

    /// The parts of a complete, valid request line.
    private(set) var method = 0..<0
    private(set) var target = 0..<0
    private(set) var versionMinor = 1
    private(set) var isHEAD = false

    init(maxURISize: Int) { self.maxURISize = maxURISize }

    /// "HTTP/0.0" (0 = a digit), byte i in bits 8i...8i+7: a constant, not a lazy global array.
    private static let versionPattern: UInt64 = 0x302E_302F_5054_5448

    /// A whole line's bytes: the runs of method and target bytes in tight loops, every other
    /// byte (a separator, a version byte, a bad one) through `byte`, so the verdicts are its.
    mutating func bytes(_ b: UnsafeRawBufferPointer, _ range: Range<Int>) throws(HTTPParseError) {
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            var n = length
            switch phase {
            case .method:
                while i < end && ASCII.isToken(b[i]) { n += 1; i += 1 }
            case .target:
                while i < end && ASCII.isTargetByte(b[i]) && n < maxURISize { n += 1; i += 1 }
            case .version:
                // All eight version bytes at once when they are right (else byte by byte, which
                // finds the first wrong one): HTTP/ and . in place, digits where the 0s are.
                if n == 0, end - i >= 8 {
                    let w = b.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                    let digits: UInt64 = 0xFF00_FF00_0000_0000
                    if w & ~digits == Self.versionPattern & ~digits,
                       UInt8(truncatingIfNeeded: w >> 40) &- 48 < 10, UInt8(truncatingIfNeeded: w >> 56) &- 48 < 10 {
                        n = 8; i += 8
                    }
                }
            }
            length = n
            guard i < end else { return }
            try byte(b[i], at: i)
            i += 1
        }
    }

    mutating func byte(_ c: UInt8, at index: Int) throws(HTTPParseError) {
        switch phase {
        case .method:
            if ASCII.isToken(c) { length += 1; return }
            guard c == ASCII.sp, length > 0 else { throw .bad("malformed request line") }
            methodLength = length; length = 0; phase = .target
        case .target:
            if ASCII.isTargetByte(c) {
                length += 1
                if length > maxURISize { throw HTTPParseError(414, "request target over \(maxURISize) bytes") }
                return
            }
            guard c == ASCII.sp, length > 0 else { throw .bad("malformed request target") }
            targetLength = length; length = 0; phase = .version
        case .version:
            guard length < 8 else { throw .bad("malformed HTTP version") }
            let p = UInt8(truncatingIfNeeded: Self.versionPattern >> UInt64(8 * length))
            let ok = p == UInt8(ascii: "0") ? (c &- 48) < 10 : c == p
            guard ok else { throw .bad("malformed HTTP version") }
            length += 1
        }
    }

    mutating func end(_ b: UnsafeRawBufferPointer, _ line: Range<Int>) throws(HTTPParseError) {
        switch phase {
        case .method: throw .bad("malformed request line")
        case .target: throw .bad("malformed request target")
        case .version: guard length == 8 else { throw .bad("malformed HTTP version") }
        }
        let major = Int(b[line.upperBound - 3] - 48), minor = Int(b[line.upperBound - 1] - 48)
        guard major == 1, minor <= 1 else { throw HTTPParseError(505, "HTTP version \(major).\(minor) not supported") }
        let m = line.lowerBound..<line.lowerBound + methodLength
        let t = m.upperBound + 1..<m.upperBound + 1 + targetLength
        if asciiEqualsIgnoringCase(b, m, "connect") { throw HTTPParseError(405, "CONNECT is not supported") }
        let first = b[t.lowerBound]
        let isAsterisk = t.count == 1 && first == UInt8(ascii: "*")
        guard first == UInt8(ascii: "/") || isAsterisk || Self.isAbsoluteForm(b, t) else {
            throw .bad("malformed request target")
        }
        method = m; target = t; versionMinor = minor
        isHEAD = m.count == 4 && b[m.lowerBound] == UInt8(ascii: "H") && b[m.lowerBound + 1] == UInt8(ascii: "E")
            && b[m.lowerBound + 2] == UInt8(ascii: "A") && b[m.lowerBound + 3] == UInt8(ascii: "D")
    }

    /// `http://` or `https://` followed by an authority.
    private static func isAbsoluteForm(_ b: UnsafeRawBufferPointer, _ t: Range<Int>) -> Bool {
        for scheme: StaticString in ["http://", "https://"] {
            let n = scheme.utf8CodeUnitCount
            if t.count > n && asciiEqualsIgnoringCase(b, t.lowerBound..<t.lowerBound + n, scheme) { return true }
        }
        return false
    }
}

/// The response side checks its status line once the head is complete (every error there is a 502).
struct NoStartLineCheck: StartLineChecker {
    static var checksBytes: Bool { false }
    func byte(_ c: UInt8, at index: Int) throws(HTTPParseError) {}
    func end(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) throws(HTTPParseError) {}
}
