import Foundation
import Testing

/// Logs (SPEC §7.1): SIGUSR1 reopening, the text access log, audit lines, forced shutdown.
@Suite(.serialized)
struct LogTests {
    @Test func textAccessLogLine() throws {
        let s = try Stack()
        try s.startEcho()
        let log = "\(s.dir)/access.log"
        try s.startGateway(s.config().replacingOccurrences(of: "access_log stdout json;", with: "access_log \(log) text;"))
        #expect(try s.curl("/ok", ["--http1.1"]).out == "ok\n")
        #expect(eventually { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("\n") })
        #expect(try s.curl("/ok", ["--http2"]).out == "ok\n")
        #expect(eventually { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").count == 2 })
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        // client - - [time] "METHOD PATH HTTP/1.1" status bytes_out "sni" "host" total_ms
        for (line, proto) in zip(lines, ["HTTP/1\\.1", "HTTP/2"]) {
            let pattern = #"^127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "GET /ok "#
                + proto + #"" 200 3 "api\.example\.test" "api\.example\.test:\#(s.gatewayPort)" \d+$"#
            #expect(line.range(of: pattern, options: .regularExpression) != nil, "\(line)")
        }
    }

    @Test func sigusr1ReopensTheAccessLogAfterARename() throws {
        let s = try Stack()
        try s.startEcho()
        let log = "\(s.dir)/access.log"
        try s.startGateway(s.config().replacingOccurrences(of: "access_log stdout json;", with: "access_log \(log) json;"))
        _ = try s.curl("/ok")
        #expect(eventually { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("\"/ok\"") })
        try FileManager.default.moveItem(atPath: log, toPath: log + ".1")
        _ = try s.curl("/before-reopen")
        s.gateway!.signal(SIGUSR1)
        #expect(eventually { s.gateway!.stderr.contains("logs_reopened") })
        _ = try s.curl("/after-reopen")
        #expect(eventually { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("/after-reopen") })
        let old = try String(contentsOfFile: log + ".1", encoding: .utf8)
        #expect(old.contains("/before-reopen") && !old.contains("/after-reopen"))
        #expect(!(try String(contentsOfFile: log, encoding: .utf8)).contains("/before-reopen"))
    }

    @Test func rejectedReloadIsAuditedOnceWithItsDigest() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway()
        let audit = { jsonLines(s.gateway!.stderr).filter { ["config_loaded", "config_rejected"].contains($0["event"] as? String ?? "") } }
        let loaded = try #require(audit().first)
        #expect(loaded["trigger"] as? String == "start")
        #expect(loaded["file"] as? String == s.configPath)
        #expect(loaded["sha256"] as? String == (try sha256Hex(Data(contentsOf: URL(fileURLWithPath: s.configPath)))))

