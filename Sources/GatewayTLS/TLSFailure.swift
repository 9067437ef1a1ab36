import COpenSSL
import Glibc

/// Why a TLS session failed, decided from OpenSSL's error codes (ERR_GET_LIB / ERR_GET_REASON of
/// the queued errors) and the verify result, never from OpenSSL's English text: that text is
/// not an interface and may change between releases, the codes may not.
///
/// `description` is the reason the access log and the `reason` label of
/// `gateway_tls_handshake_failures_total` carry (SPEC §4/§10), and the text of a backend's
/// handshake error: those strings are what operators and the integration tests match.
public enum TLSFailure: Error, Equatable, Sendable, CustomStringConvertible {
    // A client refused by the handshake itself (server side).
    /// No version in common: version negotiation failed (SSL_R_UNSUPPORTED_PROTOCOL, SSL_R_VERSION_TOO_LOW).
    case protocolVersion
    /// A record whose record-layer version is wrong for the connection (SSL_R_WRONG_VERSION_NUMBER,
    /// raised by the record layer only): a broken or non-TLS peer, not a version it lacks.
    case badRecordVersion
    /// No cipher in common (SSL_R_NO_SHARED_CIPHER); with TLS 1.2 also what a group mismatch gives.
    case noSharedCipher
    /// TLS 1.3: no key-exchange group in common (SSL_R_NO_SUITABLE_KEY_SHARE), e.g. a host's `groups`.
    case noSharedGroup
    /// `client_auth required` and the client sent no certificate (SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE).
    case certificateRequired
    /// The client certificate's chain does not reach the host's `client_ca`.
    case unknownCA
    case certificateRevoked
    case certificateExpired
    /// Any other verify failure of the client certificate: X509_V_ERR_* from SSL_get_verify_result.
    case badCertificate(verifyCode: Int)

    // Refused by the gateway's own callbacks (ClientHello and verify), which set the session's `failureReason`.
    /// The verified client certificate matched no `client_allow` entry.
    case notAllowed
    /// SNI named no host and the listener says `unknown_sni reject`.
    case unrecognizedName
    /// The server_name extension did not parse or was refused (ServerNameParser's reason).
    case malformedServerName(String)
    /// No SNI (or an unknown one with `unknown_sni default`) and the listener has no default host.
    case noHost

    // Client side (toward a backend).
    /// The backend's certificate did not verify: X509_V_ERR_* from SSL_get_verify_result.
    case backendVerify(verifyCode: Int)

    // Either side.
    /// The socket failed: errno, or a system error OpenSSL queued.
    case system(errno: Int32)
    /// OpenSSL failed without queuing a reason. The client side names SSL_get_error's code; the
    /// server side does not, so its metric label stays the one value "TLS error".
    case unexplained(sslError: Int32?)
    /// Any other queued error: the first one's library and reason, and OpenSSL's words for the
    /// whole queue (the one place its text is used: for the log, never to decide).
    case other(library: Int32, reason: Int32, text: String)

    public var description: String {
        switch self {
        case .protocolVersion: "protocol version"
        case .badRecordVersion: "bad record version"
        case .noSharedCipher: "no shared cipher"
        case .noSharedGroup: "no suitable key share"   // OpenSSL's own words, the reason logged before this case existed
        case .certificateRequired: "certificate required"
        case .unknownCA: "unknown ca"
        case .certificateRevoked: "certificate revoked"
        case .certificateExpired: "certificate expired"
        case .badCertificate(let code): "bad certificate: \(Self.verifyText(code))"
        case .notAllowed: "client certificate not allowed"
        case .unrecognizedName: "unrecognized name"
        case .malformedServerName(let why): "malformed server_name: \(why)"
        case .noHost: "no host for this connection"
        case .backendVerify(let code): "certificate verify failed: \(Self.verifyText(code))"
        case .system(let e): String(cString: strerror(e))
        case .unexplained(let e): e.map { "TLS error \($0)" } ?? "TLS error"
        case .other(_, _, let text): text
        }
    }

    private static func verifyText(_ code: Int) -> String { String(cString: X509_verify_cert_error_string(code)) }
}

// MARK: - Classification (codes to cases)

extension TLSFailure {
    /// A failed handshake or record on the server side: a refused client. The codes are checked
    /// in this order because one failure can queue several errors (a version problem is named
    /// first, whatever else went wrong); then the verify result of the client certificate.
    static func refusedClient(codes: [UInt], verify: Int) -> TLSFailure {
        if queuedSSL(codes, SSL_R_UNSUPPORTED_PROTOCOL, SSL_R_VERSION_TOO_LOW) { return .protocolVersion }
        if queuedSSL(codes, SSL_R_WRONG_VERSION_NUMBER) { return .badRecordVersion }
        if queuedSSL(codes, SSL_R_NO_SHARED_CIPHER) { return .noSharedCipher }
        if queuedSSL(codes, SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) { return .certificateRequired }
        if queuedSSL(codes, SSL_R_CERTIFICATE_VERIFY_FAILED) || verify != X509_V_OK { return clientCertificate(verify) }
        if queuedSSL(codes, SSL_R_NO_SUITABLE_KEY_SHARE) { return .noSharedGroup }
        return queued(codes) ?? .unexplained(sslError: nil)
    }

    /// A failed handshake or record on the client side: a backend's certificate that did not
    /// verify comes first (it is why the handshake stopped), then the queue as it is.
    static func backend(codes: [UInt], verify: Int, sslError: Int32) -> TLSFailure {
        if verify != X509_V_OK { return .backendVerify(verifyCode: verify) }
        return queued(codes) ?? .unexplained(sslError: sslError)
    }

    /// SSL_ERROR_SYSCALL: what OpenSSL queued, else errno; nil when there is neither (an EOF, a close).
    static func syscall(codes: [UInt], errno e: Int32) -> TLSFailure? {
        queued(codes) ?? (e == 0 ? nil : .system(errno: e))
    }

    /// The short reasons of a client certificate's verify result.
    static func clientCertificate(_ verify: Int) -> TLSFailure {
        switch Int32(clamping: verify) {
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT,
             X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
             X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
            .unknownCA
        case X509_V_ERR_CERT_REVOKED: .certificateRevoked
        case X509_V_ERR_CERT_HAS_EXPIRED: .certificateExpired
        default: .badCertificate(verifyCode: verify)
        }
    }

    /// Whether the queue holds an error of the SSL library with one of these reasons.
    private static func queuedSSL(_ codes: [UInt], _ reasons: Int32...) -> Bool {
        codes.contains { ERR_GET_LIB($0) == ERR_LIB_SSL && reasons.contains(ERR_GET_REASON($0)) }
    }

    /// The queue's first (innermost) error as it is: a system error as its errno, anything else
    /// with OpenSSL's words for the log. Nil for an empty queue.
    private static func queued(_ codes: [UInt]) -> TLSFailure? {
        guard let first = codes.first else { return nil }
        let library = ERR_GET_LIB(first), reason = ERR_GET_REASON(first)
        if library == ERR_LIB_SYS { return .system(errno: reason) }
        return .other(library: library, reason: reason, text: OpenSSLErrors.text(codes))
    }
}
