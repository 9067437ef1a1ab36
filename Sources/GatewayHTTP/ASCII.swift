// Byte classes of RFC 9110/9112 and the few case-insensitive comparisons the proxy needs.
import Glibc

enum ASCII {
    static let cr: UInt8 = 13, lf: UInt8 = 10, sp: UInt8 = 32, ht: UInt8 = 9
    static let colon: UInt8 = 58, comma: UInt8 = 44, semicolon: UInt8 = 59

    /// tchar (ALPHA, DIGIT and !#$%&'*+-.^_`|~): the bytes allowed in a method, a header name or
    /// a token, as a bit per byte value in two words. Integer literals are constants; a global
    /// table would be a lazy global, checked (swift_once) on every byte.
    static let tokenBitsLow: UInt64 = 0x03FF_6CFA_0000_0000    // bytes 0-63
    static let tokenBitsHigh: UInt64 = 0x57FF_FFFF_C7FF_FFFE   // bytes 64-127

    @inline(__always) static func isToken(_ c: UInt8) -> Bool {
        c < 64 ? (tokenBitsLow >> UInt64(c)) & 1 != 0 : c < 128 && (tokenBitsHigh >> UInt64(c &- 64)) & 1 != 0
    }
    /// How many of the eight bytes of `w`, in memory order, are letters, digits or "-" before the
    /// first that is not (the bytes of nearly every header name, all tchar), 0...8. Per byte:
    /// a sum below 0x100 never carries, and a byte from 0x80 up (which could carry into the
    /// bytes after it, never into those before) ends the run itself.
    @inline(__always) static func nameBytePrefix(_ w: UInt64) -> Int {
        #if _endian(little)
        let ones: UInt64 = 0x0101_0101_0101_0101, highs = ones &* 0x80
        // x in lo...hi (x below 0x80): x + 0x80 - lo has its high bit, x + 0x7F - hi has not.
        @inline(__always) func inRange(_ x: UInt64, _ lo: UInt64, _ hi: UInt64) -> UInt64 {
            (x &+ ones &* (0x80 - lo)) & ~(x &+ ones &* (0x7F - hi))
        }
        let dash = w ^ (ones &* 0x2D)
        let isDash = ~(dash &+ ones &* 0x7F)   // high bit where the byte is "-"
        let ok = (inRange(w, 0x30, 0x39) | inRange(w | (ones &* 0x20), 0x61, 0x7A) | isDash) & ~w & highs
        return (~ok & highs).trailingZeroBitCount / 8
        #else
        return 0
        #endif
    }
    /// field-content: visible ASCII, obs-text, space and tab; no other control byte.
    @inline(__always) static func isFieldByte(_ c: UInt8) -> Bool { c >= 0x20 ? c != 0x7F : c == ht }
    /// Whether every byte of `bytes[range]` is field-content: eight bytes at a time, and byte by
    /// byte only in a word that holds a byte below 0x20 (a tab is one) or a DEL. The tests are
    /// exact for "some byte is": a borrow can mark a wrong byte, never an innocent word. The last
    /// bytes of a range not a multiple of eight long are the top of the word that ends where the
    /// range does (the bytes below them masked off; a mark there from a borrow only costs the
    /// byte-by-byte check), when the buffer has eight bytes up to there.
    @inline(__always) static func allFieldBytes(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        @inline(__always) func marks(_ w: UInt64) -> UInt64 {
            let del = w ^ (ones &* 0x7F)
            return ((w &- ones &* 0x20) & ~w | (del &- ones) & ~del) & highs
        }
        @inline(__always) func bytewise(_ r: Range<Int>) -> Bool {
            for j in r where !isFieldByte(bytes[j]) { return false }
            return true
        }
        var i = range.lowerBound
        while range.upperBound - i >= 8 {
            if marks(bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)) != 0 && !bytewise(i..<(i + 8)) { return false }
            i += 8
        }
        let left = range.upperBound - i
        guard left > 0 else { return true }
        #if _endian(little)
        if range.upperBound >= 8 {
            let w = bytes.loadUnaligned(fromByteOffset: range.upperBound - 8, as: UInt64.self)
            return marks(w) & ~(UInt64.max >> UInt64(8 * left)) == 0 || bytewise(i..<range.upperBound)
        }
        #endif
        return bytewise(i..<range.upperBound)
    }
    /// A request target: visible ASCII only (no space, no control, no obs-text).
    @inline(__always) static func isTargetByte(_ c: UInt8) -> Bool { c > 0x20 && c < 0x7F }
    @inline(__always) static func isWhitespace(_ c: UInt8) -> Bool { c == sp || c == ht }
    @inline(__always) static func lower(_ c: UInt8) -> UInt8 { c &- 65 < 26 ? c | 0x20 : c }

    static func hexValue(_ c: UInt8) -> Int? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(c - 48)
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(c - 87)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(c - 55)
        default: nil
        }
    }

    /// A non-empty run of decimal digits, at most 18 of them (so it cannot overflow).
    static func decimal(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        guard !range.isEmpty, range.count <= 18 else { return nil }
        var n = 0
        for i in range {
            let d = bytes[i] &- 48
            guard d < 10 else { return nil }
            n = n * 10 + Int(d)
        }
        return n
    }
}

