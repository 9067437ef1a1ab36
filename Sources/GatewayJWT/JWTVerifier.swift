import CCJose
import COpenSSL

// SPEC §13's token check as a pure function: the token's bytes, the time and the client
// certificate's thumbprint in, a verdict out. No I/O, no clock, no cache: a removed key or an
// expired token fails the next request, and table tests drive every reason.

/// A host's `jwt { }` settings the check reads.
public struct JWTPolicy: Sendable, Hashable {
    public var issuer: String
    public var audiences: [String]
    public var algorithms: [JWTAlgorithm] = JWTAlgorithm.defaults
    public var clockSkewSeconds = 60
    public var bindClientCert = true
    /// The claims passed on as headers, in `claim_header` order.
    public var claims: [String] = []
    public init(issuer: String, audiences: [String]) { self.issuer = issuer; self.audiences = audiences }
}

/// Why a token was refused: the `error_description` of the 401, the access log's `jwt_error`
/// and the metric's `reason` (SPEC §13, word for word).
public enum JWTFailure: String, Sendable, CaseIterable {
    case malformed
    case unsupportedAlgorithm = "unsupported algorithm"
    case unknownKey = "unknown key"
    case badSignature = "bad signature"
    case expired
    case notYetValid = "not yet valid"
    case wrongIssuer = "wrong issuer"
    case wrongAudience = "wrong audience"
    case bindingMismatch = "certificate binding mismatch"
}

/// What a valid token says that the gateway passes on: `sub` for the log, and the value of
/// each `claim_header` claim (nil: absent, or not a string, number or boolean).
public struct JWTClaims: Sendable, Equatable {
    public var subject: String?
    public var values: [String?]
}

public enum JWTVerdict: Sendable, Equatable {
    case valid(JWTClaims)
    case invalid(JWTFailure)
}

public final class JWTVerifier: Sendable {
    public let policy: JWTPolicy
    public let keys: JWKSet
    /// SPEC §13: a longer token is invalid before anything parses it.
    public static let maxTokenSize = 8 * 1024

    public init(policy: JWTPolicy, keys: JWKSet) { self.policy = policy; self.keys = keys }

    /// `now`: Unix seconds. `clientCertSHA256Hex`: the presented client certificate's SHA-256
    /// (hex of the DER), nil when none was presented; asked for only when a token is bound.
    public func verify(_ token: UnsafeRawBufferPointer, now: Int64, clientCertSHA256Hex: @autoclosure () -> String?) -> JWTVerdict {
        // Compact JWS: exactly three strict base64url parts (a JWE has five).
        guard token.count > 0, token.count <= Self.maxTokenSize,
              let dot1 = token.firstIndex(of: UInt8(ascii: ".")),
              let dot2 = token[(dot1 + 1)...].firstIndex(of: UInt8(ascii: ".")),
              !token[(dot2 + 1)...].contains(UInt8(ascii: ".")) else { return .invalid(.malformed) }
        let headerPart = UnsafeRawBufferPointer(rebasing: token[..<dot1])
        let payloadPart = UnsafeRawBufferPointer(rebasing: token[(dot1 + 1)..<dot2])
        let signaturePart = UnsafeRawBufferPointer(rebasing: token[(dot2 + 1)...])
        guard let headerBytes = Base64URL.decode(headerPart),
              let payloadBytes = Base64URL.decode(payloadPart), let signature = Base64URL.decode(signaturePart),
              let header = JSON.object(headerBytes) else { return .invalid(.malformed) }
        defer { json_decref(header) }

        // The header: `alg` from the allow-list, an optional string `kid`, no `crit` we would not understand.
        guard let algText = JSON.string(header, "alg"), JSON.member(header, "crit") == nil else { return .invalid(.malformed) }
        guard let alg = JWTAlgorithm(rawValue: algText), policy.algorithms.contains(alg) else { return .invalid(.unsupportedAlgorithm) }
        let kidMember = JSON.member(header, "kid")
        let kid = kidMember.flatMap(JSON.string)
        if kidMember != nil && kid == nil { return .invalid(.malformed) }

        // The key: by kid, else every key of the algorithm's type.
        var candidates: [JWK] = []
        if let kid {
            guard let k = keys.keys.first(where: { $0.kid == kid }) else { return .invalid(.unknownKey) }
            guard k.usable(for: alg) else { return .invalid(.unsupportedAlgorithm) }
            candidates = [k]
        } else {
            candidates = keys.keys.filter { $0.usable(for: alg) }
            guard !candidates.isEmpty else { return .invalid(.unknownKey) }
        }
        let signed = UnsafeRawBufferPointer(rebasing: token[..<dot2])
        switch alg == .edDSA ? ed25519(candidates, signed, signature) : cjose(candidates, token) {
        case .invalid(let f): return .invalid(f)
        case .valid: break
        }

        guard let claims = JSON.object(payloadBytes) else { return .invalid(.malformed) }
        defer { json_decref(claims) }
        return check(claims, now: now, clientCertSHA256Hex: clientCertSHA256Hex)
    }