        let broken = s.config() + "\nbogus_directive 1;\n"
        try broken.write(toFile: s.configPath, atomically: true, encoding: .utf8)
        s.gateway!.signal(SIGHUP)
        #expect(eventually { audit().count == 2 })
        usleep(300_000)
        let lines = audit()
        #expect(lines.count == 2, "one line for the rejection, not two: \(lines)")
        let rejected = try #require(lines.last)
        #expect(rejected["event"] as? String == "config_rejected")
        #expect(rejected["trigger"] as? String == "signal")
        #expect(rejected["sha256"] as? String == (try sha256Hex(Data(broken.utf8))))
        #expect((rejected["errors"] as? String)?.contains("bogus_directive") == true)
        #expect(try s.curl("/ok").out == "ok\n", "still serving the previous configuration")
    }

    /// SPEC §7.2: every number in an error-log, audit or access-log line is a JSON number and
    /// every flag a JSON boolean. One run that produces most kinds of line: start, 200, 404, 400,
    /// a backend that refuses (502), a refused handshake, a reload that drains a host and changes
    /// `workers`, and a forced shutdown.
    @Test func numbersAndFlagsAreTypedInEveryLine() throws {
        let s = try Stack()
        try s.startEcho()
        let c = Repo.certs, dead = freePort()
        let deadBackend = """
        backend dead {
            server https://127.0.0.1:\(dead);
            connect_timeout 1s;
            tls { ca \(c)/backend-ca.pem; server_name echo.internal.test; }
        }
        shutdown_timeout 1s;
        """
        let routes = "route /dead backend dead;\n    route /ok backend echo;\n    route /delay backend echo;"
        let text = s.config(topExtra: deadBackend, routes: routes)
        try s.startGateway(text)
        let g = s.gateway!
        #expect(try s.curl("/ok").out == "ok\n")
        #expect(try s.curl("/dead", ["-o", "/dev/null", "-w", "%{http_code}"]).out == "502")
        #expect(try s.curl("/nothing", ["-o", "/dev/null", "-w", "%{http_code}"]).out == "404")
        #expect(try s.curl("/", host: "nohost.test", ["-k"]).status != 0, "unknown_sni reject: a refused handshake")
        let bad = try TLSTestClient(port: s.gatewayPort, serverName: "api.example.test")
        try bad.send("GET /ok HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: x\r\n\r\n")
        #expect(try bad.readResponse().status == 400)
        let idle = try TLSTestClient(port: s.gatewayPort, serverName: "api.example.test")
        try idle.send("GET /ok HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
        #expect(try idle.readResponse().status == 200)
        try text.replacingOccurrences(of: "workers 1;", with: "workers 2;")
            .replacingOccurrences(of: "client_auth optional;", with: "client_auth optional;\n    min_version TLSv1.3;")
            .write(toFile: s.configPath, atomically: true, encoding: .utf8)
        try ReloadTests.reload(g, to: 1)
        #expect(eventually { g.stderr.contains("reload_drained") })
        let slow = Process()
        slow.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        slow.arguments = ["curl", "-sS", "-o", "/dev/null", "--cacert", Repo.cert("ca.pem"),
                          "--resolve", "api.example.test:\(s.gatewayPort):127.0.0.1", "https://api.example.test:\(s.gatewayPort)/delay/8000"]
        slow.standardError = FileHandle.nullDevice
        try slow.run()
        defer { if slow.isRunning { slow.terminate() } }
        usleep(500_000)
        g.signal(SIGTERM)
        #expect(g.waitForExit(timeout: 6) == 0)

        let lines = (g.stderr + g.stdout).split(separator: "\n").map(String.init).filter { $0.hasPrefix("{") }
        let events = Set(jsonLines(lines.joined(separator: "\n")).compactMap { $0["event"] as? String })
        for e in ["started", "config_loaded", "reloaded", "reload_drained", "workers_unchanged", "request_error", "backend_error",
                  "shutdown_forced", "tls_handshake_failed"] {
            #expect(events.contains(e), "the run was meant to log \(e): \(events.sorted())")
        }
        #expect(lines.contains { $0.contains(#""status":404"#) }, "a 404 in the access log")
        let numeric: Set<String> = ["closed", "status", "workers", "connections", "worker", "bytes_in", "bytes_out", "total_ms",
                                    "upstream_ms", "hosts", "backends", "running", "configured", "days_left", "window_days", "port"]
        var checked = 0
        for line in lines {
            for (key, kind) in Self.valueKinds(line) {
                if numeric.contains(key) {
                    checked += 1
                    #expect(kind == "number" || (key == "upstream_ms" && kind == "null"), "\(key) is a \(kind) in \(line)")
                }
                if key == "tls_resumed" { #expect(kind == "bool", "\(line)") }
                // Whatever the field: a number or a flag is never written as a string.
                #expect(!["numeric string", "boolean string"].contains(kind) || ["message", "errors", "request_id"].contains(key),
                        "\(key) is a \(kind) in \(line)")
            }
        }
        #expect(checked > 20, "\(checked) numeric fields checked")
    }

    /// The kind of each top-level value of a flat JSON line, read from the raw text (a parsed
    /// NSNumber cannot tell `1` from `true`): number, bool, null, string, numeric string, boolean string.
    static func valueKinds(_ line: String) -> [(String, String)] {
        // Inside a string every `"` is escaped, so `,"key":` or `{"key":` only matches a key.
        let re = try! NSRegularExpression(pattern: #"[{,]"([a-z_0-9]+)":("(?:[^"\\]|\\.)*"|[^,}]*)"#)
        let ns = line as NSString
        return re.matches(in: line, range: NSRange(location: 0, length: ns.length)).map { m in
            let key = ns.substring(with: m.range(at: 1)), value = ns.substring(with: m.range(at: 2))
            let kind: String
            if value == "null" { kind = "null" }
            else if value == "true" || value == "false" { kind = "bool" }
            else if value.hasPrefix("\"") {
                let inner = value.dropFirst().dropLast()
                if inner == "true" || inner == "false" { kind = "boolean string" }
                else if !inner.isEmpty && inner.allSatisfy({ $0.isNumber || $0 == "-" }) { kind = "numeric string" }
                else { kind = "string" }
            } else if Double(value) != nil { kind = "number" }
            else { kind = "unknown: \(value)" }
            return (key, kind)
        }
    }

    @Test func shutdownPastTheTimeoutIsForcedAndCounted() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(s.config(topExtra: "shutdown_timeout 1s;"))
        let slow = Process()
        slow.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        slow.arguments = ["curl", "-sS", "-o", "/dev/null", "--cacert", Repo.cert("ca.pem"),
                          "--resolve", "api.example.test:\(s.gatewayPort):127.0.0.1", "https://api.example.test:\(s.gatewayPort)/delay/8000"]
        slow.standardError = FileHandle.nullDevice
        try slow.run()
        defer { if slow.isRunning { slow.terminate() } }
        usleep(500_000)
        s.gateway!.signal(SIGTERM)
        #expect(s.gateway!.waitForExit(timeout: 6) == 0)
        let forced = try #require(jsonLines(s.gateway!.stderr).first { $0["event"] as? String == "shutdown_forced" }, "\(s.gateway!.stderr)")
        #expect(forced["closed"] as? Int == 1, "a JSON number (SPEC §7.2)")
    }
}
