// HTTP2ClientSession (toward h2 backends) against our own HTTP2ServerSession, both real
// nghttp2: requests and responses, flow control both ways with windows opened only by
// `consume`, gRPC-shaped trailers, the peer's stream limit, retry-safe refusals.
import GatewayHTTP
import Testing
@testable import GatewayHTTP2

func responses(_ events: [HTTP2ClientEvent]) -> [(Int32, Int, HTTP2Fields)] {
    events.compactMap { if case .response(let id, let status, let f) = $0 { (id, status, f) } else { nil } }
}

@Suite struct ClientSessions {
    @Test func getRequestAndResponse() throws {
        let p = try ClientPair()
        let id = try p.client.request(method: "GET", authority: "api.example.test", path: "/x?y",
                                      headers: fields([("Accept", "*/*"), ("connection", "keep-alive")]), endStream: true)
        #expect(id == 1 && p.client.openStreams == 1)
        #expect(p.pump() == nil)
        let (sid, head) = try #require(requests(p.serverEvents).first)
        let path = try #require(head.path), authority = try #require(head.authority), scheme = try #require(head.scheme)
        #expect(sid == id && text(head[head.method]) == "GET" && text(head[path]) == "/x?y")
        #expect(text(head[authority]) == "api.example.test" && text(head[scheme]) == "https")
        #expect(pairs(head.fields) == ["accept=*/*"], "names lower-cased, connection-specific fields dropped")

        try p.server.respond(id, status: 200, headers: fields([("content-type", "text/plain")]), endStream: false)
        try sendData(p.server, id, Array("hello".utf8), endStream: true)
        p.pump()
        let (rid, status, f) = try #require(responses(p.clientEvents).first)
        #expect(rid == id && status == 200 && pairs(f) == ["content-type=text/plain"])
        #expect(p.clientEvents.contains(.data(stream: id, count: 5)) && p.clientEvents.contains(.endStream(stream: id)))
        #expect(text(p.client.receivedBody(id)) == "hello")
        p.client.consume(id, 5)
        #expect(p.clientEvents.last == .streamClosed(stream: id, code: 0) && p.client.openStreams == 0)
    }

