import Foundation
import Testing
@testable import GatewayJWT

/// SPEC §13's verdicts, one row per reason, over tokens PyJWT made (Fixtures/make-fixtures.py):
/// a second, independent implementation signs what the gateway verifies.
struct JWTVerifierTests {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let now: Int64 = 1_800_000_000
    /// The thumbprint the bound fixture token names: bytes 0...31.
    static let certHex = (0..<32).map { String(format: "%02x", $0) }.joined()

    static let tokens: [String: String] = {
        let data = try! Data(contentsOf: dir.appendingPathComponent("tokens.json"))
        return try! JSONSerialization.jsonObject(with: data) as! [String: String]
    }()

    static func load(_ file: String, _ algorithms: [JWTAlgorithm] = JWTAlgorithm.defaults) -> JWKSet.Loaded {
        let bytes = [UInt8](try! Data(contentsOf: dir.appendingPathComponent(file)))
        return JWKSet.load(bytes, algorithms: algorithms, digest: "test")
    }

    static func verifier(_ change: (inout JWTPolicy) -> Void = { _ in }) -> JWTVerifier {
        var p = JWTPolicy(issuer: "https://login.example.test/", audiences: ["api://orders", "api://admin"])
        p.claims = ["role", "level", "staff", "groups", "missing"]
        change(&p)
        return JWTVerifier(policy: p, keys: load("jwks.json", p.algorithms).set!)
    }

    static func verify(_ name: String, _ v: JWTVerifier = verifier(), cert: String? = certHex, now: Int64 = now) -> JWTVerdict {
        let token = name.hasPrefix("=") ? String(name.dropFirst()) : tokens[name]!
        return Array(token.utf8).withUnsafeBytes { v.verify($0, now: now, clientCertSHA256Hex: cert) }
    }

    static let rows: [(String, JWTFailure?)] = [
        ("valid-rs256", nil), ("valid-ps256", nil), ("valid-es256", nil), ("valid-es384", nil), ("valid-eddsa", nil),
        ("valid-nokid", nil), ("valid-aud-array", nil), ("valid-bound", nil), ("valid-nbf-in-skew", nil), ("expired-in-skew", nil),
        ("expired", .expired), ("not-yet-valid", .notYetValid), ("iat-future", .notYetValid),
        ("no-exp", .malformed), ("wrong-issuer", .wrongIssuer), ("no-issuer", .wrongIssuer),
        ("wrong-audience", .wrongAudience), ("wrong-audience-array", .wrongAudience),
        ("unknown-kid", .unknownKey), ("forged", .badSignature), ("forged-nokid", .badSignature),
        ("tampered-payload", .badSignature),
        ("hs256", .unsupportedAlgorithm), ("alg-none", .unsupportedAlgorithm), ("alg-key-mismatch", .unsupportedAlgorithm),
        ("bound-other-cert", .bindingMismatch),
        ("padded", .malformed), ("bad-chars", .malformed), ("jwe-shaped", .malformed), ("two-parts", .malformed),
        ("header-not-json", .malformed), ("=", .malformed), ("=...", .malformed), ("=a.b.c", .malformed),
    ]

    @Test(arguments: rows) func verdict(_ name: String, _ expected: JWTFailure?) {
        let got = Self.verify(name)
        if let expected { #expect(got == .invalid(expected), "\(name)") } else {
            guard case .valid = got else { Issue.record("\(name): \(got)"); return }
        }
    }

    @Test func claimsPassedOn() {
        #expect(Self.verify("valid-es256") == .valid(JWTClaims(subject: "alice", values: ["admin", "3", "true", nil, nil])))
    }

    @Test func bindingNeedsTheCertificate() {
        #expect(Self.verify("valid-bound", cert: nil) == .invalid(.bindingMismatch))
        #expect(Self.verify("valid-bound", cert: String(repeating: "ab", count: 32)) == .invalid(.bindingMismatch))
        // bind_client_cert off: the cnf claim is not checked.
        #expect(Self.verify("bound-other-cert", Self.verifier { $0.bindClientCert = false }, cert: nil) != .invalid(.bindingMismatch))
    }

    @Test func allowListAndClock() {
        #expect(Self.verify("valid-rs256", Self.verifier { $0.algorithms = [.es256] }) == .invalid(.unsupportedAlgorithm))
        #expect(Self.verify("valid-es256", now: 4_102_444_800 + 60) == .invalid(.expired))
        #expect(Self.verify("expired-in-skew", Self.verifier { $0.clockSkewSeconds = 0 }) == .invalid(.expired))
        #expect(Self.verify("valid-es256", Self.verifier { $0.issuer = "x" }) == .invalid(.wrongIssuer))
    }

    @Test func oversizedTokenIsMalformed() {
        let t = Self.tokens["valid-es256"]!
        let big = t + String(repeating: "A", count: JWTVerifier.maxTokenSize)
        #expect(Self.verify("=" + big) == .invalid(.malformed))
    }

    @Test func keySetLoading() {
        let good = Self.load("jwks.json")
        #expect(good.errors.isEmpty && good.warnings.isEmpty)
        #expect(good.set?.keyIDs == ["rsa1", "ec1", "ec384", "ed1"])
        #expect(Self.load("bad-weak.json").errors.map(\.description) == ["key \"weak1\": RSA key of 1024 bits is too weak (at least 2048)"])
        #expect(Self.load("bad-oct.json").errors.first?.key == "\"s1\"")
        #expect(Self.load("bad-malformed.json").errors.first?.description.hasPrefix("key \"broken1\": malformed") == true)
        let rsaOnly = Self.load("jwks.json", [.rs256])
        #expect(rsaOnly.set?.keyIDs == ["rsa1"])
        #expect(rsaOnly.warnings.count == 3)
        #expect(JWKSet.load(Array("[]".utf8), algorithms: JWTAlgorithm.defaults, digest: "").errors.count == 1)
        // Found by the jwt fuzz target: an RSA "n" with "=" made cjose 0.6.2 assert and abort the
        // process; it is now refused before cjose sees it (a load error, the process lives on).
        let aborting = Self.load("bad-cjose-abort.json")
        #expect(aborting.set == nil)
        #expect(aborting.errors.contains { $0.description.contains("\"n\" is not base64url") }, "\(aborting.errors)")
    }

    @Test func base64url() {
        #expect(Base64URL.decode("QQ") == [0x41])
        #expect(Base64URL.decode("QR") == nil)      // non-zero trailing bits
        #expect(Base64URL.decode("QQ==") == nil)
        #expect(Base64URL.decode("Q") == nil)
        #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
    }
}
