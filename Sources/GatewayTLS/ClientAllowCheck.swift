import COpenSSL
import GatewayConfig

/// `client_allow` (SPEC §11) in OpenSSL's verify path: once the chain verified, the leaf must
/// match one entry, or the verification fails and OpenSSL ends the handshake with its alert.
enum ClientAllowCheck {
    /// Whether the certificate matches any entry (any entry matching allows).
    static func allows(_ x509: OpaquePointer, _ entries: [ClientAllowEntry]) -> Bool {
        let sans = CertificateInfo.subjectAltNames(x509)
        var cns: [[UInt8]]?
        var spki: [UInt8]?
        for e in entries {
            switch e {
            case .sanDNS(let name):
                if sans.contains(where: { if case .dns(let d) = $0 { HostNames.equal(d, name) } else { false } }) { return true }
            case .sanURI(let uri):
                if sans.contains(where: { if case .uri(let u) = $0 { u.utf8.elementsEqual(uri.utf8) } else { false } }) { return true }
            case .sanURIPrefix(let prefix):
                if sans.contains(where: { if case .uri(let u) = $0 { u.utf8.count > prefix.utf8.count && u.utf8.starts(with: prefix.utf8) } else { false } }) {
                    return true
                }
            case .cn(let name):
                if cns == nil { cns = commonNames(x509) }
                if cns!.contains(Array(name.utf8)) { return true }
            case .spkiSHA256(let digest):
                if spki == nil { spki = spkiSHA256(x509) }
                if spki == digest { return true }
            }
        }
        return false
    }

    /// Every CN of the subject, as UTF-8 bytes.
    static func commonNames(_ x509: OpaquePointer) -> [[UInt8]] {
        guard let name = X509_get_subject_name(x509) else { return [] }
        var out: [[UInt8]] = []
        var i: Int32 = -1
        while true {
            i = X509_NAME_get_index_by_NID(name, NID_commonName, i)
            guard i >= 0, let entry = X509_NAME_get_entry(name, i), let data = X509_NAME_ENTRY_get_data(entry) else { break }
            var utf8: UnsafeMutablePointer<UInt8>?
            let n = ASN1_STRING_to_UTF8(&utf8, data)
            if n >= 0, let utf8 {
                out.append(Array(UnsafeBufferPointer(start: utf8, count: Int(n))))
                CRYPTO_free(utf8, #fileID, #line)
            }
        }
        return out
    }

    /// SHA-256 of the DER SubjectPublicKeyInfo (what `openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256sum` gives).
    static func spkiSHA256(_ x509: OpaquePointer) -> [UInt8]? {
        guard let key = X509_get0_pubkey(x509) else { return nil }
        var der: UnsafeMutablePointer<UInt8>?
        let n = i2d_PUBKEY(key, &der)
        guard n > 0, let der else { return nil }
        defer { CRYPTO_free(der, #fileID, #line) }
        var md = [UInt8](repeating: 0, count: 32)
        _ = SHA256(der, Int(n), &md)
        return md
    }
}

/// DNS name comparison: ASCII case-insensitive, one trailing dot ignored.
enum HostNames {
    static func equal(_ a: String, _ b: String) -> Bool {
        func trimmed(_ s: String) -> Substring.UTF8View { (s.hasSuffix(".") ? s.dropLast() : Substring(s)).utf8 }
        let x = trimmed(a), y = trimmed(b)
        return x.count == y.count && zip(x, y).allSatisfy { lower($0) == lower($1) }
    }
    private static func lower(_ c: UInt8) -> UInt8 { c >= 65 && c <= 90 ? c + 32 : c }
}

/// The verify callback of hosts with `client_allow` (no captures: the host arrives through the SSL's ex-data).
func clientAllowVerifyCallback(_ preverifyOK: Int32, _ store: OpaquePointer?) -> Int32 {
    guard preverifyOK == 1, let store, X509_STORE_CTX_get_error_depth(store) == 0 else { return preverifyOK }
    guard let raw = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()),
          let session = TLSSession.from(OpaquePointer(raw)),
          let entries = session.host?.policy.clientAllow, !entries.isEmpty else { return preverifyOK }
    guard let cert = X509_STORE_CTX_get_current_cert(store), ClientAllowCheck.allows(cert, entries) else {
        session.failureReason = .notAllowed
        X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION)
        return 0
    }
    return 1
}
