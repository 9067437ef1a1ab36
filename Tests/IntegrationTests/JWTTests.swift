import Foundation
import Testing

/// SPEC §13 over real sockets: curl (HTTP/1.1 and HTTP/2) → gateway with a `jwt` block →
/// gateway-echo. Tokens come from PyJWT (jwtmint.py) with the keys of the verifier's fixtures.
@Suite(.serialized)
struct JWTTests {
    static let fixtures = Repo.root.appendingPathComponent("Tests/GatewayJWTTests/Fixtures").path
    static let script = Repo.root.appendingPathComponent("Tests/IntegrationTests/jwtmint.py").path
    static let issuer = "https://login.example.test/"

    /// One token per spec: key name (Fixtures/keys/NAME.pem), alg, kid, claims over the valid defaults.
    struct Mint { var key = "ec1"; var alg = "ES256"; var kid: String? = "ec1"; var claims: [String: Any] = [:]; var bind: String? = nil }

    static func mint(_ specs: [Mint]) throws -> [String] {
        let list: [[String: Any]] = specs.map { m in
            var c: [String: Any] = ["iss": issuer, "aud": ["api://other", "api://orders"], "sub": "alice", "exp": "+3600", "iat": "-10", "role": "admin"]
            for (k, v) in m.claims { if v is NSNull { c.removeValue(forKey: k) } else { c[k] = v } }
            var d: [String: Any] = ["key": m.key.hasPrefix("secret:") ? m.key : "\(fixtures)/keys/\(m.key).pem", "alg": m.alg, "claims": c]
            if let kid = m.kid { d["kid"] = kid }
            if let b = m.bind { d["bind"] = Repo.cert(b) }
            return d
        }
        let r = try run(["python3", script], stdin: try JSONSerialization.data(withJSONObject: list))
        let tokens = r.out.split(separator: "\n").map(String.init)
        guard r.status == 0, tokens.count == specs.count else { throw HarnessError("jwtmint.py: \(r.err)") }
        return tokens
    }

    static func stack(adminPort: UInt16? = nil) throws -> Stack {
        let s = try Stack()
        try FileManager.default.copyItem(atPath: "\(fixtures)/jwks.json", toPath: "\(s.dir)/jwks.json")
        try s.startEcho()
        let jwt = """
        jwt {
                issuer \(issuer);
                audience api://orders;
                jwks_file \(s.dir)/jwks.json;
                claim_header sub X-JWT-Subject;
                claim_header role X-Role;
            }
        """
        try s.startGateway(s.config(hostExtra: jwt, topExtra: adminPort.map { "admin 127.0.0.1:\($0);" } ?? "",
                                    routes: "route /open backend echo jwt off;\n    route / backend echo;"))
        return s
    }

    /// Status, headers (lower-cased names) and body of one request; `http2`: over h2.
    static func get(_ s: Stack, _ path: String = "/", token: String?, http2: Bool = false, _ extra: [String] = []) throws
        -> (code: Int, headers: [String: String], body: String) {
        var args = [http2 ? "--http2" : "--http1.1", "-i"] + extra
        if let token { args += ["-H", "Authorization: Bearer \(token)"] }
        let r = try s.curl(path, args)
        let parts = r.out.components(separatedBy: "\r\n\r\n")
        let lines = parts[0].components(separatedBy: "\r\n")
        var headers: [String: String] = [:]
        for l in lines.dropFirst() {
            guard let c = l.firstIndex(of: ":") else { continue }
            headers[l[..<c].lowercased()] = l[l.index(after: c)...].trimmingCharacters(in: .whitespaces)
        }
        let code = Int(lines[0].split(separator: " ").dropFirst().first ?? "") ?? 0
        return (code, headers, parts.dropFirst().joined(separator: "\r\n\r\n"))
    }

    static func challenge(_ reason: String?) -> String {
        "Bearer realm=\"api.example.test\"" + (reason.map { ", error=\"invalid_token\", error_description=\"\($0)\"" } ?? "")
    }

    @Test func acceptedTokenReachesTheBackendWithClaims() throws {
        let s = try Self.stack()
        let good = try Self.mint([Mint()])[0]
        for http2 in [false, true] {
            let r = try Self.get(s, "/x", token: good, http2: http2, ["-H", "X-Role: root", "-H", "x-jwt-subject: mallory"])
            #expect(r.code == 200, "\(r)")
            let e = try decodeEcho(r.body)
            #expect(e.headers["authorization"] == "Bearer \(good)")
            #expect(e.headers["x-jwt-subject"] == "alice" && e.headers["x-role"] == "admin", "client copies stripped, claims added")
        }
        // `jwt off`: no token needed, and still no spoofed claim header.
        let open = try Self.get(s, "/open", token: nil, ["-H", "X-Role: root"])
        let openEcho = try decodeEcho(open.body)
        #expect(open.code == 200 && openEcho.headers["x-role"] == nil)
        #expect(eventually { s.gateway!.stdout.contains("\"jwt_sub\":\"alice\"") }, "\(s.gateway!.stdout)")
    }

