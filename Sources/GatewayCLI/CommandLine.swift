import Glibc
import GatewayConfig
import GatewayProxy
import GatewayTLS

/// What the subcommands do: load the configuration, then run or report.
public enum GatewayCommand {
    public static let version = "0.1.0"

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

    static func check(path: String, format: String) -> Int32 {
        switch load(path: path, generation: 0) {
        case .failure(let e):
            for d in e.diagnostics { printError(d.description) }
            return 2
        case .success(let s):
            switch format {
            case "json": print("{\"findings\": []}")
            case "sarif":
                print(#"{"version": "2.1.0", "$schema": "https://json.schemastore.org/sarif-2.1.0.json", "runs": [{"tool": {"driver": {"name": "tls-gateway", "version": "\#(version)"}}, "results": []}]}"#)
            default:
                print(PolicyTable.render(s.config))
                print("\(path): configuration OK (\(s.config.hosts.count) hosts, \(s.config.backends.count) backends, \(s.config.listeners.count) listeners)")
            }
            return 0
        }
    }

    static func printError(_ s: String) {
        var line = s + "\n"
        line.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
    }
}
