import Glibc
import GatewayConfig
import GatewayProxy
import GatewayTLS
import GatewayCheck

/// `gateway run|check|version`: parses arguments, loads the configuration, and runs or reports.
public enum GatewayCommand {
    public static let version = "0.1.0"

    public static func main(_ args: [String]) -> Int32 {
        guard let command = args.first else { printUsage(); return 2 }
        var rest = Array(args.dropFirst())
        switch command {
        case "run":
            guard let path = configPath(&rest), rest.isEmpty else { printUsage(); return 2 }
            return run(path: path)
        case "check":
            if rest == ["--rules-markdown"] { print(CheckCommand.rulesMarkdown, terminator: ""); return 0 }
            guard let path = configPath(&rest) else { printUsage(); return 2 }
            let format = option("--format", &rest) ?? "text"
            let failOn = option("--fail-on", &rest) ?? "high"
            guard rest.isEmpty, CheckCommand.formats.contains(format), CheckCommand.failOnLevels.contains(failOn) else {
                printUsage(); return 2
            }
            return CheckCommand.run(path: path, format: format, failOn: failOn, toolVersion: version,
                                    policyTable: PolicyTable.render)
        case "version", "--version":
            print(versionLine)
            return 0
        case "help", "--help", "-h":
            printUsage(); return 0
        default:
            printError("unknown command \"\(command)\"")
            printUsage(); return 2
        }
    }

    static var versionLine: String { "tls-gateway \(version) (Swift \(swiftVersion), OpenSSL \(OpenSSLInfo.version))" }

    static var swiftVersion: String {
        #if compiler(>=6.4)
        "6.4"
        #elseif compiler(>=6.3.1)
        "6.3.1"
        #elseif compiler(>=6.3)
        "6.3.0"
        #elseif compiler(>=6.2)
        "6.2"
        #else
        "6.x"
        #endif
    }

    /// `-c FILE`, else `$GATEWAY_CONFIG`, else `./gateway.conf`.
    static func configPath(_ args: inout [String]) -> String? {
        if let c = option("-c", &args) ?? option("--config", &args) { return c }
        if let env = getenv("GATEWAY_CONFIG") { return String(cString: env) }
        return "gateway.conf"
    }

    static func option(_ name: String, _ args: inout [String]) -> String? {
        guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
        let v = args[i + 1]
        args.removeSubrange(i...i + 1)
        return v
    }

    /// Parses, validates and builds every TLS context; all problems are returned together.
    static func load(path: String, generation: Int) -> Result<RuntimeSnapshot, ConfigLoadError> {
        do {
            let config = try ConfigLoader.load(path: path)
            return .success(try RuntimeSnapshot(config: config, generation: generation))
        } catch {
            return .failure(error)
        }
    }

    static func run(path: String) -> Int32 {
        let bootLog = ErrorLog(sink: LogSink(.stderr), level: .info)
        let snapshot: RuntimeSnapshot
        switch load(path: path, generation: 1) {
        case .failure(let e):
            for d in e.diagnostics { printError(d.description) }
            bootLog.log(.error, "config_rejected", "configuration not loaded; nothing started",
                        [("file", path), ("errors", e.description)])
            return 2
        case .success(let s): snapshot = s
        }
        let config = snapshot.config
        let logs = Logs(error: ErrorLog(sink: LogSink(config.errorLog), level: config.errorLogLevel),
                        access: LogSink(config.accessLog))
        audit(logs.error, snapshot: snapshot, path: path)
        printError("effective TLS policy per host:\n" + PolicyTable.render(config))
        var generation = 1
        let gateway = Gateway(snapshot: snapshot, logs: logs) {
            generation += 1
            let r = load(path: path, generation: generation)
            switch r {
            case .success(let s): audit(logs.error, snapshot: s, path: path)
            case .failure(let e):
                logs.error.log(.error, "config_rejected", "reload rejected", [("file", path), ("errors", e.description)])
            }
            return r
        }
        do { try gateway.start() } catch {
            logs.error.log(.error, "start_failed", "\(error)")
            printError("\(error)")
            return 1
        }
        return gateway.waitForShutdown()
    }

    static func audit(_ log: ErrorLog, snapshot: RuntimeSnapshot, path: String) {
        let c = snapshot.config
        log.log(.info, "config_loaded", "configuration loaded", [("file", path), ("sha256", c.sha256),
                ("hosts", String(c.hosts.count)), ("backends", String(c.backends.count))])
        for w in c.warnings { log.log(.warn, "config_warning", w.description) }
        for b in c.backends where !b.tls.verify {
            log.log(.warn, "backend_verify_off", "backend \(b.name): certificate verification is off (GW.Backend.Verify)")
        }
    }

    static func printError(_ s: String) {
        var line = s + "\n"
        line.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
    }

    static func printUsage() {
        printError("""
        usage: gateway run [-c FILE]
               gateway check [-c FILE] [--format text|json|sarif] [--fail-on critical|high|medium|low]
               gateway version
        """)
    }
}
