import Foundation
import Testing

/// The command line on swift-argument-parser: help per subcommand, unknown flags, exit codes.
struct CommandLineTests {
    @Test func helpPerSubcommandAndUnknownFlags() throws {
        let gw = try Repo.binary("gateway")
        for sub in ["run", "check", "version"] {
            let r = try run([gw, sub, "--help"])
            #expect(r.status == 0)
            #expect(r.out.contains("USAGE: gateway \(sub)"), "\(r.out)")
        }
        let bad = try run([gw, "run", "--bogus"])
        #expect(bad.status == 2)
        #expect(bad.err.contains("--bogus"), "\(bad.err)")
        let unknown = try run([gw, "frobnicate"])
        #expect(unknown.status == 2)
        #expect(try run([gw]).status == 2, "no subcommand is a usage error")
        let v = try run([gw, "version"])
        #expect(v.status == 0 && v.out.hasPrefix("tls-gateway "))
    }

    @Test func configFromTheEnvironment() throws {
        let gw = try Repo.binary("gateway")
        let r = try run(["GATEWAY_CONFIG=/nonexistent/gw.conf", gw, "check"])
        #expect(r.status == 2)
        #expect(r.err.contains("/nonexistent/gw.conf"), "\(r.err)")
    }
}
