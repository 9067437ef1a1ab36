import CCJose
import COpenSSL

// A `jwks_file` (RFC 7517 key set) parsed once, at load: RSA and EC keys through cjose
// (`cjose_jwk_import`), Ed25519 straight into an OpenSSL EVP_PKEY (cjose 0.6 has no OKP keys).
// The request path only reads the finished, immutable set.

/// The signature algorithms the gateway verifies (SPEC §13). `none` and HS* are not here on
/// purpose: they are load errors.
public enum JWTAlgorithm: String, Sendable, Hashable, CaseIterable {
    case rs256 = "RS256", ps256 = "PS256", es256 = "ES256", es384 = "ES384", edDSA = "EdDSA"

    public static let defaults: [JWTAlgorithm] = allCases

    /// The key type this algorithm signs with.
    var keyType: JWK.KeyType {
        switch self {
        case .rs256, .ps256: .rsa
        case .es256: .p256
        case .es384: .p384
        case .edDSA: .ed25519
        }
    }
}

/// One public key of the set.
public struct JWK: @unchecked Sendable {
    // @unchecked: the pointers are written once at load and only read after (cjose and OpenSSL
    // take them as const for verification), released when the set goes.
    public enum KeyType: String, Sendable { case rsa = "RSA", p256 = "EC P-256", p384 = "EC P-384", ed25519 = "Ed25519" }
    public let kid: String?
    public let type: KeyType
    /// The key's own `alg`, when it names one: it may then sign with that one only.
    public let alg: JWTAlgorithm?
    /// cjose's key (RSA and EC), or OpenSSL's (Ed25519).
    let cjose: OpaquePointer?
    let pkey: OpaquePointer?

    func usable(for a: JWTAlgorithm) -> Bool { a.keyType == type && (alg == nil || alg == a) }
}

/// What was wrong with one key, named by its `kid` (or its position when it has none).
public struct JWKProblem: Sendable, Hashable, CustomStringConvertible {
    public var key: String
    public var reason: String
    public var description: String { "key \(key): \(reason)" }
}

public final class JWKSet: @unchecked Sendable {
    // @unchecked: immutable after init; see JWK.
    public let keys: [JWK]
    /// Lower-case hex SHA-256 of the file's bytes, for equality and the reload fingerprint.
    public let digest: String

    init(keys: [JWK], digest: String) { self.keys = keys; self.digest = digest }

    deinit {
        for k in keys {
            if let j = k.cjose { cjose_jwk_release(j) }
            if let p = k.pkey { EVP_PKEY_free(p) }
        }
    }

    public var keyIDs: [String] { keys.map { $0.kid ?? "(no kid)" } }

    /// The outcome of reading a key set: the set (nil when any key is an error), the errors
    /// (malformed or weak keys: the load fails) and the warnings (keys skipped because no
    /// algorithm in `algorithms` can use them).
    public struct Loaded {
        public var set: JWKSet?
        public var errors: [JWKProblem] = []
        public var warnings: [JWKProblem] = []
    }

    public static func load(_ bytes: [UInt8], algorithms: [JWTAlgorithm], digest: String) -> Loaded {
        var out = Loaded()
        guard let doc = JSON.object(bytes) else {
            out.errors.append(JWKProblem(key: "set", reason: "not a JSON object (RFC 7517 key set: {\"keys\": [...]})"))
            return out
        }
        defer { json_decref(doc) }
        guard let list = JSON.member(doc, "keys"), list.pointee.type == JSON_ARRAY else {
            out.errors.append(JWKProblem(key: "set", reason: "no \"keys\" array"))
            return out
        }
        var keys: [JWK] = []
        var kids = Set<String>()
        for i in 0..<json_array_size(list) {
            guard let entry = json_array_get(list, i) else { continue }
            let kid = entry.pointee.type == JSON_OBJECT ? JSON.string(entry, "kid") : nil
            let name = kid.map { "\"\($0)\"" } ?? "#\(i + 1) (no kid)"
            switch key(entry) {
            case .failure(let why): out.errors.append(JWKProblem(key: name, reason: why.reason))
            case .success(let k):
                if let kid, !kids.insert(kid).inserted {
                    out.errors.append(JWKProblem(key: name, reason: "duplicate kid"))
                    release(k)
                } else if !algorithms.contains(where: k.usable) {
                    out.warnings.append(JWKProblem(key: name, reason: "skipped: no algorithm in `algorithms` uses a \(k.type.rawValue) key"
                                                   + (k.alg.map { " with alg \($0.rawValue)" } ?? "")))
                    release(k)
                } else {
                    keys.append(k)
                }
            }
        }
        if out.errors.isEmpty && keys.isEmpty {
            out.errors.append(JWKProblem(key: "set", reason: "no usable key"))
        }
        guard out.errors.isEmpty else { keys.forEach(release); return out }
        out.set = JWKSet(keys: keys, digest: digest)
        return out
    }

