import Glibc
import GatewayConfig
import GatewaySystem
import GatewayProxy

/// `gateway check`: load the configuration exactly as `run` would (every certificate, key and
/// context), then run the policy rules and print the findings.
public enum CheckCommand {
    public static let formats = ["text", "json", "sarif"]
    public static let failOnLevels = Severity.allCases.map(\.rawValue)
    /// The tool's home page in SARIF's `tool.driver.informationUri`.
    public static let informationURI = "https://github.com/tls-gateway/tls-gateway#policy-rules-gateway-check"

    /// Exit code: 0 no finding at or above `failOn`, 1 some, 2 the file does not load (its
    /// errors on stderr) or a bad argument. `policyTable` renders the effective-policy table
    /// printed before the findings in text mode.
    public static func run(path: String, format: String, failOn: String, toolVersion: String,
                           policyTable: (GatewayConfiguration) -> String = { _ in "" }) -> Int32 {
        guard formats.contains(format), let threshold = Severity(rawValue: failOn) else {
            Descriptor.printError("gateway check: --format takes \(formats.joined(separator: "|")), --fail-on takes \(failOnLevels.joined(separator: "|"))")
            return 2
        }
        let config: GatewayConfiguration
        do {
            config = try ConfigLoader.load(path: path)
            _ = try RuntimeSnapshot(config: config, generation: 0, logs: .discarding)
        } catch {
            for d in error.diagnostics { Descriptor.printError(d.description) }
            return 2
        }
        let findings = PolicyCheck(config: config, now: Int64(time(nil))).findings()
        switch format {
        case "json": print(Reports.json(findings))
        case "sarif": print(Reports.sarif(findings, toolVersion: toolVersion))
        default:
            let table = policyTable(config)
            if !table.isEmpty { print(table + "\n") }
            print(Reports.text(findings))
            print("\(path): configuration loads (\(config.hosts.count) hosts, \(config.backends.count) backends, \(config.listeners.count) listeners)")
        }
        return exitCode(findings, failOn: threshold)
    }

    public static func exitCode(_ findings: [Finding], failOn: Severity) -> Int32 {
        findings.contains { $0.severity >= failOn } ? 1 : 0
    }

    /// The README's rule table (`gateway check --rules-markdown`, used by scripts/rules-table).
    public static var rulesMarkdown: String { RulesMarkdown.table() }

}
