import GatewayJWT

// `jwt { }` in a host (SPEC §13): the settings, checked here, and the key set read and judged
// at load — a weak or malformed key fails the load with the file and its kid, so the request
// path never meets a key it cannot trust.

/// A claim passed to the backend as a header.
public struct ClaimHeader: Sendable, Hashable {
    public var claim: String
    /// As written; matched case-insensitively when client copies are removed.
    public var header: String
    /// The name in lower case, made once here so the request path compares bytes.
    public var lowercased: [UInt8]
    public init(claim: String, header: String) {
        self.claim = claim; self.header = header; lowercased = Array(header.lowercased().utf8)
    }
}

/// A host's validated `jwt` block, with its keys already parsed.
public struct JWTConfig: Sendable, Hashable {
    public var policy: JWTPolicy
    public var jwksFile: String
    public var claimHeaders: [ClaimHeader]
    public var location: SourceLocation
    /// The block's own directives (`bind_client_cert`...), for `check` findings.
    public var directiveLocations: DirectiveLocations = [:]
    /// The check itself, built once per load from the policy and the parsed key set.
    public let verifier: JWTVerifier

    public static func == (a: JWTConfig, b: JWTConfig) -> Bool {
        a.policy == b.policy && a.jwksFile == b.jwksFile && a.claimHeaders == b.claimHeaders && a.location == b.location
            && a.verifier.keys.digest == b.verifier.keys.digest
    }
    public func hash(into h: inout Hasher) { h.combine(policy); h.combine(jwksFile); h.combine(verifier.keys.digest) }
}

struct JWTBlock {
    var issuer: String?
    var audiences: [String] = []
    var jwksFile: (path: String, location: SourceLocation)?
    var algorithms = JWTAlgorithm.defaults
    var clockSkewSeconds = 60
    var claimHeaders: [ClaimHeader] = []
    var bindClientCert = true
    var seen: SeenDirectives = [:]

    static let rules: [String: Rule<JWTBlock>] = [
        "issuer": Rule(1...1) { j, d, _ in j.issuer = d.args[0].text },
        "audience": Rule(1...Int.max) { j, d, _ in j.audiences = d.args.map(\.text) },
        "jwks_file": Rule(1...1) { j, d, ctx in j.jwksFile = (ctx.readablePath(d, what: "jwks"), d.args[0].location) },
        "algorithms": Rule(1...Int.max) { j, d, ctx in
            var algs: [JWTAlgorithm] = []
            for a in d.args {
                if let alg = JWTAlgorithm(rawValue: a.text) {
                    if !algs.contains(alg) { algs.append(alg) }
                } else if a.text.lowercased() == "none" || a.text.uppercased().hasPrefix("HS") {
                    let why = a.text.lowercased() == "none" ? "an unsigned token proves nothing"
                                                            : "a shared secret would let every holder mint tokens"
                    ctx.error(a.location, "algorithm \"\(a.text)\" is refused: \(why); use RS256, PS256, ES256, ES384 or EdDSA")
                } else {
                    ctx.badValue(d, a, expected: LoadContext.list(JWTAlgorithm.allCases.map(\.rawValue)))
                }
            }
            if !algs.isEmpty { j.algorithms = algs }
        },
        "clock_skew": Rule(1...1) { j, d, ctx in
            if let ms = ctx.durationMs(d) { j.clockSkewSeconds = ms / 1000 }
        },
        "claim_header": Rule(2...2, repeatable: true) { j, d, ctx in
            let header = d.args[1]
            guard isToken(header.text) else {
                ctx.error(header.location, "invalid header name \"\(header.text)\""); return
            }
            if reserved.contains(header.text.lowercased()) || header.text.lowercased().hasPrefix("x-forwarded-")
                || header.text.lowercased().hasPrefix("x-client-cert-") {
                ctx.error(header.location, "header \"\(header.text)\" is set by the gateway or the protocol; choose another name"); return
            }
            if j.claimHeaders.contains(where: { $0.header.lowercased() == header.text.lowercased() }) {
                ctx.error(header.location, "header \"\(header.text)\" is already named by another claim_header"); return
            }
            j.claimHeaders.append(ClaimHeader(claim: d.args[0].text, header: header.text))
        },
        "bind_client_cert": Rule(1...1) { j, d, ctx in
            if let on = ctx.flag(d) { j.bindClientCert = on }
        },
    ]

    static let reserved: Set<String> = ["authorization", "host", "content-length", "transfer-encoding", "connection", "te",
                                        "upgrade", "keep-alive", "trailer", "proxy-connection", "x-request-id",
                                        "traceparent", "tracestate", "cookie", "content-type"]

    static func isToken(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || "!#$%&'*+-.^_`|~".utf8.contains(c)
        }
    }

    /// The whole block: required settings present, then the key set read and judged.
    static func read(_ d: Directive, _ ctx: LoadContext) -> JWTConfig? {
        var j = JWTBlock()
        j.seen = Block.apply(d.block ?? [], rules: rules, context: "jwt", to: &j, ctx)
        var missing: [String] = []
        if j.issuer == nil { missing.append("issuer") }
        if j.audiences.isEmpty { missing.append("audience") }
        if j.jwksFile == nil && j.seen["jwks_file"] == nil { missing.append("jwks_file") }
        if !missing.isEmpty { ctx.error(d.location, "jwt block without \(LoadContext.list(missing.map { "\"\($0)\"" }))") }
        guard missing.isEmpty, let issuer = j.issuer, let file = j.jwksFile,
              case .success(let bytes) = FileSystem.read(file.path) else { return nil }
        let loaded = JWKSet.load(bytes, algorithms: j.algorithms, digest: Digest.sha256Hex([bytes]))
        // One diagnostic per kind: the loader keeps one finding per place, and every key is worth naming.
        if !loaded.errors.isEmpty {
            ctx.error(file.location, "jwks_file \"\(file.path)\": " + loaded.errors.map(\.description).joined(separator: "; "))
        }
        if !loaded.warnings.isEmpty {
            ctx.warning(file.location, "jwks_file \"\(file.path)\": " + loaded.warnings.map(\.description).joined(separator: "; "))
        }
        guard let keys = loaded.set else { return nil }
        var policy = JWTPolicy(issuer: issuer, audiences: j.audiences)
        policy.algorithms = j.algorithms
        policy.clockSkewSeconds = j.clockSkewSeconds
        policy.bindClientCert = j.bindClientCert
        policy.claims = j.claimHeaders.map(\.claim)
        return JWTConfig(policy: policy, jwksFile: file.path, claimHeaders: j.claimHeaders, location: d.location,
                         directiveLocations: j.seen, verifier: JWTVerifier(policy: policy, keys: keys))
    }
}
