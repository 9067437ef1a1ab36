import Testing
@testable import GatewayProxy

@Suite struct RequestIDTests {
    /// A generated id is the 16 bytes (little-endian words) as a version-4, variant-1 UUID in
    /// lower-case hex, the same as formatting them digit by digit.
    @Test func generatedIDsAreUUIDsOfTheirBytes() {
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x }
        for (a, b) in [(UInt64(0), UInt64(0)), (.max, .max), (0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210)] + (0..<500).map({ _ in (next(), next()) }) {
            var bytes = withUnsafeBytes(of: (a, b)) { Array($0) }
            bytes[6] = bytes[6] & 0x0F | 0x40
            bytes[8] = bytes[8] & 0x3F | 0x80
            var want = ""
            for (i, byte) in bytes.enumerated() {
                if [4, 6, 8, 10].contains(i) { want += "-" }
                want += (byte < 16 ? "0" : "") + String(byte, radix: 16)
            }
            #expect(RequestID.generated(a, b).text == want)
        }
    }
}
