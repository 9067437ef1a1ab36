/// TLS records built and taken apart by hand, for tests that send what no TLS library would:
/// a ClientHello whose server_name extension is replaced (every enclosing length fixed up),
/// alert records read back from the wire.
public enum ClientHelloBytes {
    /// The ClientHello record `record` (one handshake record holding the whole ClientHello, as
    /// OpenSSL writes it) with its server_name extension's body replaced by `body`, or with one
    /// added when it had none. nil when `record` is not such a record.
    public static func replacingServerName(in record: [UInt8], with body: [UInt8]) -> [UInt8]? {
        guard record.count > 9, record[0] == 22, record[5] == 1 else { return nil }
        var i = 5 + 4 + 2 + 32                                   // record header, handshake header, version, random
        guard i < record.count else { return nil }
        i += 1 + Int(record[i])                                  // session id
        guard i + 2 <= record.count else { return nil }
        i += 2 + (Int(record[i]) << 8 | Int(record[i + 1]))      // cipher suites
        guard i < record.count else { return nil }
        i += 1 + Int(record[i])                                  // compression methods
        guard i + 2 <= record.count else { return nil }
        let extensionsAt = i
        let end = i + 2 + (Int(record[i]) << 8 | Int(record[i + 1]))
        guard end == record.count else { return nil }
        var extensions: [UInt8] = []
        var replaced = false
        i += 2
        while i + 4 <= end {
            let type = Int(record[i]) << 8 | Int(record[i + 1]), len = Int(record[i + 2]) << 8 | Int(record[i + 3])
            if type == 0 {
                extensions += [0, 0] + be16(body.count) + body
                replaced = true
            } else {
                extensions += record[i..<i + 4 + len]
            }
            i += 4 + len
        }
        if !replaced { extensions = [0, 0] + be16(body.count) + body + extensions }
        let hello = Array(record[9..<extensionsAt]) + be16(extensions.count) + extensions
        return [22, record[1], record[2]] + be16(hello.count + 4) + [1, 0] + be16(hello.count) + hello
    }

    /// A server_name extension body whose lengths add up: a list of (name type, bytes) entries.
    public static func serverName(_ entries: [(UInt8, [UInt8])]) -> [UInt8] {
        let list = entries.flatMap { [$0.0] + be16($0.1.count) + $0.1 }
        return be16(list.count) + list
    }

    /// The description byte of every plaintext alert record in `bytes` (a TLS 1.2 alert, or a
    /// TLS 1.3 one sent before the keys changed), in order; stops at the first record that is cut short.
    public static func plaintextAlerts(in bytes: [UInt8]) -> [UInt8] {
        var alerts: [UInt8] = []
        var i = 0
        while i + 5 <= bytes.count {
            let len = Int(bytes[i + 3]) << 8 | Int(bytes[i + 4])
            guard i + 5 + len <= bytes.count else { break }
            if bytes[i] == 21 && len == 2 { alerts.append(bytes[i + 6]) }
            i += 5 + len
        }
        return alerts
    }

    static func be16(_ n: Int) -> [UInt8] { [UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] }
}

/// TLS alert descriptions (RFC 8446 §6) the tests look for.
public enum AlertDescription {
    public static let handshakeFailure: UInt8 = 40
    public static let illegalParameter: UInt8 = 47
    public static let decodeError: UInt8 = 50
    public static let protocolVersion: UInt8 = 70
    public static let unrecognizedName: UInt8 = 112
    public static let certificateRequired: UInt8 = 116
}
