import Foundation
import Testing

/// SPEC §12 "Abuse": each attack closes the offending connection with GOAWAY (ENHANCE_YOUR_CALM
/// or PROTOCOL_ERROR), is logged as `http2_connection_error` and counted by reason, leaves a
/// connection opened before it served, and leaves the gateway's memory bounded.
@Suite(.serialized)
struct HTTP2AbuseTests {
    /// How much the gateway's RSS may grow over one attack: a bounded connection costs far less;
    /// 50 MB says "not proportional to the flood", plus what a sanitizer adds.
    static let rssBoundKB = 50 * 1024 + Sanitizer.rssPeakSlack / 1024

    /// One gateway for every attack (each attack's counts are checked as deltas).
    final class Target: @unchecked Sendable {
        let stack: Stack
        let admin = freePort()
        init() throws {
            stack = try Stack()
            try stack.startEcho()
            // Streams of the too-many-streams case wait for their bodies: no response_timeout then.
            try stack.startGateway(stack.config(limits: "idle_timeout 30s; max_header_size 4k; http2_max_concurrent_streams 4;",
                                                topExtra: "admin 127.0.0.1:\(admin);")
                .replacingOccurrences(of: "response_timeout 3s;", with: "response_timeout 30s;"))
        }

        func errors(_ reason: String) throws -> Double {
            MetricsPage(try Admin(port: admin).get("/metrics").body).sum("gateway_http2_connection_errors_total", ["reason": reason])
        }

        /// Runs the attack and checks everything SPEC §12 promises for it.
        func attack(_ scenario: String, reason: String, codes: Set<Int>, _ extra: [String] = [],
                    sourceLocation: SourceLocation = #_sourceLocation) throws -> H2Conn {
            let before = try errors(reason)
            let logged = stack.accessLog.filter { $0["event"] as? String == "http2_connection_error" }.count
            let pid = stack.gateway!.process.processIdentifier
            let r = try H2Client.scenario(stack, scenario, ["--pid", String(pid), "--size", "4096", "--count", "4"] + extra)
            let attack = H2Client.conn(r, "attack"), bystander = H2Client.conn(r, "bystander")
            #expect(attack.goaways.count == 1, "\(scenario): \(attack)", sourceLocation: sourceLocation)
            #expect(attack.goaways.first.map { codes.contains($0.code) } == true, "\(scenario): \(attack.goaways)", sourceLocation: sourceLocation)
            #expect(attack.closed, "\(scenario): the connection is closed", sourceLocation: sourceLocation)
            #expect(bystander.status(1) == 200 && bystander.status(3) == 200 && bystander.goaways.isEmpty,
                    "\(scenario): a connection opened before is still served: \(bystander)", sourceLocation: sourceLocation)
            let events = { self.stack.accessLog.filter { $0["event"] as? String == "http2_connection_error" } }
            #expect(eventually { events().count == logged + 1 }, "\(scenario): one line logged", sourceLocation: sourceLocation)
            if let line = events().last {
                #expect(line["reason"] as? String == reason, "\(scenario): \(line)", sourceLocation: sourceLocation)
                #expect(line["client"] as? String == "127.0.0.1" && line["sni"] as? String == "api.example.test", sourceLocation: sourceLocation)
            }
            #expect(try errors(reason) == before + 1, "\(scenario): counted as \(reason)", sourceLocation: sourceLocation)
            let grown = (r["rss_peak_kb"] as? Int ?? 0) - (r["rss_before_kb"] as? Int ?? 0)
            #expect(grown < HTTP2AbuseTests.rssBoundKB, "\(scenario): RSS grew \(grown) kB", sourceLocation: sourceLocation)
            return attack
        }
    }

    let calm: Set<Int> = [H2Code.enhanceYourCalm]
    let calmOrProtocol: Set<Int> = [H2Code.enhanceYourCalm, H2Code.protocolError]

    /// CVE-2023-44487: 5,000 streams opened and reset at once (the budget is 1,000, then 33/s).
    @Test func rapidReset() throws {
        let t = try Target()
        _ = try t.attack("rapid-reset", reason: "rapid reset", codes: calmOrProtocol, ["--count", "5000"])
    }

    /// CVE-2024-28182: a hundred CONTINUATION frames (more than 8), and a header block over
    /// 4× max_header_size in a few.
    @Test func continuationFloods() throws {
        let t = try Target()
        _ = try t.attack("continuation-flood", reason: "continuation flood", codes: calm)
        _ = try t.attack("header-block-flood", reason: "continuation flood", codes: calm)
    }

    /// 100,000 SETTINGS, then 100,000 PINGs, written without reading a single ACK.
    @Test func settingsAndPingFloods() throws {
        let t = try Target()
        _ = try t.attack("settings-flood", reason: "settings flood", codes: calm, ["--count", "100000"])
        _ = try t.attack("ping-flood", reason: "ping flood", codes: calm, ["--count", "100000"])
    }

    /// A small header block that decodes to 100 × 4 kB through the HPACK dynamic table.
    @Test func hpackHeaderListPastTheLimit() throws {
        let t = try Target()
        _ = try t.attack("hpack-bomb", reason: "header list too large", codes: calm)
    }

    @Test func streamIDGoingBackwards() throws {
        let t = try Target()
        let c = try t.attack("backwards", reason: "stream id backwards", codes: [H2Code.protocolError])
        #expect(c.status(5) == 200)
        #expect(c.goaways.first?.last == 5, "stream 5 was processed, 3 never was")
    }

    /// http2_max_concurrent_streams 4: before the client ACKs our SETTINGS the extra streams get
    /// REFUSED_STREAM; after, one more stream is a connection error.
    @Test func tooManyConcurrentStreams() throws {
        let t = try Target()
        let c = try t.attack("too-many-streams", reason: "too many streams", codes: [H2Code.protocolError])
        for id in [1, 3, 5, 7] { #expect(c.reset(id) == nil, "stream \(id) of 4 is let in: \(c)") }
        #expect(c.reset(9) == H2Code.refusedStream && c.reset(11) == H2Code.refusedStream)
        #expect(c.goaways.first?.last == 7)
    }
}
