// The keyword tables: each block kind maps directive names to a rule (arity,
// repeatable, block use, and the function that writes the value). `Block.apply`
// walks a block once against its table; unknown names, counts, repeats and
// block shape are checked here, in one place, so a new directive is one line.

/// How a directive of one block kind is read.
struct Rule<Target>: Sendable {
    enum BlockUse: Sendable { case none, required, optional }

    var arity: ClosedRange<Int>
    var repeatable = false
    var block: BlockUse = .none
    var apply: @Sendable (inout Target, Directive, LoadContext) -> Void

    init(_ arity: ClosedRange<Int>, repeatable: Bool = false, block: BlockUse = .none,
         _ apply: @escaping @Sendable (inout Target, Directive, LoadContext) -> Void) {
        self.arity = arity; self.repeatable = repeatable; self.block = block; self.apply = apply
    }
}

/// Where each directive of a block first stood, for checks made after the block
/// (`min_version` above `max_version`, `client_auth` without `client_ca`).
typealias SeenDirectives = [String: SourceLocation]

enum Block {
    /// Applies every directive of `directives` to `target` through `rules`.
    /// `context` names the block in messages ("top level", "host", "backend tls").
    @discardableResult
    static func apply<Target>(_ directives: [Directive], rules: [String: Rule<Target>], context: String,
                              to target: inout Target, _ ctx: LoadContext) -> SeenDirectives {
        var seen: SeenDirectives = [:]
        for d in directives {
            guard let rule = rules[d.name] else {
                ctx.error(d.location, unknownMessage(d.name, context: context, known: rules.keys))
                continue
            }
            if !rule.repeatable, let first = seen[d.name] {
                ctx.error(d.location, "duplicate \"\(d.name)\" in \(context) (first at \(first)); it may appear once")
                continue
            }
            if seen[d.name] == nil { seen[d.name] = d.location }
            guard rule.arity.contains(d.args.count) else {
                ctx.error(d.location, "\"\(d.name)\" takes \(describe(rule.arity)), got \(d.args.count)")
                continue
            }
            switch (rule.block, d.block) {
            case (.none, .some):
                ctx.error(d.location, "\"\(d.name)\" does not take a block; end it with \";\"")
                continue
            case (.required, nil):
                ctx.error(d.location, "\"\(d.name)\" needs a block { ... }")
                continue
            default:
                break
            }
            rule.apply(&target, d, ctx)
        }
        return seen
    }

    private static func unknownMessage(_ name: String, context: String, known: some Collection<String>) -> String {
        let hint = Suggest.hint(for: name, among: known)
        if hint.isEmpty, let home = DirectiveNames.home(of: name) {
            return "\"\(name)\" is not allowed in \(context); it belongs in \(home)"
        }
        return "unknown directive \"\(name)\" in \(context)\(hint)"
    }

    private static func describe(_ arity: ClosedRange<Int>) -> String {
        func args(_ n: Int) -> String { n == 1 ? "1 argument" : "\(n) arguments" }
        if arity.lowerBound == arity.upperBound { return args(arity.lowerBound) }
        if arity.upperBound == Int.max { return "at least \(args(arity.lowerBound))" }
        if arity.count == 2 { return "\(arity.lowerBound) or \(args(arity.upperBound))" }
        return "\(arity.lowerBound) to \(args(arity.upperBound))"
    }
}

/// Every directive name of every block, for the parser's missing-`;` heuristic
/// and for "belongs in" hints.
enum DirectiveNames {
    static let byBlock: [(block: String, names: [String])] = [
        ("top level", Array(TopLevel.rules.keys)),
        ("limits", Array(LimitsBlock.rules.keys)),
        ("tls_defaults", Array(TLSDefaultsBlock.rules.keys)),
        ("listen", Array(ListenBlock.rules.keys)),
        ("host", Array(HostBlock.rules.keys)),
        ("jwt", Array(JWTBlock.rules.keys)),
        ("backend", Array(BackendBlock.rules.keys)),
        ("backend tls", Array(BackendTLSBlock.rules.keys)),
    ]

    static let all: Set<String> = Set(byBlock.flatMap(\.names)).union(["include"])

    static func home(of name: String) -> String? {
        let homes = byBlock.filter { $0.names.contains(name) }.map(\.block)
        return homes.isEmpty ? nil : homes.joined(separator: " or ")
    }
}