    /// The claims of a token whose signature holds.
    private func check(_ c: UnsafeMutablePointer<json_t>, now: Int64, clientCertSHA256Hex: () -> String?) -> JWTVerdict {
        let skew = Double(policy.clockSkewSeconds), t = Double(now)
        guard case .some(.some(let exp)) = JSON.number(c, "exp"),
              case .some(let nbf) = JSON.number(c, "nbf"), case .some(let iat) = JSON.number(c, "iat") else { return .invalid(.malformed) }
        if t >= exp + skew { return .invalid(.expired) }
        if let nbf, nbf > t + skew { return .invalid(.notYetValid) }
        if let iat, iat > t + skew { return .invalid(.notYetValid) }
        guard JSON.string(c, "iss") == policy.issuer else { return .invalid(.wrongIssuer) }
        guard audienceMatches(JSON.member(c, "aud")) else { return .invalid(.wrongAudience) }
        if policy.bindClientCert, let cnf = JSON.member(c, "cnf") {
            guard cnf.pointee.type == JSON_OBJECT else { return .invalid(.bindingMismatch) }
            if let x5t = JSON.member(cnf, "x5t#S256") {
                guard let want = JSON.string(x5t), let hex = clientCertSHA256Hex(), let der = Base64URL.bytes(hex: hex),
                      Base64URL.encode(der) == want else { return .invalid(.bindingMismatch) }
            }
        }
        let values = policy.claims.map { name in JSON.member(c, name).flatMap(JSON.headerValue) }
        return .valid(JWTClaims(subject: JSON.string(c, "sub"), values: values))
    }

    private func audienceMatches(_ aud: UnsafeMutablePointer<json_t>?) -> Bool {
        guard let aud else { return false }
        if let one = JSON.string(aud) { return policy.audiences.contains(one) }
        guard aud.pointee.type == JSON_ARRAY else { return false }
        for i in 0..<json_array_size(aud) {
            if let v = json_array_get(aud, i), let s = JSON.string(v), policy.audiences.contains(s) { return true }
        }
        return false
    }

    /// RS256, PS256, ES256, ES384 through cjose: it parses the compact token and checks the
    /// signature with the algorithm the header names (already matched to the key's type).
    private func cjose(_ candidates: [JWK], _ token: UnsafeRawBufferPointer) -> JWTVerdict {
        var err = cjose_err()
        guard let jws = cjose_jws_import(token.baseAddress?.assumingMemoryBound(to: CChar.self), token.count, &err) else {
            return .invalid(.malformed)
        }
        defer { cjose_jws_release(jws) }
        for k in candidates where cjose_jws_verify(jws, k.cjose, &err) { return .valid(JWTClaims(subject: nil, values: [])) }
        return .invalid(.badSignature)
    }

    /// EdDSA (RFC 8037) with OpenSSL, which cjose 0.6 lacks: a one-shot EVP_DigestVerify.
    private func ed25519(_ candidates: [JWK], _ signed: UnsafeRawBufferPointer, _ signature: [UInt8]) -> JWTVerdict {
        guard signature.count == 64 else { return .invalid(.badSignature) }
        for k in candidates {
            guard let ctx = EVP_MD_CTX_new() else { continue }
            defer { EVP_MD_CTX_free(ctx) }
            guard EVP_DigestVerifyInit(ctx, nil, nil, nil, k.pkey) == 1 else { continue }
            let ok = signature.withUnsafeBufferPointer {
                EVP_DigestVerify(ctx, $0.baseAddress, 64, signed.baseAddress?.assumingMemoryBound(to: UInt8.self), signed.count)
            }
            if ok == 1 { return .valid(JWTClaims(subject: nil, values: [])) }
        }
        ERR_clear_error()
        return .invalid(.badSignature)
    }
}
