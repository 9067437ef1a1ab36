import Foundation
import Testing

/// SPEC §12 gRPC end to end with real gRPC on both sides: grpcclient.py (grpcio) → gateway
/// (HTTP/2) → backend `grpc` with `protocol h2` → grpcserver.py (grpcio). Every call type,
/// metadata and trailers both ways, statuses passed through, large messages, and the answers
/// the gateway gives itself in gRPC's form (trailers-only, grpc-status), asserted both as grpcio
/// reports them and as raw frames (nghttp, curl, h2client.py).
@Suite(.serialized)
struct GRPCTests {
    /// A gateway in front of grpcserver.py (and gateway-echo with `echo`); the test stops both.
    struct Setup {
        let s: Stack
        let server: ServerProcess
        func stop() {
            s.stop()
            server.stop()
        }
    }

    static func start(echo: Bool = false, routes: String = "", backends: (Stack) -> String = { _ in "" }) throws -> Setup {
        let s = try Stack()
        let port = freePort()
        let server = try GRPC.startServer(s, port: port)
        do {
            if echo { try s.startEcho() }
            try s.startGateway(s.grpcConfig(grpcPort: port, routes: routes, backends: backends(s)))
        } catch {
            s.stop()
            server.stop()
            throw error
        }
        return Setup(s: s, server: server)
    }

    /// The access-log line (HTTP/2) of the request for `path`, once it is written.
    static func accessLine(_ s: Stack, _ path: String) throws -> [String: Any] {
        _ = eventually { s.http2Lines.contains { $0["path"] as? String == path } }
        return try #require(s.http2Lines.first { $0["path"] as? String == path }, "no access-log line for \(path): \(s.gateway!.stdout.suffix(2000))")
    }

    @Test func unaryWithMetadataAndTrailersBothWays() throws {
        let g = try Self.start()
        defer { g.stop() }
        let r = try GRPC.call(g.s, ["unary", "hello gateway"], metadata: ["x-test=from-the-client"])
        #expect(r.code == "OK" && r.code_number == 0 && r.details.isEmpty, "\(r)")
        #expect(r.texts == ["hello gateway"], "\(r)")
        #expect(r.initial_metadata["x-echo-initial"] == "from-the-client", "the request's metadata reached the server: \(r)")
        #expect(r.trailing_metadata["x-echo-trailing"] == "done", "the server's trailers reached the client: \(r)")
        // What the server saw: the client's metadata and the gateway's forwarding headers.
        let call = try #require(GRPC.calls(g.server, "Unary").first, "\(g.server.stdout)")
        let md = call["metadata"] as? [String: String] ?? [:]
        #expect(md["x-test"] == "from-the-client", "\(md)")
        #expect(md["x-forwarded-proto"] == "https" && md["x-forwarded-for"] == "127.0.0.1", "\(md)")
        // The access log: one HTTP/2 exchange, 200, on backend grpc, with the request id the server got.
        let line = try Self.accessLine(g.s, "/test.Echo/Unary")
        #expect(line["protocol"] as? String == "HTTP/2" && line["status"] as? Int == 200, "\(line)")
        #expect(line["method"] as? String == "POST" && line["backend"] as? String == "grpc", "\(line)")
        #expect(line["request_id"] as? String == md["x-request-id"] && md["x-request-id"] != nil, "\(line) \(md)")
    }

    @Test func serverClientAndBidiStreaming() throws {
        let g = try Self.start()
        defer { g.stop() }
        let server = try GRPC.call(g.s, ["server-stream", "50"])
        #expect(server.code == "OK" && server.texts == (0..<50).map { "msg-\($0)" }, "\(server)")
        let words = (1...12).map { "word\($0)" }
        let client = try GRPC.call(g.s, ["client-stream", words.joined(separator: ",")])
        #expect(client.code == "OK" && client.texts == [words.joined(separator: ",")], "\(client)")
        #expect(GRPC.calls(g.server, "ClientStream").first?["messages"] as? Int == 12, "\(g.server.stdout)")
        // One message in flight at a time: each answer must come back before the next is sent.
        let bidi = try GRPC.call(g.s, ["bidi", words.joined(separator: ",")])
        #expect(bidi.code == "OK" && bidi.texts == words.map { $0.uppercased() }, "\(bidi)")
        #expect(GRPC.calls(g.server, "Bidi").first?["messages"] as? Int == 12, "\(g.server.stdout)")
    }

