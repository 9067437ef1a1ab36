import GatewayConfig

/// One policy problem at one place: what `gateway check` prints in every format.
public struct Finding: Sendable, Hashable {
    public let rule: String
    public let severity: Severity
    public let file: String
    public let line: Int
    public let message: String
    public let recommendation: String

    /// `rule` must be an id of `RuleCatalog`; the recommendation defaults to the rule's fix.
    init(_ rule: String, _ severity: Severity? = nil, at location: SourceLocation, _ message: String,
         recommendation: String? = nil) {
        guard let definition = RuleCatalog.byID[rule] else { preconditionFailure("finding for unknown rule \(rule)") }
        self.rule = rule
        self.severity = severity ?? definition.severity
        file = location.file
        line = location.line
        self.message = message
        self.recommendation = recommendation ?? definition.fix
    }

    /// Worst first, then by place, so the same file always prints the same way.
    static func reportOrder(_ a: Finding, _ b: Finding) -> Bool {
        if a.severity != b.severity { return a.severity > b.severity }
        if a.file != b.file { return a.file < b.file }
        if a.line != b.line { return a.line < b.line }
        if a.rule != b.rule { return a.rule < b.rule }
        return a.message < b.message
    }
}
