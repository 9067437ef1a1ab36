import Glibc
import GatewayConfig
import GatewaySystem
import GatewayProxy
import GatewayTLS
import GatewayCheck

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
    /// `logs` (nil: write nothing) opens the log files the configuration names, reusing open ones.
    static func load(path: String, generation: Int, logs previous: Logs?) -> Result<RuntimeSnapshot, ConfigLoadError> {
        let config: GatewayConfiguration
        do { config = try ConfigLoader.load(path: path) } catch { return .failure(error) }
        let logs = previous.map { Logs(config: config, reusing: $0) } ?? .discarding
        do { return .success(try RuntimeSnapshot(config: config, generation: generation, logs: logs)) } catch {
            return .failure(ConfigLoadError(error.diagnostics, sha256: config.sha256))
        }
    }

    static func run(path: String) -> Int32 {
        let bootLogs = Logs(error: ErrorLog(sink: LogSink(.stderr), level: .info), access: LogSink(.off), accessFormat: .json)
        let snapshot: RuntimeSnapshot
        switch load(path: path, generation: 1, logs: bootLogs) {
        case .failure(let e):
            for d in e.diagnostics { Descriptor.printError(d.description) }
            rejected(bootLogs.error, e, path: path, trigger: "start", message: "configuration not loaded; nothing started")
            return 2
        case .success(let s): snapshot = s
        }
        Descriptor.printError("effective TLS policy per host:\n" + PolicyTable.render(snapshot.config))
        var generation = 1
        let build = BuildInfo(version: version, openssl: OpenSSLInfo.version)
        let gateway = Gateway(snapshot: snapshot, build: build) { trigger, current in
            generation += 1
            switch load(path: path, generation: generation, logs: current.logs) {
            case .success(let s): return s   // audited by the gateway once the watches cover it
            case .failure(let e):
                rejected(current.logs.error, e, path: path, trigger: trigger, message: "reload rejected; still serving the previous configuration")
                return nil
            }
        } audit: { s, trigger in audit(s, path: path, trigger: trigger) }
        do { try gateway.start() } catch {
            snapshot.logs.error.log(.error, "start_failed", "\(error)")
            Descriptor.printError("\(error)")
            return 1
        }
        return gateway.waitForShutdown()
    }

    /// The audit line of a load that took effect, then its warnings (GW.Admin.Exposed as an error).
    static func audit(_ snapshot: RuntimeSnapshot, path: String, trigger: String) {
        let c = snapshot.config, log = snapshot.logs.error
        log.log(.info, "config_loaded", "configuration loaded", [("file", .string(path)), ("sha256", .string(c.sha256)), ("trigger", .string(trigger)),
                ("hosts", .int(c.hosts.count)), ("backends", .int(c.backends.count))])
        for w in c.warnings {
            let exposed = w.message.contains("GW.Admin.Exposed")
            log.log(exposed ? .error : .warn, exposed ? "admin_exposed" : "config_warning", w.description)
        }
        for b in c.backends where !b.tls.verify {
            log.log(.warn, "backend_verify_off", "backend \(b.name): certificate verification is off (GW.Backend.Verify)")
        }
    }

    /// The one audit line of a rejected load.
    static func rejected(_ log: ErrorLog, _ e: ConfigLoadError, path: String, trigger: String, message: String) {
        log.log(.error, "config_rejected", message, [("file", .string(path)), ("sha256", .string(e.sha256)), ("trigger", .string(trigger)), ("errors", .string(e.description))])
    }
}
