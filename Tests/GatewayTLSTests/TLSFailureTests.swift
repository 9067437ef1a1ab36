import COpenSSL
import Glibc
import Testing
@testable import GatewayTLS

/// The strings the access log, the `reason` metric label (SPEC §10) and backend errors carry,
/// and the classification from error codes alone (codes OpenSSL packs itself, no handshake).
@Suite struct TLSFailureTests {
    /// OpenSSL's words for the codes, as SSL_CTX_new loads them in the gateway: a test here may
    /// run before any context was made in this process.
    init() { _ = OPENSSL_init_ssl(UInt64(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS), nil) }

    @Test(arguments: [
        (TLSFailure.protocolVersion, "protocol version"),
        (.badRecordVersion, "bad record version"),
        (.noSharedCipher, "no shared cipher"),
        (.noSharedGroup, "no suitable key share"),
        (.certificateRequired, "certificate required"),
        (.unknownCA, "unknown ca"),
        (.certificateRevoked, "certificate revoked"),
        (.certificateExpired, "certificate expired"),
        (.badCertificate(verifyCode: Int(X509_V_ERR_CERT_NOT_YET_VALID)), "bad certificate: certificate is not yet valid"),
        (.notAllowed, "client certificate not allowed"),
        (.unrecognizedName, "unrecognized name"),
        (.malformedServerName("empty label"), "malformed server_name: empty label"),
        (.noHost, "no host for this connection"),
        (.backendVerify(verifyCode: Int(X509_V_ERR_CERT_HAS_EXPIRED)), "certificate verify failed: certificate has expired"),
        (.system(errno: ECONNRESET), "Connection reset by peer"),
        (.unexplained(sslError: nil), "TLS error"),
        (.unexplained(sslError: SSL_ERROR_SSL), "TLS error 1"),
        (.other(library: ERR_LIB_SSL, reason: SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC, text: "decryption failed or bad record mac"), "decryption failed or bad record mac"),
    ])
    func descriptions(_ failure: TLSFailure, _ text: String) {
        #expect(failure.description == text)
        #expect("\(failure)" == text, "interpolation gives the description")
    }

    /// A packed error code as OpenSSL queues it (ERR_PACK is a macro Swift cannot import).
    static func code(_ library: Int32, _ reason: Int32) -> UInt { UInt(library) << UInt(ERR_LIB_OFFSET) | UInt(reason) }
    static func ssl(_ reason: Int32) -> UInt { code(ERR_LIB_SSL, reason) }

    /// Server side: a queue can hold several errors; the version is named first, then the
    /// cipher, the missing certificate, the verify result; the rest as OpenSSL queued it.
    @Test func refusedClientClassification() {
        let ok = Int(X509_V_OK)
        #expect(TLSFailure.refusedClient(codes: [Self.ssl(SSL_R_VERSION_TOO_LOW)], verify: ok) == .protocolVersion)
        // A record-layer version error is not a version negotiation failure (issue #24: it was
        // logged as "protocol version" until it got its own reason).
        #expect(TLSFailure.refusedClient(codes: [Self.ssl(SSL_R_WRONG_VERSION_NUMBER)], verify: ok) == .badRecordVersion)
        #expect(TLSFailure.refusedClient(codes: [Self.ssl(SSL_R_WRONG_VERSION_NUMBER), Self.ssl(SSL_R_UNSUPPORTED_PROTOCOL)], verify: ok) == .protocolVersion)
        #expect(TLSFailure.refusedClient(codes: [Self.ssl(SSL_R_UNSUPPORTED_PROTOCOL)], verify: ok) == .protocolVersion)
        #expect(TLSFailure.refusedClient(codes: [Self.ssl(SSL_R_NO_SHARED_CIPHER), Self.ssl(SSL_R_UNSUPPORTED_PROTOCOL)], verify: ok) == .protocolVersion)
        #expect(TLSFailure.refusedClient(codes: [Self.ssl(SSL_R_NO_SHARED_CIPHER)], verify: ok) == .noSharedCipher)
        #expect(TLSFailure.refusedClient(codes: [Self.ssl(SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)], verify: ok) == .certificateRequired)
        let verifyFailed = [Self.ssl(SSL_R_CERTIFICATE_VERIFY_FAILED)]
        #expect(TLSFailure.refusedClient(codes: verifyFailed, verify: Int(X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN)) == .unknownCA)
        #expect(TLSFailure.refusedClient(codes: verifyFailed, verify: Int(X509_V_ERR_CERT_REVOKED)) == .certificateRevoked)
        #expect(TLSFailure.refusedClient(codes: [], verify: Int(X509_V_ERR_CERT_HAS_EXPIRED)) == .certificateExpired, "the verify result alone")
        #expect(TLSFailure.refusedClient(codes: [Self.ssl(SSL_R_NO_SUITABLE_KEY_SHARE)], verify: ok) == .noSharedGroup)
        #expect(TLSFailure.refusedClient(codes: [], verify: ok) == .unexplained(sslError: nil))
        // The same reason twice is said once; another library's code is kept as it is.
        let codes = [Self.ssl(SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC), Self.ssl(SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC), Self.code(ERR_LIB_EVP, EVP_R_BAD_DECRYPT)]
        #expect(TLSFailure.refusedClient(codes: codes, verify: ok) == .other(library: ERR_LIB_SSL, reason: SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC,
                                                                            text: "decryption failed or bad record mac; bad decrypt"))
    }

    @Test func backendAndSyscallClassification() {
        let ok = Int(X509_V_OK)
        // A version problem toward a backend is not renamed: the backend's error says OpenSSL's words.
        #expect(TLSFailure.backend(codes: [Self.ssl(SSL_R_UNSUPPORTED_PROTOCOL)], verify: ok, sslError: SSL_ERROR_SSL)
                == .other(library: ERR_LIB_SSL, reason: SSL_R_UNSUPPORTED_PROTOCOL, text: "unsupported protocol"))
        #expect(TLSFailure.backend(codes: [Self.ssl(SSL_R_CERTIFICATE_VERIFY_FAILED)], verify: Int(X509_V_ERR_HOSTNAME_MISMATCH), sslError: SSL_ERROR_SSL)
                == .backendVerify(verifyCode: Int(X509_V_ERR_HOSTNAME_MISMATCH)))
        #expect(TLSFailure.backend(codes: [], verify: ok, sslError: SSL_ERROR_SSL) == .unexplained(sslError: SSL_ERROR_SSL))
        #expect(TLSFailure.syscall(codes: [], errno: 0) == nil, "an EOF is a close")
        #expect(TLSFailure.syscall(codes: [], errno: EPIPE) == .system(errno: EPIPE))
        #expect(TLSFailure.syscall(codes: [Self.code(ERR_LIB_SYS, ECONNRESET)], errno: 0) == .system(errno: ECONNRESET))
    }
}
