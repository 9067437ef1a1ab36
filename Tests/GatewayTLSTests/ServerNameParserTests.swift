import Testing
import GatewayTLS

/// ServerNameParser on hand-built extensions: which alert each refusal gets. The cases are
/// tlsfuzzer's test-invalid-server-name-extension.py, whose expectations follow RFC 8446 §6.2:
/// decode_error for bytes that do not parse, illegal_parameter for a value that parses but is refused.
@Suite struct ServerNameParserTests {
    /// A server_name extension whose lengths add up: a list of (type, bytes) entries.
    static func ext(_ entries: [(UInt8, [UInt8])]) -> [UInt8] {
        let list = entries.flatMap { [$0.0, UInt8($0.1.count >> 8), UInt8($0.1.count & 0xFF)] + $0.1 }
        return [UInt8(list.count >> 8), UInt8(list.count & 0xFF)] + list
    }
    static func name(_ s: String) -> [UInt8] { Array(s.utf8) }

    func parse(_ b: [UInt8]) -> ServerNameParser.Result { b.withUnsafeBytes { ServerNameParser.parse($0) } }

    @Test func aNameIsLowerCasedWithoutItsTrailingDot() {
        #expect(parse(Self.ext([(0, Self.name("API.Example.Test."))])) == .name("api.example.test"))
        // An entry of another type is skipped (RFC 6066 leaves room for new types).
        #expect(parse(Self.ext([(0, Self.name("a.test")), (1, Array(0..<24))])) == .name("a.test"))
        #expect(parse(Self.ext([(1, Array(0..<24)), (0, Self.name("a.test"))])) == .name("a.test"))
    }

    @Test(arguments: [
        ([], "server_name extension too short"),                                   // "Empty SNI extension"
        ([0, 0], "server_name list length mismatch"),                              // "Empty host list"
        ([0xFF, 0xFF, 0xFF, 0xFF], "server_name list length mismatch"),            // "malformed overall length"
        ([0, 4, 0, 0, 1, 0x65, 0x78], "server_name list length mismatch"),        // "Trailing data in extension"
        ([0, 5, 0, 0, 1, 0x65, 0x78], "truncated server_name entry"),
        ([0, 4, 0, 0, 2, 0x65], "server_name entry overruns the extension"),
        ([0, 3, 0, 0, 0], "empty server name"),                                    // "Empty hostname": HostName<1..2^16-1>
        (ext([(0, name("a.test")), (0, [])]), "empty server name"),
        // A refused value does not hide lengths that do not add up.
        (ext([(0, name("a\u{0}test"))]) + [0x00], "server_name list length mismatch"),
    ] as [([UInt8], String)])
    func bytesThatDoNotParseAreDecodeError(_ bytes: [UInt8], _ why: String) {
        #expect(parse(bytes) == .malformed(why, alert: .decodeError))
    }

    @Test(arguments: [
        (ext([(0, name("localhos\u{0}t"))]), "NUL byte in server name"),                      // "SNI name with NULL"
        (ext([(0, name("localhos\u{7}t"))]), "invalid byte in server name"),                  // "SNI name with BEL"
        (ext([(0, name("localhos\u{105}t"))]), "invalid byte in server name"),                // "SNI name with UTF-8" (c4 85)
        (ext([(0, name("localhost\u{1B}[31mBAD\u{1B}[0;37m"))]), "invalid byte in server name"),  // "ANSI color escapes"
        (ext([(0, name("a test"))]), "invalid byte in server name"),
        (ext([(0, [0x61, 0x7F])]), "invalid byte in server name"),
        (ext([(0, [0x61, 0xFF])]), "invalid byte in server name"),
        (ext([(0, name("localhost")), (0, name("www.localhost"))]), "two host_name entries"),  // "multiple host_names"
        (ext([(0, name("a.test")), (0, name("a\u{0}"))]), "two host_name entries"),
        (ext([(0, name("a..test"))]), "empty label in server name"),
        (ext([(0, name("a.test.."))]), "empty label in server name"),
        (ext([(0, name("."))]), "empty server name"),
        (ext([(0, Array(repeating: 0x61, count: 256))]), "server name over 255 bytes"),
        (ext([(1, name("a.test"))]), "no host_name entry"),
    ] as [([UInt8], String)])
    func valuesThatParseButAreRefusedAreIllegalParameter(_ bytes: [UInt8], _ why: String) {
        #expect(parse(bytes) == .malformed(why, alert: .illegalParameter))
    }

    @Test func aNameOf255BytesIsAccepted() {
        let long = Array(repeating: UInt8(ascii: "a"), count: 63) + [UInt8(ascii: ".")]
        let name = long + long + long + Array(repeating: UInt8(ascii: "b"), count: 63)
        #expect(name.count == 255)
        #expect(parse(Self.ext([(0, name)])) == .name(String(decoding: name, as: UTF8.self)))
    }
}
