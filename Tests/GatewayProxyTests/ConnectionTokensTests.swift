import GatewayHTTP
import Testing
@testable import GatewayProxy

@Suite struct ConnectionTokensTests {
    /// The field names a Connection header lists (RFC 9110 §7.6.1), lower-cased, without the
    /// `close`, `keep-alive` and `upgrade` options: nil when it lists none, whether by the
    /// whole-value fast path (`keep-alive`, `close`) or by the list walk.
    @Test(arguments: [
        ("keep-alive", nil), ("close", nil), ("Keep-Alive", nil), ("CLOSE", nil),
        ("keep-alive, close", nil), ("upgrade", nil),
        ("keep-alive, X-Drop-Me", ["x-drop-me"]), ("X-A,x-b", ["x-a", "x-b"]), ("close, Keep-Alive, te", ["te"]),
        ("keep-alives", ["keep-alives"]), ("closed", ["closed"]),
    ] as [(String, [String]?)])
    func listedNames(_ value: String, _ want: [String]?) {
        let head = Array("Connection: \(value)\r\nX-Other: 1\r\n".utf8)
        let colon = 10, valueStart = 12, valueEnd = valueStart + value.utf8.count
        let fields = [HTTPHeaderField(name: 0..<colon, value: valueStart..<valueEnd),
                      HTTPHeaderField(name: (valueEnd + 2)..<(valueEnd + 9), value: (valueEnd + 11)..<(valueEnd + 12))]
        let got = head.withUnsafeBytes { b in fields.withUnsafeBufferPointer { HeadWriter.connectionTokens(b, $0) } }
        #expect(got == want, "Connection: \(value)")
    }
}
