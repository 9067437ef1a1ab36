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
    /// The first URI subject alternative name (a SPIFFE ID, say), for `X-Client-Cert-URI`.
    public let uri: String?
    /// The DNS subject alternative names, for `X-Client-Cert-DNS` (comma-separated there).
    public let dnsNames: [String]

    init(x509: OpaquePointer) {
        subject = X509Name.rfc4514(X509_get_subject_name(x509))
        issuer = X509Name.rfc4514(X509_get_issuer_name(x509))
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
        _ = X509_digest(x509, gw_sha256(), &md, &len)
        sha256 = md.prefix(Int(len)).map { b in
            let h = String(b, radix: 16)
            return h.count == 1 ? "0" + h : h
        }.joined()
        // Only values that are safe as one header field: visible ASCII, and no comma in a list element.
        var uri: String?
        var dns: [String] = []
        for san in CertificateInfo.subjectAltNames(x509) {
            switch san {
            case .uri(let u) where uri == nil && Self.isHeaderSafe(u): uri = u
            case .dns(let d) where Self.isHeaderSafe(d) && !d.contains(","): dns.append(d)
            default: break
            }
        }
        self.uri = uri
        dnsNames = dns
    }

    static func isHeaderSafe(_ s: String) -> Bool { !s.isEmpty && s.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F } }
}
