import COpenSSL

/// SPEC §12 negotiation as a pure step: the ClientHello callback has chosen the host, so ALPN
/// selects `h2` when that host allows HTTP/2 and the client offers it (whatever the client's
/// order: the host's setting decides, not the client's preference), else `http/1.1` when
/// offered; with no overlap the handshake goes on without ALPN (HTTP/1.1).
public enum ALPN {
    public enum Choice: Equatable { case h2, http11 }

    /// `offered`: the client's list in wire form (length-prefixed names). The range of the chosen
    /// name inside `offered`, or nil.
    public static func select(_ offered: UnsafeRawBufferPointer, http2: Bool) -> (choice: Choice, range: Range<Int>)? {
        var http11: Range<Int>?
        var i = 0
        while i < offered.count {
            let n = Int(offered[i])
            let r = (i + 1)..<(i + 1 + n)
            guard n > 0, r.upperBound <= offered.count else { return nil }   // a malformed list selects nothing
            if http2 && equals(offered, r, "h2") { return (.h2, r) }
            if http11 == nil && equals(offered, r, "http/1.1") { http11 = r }
            i = r.upperBound
        }
        return http11.map { (.http11, $0) }
    }

    private static func equals(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, _ s: StaticString) -> Bool {
        guard r.count == s.utf8CodeUnitCount else { return false }
        return memcmp(b.baseAddress! + r.lowerBound, s.utf8Start, r.count) == 0
    }

    /// RFC 9113 §9.2.2 and Appendix A: on TLS 1.2, HTTP/2 needs an ephemeral key exchange and an
    /// AEAD cipher (every suite on the Appendix A list lacks one of the two). TLS 1.3 suites all qualify.
    static func cipherAllowsHTTP2(_ ssl: OpaquePointer) -> Bool {
        guard SSL_version(ssl) < TLS1_3_VERSION else { return true }
        guard let c = SSL_get_pending_cipher(ssl) ?? SSL_get_current_cipher(ssl) else { return false }
        let kx = SSL_CIPHER_get_kx_nid(c)
        return SSL_CIPHER_is_aead(c) == 1 && (kx == NID_kx_ecdhe || kx == NID_kx_dhe)
    }
}
