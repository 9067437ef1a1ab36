import Glibc
import COpenSSL
import CGatewayShims

/// What an operator needs to know about one certificate, read with OpenSSL from a PEM file:
/// for `gateway check` (policy rules), `gateway certs` and the expiry warnings.
/// Holds no OpenSSL object, so it is a plain value that can be kept and compared.
public struct CertificateInfo: Sendable, Hashable {
    public enum SubjectAltName: Sendable, Hashable, CustomStringConvertible {
        case dns(String)
        /// Dotted IPv4 or RFC 5952 IPv6 text.
        case ip(String)
        case uri(String)

        public var description: String {
            switch self {
            case .dns(let n): "DNS:\(n)"
            case .ip(let a): "IP:\(a)"
            case .uri(let u): "URI:\(u)"
            }
        }
    }

    public enum KeyType: Sendable, Hashable {
        case rsa, ec, ed25519, ed448, dsa
        /// Anything else, by OpenSSL's short name of the key type.
        case other(String)
    }

    /// The file it was read from and its position there (0 = the first certificate, the leaf of a chain).
    public var file: String
    public var index: Int
    /// RFC 4514, e.g. `CN=c1,O=Example`.
    public var subject: String
    public var issuer: String
    public var subjectAltNames: [SubjectAltName]
    public var keyType: KeyType
    public var keyBits: Int
    /// The NIST name (`P-256`) or OpenSSL's name of the curve of an EC key; nil for other keys.
    public var curve: String?
    /// OpenSSL's long name, e.g. `sha256WithRSAEncryption`, `ecdsa-with-SHA256`, `ED25519`.
    public var signatureAlgorithm: String
    /// The digest the issuer signed with (`SHA256`, `SHA1`); nil when the algorithm has none of its own (Ed25519).
    public var signatureDigest: String?
    public var notBefore: Int64
    /// Unix seconds.
    public var notAfter: Int64
    /// Subject and issuer are the same and the signature verifies with its own key (a root).
    public var isSelfSigned: Bool
    public var isCA: Bool

    /// `RSA 2048`, `EC P-256`, `Ed25519`.
    public var keyDescription: String {
        switch keyType {
        case .rsa: "RSA \(keyBits)"
        case .ec: "EC \(curve ?? String(keyBits))"
        case .ed25519: "Ed25519"
        case .ed448: "Ed448"
        case .dsa: "DSA \(keyBits)"
        case .other(let name): "\(name) \(keyBits)"
        }
    }

    public var signedWithSHA1: Bool { signatureDigest == "SHA1" }

    public var dnsNames: [String] {
        subjectAltNames.compactMap { if case .dns(let n) = $0 { n } else { nil } }
    }

    public var ipAddresses: [String] {
        subjectAltNames.compactMap { if case .ip(let a) = $0 { a } else { nil } }
    }

    /// Whole days until notAfter, rounded down: negative once expired (SPEC §10 `days_left`).
    public func daysLeft(now: Int64) -> Int {
        let seconds = notAfter - now
        return Int(seconds >= 0 ? seconds / 86_400 : -((-seconds + 86_399) / 86_400))
    }

    /// Every certificate of a PEM file, in file order. Throws when the file cannot be read
    /// or holds no certificate.
    public static func load(pemFile path: String) throws(TLSError) -> [CertificateInfo] {
        OpenSSLErrors.clear()
        guard let bio = BIO_new_file(path, "r") else { throw TLSError("cannot open certificate file \(path)") }
        defer { BIO_free(bio) }
        var out: [CertificateInfo] = []
        while let x509 = PEM_read_bio_X509(bio, nil, nil, nil) {
            defer { X509_free(x509) }
            out.append(CertificateInfo(x509: x509, file: path, index: out.count))
        }
        // The read that ends the loop leaves "no start line" in the queue: the normal end of the file.
        let reasons = OpenSSLErrors.drain()
        guard !out.isEmpty else {
            throw TLSError("no PEM certificate in \(path)" + (reasons.isEmpty ? "" : ": \(reasons)"))
        }
        return out
    }

    init(x509: OpaquePointer, file: String, index: Int) {
        self.file = file
        self.index = index
        subject = X509Name.rfc4514(X509_get_subject_name(x509))
        issuer = X509Name.rfc4514(X509_get_issuer_name(x509))
        subjectAltNames = Self.subjectAltNames(x509)
        notBefore = Self.unixTime(X509_get0_notBefore(x509))
        notAfter = Self.unixTime(X509_get0_notAfter(x509))
        (keyType, keyBits, curve) = Self.publicKey(x509)
        (signatureAlgorithm, signatureDigest) = Self.signature(x509)
        isSelfSigned = X509_get_extension_flags(x509) & UInt32(EXFLAG_SS) != 0
        isCA = X509_check_ca(x509) != 0
    }

