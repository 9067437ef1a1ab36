/// A JSON document built as a value and written out once (admin pages; not the request path).
public enum JSONValue: Sendable {
    case string(String?)
    case int(Int)
    case bool(Bool)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public var text: String {
        var out = ""
        write(&out)
        return out
    }

    private func write(_ out: inout String) {
        switch self {
        case .string(let s): if let s { Self.quote(s, &out) } else { out += "null" }
        case .int(let n): out += String(n)
        case .bool(let b): out += b ? "true" : "false"
        case .array(let items):
            out += "["
            for (i, v) in items.enumerated() { if i > 0 { out += "," }; v.write(&out) }
            out += "]"
        case .object(let fields):
            out += "{"
            for (i, (k, v)) in fields.enumerated() {
                if i > 0 { out += "," }
                Self.quote(k, &out); out += ":"; v.write(&out)
            }
            out += "}"
        }
    }

    static func quote(_ s: String, _ out: inout String) {
        out += "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where c.value < 0x20 || c.value == 0x7F:
                let hex = Array("0123456789abcdef")
                out += "\\u00" + String(hex[Int(c.value >> 4)]) + String(hex[Int(c.value & 15)])
            default: out.unicodeScalars.append(c)
            }
        }
        out += "\""
    }
}
