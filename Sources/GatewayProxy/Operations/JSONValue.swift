/// A JSON document built as a value and written out once (admin pages, `gateway certs`,
/// `gateway check` reports; never the request path). Keys keep the order they are written in.
public indirect enum JSONValue: Sendable {
    case string(String?)
    case int(Int)
    case bool(Bool)
    case array([JSONValue])
    case object([(String, JSONValue)])

    /// Compact, on one line.
    public var text: String { rendered(indent: nil) }

    /// With `indent`, two spaces per level and one member per line (the caller adds the final newline).
    public func rendered(indent: Int? = 0) -> String {
        let nl = indent == nil ? "" : "\n", sep = indent == nil ? ":" : ": "
        let pad = indent.map { String(repeating: "  ", count: $0 + 1) } ?? ""
        let end = indent.map { String(repeating: "  ", count: $0) } ?? ""
        let inner = indent.map { $0 + 1 }
        switch self {
        case .string(let s): return s.map(Self.quoted) ?? "null"
        case .int(let n): return String(n)
        case .bool(let b): return b ? "true" : "false"
        case .array(let items):
            if items.isEmpty { return "[]" }
            return "[" + nl + items.map { pad + $0.rendered(indent: inner) }.joined(separator: "," + nl) + nl + end + "]"
        case .object(let members):
            if members.isEmpty { return "{}" }
            return "{" + nl + members.map { pad + Self.quoted($0.0) + sep + $0.1.rendered(indent: inner) }
                .joined(separator: "," + nl) + nl + end + "}"
        }
    }

    public static func quoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20 || u.value == 0x7F:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
