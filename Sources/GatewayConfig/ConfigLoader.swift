// The one entry point: a file name in, a validated immutable configuration out,
// or every problem found at once. Stages: read + include (SourceTree), lex and
// parse (Lexer, Parser), directive tables (TopLevel and the block rules),
// cross-block checks (Validation), digest of the bytes read.

import COpenSSL

public enum ConfigLoader {
    public static func load(path: String) throws(ConfigLoadError) -> GatewayConfiguration {
        var source = SourceTree()
        let ctx = LoadContext()
        let tree = source.read(main: path)
        ctx.add(source.diagnostics)
        guard let tree else { throw ConfigLoadError(ctx.errors, sha256: Digest.sha256Hex(source.files.map(\.bytes))) }

        var draft = ConfigDraft()
        draft.seen = Block.apply(tree, rules: TopLevel.rules, context: "top level", to: &draft, ctx)
        var config = Validation(draft: draft, ctx: ctx, mainFile: path).run()

        let order = Dictionary(source.files.enumerated().map { ($1.path, $0) }) { first, _ in first }
        let sha256 = Digest.sha256Hex(source.files.map(\.bytes))
        guard ctx.errors.isEmpty else { throw ConfigLoadError(sorted(ctx.errors, fileOrder: order), sha256: sha256) }
        config.files = source.files.map(\.path)
        config.sha256 = sha256
        config.warnings = sorted(ctx.warnings, fileOrder: order)
        return config
    }

    /// In reading order: by file (main first, then includes as read), line, column.
    /// One finding per place, the first found: a later one there is a consequence
    /// (a string left open makes its argument a bad value too).
    private static func sorted(_ diagnostics: [ConfigDiagnostic], fileOrder: [String: Int]) -> [ConfigDiagnostic] {
        func key(_ d: ConfigDiagnostic) -> (Int, Int, Int) {
            (fileOrder[d.location.file] ?? Int.max, d.location.line, d.location.column)
        }
        var places = Set<SourceLocation>()
        return diagnostics.enumerated().sorted { a, b in
            let ka = key(a.element), kb = key(b.element)
            return ka != kb ? ka < kb : a.offset < b.offset
        }.map(\.element).filter { places.insert($0.location).inserted }
    }
}

enum Digest {
    /// Lower-case hex SHA-256 of `parts` concatenated.
    static func sha256Hex(_ parts: [[UInt8]]) -> String {
        guard let ctx = EVP_MD_CTX_new() else { return "" }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestInit_ex(ctx, EVP_sha256(), nil) == 1 else { return "" }
        for part in parts {
            _ = part.withUnsafeBytes { EVP_DigestUpdate(ctx, $0.baseAddress, $0.count) }
        }
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard EVP_DigestFinal_ex(ctx, &digest, &length) == 1 else { return "" }
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in digest.prefix(Int(length)) {
            out.append(hex[Int(byte >> 4)]); out.append(hex[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
