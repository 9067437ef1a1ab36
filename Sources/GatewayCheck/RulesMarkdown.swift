/// The README's rule table, made from `RuleCatalog` (a test keeps README.md's copy equal to it;
/// `scripts/rules-table` rewrites it).
public enum RulesMarkdown {
    public static let beginMarker = "<!-- rules:begin -->"
    public static let endMarker = "<!-- rules:end -->"

    /// The table alone, without the markers, ending in a newline.
    public static func table() -> String {
        var lines = ["| rule | severity | what triggers it | how to fix it |", "|---|---|---|---|"]
        for r in RuleCatalog.all {
            var trigger = r.trigger
            switch r.status {
            case .active: break
            case .loadError: trigger += ". *A load error (exit 2) that names the rule, not a finding.*"
            case .pending(let directive): trigger += ". *Applies once the `\(directive)` directive exists (not built yet).*"
            }
            lines.append("| `\(r.id)` | \(r.severityText) | \(cell(trigger)) | \(cell(r.fix)) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `readme` with the text between the markers replaced by `table()`; nil without both markers.
    public static func splice(into readme: String) -> String? {
        guard let begin = readme.firstRange(of: beginMarker), let end = readme.firstRange(of: endMarker),
              begin.upperBound <= end.lowerBound else { return nil }
        return String(readme[..<begin.upperBound]) + "\n" + table() + String(readme[end.lowerBound...])
    }

    /// The table text between the markers of `readme`, as `splice` writes it; nil without markers.
    public static func current(in readme: String) -> String? {
        guard let begin = readme.firstRange(of: beginMarker), let end = readme.firstRange(of: endMarker),
              begin.upperBound <= end.lowerBound else { return nil }
        var body = readme[begin.upperBound..<end.lowerBound]
        if body.hasPrefix("\n") { body = body.dropFirst() }
        return String(body)
    }

    static func status(_ r: RuleDefinition) -> String {
        switch r.status {
        case .active: "active"
        case .loadError: "load error"
        case .pending(let directive): "applies once \(directive) exists"
        }
    }

    /// A table cell: a `|` would end it.
    private static func cell(_ s: String) -> String {
        var out = ""
        for c in s { out += c == "|" ? "\\|" : String(c) }
        return out
    }
}