    private static func unixTime(_ time: UnsafePointer<ASN1_TIME>?) -> Int64 {
        var tm = Glibc.tm()
        guard let time, ASN1_TIME_to_tm(time, &tm) == 1 else { return 0 }
        return Int64(timegm(&tm))
    }

    private static func publicKey(_ x509: OpaquePointer) -> (KeyType, Int, String?) {
        guard let key = X509_get0_pubkey(x509) else { return (.other("unknown"), 0, nil) }
        let bits = Int(EVP_PKEY_get_bits(key))
        switch EVP_PKEY_get_base_id(key) {
        case EVP_PKEY_RSA, EVP_PKEY_RSA_PSS: return (.rsa, bits, nil)
        case EVP_PKEY_EC: return (.ec, bits, curveName(key))
        case EVP_PKEY_ED25519: return (.ed25519, bits, nil)
        case EVP_PKEY_ED448: return (.ed448, bits, nil)
        case EVP_PKEY_DSA: return (.dsa, bits, nil)
        case let id: return (.other(OBJ_nid2sn(id).map { String(cString: $0) } ?? "key \(id)"), bits, nil)
        }
    }

    private static func curveName(_ key: OpaquePointer) -> String? {
        var buffer = [CChar](repeating: 0, count: 80)
        var length = 0
        guard EVP_PKEY_get_group_name(key, &buffer, buffer.count, &length) == 1 else { return nil }
        let name = String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if let nist = EC_curve_nid2nist(OBJ_sn2nid(name)) { return String(cString: nist) }
        return name
    }

    private static func signature(_ x509: OpaquePointer) -> (String, String?) {
        let nid = X509_get_signature_nid(x509)
        let name = OBJ_nid2ln(nid).map { String(cString: $0) } ?? "unknown"
        var md: Int32 = 0, pk: Int32 = 0, bits: Int32 = 0
        var flags: UInt32 = 0
        // Also right for RSA-PSS, whose digest is in the parameters rather than the algorithm's OID.
        guard X509_get_signature_info(x509, &md, &pk, &bits, &flags) == 1, md != NID_undef else {
            OpenSSLErrors.clear()
            return (name, nil)
        }
        return (name, OBJ_nid2sn(md).map { String(cString: $0) })
    }

    static func subjectAltNames(_ x509: OpaquePointer) -> [SubjectAltName] {
        guard let raw = X509_get_ext_d2i(x509, NID_subject_alt_name, nil, nil) else { return [] }
        let stack = OpaquePointer(raw)
        defer { GENERAL_NAMES_free(stack) }
        var out: [SubjectAltName] = []
        for i in 0..<OPENSSL_sk_num(stack) {
            guard let name = OPENSSL_sk_value(stack, i)?.assumingMemoryBound(to: GENERAL_NAME.self).pointee else { continue }
            switch name.type {
            case GEN_DNS: if let s = text(name.d.dNSName) { out.append(.dns(s)) }
            case GEN_URI: if let s = text(name.d.uniformResourceIdentifier) { out.append(.uri(s)) }
            case GEN_IPADD: if let a = ipText(name.d.iPAddress) { out.append(.ip(a)) }
            default: break
            }
        }
        return out
    }

    private static func bytes(_ s: UnsafeMutablePointer<ASN1_STRING>?) -> [UInt8]? {
        guard let s, let data = ASN1_STRING_get0_data(s) else { return nil }
        return Array(UnsafeBufferPointer(start: data, count: Int(ASN1_STRING_length(s))))
    }

    private static func text(_ s: UnsafeMutablePointer<ASN1_STRING>?) -> String? {
        bytes(s).map { String(decoding: $0, as: UTF8.self) }
    }

    private static func ipText(_ s: UnsafeMutablePointer<ASN1_STRING>?) -> String? {
        guard let b = bytes(s), b.count == 4 || b.count == 16 else { return nil }
        var out = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = b.count == 4 ? AF_INET : AF_INET6
        guard b.withUnsafeBytes({ inet_ntop(family, $0.baseAddress, &out, socklen_t(out.count)) }) != nil else { return nil }
        return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// X509_NAME as text.
enum X509Name {
    /// RFC 4514 (`CN=c1,O=Example`, most specific first), UTF-8 kept as is.
    static func rfc4514(_ name: OpaquePointer?) -> String {
        guard let name, let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        _ = X509_NAME_print_ex(bio, name, 0, gw_xn_flag_rfc2253())
        var data: UnsafeMutablePointer<CChar>?
        let n = gw_bio_get_mem_data(bio, &data)
        guard n > 0, let data else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: n), as: UTF8.self)
    }
}
