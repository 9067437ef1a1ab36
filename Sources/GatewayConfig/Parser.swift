// Tokens -> a tree of directives. The parser knows only the shape
// (`name args... ;` or `name args... { ... }`); what a directive means is the
// business of the rule tables. It recovers after each syntax error so that one
// load reports every problem.

struct Argument: Sendable, Hashable {
    var text: String
    var location: SourceLocation
}

struct Directive: Sendable, Hashable {
    var name: String
    var location: SourceLocation
    var args: [Argument]
    /// nil for `name args;`, the children for `name args { ... }`.
    var block: [Directive]?
}

struct Parser {
    private let tokens: [Token]
    private var position = 0
    /// Directive names of every block: a known name at the start of a new line
    /// after arguments is taken as the next directive, so a forgotten `;` is
    /// reported as such instead of as a wrong argument count.
    private let knownNames: Set<String>

    init(tokens: [Token], knownNames: Set<String>) {
        self.tokens = tokens; self.knownNames = knownNames
    }

    mutating func parse(into diagnostics: inout [ConfigDiagnostic]) -> [Directive] {
        parseDirectives(opener: nil, into: &diagnostics)
    }

    /// Directives until `}` (when `opener` is the block's `{`) or the end of the file.
    private mutating func parseDirectives(opener: Token?, into diagnostics: inout [ConfigDiagnostic]) -> [Directive] {
        var directives: [Directive] = []
        while true {
            let token = next()
            switch token.kind {
            case .end:
                if let opener {
                    diagnostics.append(ConfigDiagnostic(opener.location, "unterminated block: missing \"}\" for this \"{\""))
                }
                return directives
            case .closeBrace:
                if opener != nil { return directives }
                diagnostics.append(ConfigDiagnostic(token.location, "unexpected \"}\""))
            case .semicolon:
                diagnostics.append(ConfigDiagnostic(token.location, "unexpected \";\""))
            case .openBrace:
                diagnostics.append(ConfigDiagnostic(token.location, "unexpected \"{\": a block needs a directive name"))
                _ = parseDirectives(opener: token, into: &diagnostics)
            case .word(let name, _):
                directives.append(parseDirective(name: name, at: token, into: &diagnostics))
            }
        }
    }

    private mutating func parseDirective(name: String, at nameToken: Token,
                                         into diagnostics: inout [ConfigDiagnostic]) -> Directive {
        var directive = Directive(name: name, location: nameToken.location, args: [], block: nil)
        var previous = nameToken
        while true {
            let token = peek()
            switch token.kind {
            case .word(let text, let quoted):
                if !quoted, token.location.line > previous.location.line, knownNames.contains(text) {
                    diagnostics.append(ConfigDiagnostic(previous.endLocation, "missing \";\" after \"\(name)\""))
                    return directive
                }
                directive.args.append(Argument(text: text, location: token.location))
                previous = next()
            case .semicolon:
                _ = next()
                return directive
            case .openBrace:
                let opener = next()
                directive.block = parseDirectives(opener: opener, into: &diagnostics)
                return directive
            case .closeBrace, .end:
                // Leave the `}` or the end to the enclosing block.
                diagnostics.append(ConfigDiagnostic(previous.endLocation, "missing \";\" after \"\(name)\""))
                return directive
            }
        }
    }

    private func peek() -> Token { tokens[position] }

    private mutating func next() -> Token {
        let token = tokens[position]
        if position < tokens.count - 1 { position += 1 }
        return token
    }
}
