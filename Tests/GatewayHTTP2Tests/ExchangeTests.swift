// Well-formed exchanges against a real nghttp2 client: requests, bodies under flow control,
// trailers both ways, the concurrency limit, ORIGIN, graceful shutdown.
import Testing
import GatewayHTTP
@testable import GatewayHTTP2

func text(_ s: some Sequence<UInt8>) -> String { String(decoding: Array(s), as: UTF8.self) }

func requests(_ events: [HTTP2Event]) -> [(Int32, HTTP2RequestHead)] {
    events.compactMap { if case .request(let id, let h) = $0 { (id, h) } else { nil } }
}

@Suite struct Exchanges {
    @Test func getRequestAndResponse() throws {
        let s = try HTTP2ServerSession()
        let c = TestClient()
        let id = c.request(getFields + [("accept", "*/*"), ("user-agent", "t")])
        var events: [HTTP2Event] = []
        #expect(pump(c, s, events: &events) == nil)
        let (sid, head) = try #require(requests(events).first)
        #expect(sid == id)
        let path = try #require(head.path), authority = try #require(head.authority), scheme = try #require(head.scheme)
        #expect(text(head[head.method]) == "GET" && text(head[path]) == "/")
        #expect(text(head[authority]) == "api.example.test" && text(head[scheme]) == "https")
        #expect(head.fields.fields.map { text(head.fields[$0.name]) + "=" + text(head.fields[$0.value]) } == ["accept=*/*", "user-agent=t"])
        #expect(events.contains(.endStream(stream: id)))

        var h = HTTP2Fields()
        h.append("Content-Type", "text/plain")   // lower-cased on the way out
        h.append("Connection", "close")           // dropped: connection-specific
        try s.respond(id, status: 200, headers: h, endStream: false)
        try sendData(s, id, Array("hello".utf8), endStream: true)
        events = []
        pump(c, s, events: &events)
        let r = try #require(c.responses[id])
        #expect(r.status == "200" && r.headers.map { $0.0 } == ["content-type"] && text(r.body) == "hello" && r.closed == 0)
        #expect(events.contains(.streamClosed(stream: id, code: 0)) && s.openStreams == 0)
    }

    @Test func postBodyOpensTheWindowOnlyAsConsumed() throws {
        let s = try HTTP2ServerSession()
        let c = TestClient()
        let body = (0..<60000).map { UInt8($0 % 251) }
        let id = c.request([(":method", "POST"), (":scheme", "https"), (":authority", "a"), (":path", "/up")], body: body)
        var events: [HTTP2Event] = []
        pump(c, s, events: &events)
        // The client stops at the 65,535 window; nothing came back to open it.
        #expect(s.receivedBody(id).count == 60000)
        #expect(c.windowUpdates.filter { $0.stream == id }.isEmpty)
        #expect(events.contains(.endStream(stream: id)))
        #expect(Array(s.receivedBody(id)) == body)
        s.consume(id, 40000)
        pump(c, s, events: &events)
        #expect(c.windowUpdates.filter { $0.stream == id }.map(\.increment) == [40000])
        #expect(s.receivedBody(id).count == 20000)
    }

    @Test func bodyBeyondTheWindowWaitsForConsume() throws {
        var config = HTTP2Config()
        config.initialWindowSize = 16384
        let s = try HTTP2ServerSession(config: config)
        let c = TestClient()
        var events: [HTTP2Event] = [], got: [UInt8] = []
        pump(c, s, events: &events)   // the client has our SETTINGS (before them it may assume 65,535)
        let body = (0..<50000).map { UInt8($0 % 7) }
        let id = c.request([(":method", "PUT"), (":scheme", "https"), (":authority", "a"), (":path", "/")], body: body)
        pump(c, s, events: &events)
        #expect(s.receivedBody(id).count == 16384)   // one window, then the client waits
        while !events.contains(.endStream(stream: id)) {
            let b = Array(s.receivedBody(id))
            #expect(b.count <= 16384)
            got += b
            s.consume(id, b.count)
            pump(c, s, events: &events)
        }
        got += s.receivedBody(id)
        #expect(got == body)
    }

    @Test func trailersBothWays() throws {
        let s = try HTTP2ServerSession()
        let c = TestClient()
        let id = c.request([(":method", "POST"), (":scheme", "https"), (":authority", "a"), (":path", "/svc/M"),
                            ("content-type", "application/grpc"), ("te", "trailers")],
                           body: [0, 0, 0, 0, 1, 7], trailers: [("x-checksum", "42")])
        var events: [HTTP2Event] = []
        pump(c, s, events: &events)
        let t = try #require(events.compactMap { if case .trailers(id, let f) = $0 { f } else { nil } }.first)
        let checksum = try #require(t.value("x-checksum"))
        #expect(text(checksum) == "42")
        #expect(events.last(where: { if case .endStream = $0 { true } else { false } }) == .endStream(stream: id))

        var h = HTTP2Fields(); h.append("content-type", "application/grpc")
        try s.respond(id, status: 200, headers: h, endStream: false)
        try sendData(s, id, [UInt8](repeating: 9, count: 5), endStream: false)
        var tr = HTTP2Fields(); tr.append("grpc-status", "0"); tr.append("grpc-message", "ok")
        try s.sendTrailers(id, tr)
        pump(c, s, events: &events)
        let r = try #require(c.responses[id])
        #expect(r.body.count == 5 && r.trailers.map { $0.0 } == ["grpc-status", "grpc-message"] && r.closed == 0)
    }

