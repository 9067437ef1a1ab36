// The cost of one JWTVerifier check, per algorithm, in a release build (SPEC §13, issue #23:
// "a verified ES256 token costs roughly one ECDSA verify plus little else"). Not part of the
// package: scripts/bench.d/jwt-verify builds it with swiftc -O from GatewayJWT's sources and
// runs it over the PyJWT fixtures. Prints µs per verify for each token kind; no assertions.

import Foundation

@main
struct JWTVerifyBench {
    static func main() throws {
        let dir = CommandLine.arguments[1]
        let jwks = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/jwks.json")))
        let tokens = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/tokens.json"))) as! [String: String]
        var p = JWTPolicy(issuer: "https://login.example.test/", audiences: ["api://orders"])
        p.claims = ["sub", "role"]
        let v = JWTVerifier(policy: p, keys: JWKSet.load(jwks, algorithms: JWTAlgorithm.defaults, digest: "").set!)
        let n = Int(CommandLine.arguments.dropFirst(2).first ?? "") ?? 20_000
        let only = CommandLine.arguments.dropFirst(3).first   // one token kind (for perf)
        for name in ["valid-es256", "valid-es384", "valid-rs256", "valid-ps256", "valid-eddsa", "forged", "expired", "padded"]
            where only == nil || only == name {
            let token = Array(tokens[name]!.utf8)
            var ok = 0
            let start = DispatchTime.now().uptimeNanoseconds
            token.withUnsafeBytes { t in
                for _ in 0..<n { if case .valid = v.verify(t, now: 1_800_000_000, clientCertSHA256Hex: nil) { ok += 1 } }
            }
            let us = Double(DispatchTime.now().uptimeNanoseconds - start) / 1000 / Double(n)
            print(String(format: "%-14@ %8.1f µs/verify  %9.0f verifies/s  (valid: %d/%d)", name as NSString, us, 1e6 / us, ok, n))
        }
    }
}
