import COpenSSL
import CGatewayShims
import GatewayConfig

/// One cipher suite as OpenSSL describes it: the properties a policy judges it by,
/// read from the SSL_CIPHER itself rather than guessed from its name.
public struct CipherSuiteInfo: Sendable, Hashable {
    public enum KeyExchange: Sendable, Hashable {
        case ecdhe, dhe, ecdhePSK, dhePSK
        /// TLS 1.3: the key exchange is always (EC)DHE, negotiated apart from the suite.
        case tls13
        case rsa, rsaPSK, psk, srp, gost, other
        /// An ephemeral key exchange: a stolen server key does not decrypt recorded traffic.
        public var hasForwardSecrecy: Bool {
            switch self {
            case .ecdhe, .dhe, .ecdhePSK, .dhePSK, .tls13: true
            default: false
            }
        }
    }

    public enum Encryption: Sendable, Hashable {
        case none, rc4, tripleDES, des, other
        /// AES, ChaCha20, Camellia, ARIA...: judged by `isAEAD` and `bits`.
        case modern
    }

    /// OpenSSL's name (`ECDHE-RSA-AES128-GCM-SHA256`, `TLS_AES_128_GCM_SHA256`).
    public var name: String
    /// The oldest protocol version the suite exists in, e.g. `TLSv1.2`, `TLSv1.3`, `SSLv3`.
    public var version: String
    public var keyExchange: KeyExchange
    /// The server is not authenticated (aNULL suites).
    public var anonymous: Bool
    public var isAEAD: Bool
    public var encryption: Encryption
    /// Secret bits of the bulk cipher (0 for NULL, 56 for DES, 112 for 3DES...).
    public var bits: Int
}

// In an extension, so the memberwise initializer stays (tests describe suites this OpenSSL build lacks).
extension CipherSuiteInfo {
    init(_ c: OpaquePointer) {
        name = SSL_CIPHER_get_name(c).map { String(cString: $0) } ?? "?"
        version = SSL_CIPHER_get_version(c).map { String(cString: $0) } ?? "?"
        keyExchange = switch SSL_CIPHER_get_kx_nid(c) {
        case NID_kx_ecdhe: .ecdhe
        case NID_kx_dhe: .dhe
        case NID_kx_ecdhe_psk: .ecdhePSK
        case NID_kx_dhe_psk: .dhePSK
        case NID_kx_any: .tls13
        case NID_kx_rsa: .rsa
        case NID_kx_rsa_psk: .rsaPSK
        case NID_kx_psk: .psk
        case NID_kx_srp: .srp
        case NID_kx_gost, NID_kx_gost18: .gost
        default: .other
        }
        anonymous = SSL_CIPHER_get_auth_nid(c) == NID_auth_null
        isAEAD = SSL_CIPHER_is_aead(c) == 1
        encryption = switch SSL_CIPHER_get_cipher_nid(c) {
        case NID_undef: .none
        case NID_rc4, NID_rc4_40: .rc4
        case NID_des_ede3_cbc: .tripleDES
        case NID_des_cbc: .des
        default: .modern
        }
        var algorithmBits: Int32 = 0
        bits = Int(SSL_CIPHER_get_bits(c, &algorithmBits))
    }
}

public enum CipherInspection {
    /// The suites a host with this policy would actually negotiate: its TLS 1.2 cipher string and
    /// TLS 1.3 suites expanded by OpenSSL for its version range and the security level the gateway
    /// gives it (0 for a floor below TLS 1.2, as ContextBuilder does). A TLS 1.3-only host has no
    /// TLS 1.2 suites here, since its `ciphers` is never used.
    public static func enabledSuites(_ policy: TLSPolicy) throws(TLSError) -> [CipherSuiteInfo] {
        var builder = try ContextBuilder(server: true, location: SourceLocation(file: "", line: 0, column: 0))
        defer { builder.free() }
        builder.versions(min: policy.minVersion, max: policy.maxVersion)
        guard SSL_CTX_set_cipher_list(builder.ctx, policy.ciphers) == 1 else {
            throw TLSError("invalid cipher list \"\(policy.ciphers)\"")
        }
        guard SSL_CTX_set_ciphersuites(builder.ctx, policy.ciphersuites) == 1 else {
            throw TLSError("invalid TLS 1.3 ciphersuites \"\(policy.ciphersuites)\"")
        }
        guard let ssl = SSL_new(builder.ctx) else { throw TLSError("SSL_new") }
        defer { SSL_free(ssl) }
        // Filters by the enabled versions and the security level, unlike SSL_get_ciphers.
        guard let stack = SSL_get1_supported_ciphers(ssl) else { return [] }
        defer { OPENSSL_sk_free(stack) }
        return (0..<OPENSSL_sk_num(stack)).compactMap { i in
            OPENSSL_sk_value(stack, i).map { CipherSuiteInfo(OpaquePointer($0)) }
        }
    }
}
