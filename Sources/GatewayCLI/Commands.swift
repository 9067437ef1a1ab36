import ArgumentParser
import Glibc
import GatewayCheck
import GatewaySystem

/// `gateway run|check|certs|version` on swift-argument-parser: `--help` per subcommand and
/// an error naming an unknown flag come from the parser; the exit codes stay the gateway's own
/// (SPEC §2): 0 fine, 1 runtime failure or findings, 2 bad usage or a configuration that does not load.
struct GatewayRoot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "A TLS-terminating reverse proxy with per-SNI policy and HTTPS-only backends.",
        subcommands: [Run.self, Check.self, Certs.self, Version.self])
}

/// A subcommand that returns the process's exit status instead of throwing it.
protocol GatewaySubcommand: ParsableCommand {
    func execute() -> Int32
}

/// `-c FILE`, else `$GATEWAY_CONFIG`, else `./gateway.conf`.
struct ConfigOption: ParsableArguments {
    @Option(name: [.customShort("c"), .customLong("config")], help: "Configuration file (default: $GATEWAY_CONFIG, else ./gateway.conf).")
    var file: String?

    var path: String {
        if let file { return file }
        if let env = getenv("GATEWAY_CONFIG") { return String(cString: env) }
        return "gateway.conf"
    }
}

struct Run: GatewaySubcommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway in the foreground.")
    @OptionGroup var config: ConfigOption
    func execute() -> Int32 { GatewayCommand.run(path: config.path) }
}

struct Check: GatewaySubcommand {
    static let configuration = CommandConfiguration(
        abstract: "Load and validate the configuration, then run the policy rules and print the findings.")
    @OptionGroup var config: ConfigOption
    @Option(help: "Output format: text, json or sarif.") var format: OutputFormat = .text
    @Option(name: .customLong("fail-on"), help: "Exit 1 when a finding is at or above this severity.") var failOn: Severity = .high
    @Flag(name: .customLong("rules-markdown"), help: .hidden) var rulesMarkdown = false
    func execute() -> Int32 {
        if rulesMarkdown { print(CheckCommand.rulesMarkdown, terminator: ""); return 0 }
        return CheckCommand.run(path: config.path, format: format.rawValue, failOn: failOn.rawValue,
                                toolVersion: GatewayCommand.version, policyTable: PolicyTable.render)
    }
}

struct Certs: GatewaySubcommand {
    static let configuration = CommandConfiguration(
        abstract: "List every certificate the configuration names, with its expiry; exit 1 if one is expired or inside the first window.")
    @OptionGroup var config: ConfigOption
    @Option(name: .customLong("warn-days"), help: "Warning windows in days, comma-separated (default 30,14).")
    var warnDays: WarnDays = WarnDays(days: [30, 14])
    @Option(help: "Output format: text or json.") var format: TableFormat = .text
    func execute() -> Int32 { CertsCommand.run(path: config.path, warnDays: warnDays.days, json: format == .json) }
}

struct Version: GatewaySubcommand {
    static let configuration = CommandConfiguration(abstract: "Print the version, Swift version and OpenSSL version.")
    func execute() -> Int32 { print(GatewayCommand.versionLine); return 0 }
}

extension Severity: ExpressibleByArgument {}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable { case text, json, sarif }
enum TableFormat: String, ExpressibleByArgument, CaseIterable { case text, json }

struct WarnDays: ExpressibleByArgument {
    let days: [Int]
    init(days: [Int]) { self.days = days }
    init?(argument: String) {
        let parts = argument.split(separator: ",").map { Int($0.trimmingCharacters(in: " ")) }
        guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? -1) >= 0 }) else { return nil }
        days = parts.compactMap { $0 }.sorted(by: >)
    }
    var defaultValueDescription: String { days.map(String.init).joined(separator: ",") }
}

private extension Substring {
    func trimmingCharacters(in set: Character) -> Substring {
        var s = self
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return s
    }
}

extension GatewayCommand {
    /// Parses `args` (without the program name) and runs the subcommand; returns the exit status.
    public static func main(_ args: [String]) -> Int32 {
        Allocator.cacheOpenSSLBlocks()   // before OpenSSL's first allocation
        // `gateway --version` stays a synonym of `gateway version`, as before.
        let args = args == ["--version"] ? ["version"] : args
        do {
            var command = try GatewayRoot.parseAsRoot(args)
            if let sub = command as? any GatewaySubcommand { return sub.execute() }
            if args.isEmpty { Descriptor.printError(GatewayRoot.helpMessage()); return 2 }
            try command.run()   // `gateway help SUBCOMMAND`: ends in a help request caught below
            return 0
        } catch {
            let code = GatewayRoot.exitCode(for: error)
            let message = GatewayRoot.fullMessage(for: error)
            if code == .success { print(message); return 0 }   // --help
            Descriptor.printError(message)
            return 2
        }
    }
}