/// Whether `p` holds exactly the bytes of `s`. One memcmp: Sequence.elementsEqual walked two
/// iterators, ~125 instructions for a 12-byte header name.
@inlinable
public func bytesEqual(_ p: UnsafeRawBufferPointer, _ s: StaticString) -> Bool {
    p.count == s.utf8CodeUnitCount && (p.count == 0 || memcmp(p.baseAddress!, s.utf8Start, p.count) == 0)
}

/// Eight bytes with A-Z lower-cased, every other byte (0x80 and up too) as it was: a byte's
/// high bit after adding 0x3F to its low seven says >= "A", after adding 0x25 says > "Z".
@inlinable @inline(__always)
public func asciiLowercased(_ w: UInt64) -> UInt64 {
    let ones: UInt64 = 0x0101_0101_0101_0101, highs = ones &* 0x80
    let low7 = w & ~highs
    let upper = (low7 &+ ones &* 0x3F) & ~(low7 &+ ones &* 0x25) & ~w & highs
    return w | (upper >> 2)
}

/// The eight lower-case hex digits of `v`, most significant first in memory order (stored as a
/// little-endian word): each nibble spread into a byte of its own, then "0" added, and 39 more
/// to those from 10 up (their byte + 6 reaches 16). A digit at a time cost ~20 instructions.
@inlinable @inline(__always)
public func asciiHex8(_ v: UInt32) -> UInt64 {
    var n = UInt64(v)
    n = (n | n << 16) & 0x0000_FFFF_0000_FFFF
    n = (n | n << 8) & 0x00FF_00FF_00FF_00FF
    n = (n | n << 4) & 0x0F0F_0F0F_0F0F_0F0F
    #if _endian(little)
    n = n.byteSwapped
    #endif
    let ones: UInt64 = 0x0101_0101_0101_0101
    let letters = ((n &+ ones &* 6) >> 4) & ones
    return n &+ ones &* 0x30 &+ letters &* 39
}

/// `v` as 16 lower-case hex digits at `out + at`.
@inlinable @inline(__always)
public func writeHex16(_ v: UInt64, _ out: UnsafeMutableRawBufferPointer, at: Int) {
    out.storeBytes(of: asciiHex8(UInt32(truncatingIfNeeded: v >> 32)), toByteOffset: at, as: UInt64.self)
    out.storeBytes(of: asciiHex8(UInt32(truncatingIfNeeded: v)), toByteOffset: at + 8, as: UInt64.self)
}

/// A field value as a non-negative decimal (digits only, at most 18), as Content-Length is read.
public func asciiDecimal(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
    ASCII.decimal(bytes, range)
}

/// Whether `bytes[range]` equals `lowercased` ignoring ASCII case. `lowercased` must be lower case.
/// Inlinable: the other modules call it for every header name against several names, and the
/// length check alone settles most calls. Eight bytes at a time (the last word overlapping the
/// one before it), four for a name of 4 to 7 bytes: byte by byte cost ~9 instructions a byte.
@inlinable @inline(__always)
public func asciiEqualsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ lowercased: StaticString) -> Bool {
    range.count == lowercased.utf8CodeUnitCount && asciiEqualsIgnoringCase(bytes, at: range.lowerBound, lowercased)
}

/// The comparison once the lengths are known to be equal.
@inlinable
public func asciiEqualsIgnoringCase(_ bytes: UnsafeRawBufferPointer, at: Int, _ lowercased: StaticString) -> Bool {
    let n = lowercased.utf8CodeUnitCount
    let p = UnsafeRawPointer(lowercased.utf8Start)
    @inline(__always) func word(_ i: Int) -> Bool {
        asciiLowercased(bytes.loadUnaligned(fromByteOffset: at + i, as: UInt64.self)) == p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
    }
    @inline(__always) func half(_ i: Int) -> Bool {
        asciiLowercased(UInt64(bytes.loadUnaligned(fromByteOffset: at + i, as: UInt32.self)))
            == UInt64(p.loadUnaligned(fromByteOffset: i, as: UInt32.self))
    }
    if n >= 8 {
        var i = 0
        while n - i > 8 {
            guard word(i) else { return false }
            i += 8
        }
        return word(n - 8)
    }
    if n >= 4 { return half(0) && half(n - 4) }
    for j in 0..<n {
        let c = bytes[at + j]
        if (c &- 65 < 26 ? c | 0x20 : c) != p.load(fromByteOffset: j, as: UInt8.self) { return false }
    }
    return true
}

/// Whether the comma-separated list in `bytes[range]` holds `token` (lower case), ignoring case and whitespace.
public func headerHasToken(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ token: StaticString) -> Bool {
    var found = false
    forEachListElement(bytes, range) { element in
        if !found && asciiEqualsIgnoringCase(bytes, element, token) { found = true }
    }
    return found
}

/// Calls `body` with each element of a comma-separated header value, trimmed; empty elements are skipped.
public func forEachListElement(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ body: (Range<Int>) -> Void) {
    var start = range.lowerBound
    while start <= range.upperBound {
        var end = start
        while end < range.upperBound && bytes[end] != ASCII.comma { end += 1 }
        var lo = start, hi = end
        while lo < hi && ASCII.isWhitespace(bytes[lo]) { lo += 1 }
        while hi > lo && ASCII.isWhitespace(bytes[hi - 1]) { hi -= 1 }
        if lo < hi { body(lo..<hi) }
        start = end + 1
    }
}
