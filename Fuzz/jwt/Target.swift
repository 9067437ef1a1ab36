// libFuzzer target: the token path of SPEC §13 — what an `Authorization: Bearer` value meets on
// the request path — against the key set of the verifier's tests (RSA, P-256, P-384, Ed25519),
// and the same bytes as a JWKS through the loader. Properties: no crash, no sanitizer report, no
// leak (every jansson and cjose object released on every path); a token is accepted only in
// compact form within the size limit; strict base64url round-trips.

import Glibc

final class FuzzKeys: @unchecked Sendable {
    // @unchecked: libFuzzer calls the target from one thread.
    let verifier: JWTVerifier

    init() {
        guard let root = getenv("GATEWAY_FUZZ_ROOT").map({ String(cString: $0) }),
              let f = fopen("\(root)/Tests/GatewayJWTTests/Fixtures/jwks.json", "r") else {
            fatalError("set GATEWAY_FUZZ_ROOT to the repository (scripts/fuzz does)")
        }
        var bytes: [UInt8] = []
        while true { let c = fgetc(f); if c == EOF { break }; bytes.append(UInt8(c)) }
        fclose(f)
        guard let keys = JWKSet.load(bytes, algorithms: JWTAlgorithm.defaults, digest: "fuzz").set else { fatalError("jwks.json") }
        var p = JWTPolicy(issuer: "https://login.example.test/", audiences: ["api://orders"])
        p.claims = ["sub", "role", "level"]
        verifier = JWTVerifier(policy: p, keys: keys)
    }
}

let keys = FuzzKeys()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzToken(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let token = UnsafeRawBufferPointer(start: data, count: size)
    let verdict = keys.verifier.verify(token, now: 1_800_000_000, clientCertSHA256Hex: String(repeating: "00", count: 32))
    if case .valid = verdict {
        precondition(size <= JWTVerifier.maxTokenSize, "accepted a token over the limit")
        precondition(token.filter { $0 == UInt8(ascii: ".") }.count == 2, "accepted a token that is not compact JWS")
    }
    if let decoded = Base64URL.decode(token) {
        precondition(Array(Base64URL.encode(decoded).utf8) == Array(token), "base64url is not canonical")
    }
    // The same bytes as a key set: refused or loaded, never a crash or a leak.
    _ = JWKSet.load(Array(token), algorithms: JWTAlgorithm.defaults, digest: "")
    return 0
}
