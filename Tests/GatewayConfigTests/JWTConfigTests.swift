import Testing
@testable import GatewayConfig
import GatewayJWT

/// SPEC §13 configuration: `jwt { }` in a host, `jwt off` on a route, every load error at
/// FILE:LINE:COL, keys judged at load.
@Suite struct JWTConfigTests {
    /// The key sets PyJWT made for the verifier's tests.
    static func fixture(_ name: String) -> String {
        let here = #filePath
        let dir = here[..<here.lastIndex(of: "/")!]
        guard case .success(let bytes) = FileSystem.read(dir + "/../GatewayJWTTests/Fixtures/" + name) else { fatalError(name) }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func config(_ jwt: String, route: String = "route / backend echo;") -> String {
        minimalConfig.replacing("    route / backend echo;", with: "    jwt {\n\(jwt)    }\n    \(route)")
    }

    static let block = """
            issuer https://login.example.test/;
            audience api://orders api://admin;
            jwks_file jwks.json;

    """

    @Test func fullBlockLoads() throws {
        let f = Fixture()
        f.write("jwks.json", Self.fixture("jwks.json"))
        f.config(Self.config(Self.block + """
                algorithms ES256 EdDSA;
                clock_skew 2m;
                claim_header sub X-JWT-Subject;
                claim_header role X-Role;
                bind_client_cert off;

        """, route: "route /health backend echo jwt off;\n    route / backend echo;"))
        let c = try f.load()
        let j = try #require(c.hosts[0].jwt)
        #expect(j.policy.issuer == "https://login.example.test/" && j.policy.audiences == ["api://orders", "api://admin"])
        #expect(j.policy.algorithms == [.es256, .edDSA] && j.policy.clockSkewSeconds == 120 && !j.policy.bindClientCert)
        #expect(j.claimHeaders == [ClaimHeader(claim: "sub", header: "X-JWT-Subject"), ClaimHeader(claim: "role", header: "X-Role")])
        #expect(j.verifier.keys.keyIDs == ["ec1", "ed1"], "RSA and P-384 keys skipped: no listed algorithm uses them")
        #expect(c.warnings.count == 1 && c.warnings[0].description.contains("key \"rsa1\": skipped")
                && c.warnings[0].description.contains("key \"ec384\": skipped"))
        #expect(c.hosts[0].routes.map(\.jwtOff) == [true, false])
        #expect(c.watchedFiles.contains(f.path("jwks.json")))
    }

    @Test func defaults() throws {
        let f = Fixture()
        f.write("jwks.json", Self.fixture("jwks.json"))
        f.config(Self.config(Self.block))
        let j = try #require(try f.load().hosts[0].jwt)
        #expect(j.policy.algorithms == JWTAlgorithm.defaults && j.policy.clockSkewSeconds == 60 && j.policy.bindClientCert)
        #expect(j.verifier.keys.keyIDs.count == 4)
    }

    @Test func loadErrorsAtTheirPlace() {
        let f = Fixture()
        f.write("jwks.json", Self.fixture("jwks.json"))
        let main = f.main
        f.config(Self.config(Self.block + "        algorithms none HS256 RS512;\n"))
        #expect(f.errors() == [
            "\(main):8:20: error: algorithm \"none\" is refused: an unsigned token proves nothing; use RS256, PS256, ES256, ES384 or EdDSA",
            "\(main):8:25: error: algorithm \"HS256\" is refused: a shared secret would let every holder mint tokens; use RS256, PS256, ES256, ES384 or EdDSA",
            "\(main):8:31: error: invalid value \"RS512\" for \"algorithms\"; expected RS256, PS256, ES256, ES384 or EdDSA",
        ])
        f.config(Self.config("        claim_header sub X-Sub;\n"))
        #expect(f.errors() == ["\(main):4:5: error: jwt block without \"issuer\", \"audience\" or \"jwks_file\""])
        for (file, message) in [("bad-weak.json", "key \"weak1\": RSA key of 1024 bits is too weak (at least 2048)"),
                                ("bad-oct.json", "key \"s1\": symmetric (oct) keys are not accepted: HS* algorithms are refused")] {
            f.write(file, Self.fixture(file))
            f.config(Self.config(Self.block.replacing("jwks.json", with: file)))
            #expect(f.errors() == ["\(main):7:19: error: jwks_file \"\(f.path(file))\": \(message)"])
        }
        f.write("bad-malformed.json", Self.fixture("bad-malformed.json"))
        f.config(Self.config(Self.block.replacing("jwks.json", with: "bad-malformed.json")))
        #expect(f.errors().first?.contains("key \"broken1\": malformed") == true)
        f.config(Self.config(Self.block.replacing("jwks.json", with: "missing.json")))
        #expect(f.errors().first?.hasPrefix("\(main):7:19: error: cannot read jwks file") == true)
        f.config(Self.config(Self.block + "        claim_header sub Authorization;\n        claim_header sub X-Forwarded-User;\n"))
        #expect(f.errors().count == 2)
        f.config(minimalConfig.replacing("route / backend echo;", with: "route / backend echo jwt off;"))
        #expect(f.errors() == ["\(main):4:5: error: route \"/\" says jwt off, but host \"api.example.test\" has no jwt block"])
        f.config(minimalConfig.replacing("route / backend echo;", with: "route / backend echo jwt on;"))
        #expect(f.errors() == ["\(main):4:26: error: invalid value \"jwt\" for \"route\"; expected jwt off"])
    }

    @Test func keySetChangeChangesTheHostFingerprint() throws {
        let f = Fixture()
        f.write("jwks.json", Self.fixture("jwks.json"))
        f.config(Self.config(Self.block))
        let before = HostFingerprint.reading(try f.load().hosts[0])
        f.write("jwks.json", Self.fixture("jwks.json").replacing("\"ec1\"", with: "\"ec2\""))
        #expect(HostFingerprint.reading(try f.load().hosts[0]) != before)
    }
}
