/// The server_name extension of a ClientHello (RFC 6066 §3), parsed strictly:
/// every length is checked, the name must be non-empty, at most 255 bytes, without NUL or
/// empty labels, and is returned lower-cased without a trailing dot.
public enum ServerNameParser {
    public enum Result: Equatable, Sendable {
        case name(String)
        case malformed(String)
    }

    public static func parse(_ ext: UnsafeRawBufferPointer) -> Result {
        guard ext.count >= 2 else { return .malformed("server_name extension too short") }
        let listLength = Int(ext[0]) << 8 | Int(ext[1])
        guard listLength == ext.count - 2, listLength >= 3 else { return .malformed("server_name list length mismatch") }
        var i = 2
        var found: String?
        while i < ext.count {
            guard i + 3 <= ext.count else { return .malformed("truncated server_name entry") }
            let type = ext[i]
            let len = Int(ext[i + 1]) << 8 | Int(ext[i + 2])
            i += 3
            guard i + len <= ext.count else { return .malformed("server_name entry overruns the extension") }
            if type == 0 {
                guard found == nil else { return .malformed("two host_name entries") }
                guard len > 0 else { return .malformed("empty server name") }
                guard len <= 255 else { return .malformed("server name over 255 bytes") }
                var bytes = [UInt8]()
                bytes.reserveCapacity(len)
                for k in i..<i + len {
                    var b = ext[k]
                    guard b != 0 else { return .malformed("NUL byte in server name") }
                    guard b > 0x20 && b < 0x7F else { return .malformed("invalid byte in server name") }
                    if b >= 65 && b <= 90 { b += 32 }
                    bytes.append(b)
                }
                if bytes.last == UInt8(ascii: ".") { bytes.removeLast() }
                guard !bytes.isEmpty else { return .malformed("empty server name") }
                // `a..` would come out as `a.`, a name no lookup or Host header normalises to (found by fuzzing).
                var previous = UInt8(ascii: ".")
                for b in bytes {
                    if b == UInt8(ascii: ".") && previous == b { return .malformed("empty label in server name") }
                    previous = b
                }
                guard previous != UInt8(ascii: ".") else { return .malformed("empty label in server name") }
                found = String(decoding: bytes, as: UTF8.self)
            }
            i += len
        }
        guard let found else { return .malformed("no host_name entry") }
        return .name(found)
    }
}
