import Foundation
import Testing

/// SPEC §11 per-host key-exchange groups (openssl s_client and the project's client offering
/// one group) and W3C trace context (kept, replaced, generated; trace_id in the access log).
@Suite(.serialized)
struct GroupsAndTraceTests {
    static func start() throws -> Stack {
        let s = try Stack()
        try s.startEcho()
        let c = Repo.certs
        try s.startGateway(s.config() + """

        host p384.example.test {
            certificate \(c)/wildcard.example.test.pem \(c)/wildcard.example.test.key;
            groups P-384;
            route / backend echo;
        }
        """)
        return s
    }

    @Test func aHostWithP384RefusesAnX25519OnlyClientThatAnotherHostAccepts() throws {
        let s = try Self.start()
        // TLS 1.2 also needs the certificate's curve (P-256) among the client's groups (RFC 8422), so
        // its X25519 client offers P-256 too; the host's own P-384 list still shares nothing with it.
        for (version, x25519, p384) in [("-tls1_3", "X25519", "P-384"), ("-tls1_2", "X25519:P-256", "P-384:P-256")] {
            let refused = try PolicyTests.sClient(s, "p384.example.test", ["-groups", x25519, version])
            #expect(!refused.ok, "\(version): \(refused.out)")
            let accepted = try PolicyTests.sClient(s, "foo.example.test", ["-groups", x25519, version])
            #expect(accepted.ok, "\(version): \(accepted.out)")
            let ok = try PolicyTests.sClient(s, "p384.example.test", ["-groups", p384, version])
            #expect(ok.ok, "\(version): \(ok.out)")
        }
        // The default host's groups are on the listener's own context: X25519 is in the default list.
        let c = try TLSTestClient(port: s.gatewayPort, serverName: "api.example.test", groups: "X25519")
        try c.send("GET / HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n")
        #expect(try c.readResponse().status == 200)
        #expect(throws: (any Error).self) { _ = try TLSTestClient(port: s.gatewayPort, serverName: "p384.example.test", groups: "X25519:P-256") }
        _ = eventually { s.gateway!.stdout.contains(#""sni":"p384.example.test""#) }
        #expect(s.gateway!.stdout.contains(#""event":"tls_handshake_failed","client":"127.0.0.1","sni":"p384.example.test""#))
        // Groups are part of the policy: p384 and foo differ only there, so 421.
        let r = try s.curl("/", host: "foo.example.test", ["-H", "Host: p384.example.test", "-o", "/dev/null", "-w", "%{http_code}"])
        #expect(r.out == "421")
    }

    static let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test func traceparentKeptReplacedOrGeneratedAndLogged() throws {
        let s = try Self.start()
        let kept = try decodeEcho(try s.curl("/", ["-H", "traceparent: \(Self.valid)", "-H", "tracestate: congo=t61rcWkgMzE",
                                                   "-H", "X-Request-Id: trace-kept"]).out)
        #expect(kept.headers["traceparent"] == Self.valid)
        #expect(kept.headers["tracestate"] == "congo=t61rcWkgMzE")

        let invalid = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"
        let replaced = try decodeEcho(try s.curl("/", ["-H", "traceparent: \(invalid)", "-H", "tracestate: congo=t61rcWkgMzE",
                                                       "-H", "X-Request-Id: trace-replaced"]).out)
        let new1 = try #require(replaced.headers["traceparent"])
        #expect(new1 != invalid && new1.hasSuffix("-01") && new1.hasPrefix("00-") && new1.count == 55)
        #expect(replaced.headers["tracestate"] == nil, "tracestate only with a valid traceparent")

        let generated = try decodeEcho(try s.curl("/", ["-H", "X-Request-Id: trace-generated", "-H", "tracestate: a=b"]).out)
        let new2 = try #require(generated.headers["traceparent"])
        #expect(new2.count == 55 && new2.hasSuffix("-01") && new2 != new1)
        #expect(generated.headers["tracestate"] == nil)

        func traceID(_ tp: String) -> String { String(tp.dropFirst(3).prefix(32)) }
        _ = eventually { s.gateway!.stdout.contains("trace-generated") }
        let lines = s.gateway!.stdout.split(separator: "\n")
        for (rid, tp) in [("trace-kept", Self.valid), ("trace-replaced", new1), ("trace-generated", new2)] {
            let line = lines.first { $0.contains(#""request_id":"\#(rid)""#) }
            #expect(line?.contains(#""trace_id":"\#(traceID(tp))""#) == true, "\(rid): \(line ?? "no line")")
        }
    }
}