    @Test func everyRejectionIs401WithItsChallenge() throws {
        let admin = freePort()
        let s = try Self.stack(adminPort: admin)
        let t = try Self.mint([
            Mint(claims: ["exp": "-3600"]), Mint(claims: ["nbf": "+3600"]), Mint(claims: ["iss": "https://evil.test/"]),
            Mint(claims: ["aud": "api://billing"]), Mint(kid: "nope"), Mint(key: "other"),
            Mint(key: "secret:0123456789abcdef0123456789abcdef", alg: "HS256"), Mint(),
        ])
        let good = t[7]
        let cases: [(String?, String?)] = [(nil, nil), ("abc.def", "malformed"), (t[0], "expired"), (t[1], "not yet valid"),
                                           (t[2], "wrong issuer"), (t[3], "wrong audience"), (t[4], "unknown key"),
                                           (t[5], "bad signature"), (t[6], "unsupported algorithm")]
        for http2 in [false, true] {
            for (token, reason) in cases {
                let r = try Self.get(s, token: token, http2: http2)
                #expect(r.code == 401 && r.headers["www-authenticate"] == Self.challenge(reason), "\(reason ?? "missing") h2=\(http2): \(r)")
            }
        }
        // The connection stays usable: a rejected request, then an accepted one, on one connection.
        let url = "https://api.example.test:\(s.gatewayPort)/"
        let base = ["curl", "-sS", "--cacert", Repo.cert("ca.pem"), "--resolve", "api.example.test:\(s.gatewayPort):127.0.0.1",
                    "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\\n"]
        for proto in ["--http1.1", "--http2"] {
            let r = try run(base + [proto, "-H", "Authorization: Bearer \(t[0])", url, "--next"] + base.dropFirst()
                            + [proto, "-H", "Authorization: Bearer \(good)", url])
            #expect(r.out == "401 1\n200 0\n", "\(proto): \(r.out) \(r.err)")
        }
        // gRPC (HTTP/2): 200, trailers-only, grpc-status 16.
        let g = try Self.get(s, token: nil, http2: true, ["-H", "content-type: application/grpc", "-d", ""])
        #expect(g.code == 200 && g.headers["grpc-status"] == "16" && g.headers["content-type"] == "application/grpc", "\(g)")
        // The backend saw none of them: every 401 line has no backend; the metric counts by reason.
        let lines = jsonLines(s.gateway!.stdout).filter { $0["status"] as? Int == 401 }
        #expect(!lines.isEmpty && lines.allSatisfy { $0["backend"] == nil || $0["backend"] is NSNull })
        #expect(lines.contains { $0["jwt_error"] as? String == "expired" })
        let m = MetricsPage(try Admin(port: admin).get("/metrics").body)
        #expect(m.sum("gateway_jwt_failures_total", ["host": "api.example.test", "reason": "expired"]) == 4, "two table rows, two keep-alive checks")
        #expect(m.sum("gateway_jwt_failures_total", ["reason": "missing token"]) == 3)
        // The host's JWT settings in /hosts/NAME and the start-up policy table.
        let host = try JSONSerialization.jsonObject(with: Data(try Admin(port: admin).get("/hosts/api.example.test").body.utf8)) as? [String: Any]
        let jwt = try #require(host?["jwt"] as? [String: Any])
        #expect(jwt["key_ids"] as? [String] == ["rsa1", "ec1", "ec384", "ed1"] && jwt["bind_client_cert"] as? Bool == true)
        #expect(jwt["issuer"] as? String == Self.issuer && jwt["audiences"] as? [String] == ["api://orders"])
        #expect(policyTableCell(s.gateway!.stderr, host: "api.example.test", column: "jwt")
                == "\(Self.issuer) aud=api://orders keys=rsa1,ec1,ec384,ed1 bound", "\(s.gateway!.stderr.prefix(2000))")
    }

    @Test func certificateBoundTokens() throws {
        let s = try Self.stack()
        let t = try Self.mint([Mint(bind: "client1.pem"), Mint(bind: "rogue-client.pem")])
        let cert = ["--cert", Repo.cert("client1.pem"), "--key", Repo.cert("client1.key")]
        #expect(try Self.get(s, token: t[0], cert).code == 200)
        #expect(try Self.get(s, token: t[0], http2: true, cert).code == 200)
        let without = try Self.get(s, token: t[0])
        #expect(without.code == 401 && without.headers["www-authenticate"] == Self.challenge("certificate binding mismatch"))
        let other = try Self.get(s, token: t[1], http2: true, cert)
        #expect(other.code == 401 && other.headers["www-authenticate"] == Self.challenge("certificate binding mismatch"))
    }

    @Test func aNewKeySetIsAReload() throws {
        let s = try Self.stack()
        let t = try Self.mint([Mint(key: "other", kid: "new1")])[0]
        #expect(try Self.get(s, token: t).code == 401)
        // Publish the set with one more key (the `other` key's public half under kid new1).
        let r = try run(["python3", "-c", """
            import json, sys; from jwt.algorithms import ECAlgorithm
            from cryptography.hazmat.primitives import serialization
            k = serialization.load_pem_private_key(open(sys.argv[1], 'rb').read(), None)
            j = json.loads(ECAlgorithm.to_jwk(k.public_key())); j['kid'] = 'new1'
            s = json.load(open(sys.argv[2])); s['keys'].append(j); json.dump(s, open(sys.argv[2] + '.new', 'w'))
            """, "\(Self.fixtures)/keys/other.pem", "\(s.dir)/jwks.json"])
        #expect(r.status == 0, "\(r.err)")
        try FileManager.default.removeItem(atPath: "\(s.dir)/jwks.json")
        try FileManager.default.moveItem(atPath: "\(s.dir)/jwks.json.new", toPath: "\(s.dir)/jwks.json")
        s.gateway!.signal(SIGHUP)
        #expect(eventually(5) { (try? Self.get(s, token: t).code) == 200 }, "\(s.gateway!.stderr.suffix(800))")
    }
}