    @Test func trailersOnlyResponse() throws {
        let s = try HTTP2ServerSession()
        let c = TestClient()
        let id = c.request()
        var events: [HTTP2Event] = []
        pump(c, s, events: &events)
        try s.respond(id, status: 200, endStream: false)
        var tr = HTTP2Fields(); tr.append("grpc-status", "14")
        try s.sendTrailers(id, tr)
        pump(c, s, events: &events)
        #expect(c.responses[id]?.trailers.first?.1 == "14" && c.responses[id]?.body == [])
    }

    @Test func responseBodyWaitsForTheClientWindow() throws {
        let s = try HTTP2ServerSession()
        let c = TestClient(window: 1000, autoWindowUpdate: false)
        let id = c.request()
        var events: [HTTP2Event] = []
        pump(c, s, events: &events)
        try s.respond(id, status: 200, endStream: false)
        try sendData(s, id, [UInt8](repeating: 1, count: 5000), endStream: true)
        pump(c, s, events: &events)
        // The client's window holds 1,000; the rest stays in the stream's buffer for back-pressure.
        #expect(c.responses[id]?.body.count == 1000 && s.outgoingBuffered(id) == 4000)
    }

    /// nghttp2 1.52 refuses streams over the limit with REFUSED_STREAM only while our SETTINGS
    /// is unacknowledged; once the client has ACKed it, one stream too many is a connection error.
    @Test func hundredConcurrentStreamsThenRefused() throws {
        var config = HTTP2Config()
        config.maxConcurrentStreams = 100
        let s = try openSession(config)   // the client has not ACKed our SETTINGS yet
        let r = feed(s, (0..<105).flatMap { headersFrame(Int32(1 + 2 * $0), getFields) })
        #expect(r.error == nil && requests(r.events).count == 100 && s.openStreams == 100)
        let refused = r.frames.filter { $0.type == FrameType.rstStream.rawValue && $0.u32 == 0x7 }.map(\.stream)
        #expect(refused == (100..<105).map { Int32(1 + 2 * $0) } && s.refusedStreams == 5)
        #expect(s.wantsRead && s.failure == nil)   // the connection goes on
    }

    @Test func streamOverTheAcknowledgedLimitClosesTheConnection() throws {
        var config = HTTP2Config()
        config.maxConcurrentStreams = 100
        let s = try HTTP2ServerSession(config: config)
        let c = TestClient()
        var events: [HTTP2Event] = []
        pump(c, s, events: &events)   // SETTINGS exchanged and ACKed both ways
        let r = feed(s, (0..<101).flatMap { headersFrame(Int32(1 + 2 * $0), getFields) })
        #expect(requests(r.events).count == 100)
        #expect(r.events.last == .connectionError(HTTP2Error("too many streams")))
        let g = try #require(r.frames.last { $0.type == FrameType.goaway.rawValue })
        #expect(g.goaway.code == 0x1 && g.goaway.last == 199)
    }

    @Test func originFrameFollowsSettings() throws {
        let s = try HTTP2ServerSession()
        try s.submitOrigin(["https://api.example.test", "https://www.example.test:8443"])
        let frames = parseFrames(drain(s))
        #expect(frames.map(\.type) == [FrameType.settings.rawValue, FrameType.windowUpdate.rawValue, FrameType.origin.rawValue])
        let o = try #require(frames.last)
        let first = Array("https://api.example.test".utf8), second = Array("https://www.example.test:8443".utf8)
        #expect(o.stream == 0 && o.payload == [0, UInt8(first.count)] + first + [0, UInt8(second.count)] + second)
    }

    @Test func gracefulShutdownInTwoSteps() throws {
        let s = try HTTP2ServerSession()
        let c = TestClient()
        let first = c.request()
        var events: [HTTP2Event] = []
        pump(c, s, events: &events)
        try s.shutdownNotice()
        let second = c.request()   // in flight while the notice travels: still served
        pump(c, s, events: &events)
        #expect(c.goaways.map(\.last) == [Int32.max] && c.goaways[0].code == 0)
        try s.goaway()
        pump(c, s, events: &events)
        #expect(c.goaways.map(\.last) == [Int32.max, second])
        #expect(requests(events).map(\.0) == [first, second])
        #expect(s.wantsRead)   // two streams still open: they finish
        for id in [first, second] { try s.respond(id, status: 204, endStream: true) }
        pump(c, s, events: &events)
        #expect(!s.wantsRead && !s.wantsWrite)   // done: the caller closes
    }

    @Test func clientGoawayAndResetAreReported() throws {
        let s = try openSession()
        _ = feed(s, headersFrame(1, getFields, endStream: false))
        let r = feed(s, frame(.rstStream, stream: 1, be32(0x8)) + frame(.goaway, be32(0) + be32(0)))
        #expect(r.events == [.reset(stream: 1, code: 8), .streamClosed(stream: 1, code: 8), .goaway(code: 0, lastStream: 0)])
    }
}