    private static func release(_ k: JWK) {
        if let j = k.cjose { cjose_jwk_release(j) }
        if let p = k.pkey { EVP_PKEY_free(p) }
    }

    private struct Why: Error { var reason: String; init(_ r: String) { reason = r } }

    private static func key(_ e: UnsafeMutablePointer<json_t>) -> Result<JWK, Why> {
        guard e.pointee.type == JSON_OBJECT else { return .failure(Why("not a JSON object")) }
        guard let kty = JSON.string(e, "kty") else { return .failure(Why("no \"kty\"")) }
        if let use = JSON.string(e, "use"), use != "sig" { return .failure(Why("\"use\" is \"\(use)\", not \"sig\"")) }
        var alg: JWTAlgorithm?
        if let a = JSON.string(e, "alg") {
            guard let known = JWTAlgorithm(rawValue: a) else { return .failure(Why("unsupported \"alg\" \"\(a)\"")) }
            alg = known
        }
        if JSON.member(e, "d") != nil { return .failure(Why("holds private key material (\"d\"): publish public keys only")) }
        let kid = JSON.string(e, "kid")
        switch kty {
        case "RSA", "EC": return cjoseKey(e, kid: kid, alg: alg)
        case "OKP": return ed25519(e, kid: kid, alg: alg)
        case "oct": return .failure(Why("symmetric (oct) keys are not accepted: HS* algorithms are refused"))
        default: return .failure(Why("unsupported \"kty\" \"\(kty)\""))
        }
    }

    private static func cjoseKey(_ e: UnsafeMutablePointer<json_t>, kid: String?, alg: JWTAlgorithm?) -> Result<JWK, Why> {
        // cjose 0.6.2 asserts (aborts the process) on some malformed base64url in a key's numbers
        // (found by the jwt fuzz target: an RSA "n" with "="): every coordinate passes our strict
        // check before cjose sees it, so a bad JWKS file is a load error, never a crash.
        for name in ["n", "e", "x", "y"] {
            guard let m = JSON.member(e, name) else { continue }
            guard let v = JSON.string(m), !v.isEmpty, Array(v.utf8).withUnsafeBytes(Base64URL.isStrict) else {
                return .failure(Why("malformed: \"\(name)\" is not base64url"))
            }
        }
        guard let text = json_dumps(e, 0) else { return .failure(Why("cannot be read")) }
        defer { free(text) }
        var err = cjose_err()
        guard let j = cjose_jwk_import(text, strlen(text), &err) else {
            return .failure(Why("malformed: \(err.message.map { String(cString: $0) } ?? "cjose refused it")"))
        }
        let type: JWK.KeyType
        switch cjose_jwk_get_kty(j, &err) {
        case CJOSE_JWK_KTY_RSA:
            let bits = cjose_jwk_get_keysize(j, &err)
            guard bits >= 2048 else { cjose_jwk_release(j); return .failure(Why("RSA key of \(bits) bits is too weak (at least 2048)")) }
            type = .rsa
        case CJOSE_JWK_KTY_EC:
            switch cjose_jwk_EC_get_curve(j, &err) {
            case CJOSE_JWK_EC_P_256: type = .p256
            case CJOSE_JWK_EC_P_384: type = .p384
            default: cjose_jwk_release(j); return .failure(Why("EC curve not supported (P-256 and P-384 are)"))
            }
        default:
            cjose_jwk_release(j); return .failure(Why("unsupported key type"))
        }
        if let alg, alg.keyType != type {
            cjose_jwk_release(j); return .failure(Why("\"alg\" \(alg.rawValue) does not fit a \(type.rawValue) key"))
        }
        return .success(JWK(kid: kid, type: type, alg: alg, cjose: j, pkey: nil))
    }

    /// RFC 8037 OKP with crv Ed25519: `x` is the 32-byte public key.
    private static func ed25519(_ e: UnsafeMutablePointer<json_t>, kid: String?, alg: JWTAlgorithm?) -> Result<JWK, Why> {
        guard JSON.string(e, "crv") == "Ed25519" else { return .failure(Why("OKP curve not supported (Ed25519 is)")) }
        guard let xText = JSON.string(e, "x"), let x = Base64URL.decode(xText), x.count == 32 else {
            return .failure(Why("malformed: \"x\" is not 32 bytes of base64url"))
        }
        if let alg, alg != .edDSA { return .failure(Why("\"alg\" \(alg.rawValue) does not fit an Ed25519 key")) }
        guard let p = x.withUnsafeBufferPointer({ EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, $0.baseAddress, 32) }) else {
            return .failure(Why("malformed: OpenSSL refused the Ed25519 key"))
        }
        return .success(JWK(kid: kid, type: .ed25519, alg: alg, cjose: nil, pkey: p))
    }
}
