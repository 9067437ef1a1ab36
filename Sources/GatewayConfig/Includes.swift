// Reads the main file and every file it includes into one directive tree.
// `include PATH-OR-GLOB;` may stand at top level or inside a block; its
// directives take its place. Each file keeps its own name in locations, so an
// error inside an included file points into that file.

struct SourceTree {
    /// Every file read, in include order, with its bytes (the sha256 covers them in this order).
    private(set) var files: [(path: String, bytes: [UInt8])] = []
    private(set) var diagnostics: [ConfigDiagnostic] = []
    /// The chain of files being read, to refuse an include cycle.
    private var stack: [(path: String, canonical: String)] = []

    /// The directives of `path` with includes expanded; nil when the main file cannot be read.
    mutating func read(main path: String) -> [Directive]? {
        switch FileSystem.read(path) {
        case .failure(let problem):
            diagnostics.append(ConfigDiagnostic(SourceLocation(file: path, line: 1, column: 1),
                                                "cannot read configuration file \"\(path)\": \(problem.reason)"))
            return nil
        case .success(let bytes):
            return parse(path: path, bytes: bytes)
        }
    }

    private mutating func parse(path: String, bytes: [UInt8]) -> [Directive] {
        files.append((path, bytes))
        stack.append((path, FileSystem.canonical(path)))
        defer { stack.removeLast() }
        var lexer = Lexer(bytes: bytes, file: path)
        let tokens = lexer.tokenize(into: &diagnostics)
        var parser = Parser(tokens: tokens, knownNames: DirectiveNames.all)
        return expand(parser.parse(into: &diagnostics))
    }

    private mutating func expand(_ directives: [Directive]) -> [Directive] {
        var out: [Directive] = []
        for var d in directives {
            if d.name == "include" {
                out += include(d)
            } else {
                if let block = d.block { d.block = expand(block) }
                out.append(d)
            }
        }
        return out
    }

    private mutating func include(_ d: Directive) -> [Directive] {
        guard d.args.count == 1, d.block == nil else {
            diagnostics.append(ConfigDiagnostic(d.location, "\"include\" takes 1 argument (a path or a glob) and no block"))
            return []
        }
        let arg = d.args[0]
        let pattern = FileSystem.resolve(arg.text, relativeTo: arg.location.file)
        // A glob may match nothing (an empty conf.d is fine); a plain path must exist.
        let paths = FileSystem.isGlobPattern(pattern) ? FileSystem.glob(pattern) : [pattern]
        var out: [Directive] = []
        for path in paths {
            let canonical = FileSystem.canonical(path)
            if let start = stack.firstIndex(where: { $0.canonical == canonical }) {
                let chain = stack[start...].map(\.path) + [path]
                diagnostics.append(ConfigDiagnostic(arg.location, "include cycle: " + chain.joined(separator: " -> ")))
                continue
            }
            switch FileSystem.read(path) {
            case .failure(let problem):
                diagnostics.append(ConfigDiagnostic(arg.location, "cannot read included file \"\(path)\": \(problem.reason)"))
            case .success(let bytes):
                out += parse(path: path, bytes: bytes)
            }
        }
        return out
    }
}
