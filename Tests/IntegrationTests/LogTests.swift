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
        #expect(try s.curl("/ok").out == "ok\n")
        #expect(eventually { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("\n") })
        let line = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")[0]
        // client - - [time] "METHOD PATH HTTP/1.1" status bytes_out "sni" "host" total_ms
        let pattern = #"^127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "GET /ok HTTP/1\.1" 200 3 "api\.example\.test" "api\.example\.test:\#(s.gatewayPort)" \d+$"#
        #expect(line.range(of: pattern, options: .regularExpression) != nil, "\(line)")
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
