/// The server_name extension of a ClientHello (RFC 6066 §3), parsed strictly:
/// every length is checked, the name must be non-empty, at most 255 bytes, without NUL or
/// empty labels, and is returned lower-cased without a trailing dot.
///
/// A refusal says which alert the handshake ends with (RFC 8446 §6.2): `decode_error` when
/// the bytes do not parse (lengths that do not add up, a zero-length HostName, which its
/// `<1..2^16-1>` syntax forbids), `illegal_parameter` when they parse but the value is not
/// acceptable (a byte no DNS name has, two host_name entries, an over-long name, an empty
/// label). tlsfuzzer's test-invalid-server-name-extension.py expects exactly this split.
public enum ServerNameParser {
    public enum Alert: Equatable, Sendable {
        case decodeError
        case illegalParameter
    }

    public enum Result: Equatable, Sendable {
        case name(String)
        /// The reason (for the log, after "malformed server_name: ") and the alert to send.
        case malformed(String, alert: Alert)
    }

    public static func parse(_ ext: UnsafeRawBufferPointer) -> Result {
        // First the syntax, every entry's lengths: a list that does not parse is a
        // decode_error whatever else is wrong with it.
        guard ext.count >= 2 else { return .malformed("server_name extension too short", alert: .decodeError) }
        let listLength = Int(ext[0]) << 8 | Int(ext[1])
        guard listLength == ext.count - 2, listLength >= 3 else { return .malformed("server_name list length mismatch", alert: .decodeError) }
        var i = 2
        var hostName: Range<Int>?
        var hostNames = 0
        while i < ext.count {
            guard i + 3 <= ext.count else { return .malformed("truncated server_name entry", alert: .decodeError) }
            let type = ext[i]
            let len = Int(ext[i + 1]) << 8 | Int(ext[i + 2])
            i += 3
            guard i + len <= ext.count else { return .malformed("server_name entry overruns the extension", alert: .decodeError) }
            if type == 0 {
                guard len > 0 else { return .malformed("empty server name", alert: .decodeError) }
                hostNames += 1
                if hostName == nil { hostName = i..<i + len }
            }
            i += len
        }
        // Then the value: well-formed, but is it a name the gateway accepts?
        guard hostNames < 2 else { return .malformed("two host_name entries", alert: .illegalParameter) }
        guard let hostName else { return .malformed("no host_name entry", alert: .illegalParameter) }
        return name(UnsafeRawBufferPointer(rebasing: ext[hostName]))
    }

    /// A host_name's bytes as a lower-cased name without a trailing dot, or why not (illegal_parameter).
    private static func name(_ raw: UnsafeRawBufferPointer) -> Result {
        func illegal(_ why: String) -> Result { .malformed(why, alert: .illegalParameter) }
        guard raw.count <= 255 else { return illegal("server name over 255 bytes") }
        var bytes = [UInt8]()
        bytes.reserveCapacity(raw.count)
        for var b in raw {
            guard b != 0 else { return illegal("NUL byte in server name") }
            guard b > 0x20 && b < 0x7F else { return illegal("invalid byte in server name") }
            if b >= 65 && b <= 90 { b += 32 }
            bytes.append(b)
        }
        if bytes.last == UInt8(ascii: ".") { bytes.removeLast() }
        guard !bytes.isEmpty else { return illegal("empty server name") }
        // `a..` would come out as `a.`, a name no lookup or Host header normalises to (found by fuzzing).
        var previous = UInt8(ascii: ".")
        for b in bytes {
            if b == UInt8(ascii: ".") && previous == b { return illegal("empty label in server name") }
            previous = b
        }
        guard previous != UInt8(ascii: ".") else { return illegal("empty label in server name") }
        return .name(String(decoding: bytes, as: UTF8.self))
    }
}
