import COpenSSL
import CGatewayShims

/// What the gateway tells a backend about a client certificate (SPEC §10 formats).
public struct PeerCertificate: Sendable {
    /// RFC 4514, e.g. `CN=client1,O=Example`.
    public let subject: String
    public let issuer: String
    /// Upper-case hex of the serial's integer value, no leading zeros.
    public let serial: String
    /// Lower-case hex SHA-256 of the DER encoding.
    public let sha256: String

    init(x509: OpaquePointer) {
        subject = Self.rfc4514(X509_get_subject_name(x509))
        issuer = Self.rfc4514(X509_get_issuer_name(x509))
        var serialHex = ""
        if let bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(x509), nil) {
            if let s = BN_bn2hex(bn) {
                serialHex = String(cString: s)
                gw_openssl_free(s)
            }
            BN_free(bn)
        }
        while serialHex.count > 1 && serialHex.hasPrefix("0") { serialHex.removeFirst() }
        serial = serialHex
        var md = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        _ = X509_digest(x509, EVP_sha256(), &md, &len)
        sha256 = md.prefix(Int(len)).map { b in
            let h = String(b, radix: 16)
            return h.count == 1 ? "0" + h : h
        }.joined()
    }

    private static func rfc4514(_ name: OpaquePointer?) -> String {
        guard let name, let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        _ = X509_NAME_print_ex(bio, name, 0, gw_xn_flag_rfc2253())
        var data: UnsafeMutablePointer<CChar>?
        let n = gw_bio_get_mem_data(bio, &data)
        guard n > 0, let data else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: n), as: UTF8.self)
    }
}