    @Test func errorStatusesFromTheServerPassThroughUnchanged() throws {
        let g = try Self.start()
        defer { g.stop() }
        let cases = [(5, "NOT_FOUND", "no such echo"), (7, "PERMISSION_DENIED", "not yours"),
                     (16, "UNAUTHENTICATED", "who are you"), (14, "UNAVAILABLE", "the server says so")]
        for (number, name, message) in cases {
            let r = try GRPC.call(g.s, ["fail", String(number), message])
            #expect(r.code == name && r.code_number == number && r.details == message && r.messages.isEmpty, "\(number): \(r)")
        }
        #expect(GRPC.calls(g.server, "Fail").count == cases.count)
        // The server's answers, not the gateway's: HTTP 200 from backend grpc each, no error logged.
        _ = try Self.accessLine(g.s, "/test.Echo/Fail")
        #expect(eventually { g.s.http2Lines.filter { $0["path"] as? String == "/test.Echo/Fail" }.count == cases.count })
        let lines = g.s.http2Lines.filter { $0["path"] as? String == "/test.Echo/Fail" }
        #expect(lines.allSatisfy { $0["status"] as? Int == 200 && $0["backend"] as? String == "grpc" }, "\(lines)")
        #expect(!g.s.gateway!.stderr.contains("request_error"), "\(g.s.gateway!.stderr.suffix(2000))")
    }

    /// 1 MiB each way: many flow-control windows in both directions, on both hops.
    @Test func aMebibyteMessageEachWay() throws {
        let g = try Self.start()
        defer { g.stop() }
        let r = try GRPC.call(g.s, ["unary-bytes", String(1 << 20)])
        let sent = try #require(r.sent)
        #expect(r.code == "OK" && sent.length == 1 << 20 && r.digests == [sent], "\(r)")
        #expect(GRPC.calls(g.server, "Unary").first?["bytes"] as? Int == 1 << 20, "\(g.server.stdout)")
        let line = try Self.accessLine(g.s, "/test.Echo/Unary")
        #expect((line["bytes_in"] as? Int ?? 0) >= 1 << 20 && (line["bytes_out"] as? Int ?? 0) >= 1 << 20, "\(line)")
    }