    /// The literal names and values (pseudo-header names, `te: trailers`, a response's added
    /// fields) go to nghttp2 uncopied: they are encoded at `pump`, after the submitting call returned.
    @Test func literalFieldsGoUncopiedAndArriveWhole() throws {
        let p = try ClientPair()
        let head = Array("PUThttpsapi.test/litX-Up: 1\r\n".utf8)
        let id = try head.withUnsafeBytes { raw in
            func at(_ r: Range<Int>) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: raw[r]) }
            return try p.client.request(method: at(0..<3), scheme: at(3..<8), authority: at(8..<16), path: at(16..<20), head: raw,
                                        fields: [HTTPHeaderField(name: 20..<24, value: 26..<27)], trailersTE: true, endStream: true)
        }
        #expect(p.pump() == nil)
        let (_, got) = try #require(requests(p.serverEvents).first)
        let path = try #require(got.path), authority = try #require(got.authority), scheme = try #require(got.scheme)
        #expect(text(got[got.method]) == "PUT" && text(got[path]) == "/lit")
        #expect(text(got[authority]) == "api.test" && text(got[scheme]) == "https")
        #expect(pairs(got.fields) == ["te=trailers", "x-up=1"])

        let response = Array("Content-Type: text/plain\r\n".utf8)
        try response.withUnsafeBytes { raw in
            try [HTTPHeaderField(name: 0..<12, value: 14..<24)].withUnsafeBufferPointer { f in
                try p.server.respond(id, status: 200, raw: raw, fields: f,
                                     extra: [("content-encoding", "gzip"), ("vary", "Accept-Encoding")], endStream: true) { _ in false }
            }
        }
        #expect(p.pump() == nil)
        let (_, status, f) = try #require(responses(p.clientEvents).first)
        #expect(status == 200 && pairs(f) == ["content-type=text/plain", "content-encoding=gzip", "vary=Accept-Encoding"])
    }

    @Test func postWithFlowControlBothWays() throws {
        var small = HTTP2Config()
        small.initialWindowSize = 16384
        let p = try ClientPair(client: small)
        p.pump()   // SETTINGS both ways
        let up = (0..<100_000).map { UInt8($0 % 251) }
        let id = try p.client.request(method: "POST", authority: "a", path: "/up", endStream: false)
        try clientSendData(p.client, id, up, endStream: true)
        p.pump()
        // The server's 65,535-byte stream window is full and nothing consumed: the rest waits here.
        #expect(p.server.receivedBody(id).count == 65535)
        #expect(p.client.outgoingBuffered(id) == up.count - 65535)
        var got = Array(p.server.receivedBody(id))
        p.server.consume(id, got.count)
        p.pump()
        got += p.server.receivedBody(id)
        #expect(got == up && p.client.outgoingBuffered(id) == 0 && p.serverEvents.contains(.endStream(stream: id)))

        // Down: the client's 16 KiB window; no WINDOW_UPDATE until the caller consumes.
        let down = (0..<40_000).map { UInt8($0 % 13) }
        try p.server.respond(id, status: 200, endStream: false)
        try sendData(p.server, id, down, endStream: true)
        p.pump()
        #expect(p.client.receivedBody(id).count == 16384 && p.server.outgoingBuffered(id) == 40_000 - 16384)
        #expect(p.clientWindowUpdates(id).isEmpty)
        var back: [UInt8] = []
        while !p.clientEvents.contains(.endStream(stream: id)) {
            let b = Array(p.client.receivedBody(id))
            #expect(b.count <= 16384)
            back += b
            p.client.consume(id, b.count)
            p.pump()
        }
        back += p.client.receivedBody(id)
        #expect(back == down && p.clientWindowUpdates(id).first == 16384)
    }

    @Test func grpcShapedTrailersBothWays() throws {
        let p = try ClientPair()
        let message: [UInt8] = [0, 0, 0, 0, 3, 1, 2, 3]   // one length-prefixed gRPC message
        let id = try p.client.request(method: "POST", authority: "grpc.test", path: "/pkg.Svc/Call",
                                      headers: fields([("content-type", "application/grpc"), ("te", "trailers")]), endStream: false)
        try clientSendData(p.client, id, message, endStream: false)
        try p.client.sendTrailers(id, fields([("x-request-trailer", "1")]))
        p.pump()
        #expect(Array(p.server.receivedBody(id)) == message)
        #expect(p.serverEvents.contains(.trailers(stream: id, fields: fields([("x-request-trailer", "1")]))))
        #expect(p.serverEvents.contains(.endStream(stream: id)))

        try p.server.respond(id, status: 200, headers: fields([("content-type", "application/grpc")]), endStream: false)
        try sendData(p.server, id, message, endStream: false)
        try p.server.sendTrailers(id, fields([("grpc-status", "0"), ("grpc-message", "")]))
        p.pump()
        let e = p.clientEvents
        #expect(responses(e).map(\.1) == [200])
        #expect(e.contains(.trailers(stream: id, fields: fields([("grpc-status", "0"), ("grpc-message", "")]))))
        #expect(Array(p.client.receivedBody(id)) == message)
        let order = e.compactMap { ev -> String? in
            switch ev {
            case .response: "response"
            case .data: "data"
            case .trailers: "trailers"
            case .endStream: "end"
            default: nil
            }
        }
        #expect(order == ["response", "data", "trailers", "end"])
    }

    @Test func hundredStreamsOverAPeerLimitOfTen() throws {
        var ten = HTTP2Config()
        ten.maxConcurrentStreams = 10
        let p = try ClientPair(server: ten)
        #expect(p.client.availableStreams == 100, "before the peer's SETTINGS: RFC 9113's 100")
        p.pump()
        #expect(p.client.peerMaxConcurrentStreams == 10 && p.client.availableStreams == 10)
        var opened = 0, done = 0, mostOpen = 0
        while done < 100 {
            while p.client.canOpenStream && opened < 100 {
                _ = try p.client.request(method: "GET", authority: "a", path: "/\(opened)", endStream: true)
                opened += 1
            }
            mostOpen = max(mostOpen, p.client.openStreams)
            #expect(throws: HTTP2Error.self) { try p.client.request(method: "GET", authority: "a", path: "/", endStream: true) }
            p.pump()
            for (id, _) in requests(p.serverEvents) { try p.server.respond(id, status: 204, endStream: true) }
            p.serverEvents = []
            p.pump()
            done += p.take().filter { if case .streamClosed(_, 0) = $0 { true } else { false } }.count
        }
        #expect(opened == 100 && mostOpen == 10)
        #expect(p.server.refusedStreams == 0 && p.server.failure == nil && p.client.failure == nil)
    }

    @Test func refusedStreamIsRetrySafe() throws {
        let p = try ClientPair()
        let id = try p.client.request(method: "POST", authority: "a", path: "/", endStream: true)
        p.pump()
        p.server.reset(id, code: HTTP2ErrorCode.refusedStream)
        p.pump()
        let e = p.take()
        #expect(e == [.reset(stream: id, code: HTTP2ErrorCode.refusedStream), .streamClosed(stream: id, code: HTTP2ErrorCode.refusedStream)])
        #expect(e.allSatisfy { $0.isRetrySafe })
    }

    @Test func goawayWithALowerLastStreamRefusesTheStreamsAbove() throws {
        let p = try ClientPair()
        let ids = try (0..<3).map { _ in try p.client.request(method: "GET", authority: "a", path: "/", endStream: true) }
        p.pump()
        #expect(ids == [1, 3, 5] && requests(p.serverEvents).count == 3)
        try p.server.goaway(lastStream: 1)
        // A request submitted before the GOAWAY arrives but not yet written: never sent.
        let late = try p.client.request(method: "GET", authority: "a", path: "/late", endStream: true)
        _ = feedClient(p.client, drain(p.server))
        _ = drainClient(p.client)
        let e = drainClientEvents(p.client)
        #expect(e.first == .goaway(code: 0, lastStream: 1))
        for id in [3, 5, late] {
            #expect(e.contains(.streamClosed(stream: id, code: HTTP2ErrorCode.refusedStream)), "stream \(id): \(e)")
            #expect(p.client.neverProcessed(id))
        }
        #expect(e.filter { $0.isRetrySafe }.count == 3 && !p.client.neverProcessed(1) && !p.client.canOpenStream)
        // Stream 1 still finishes.
        try p.server.respond(1, status: 200, endStream: true)
        p.pump()
        #expect(responses(p.clientEvents).map(\.0) == [1] && p.clientEvents.last == .streamClosed(stream: 1, code: 0))
        #expect(!p.client.wantsRead && !p.client.wantsWrite)
    }

    @Test func peerResetIsNotRetrySafe() throws {
        let p = try ClientPair()
        let id = try p.client.request(method: "GET", authority: "a", path: "/", endStream: true)
        p.pump()
        try p.server.respond(id, status: 200, endStream: false)
        p.pump()
        p.server.reset(id, code: HTTP2ErrorCode.internalError)
        p.pump()
        let e = p.take()
        #expect(e.suffix(2) == [.reset(stream: id, code: HTTP2ErrorCode.internalError), .streamClosed(stream: id, code: HTTP2ErrorCode.internalError)])
        #expect(!e.contains { $0.isRetrySafe })
    }

    @Test func ourGoawayStopsNewStreams() throws {
        let p = try ClientPair()
        let id = try p.client.request(method: "GET", authority: "a", path: "/", endStream: true)
        p.pump()
        try p.client.goaway()
        #expect(!p.client.canOpenStream)
        p.pump()
        #expect(p.serverEvents.contains(.goaway(code: 0, lastStream: 0)))
        try p.server.respond(id, status: 200, endStream: true)
        p.pump()
        #expect(p.clientEvents.last == .streamClosed(stream: id, code: 0) && !p.client.wantsRead)
    }
}
