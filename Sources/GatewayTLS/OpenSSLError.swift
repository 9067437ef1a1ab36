import COpenSSL

/// An OpenSSL failure: what the gateway was doing and OpenSSL's own reasons.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ what: String) {
        let reasons = OpenSSLErrors.drain()
        message = reasons.isEmpty ? what : "\(what): \(reasons)"
    }
    public var description: String { message }
}

enum OpenSSLErrors {
    /// Empties the thread's error queue and returns its reasons, most specific first
    /// (e.g. "no shared cipher", "certificate verify failed").
    static func drain() -> String {
        var reasons: [String] = []
        while true {
            let e = ERR_get_error()
            if e == 0 { break }
            if let r = ERR_reason_error_string(e) {
                let s = String(cString: r)
                if !reasons.contains(s) { reasons.append(s) }
            } else {
                reasons.append("error \(e)")
            }
        }
        return reasons.joined(separator: "; ")
    }

    static func clear() { ERR_clear_error() }
}

public enum OpenSSLInfo {
    /// e.g. "3.0.19"
    public static var version: String {
        let v = OpenSSL_version_num()
        return "\(v >> 28 & 0xF).\(v >> 20 & 0xFF).\(v >> 4 & 0xFF)"
    }
}