    /// SPEC §12: when the gateway answers a gRPC request itself, HTTP 200, content-type
    /// application/grpc, trailers-only, grpc-status by gRPC's HTTP mapping.
    @Test func theGatewaysOwnAnswersAreInGRPCForm() throws {
        let downPort = freePort()
        let g = try Self.start(echo: true, routes: "route /down.Echo backend down;\n    route /h1.Echo backend echo;",
                               backends: { _ in Stack.h2Backend("down", port: downPort, extra: "max_fails 0;") })
        defer { g.stop() }
        // grpcio maps a plain HTTP 404 or 502 to these codes by itself: the raw frames (nghttp,
        // h2client.py, curl) are what prove the gateway's own form.
        // No route: 404 → 12 UNIMPLEMENTED.
        let none = try GRPC.call(g.s, ["unary", "x"], service: "nothing.Echo")
        #expect(none.code == "UNIMPLEMENTED" && none.code_number == 12 && !none.details.isEmpty && none.messages.isEmpty, "\(none)")
        let raw404 = try GRPC.nghttp(g.s, "/nothing.Echo/Unary")
        #expect(GRPC.isTrailersOnly(raw404, status: 12), "\(raw404)")
        // The same while the request is still open (the answer comes before the request's end):
        // the HEADERS must go out before the gateway resets the request side.
        let open = H2Client.conn(try H2Client.scenario(g.s, "grpc-open", ["--path", "/nothing.Echo/Call"]))
        let openFields = open.stream(1)["headers"] as? [String: String] ?? [:]
        #expect(open.status(1) == 200 && openFields["grpc-status"] == "12" && openFields["content-type"] == "application/grpc", "\(open)")
        #expect((open.raw["counts"] as? [String: Int])?["HEADERS"] == 1, "\(open)")
        // A server that refuses the connection: 502 → 14 UNAVAILABLE.
        let down = try GRPC.call(g.s, ["unary", "x"], service: "down.Echo")
        #expect(down.code == "UNAVAILABLE" && down.code_number == 14 && down.messages.isEmpty, "\(down)")
        let rawDown = try GRPC.nghttp(g.s, "/down.Echo/Unary")
        #expect(GRPC.isTrailersOnly(rawDown, status: 14), "\(rawDown)")
        // An http/1.1 backend (gateway-echo, running): 14, and the error log says why.
        let h1 = try GRPC.call(g.s, ["unary", "x"], service: "h1.Echo")
        #expect(h1.code == "UNAVAILABLE" && h1.code_number == 14 && h1.messages.isEmpty, "\(h1)")
        #expect(g.s.gateway!.stderr.contains("grpc needs an h2 backend"), "\(g.s.gateway!.stderr.suffix(2000))")
        // The same answer's head through curl: 200, the gRPC content type, the status among the headers.
        let body = "\(g.s.dir)/grpc-empty.bin"
        try Data([0, 0, 0, 0, 0]).write(to: URL(fileURLWithPath: body))
        let curl = try g.s.curl("/h1.Echo/Unary", ["--http2", "-i", "-H", "content-type: application/grpc", "-H", "te: trailers",
                                                   "--data-binary", "@\(body)"])
        let head = curl.out.lowercased()
        #expect(head.hasPrefix("http/2 200") && head.contains("content-type: application/grpc\r\n")
                && head.contains("grpc-status: 14\r\n"), "\(curl.out) \(curl.err)")
        // None of them reached the gRPC server (it logs every call, known method or not).
        #expect(g.server.stdout.isEmpty, "\(g.server.stdout)")
    }

    /// SPEC §12: a grpc-timeout shorter than response_timeout (3 s here) bounds the exchange.
    @Test func grpcTimeoutBoundsTheExchange() throws {
        let g = try Self.start(echo: true, routes: "route /open.Echo backend echoh2;",
                               backends: { Stack.h2Backend("echoh2", port: $0.echoPort) })
        defer { g.stop() }
        // grpcio with a 0.5 s deadline (it sends grpc-timeout, and keeps its own timer): DEADLINE_EXCEEDED,
        // and the server's call is cancelled long before its 3 s sleep is over.
        let r = try GRPC.call(g.s, ["sleep", "3000"], deadline: 0.5)
        #expect(r.code == "DEADLINE_EXCEEDED" && r.code_number == 4 && r.messages.isEmpty && r.elapsed < 2.5, "\(r)")
        #expect(eventually(5) { GRPC.calls(g.server, "Sleep").first?["cancelled"] as? Bool == true }, "\(g.server.stdout)")

        // The gateway's own timer, alone: a call whose request stays open toward gateway-echo (an h2
        // backend that answers gRPC only when the request ends and knows nothing of grpc-timeout).
        let short = try H2Client.scenario(g.s, "grpc-open", ["--path", "/open.Echo/Call", "--grpc-timeout", "300m"])
        let c = H2Client.conn(short)
        let fields = c.stream(1)["headers"] as? [String: String] ?? [:]
        #expect(c.status(1) == 200 && fields["content-type"] == "application/grpc" && fields["grpc-status"] == "4", "\(c)")
        let counts = c.raw["counts"] as? [String: Int] ?? [:]
        #expect(counts["HEADERS"] == 1 && counts["DATA"] == nil, "trailers-only: \(c)")
        let elapsed = short["elapsed"] as? Double ?? -1
        // The loop's clock is whole milliseconds read when epoll_wait returns, so the deadline can
        // fall a millisecond or two before the client's own 300 ms (CI once saw 0.299).
        #expect(elapsed >= 0.28 && elapsed < 2.5, "grpc-timeout (300 ms) fired, not response_timeout (3 s): \(elapsed)")
        // Logged: the exchange in the access log, an error line with its request id.
        let line = try Self.accessLine(g.s, "/open.Echo/Call")
        let id = try #require(line["request_id"] as? String, "\(line)")
        #expect(jsonLines(g.s.gateway!.stderr).contains { $0["event"] as? String == "request_error" && $0["request_id"] as? String == id },
                "\(g.s.gateway!.stderr.suffix(2000))")

        // A grpc-timeout longer than response_timeout changes nothing: response_timeout answers (504 → 14).
        let long = try H2Client.scenario(g.s, "grpc-open", ["--path", "/open.Echo/Call", "--grpc-timeout", "10S"])
        let lc = H2Client.conn(long)
        #expect(lc.status(1) == 200 && (lc.stream(1)["headers"] as? [String: String])?["grpc-status"] == "14", "\(lc)")
        #expect((long["elapsed"] as? Double ?? 0) >= 2.5, "\(long["elapsed"] ?? "-")")
    }

    /// One connection, streams whose deadlines fall in another order than they were set: the
    /// connection's one stream timer (StreamTimer.swift) fires for each at its own time — the
    /// earlier one set second moves it earlier, and after firing it waits for the later one.
    @Test func staggeredStreamDeadlinesOnOneConnection() throws {
        let g = try Self.start(echo: true, routes: "route /open.Echo backend echoh2;",
                               backends: { Stack.h2Backend("echoh2", port: $0.echoPort) })
        defer { g.stop() }
        let r = try H2Client.scenario(g.s, "grpc-staggered", ["--path", "/open.Echo/Call", "--grpc-timeout", "1500m,300m,800m"])
        let c = H2Client.conn(r)
        for sid in [1, 3, 5] {
            #expect(c.status(sid) == 200 && (c.stream(sid)["headers"] as? [String: String])?["grpc-status"] == "4", "stream \(sid): \(c)")
        }
        let at = r["answered_at"] as? [String: Double] ?? [:]
        let (first, second, third) = (at["3"] ?? -1, at["5"] ?? -1, at["1"] ?? -1)
        // 300 ms, 800 ms, 1.5 s; each before response_timeout (3 s), none before its own deadline
        // (less the loop's millisecond clock's slack, as in grpcTimeoutBoundsTheExchange).
        #expect(first >= 0.28 && second >= 0.78 && third >= 1.48 && third < 2.9, "\(at)")
        #expect(first < second && second < third, "\(at)")
    }
}

extension GRPCResult {
    /// The messages as text (a message over 4 KiB as "<large>").
    var texts: [String] { messages.map { $0 ?? "<large>" } }
}
