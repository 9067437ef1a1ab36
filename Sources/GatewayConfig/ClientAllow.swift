// `client_allow` entries (SPEC §11): which verified client certificates a host accepts.
// Parsed and normalised here; matched against a certificate in GatewayTLS (ClientAllowCheck).

public enum ClientAllowEntry: Sendable, Hashable, CustomStringConvertible {
    /// A DNS subject alternative name, lower-cased, trailing dot dropped; compared case-insensitively.
    case sanDNS(String)
    /// A URI subject alternative name, compared byte for byte (a SPIFFE ID, say).
    case sanURI(String)
    /// `san_uri PREFIX/*`: any URI SAN that starts with `PREFIX/` and has more after it.
    case sanURIPrefix(String)
    /// A common name of the subject, compared byte for byte.
    case cn(String)
    /// SHA-256 of the certificate's DER SubjectPublicKeyInfo (32 bytes).
    case spkiSHA256([UInt8])

    public var description: String {
        switch self {
        case .sanDNS(let n): "san_dns \(n)"
        case .sanURI(let u): "san_uri \(u)"
        case .sanURIPrefix(let p): "san_uri \(p)*"
        case .cn(let n): "cn \(n)"
        case .spkiSHA256(let d): "spki_sha256 " + d.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        }
    }

    /// `KIND VALUE`, or why not.
    static func parse(kind: String, value: String) -> Result<ClientAllowEntry, ClientAllowError> {
        guard !value.isEmpty, value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) || kind == "cn" else {
            return .failure(ClientAllowError("\(kind) value must be printable ASCII without spaces"))
        }
        switch kind {
        case "san_dns":
            var n = value.lowercased()
            if n.hasSuffix(".") { n.removeLast() }
            guard !n.isEmpty, !n.contains(",") else { return .failure(ClientAllowError("san_dns \"\(value)\" is not a DNS name")) }
            return .success(.sanDNS(n))
        case "san_uri":
            guard value.contains(":") else { return .failure(ClientAllowError("san_uri \"\(value)\" is not a URI (no scheme)")) }
            if value.hasSuffix("/*") { return .success(.sanURIPrefix(String(value.dropLast()))) }
            guard !value.contains("*") else {
                return .failure(ClientAllowError("san_uri \"\(value)\": \"*\" is only allowed as a final \"/*\" (a path prefix)"))
            }
            return .success(.sanURI(value))
        case "cn":
            return .success(.cn(value))
        case "spki_sha256":
            let hex = String(value.lowercased().filter { $0 != ":" })
            var bytes: [UInt8] = []
            var it = hex.utf8.makeIterator()
            while let hi = it.next() {
                guard let lo = it.next(), let h = hexValue(hi), let l = hexValue(lo) else { bytes = []; break }
                bytes.append(h << 4 | l)
            }
            guard bytes.count == 32, hex.utf8.count == 64 else {
                return .failure(ClientAllowError("spki_sha256 wants 64 hex digits (a SHA-256 of the DER public key), got \"\(value)\""))
            }
            return .success(.spkiSHA256(bytes))
        default:
            return .failure(ClientAllowError("unknown client_allow kind \"\(kind)\"; expected san_dns, san_uri, cn or spki_sha256"))
        }
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        default: nil
        }
    }
}

struct ClientAllowError: Error {
    let message: String
    init(_ m: String) { message = m }
}
