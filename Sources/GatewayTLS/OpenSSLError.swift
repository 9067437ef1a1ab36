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
    /// (e.g. "no shared cipher", "certificate verify failed"): for setup errors and diagnostics.
    static func drain() -> String { text(drainCodes()) }

    /// Empties the thread's error queue and returns its packed codes, oldest (innermost) first:
    /// what TLSFailure is decided from (ERR_GET_LIB / ERR_GET_REASON).
    static func drainCodes() -> [UInt] {
        var codes: [UInt] = []
        while case let e = ERR_get_error(), e != 0 { codes.append(e) }
        return codes
    }

    /// OpenSSL's words for the codes, each reason once, "; " between them.
    static func text(_ codes: [UInt]) -> String {
        var reasons: [String] = []
        for e in codes {
            let s = ERR_reason_error_string(e).map { String(cString: $0) } ?? "error \(e)"
            if !reasons.contains(s) { reasons.append(s) }
        }
        return reasons.joined(separator: "; ")
    }

    /// Peeks first: the queue is almost always empty, and ERR_clear_error walks all its slots.
    static func clear() { if ERR_peek_error() != 0 { ERR_clear_error() } }
}

public enum OpenSSLInfo {
    /// e.g. "3.0.19"
    public static var version: String {
        let v = OpenSSL_version_num()
        return "\(v >> 28 & 0xF).\(v >> 20 & 0xFF).\(v >> 4 & 0xFF)"
    }
}
