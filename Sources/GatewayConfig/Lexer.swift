// Bytes of one configuration file -> tokens with their positions.
// Words are bare (`certs/a.pem`) or double-quoted (`"a b"`, with `\"` and `\\`);
// `#` starts a comment when it starts a token, so `a#b` stays one word.

struct Token: Equatable {
    enum Kind: Equatable {
        case word(String, quoted: Bool)
        case semicolon, openBrace, closeBrace, end
    }
    var kind: Kind
    /// Where the token starts.
    var location: SourceLocation
    /// Just past its last character: where a missing `;` belongs.
    var endLocation: SourceLocation
}

struct Lexer {
    private let bytes: [UInt8]
    private let file: String
    private var index = 0
    private var line = 1
    private var column = 1

    init(bytes: [UInt8], file: String) {
        self.bytes = bytes; self.file = file
    }

    /// All tokens, ending with `.end`; lexical errors go to `diagnostics` and lexing goes on.
    mutating func tokenize(into diagnostics: inout [ConfigDiagnostic]) -> [Token] {
        var tokens: [Token] = []
        while true {
            skipSpaceAndComments()
            let start = here
            guard let byte = peek else {
                tokens.append(Token(kind: .end, location: start, endLocation: start))
                return tokens
            }
            let kind: Token.Kind
            switch byte {
            case UInt8(ascii: ";"): advance(); kind = .semicolon
            case UInt8(ascii: "{"): advance(); kind = .openBrace
            case UInt8(ascii: "}"): advance(); kind = .closeBrace
            case UInt8(ascii: "\""):
                let (text, closed) = quoted()
                guard closed else {
                    // The string swallowed the rest of the file: close it and its directive
                    // here, so the parser does not report the same mistake again.
                    diagnostics.append(ConfigDiagnostic(start, "unterminated string: missing closing '\"'"))
                    tokens.append(Token(kind: .word(text, quoted: true), location: start, endLocation: here))
                    tokens.append(Token(kind: .semicolon, location: here, endLocation: here))
                    tokens.append(Token(kind: .end, location: here, endLocation: here))
                    return tokens
                }
                kind = .word(text, quoted: true)
            default: kind = .word(bare(), quoted: false)
            }
            tokens.append(Token(kind: kind, location: start, endLocation: here))
        }
    }

    private var here: SourceLocation { SourceLocation(file: file, line: line, column: column) }
    private var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func advance() {
        let byte = bytes[index]
        index += 1
        if byte == UInt8(ascii: "\n") {
            line += 1; column = 1
        } else if byte & 0xC0 != 0x80 {
            column += 1   // count characters, not UTF-8 continuation bytes
        }
    }

    private mutating func skipSpaceAndComments() {
        while let byte = peek {
            if byte == UInt8(ascii: "#") {
                while let b = peek, b != UInt8(ascii: "\n") { advance() }
            } else if Self.isSpace(byte) {
                advance()
            } else {
                return
            }
        }
    }

    private mutating func bare() -> String {
        let start = index
        while let byte = peek, !Self.isSpace(byte), !Self.isPunctuation(byte) { advance() }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    /// The text between quotes; `closed` is false at end of file before the closing quote.
    private mutating func quoted() -> (text: String, closed: Bool) {
        advance()   // opening quote
        var text: [UInt8] = []
        while let byte = peek {
            advance()
            switch byte {
            case UInt8(ascii: "\""):
                return (String(decoding: text, as: UTF8.self), true)
            case UInt8(ascii: "\\"):
                // Only \" and \\ are escapes; any other backslash is kept as written.
                if let next = peek, next == UInt8(ascii: "\"") || next == UInt8(ascii: "\\") {
                    text.append(next); advance()
                } else {
                    text.append(byte)
                }
            default:
                text.append(byte)
            }
        }
        return (String(decoding: text, as: UTF8.self), false)
    }

    private static func isSpace(_ b: UInt8) -> Bool {
        b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\n") || b == UInt8(ascii: "\r")
    }

    private static func isPunctuation(_ b: UInt8) -> Bool {
        b == UInt8(ascii: ";") || b == UInt8(ascii: "{") || b == UInt8(ascii: "}") || b == UInt8(ascii: "\"")
    }
}
