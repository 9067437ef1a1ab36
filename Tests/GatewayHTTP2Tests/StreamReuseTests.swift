// A closed stream's object serves the session's next stream (HTTP2Session.makeStream/recycle):
// the reused one starts clean — no bytes, fields, trailers or flags of the stream before — and
// a response tail the client keeps after the close is never reused under it. A client connection
// keeps objects only while another stream is open (the `/keep` requests below): its last stream
// going idle is freed at once. A backend connection keeps it too, for its next batch.
import Testing
@testable import GatewayHTTP2

@Suite struct StreamReuse {
    @Test func reusedServerStreamStartsClean() throws {
        let p = try ClientPair()
        _ = try p.client.request(method: "GET", authority: "a", path: "/keep", endStream: true)   // held open
        // Stream 3: a body the server never consumes, trailers pending, then the client resets it.
        let first = try p.client.request(method: "POST", authority: "a", path: "/one",
                                         headers: fields([("x-one", "1"), ("content-type", "text/plain")]), endStream: false)
        try clientSendData(p.client, first, Array("abc".utf8), endStream: false)
        p.pump()
        #expect(p.server.receivedBody(first).count == 3)
        try p.server.respond(first, status: 200, endStream: false)
        try sendData(p.server, first, Array("unsent".utf8), endStream: false)
        p.server.streams[first]?.pendingTrailers = fields([("grpc-status", "0")])
        p.client.reset(first, code: HTTP2ErrorCode.cancel)
        p.pump()
        #expect(p.server.openStreams == 1 && p.server.spareStreams.count == 1)
        let spare = try #require(p.server.spareStreams.first)
        #expect(spare.incoming.isEmpty && spare.outgoing.isEmpty && spare.pendingTrailers == nil)
        let storage = spare.head.fields.bytes.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }

        // Stream 5 gets the same object, with nothing of stream 3 in it.
        p.serverEvents = []
        let second = try p.client.request(method: "GET", authority: "a", path: "/two", headers: fields([("x-two", "2")]), endStream: true)
        p.pump()
        let st = try #require(p.server.streams[second])
        #expect(st === spare && st.id == second && p.server.spareStreams.isEmpty)
        #expect(st.delivered && !st.discarding && !st.tooLarge && !st.hasProvider && !st.outgoingEnd && !st.deferred)
        #expect(st.trailers == nil && st.pendingTrailers == nil && st.incoming.isEmpty && st.outgoing.isEmpty)
        let (sid, head) = try #require(requests(p.serverEvents).first)
        #expect(sid == second && text(head[head.path!]) == "/two" && pairs(head.fields) == ["x-two=2"])
        #expect(text(head[head.method]) == "GET" && text(head[head.authority!]) == "a" && head.connectProtocol == nil)
        #expect(head.fields.bytes.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) } == storage,
                "the first head's storage, let go by every holder, took the second head")
        #expect(p.serverEvents.contains(.endStream(stream: second)))

        // And it works as a new stream: a response with a body and trailers goes out whole.
        try p.server.respond(second, status: 200, endStream: false)
        try sendData(p.server, second, Array("hi".utf8), endStream: false)
        try p.server.sendTrailers(second, fields([("x-t", "1")]))
        p.pump()
        #expect(text(p.client.receivedBody(second)) == "hi")
        #expect(p.clientEvents.contains { if case .trailers(second, let t) = $0 { pairs(t) == ["x-t=1"] } else { false } })
    }

    @Test func clientTailKeptAndNotReused() throws {
        let p = try ClientPair()
        _ = try p.client.request(method: "GET", authority: "a", path: "/keep", endStream: true)   // held open
        let first = try p.client.request(method: "GET", authority: "a", path: "/one", endStream: true)
        p.pump()
        try p.server.respond(first, status: 200, endStream: false)
        try sendData(p.server, first, Array("tail".utf8), endStream: true)
        p.pump()
        // Closed with its body unconsumed: kept readable, not made a spare.
        #expect(p.client.openStreams == 1 && p.client.spareStreams.isEmpty)
        let second = try p.client.request(method: "GET", authority: "a", path: "/two", endStream: true)
        p.pump()
        try p.server.respond(second, status: 204, endStream: true)
        p.pump()
        #expect(text(p.client.receivedBody(first)) == "tail")
        #expect(p.client.spareStreams.count == 1, "stream 5 closed with nothing left: its object is kept")
        p.client.consume(first, 4)
        #expect(p.client.receivedBody(first).isEmpty && p.client.spareStreams.count == 2, "the tail read, its object is kept too")
        // The spare serves the next request as a clean stream.
        let third = try p.client.request(method: "GET", authority: "a", path: "/three", endStream: true)
        #expect(p.client.spareStreams.count == 1 && p.client.streams[third]?.id == third && p.client.receivedBody(third).isEmpty)
        p.pump()
        try p.server.respond(third, status: 200, endStream: false)
        try sendData(p.server, third, Array("3".utf8), endStream: true)
        p.pump()
        #expect(text(p.client.receivedBody(third)) == "3")
    }

    @Test func trailersTakeTheLastTrailersStorage() throws {
        let p = try ClientPair()
        func exchange(_ status: String) throws -> (HTTP2Fields, UInt?) {
            let id = try p.client.request(method: "POST", authority: "a", path: "/pkg.Svc/Call", endStream: true)
            p.pump()
            try p.server.respond(id, status: 200, endStream: false)
            try sendData(p.server, id, Array("msg".utf8), endStream: false)
            try p.server.sendTrailers(id, fields([("grpc-status", status), ("grpc-message", "m")]))
            p.pump()
            #expect(text(p.client.receivedBody(id)) == "msg")
            p.client.consume(id, 3)
            var got: HTTP2Fields?
            for case .trailers(id, let t) in p.clientEvents { got = t }
            p.clientEvents = []
            let t = try #require(got)
            return (t, t.bytes.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) })
        }
        let (first, storage) = try exchange("0")
        #expect(pairs(first) == ["grpc-status=0", "grpc-message=m"])
        // The backend side keeps the stream object, and the trailers' storage with it; once the
        // caller let go of the first trailers, the second ones are decoded into the same memory.
        #expect(p.client.spareStreams.count == 1)
        _ = consume first
        let (second, again) = try exchange("5")
        #expect(pairs(second) == ["grpc-status=5", "grpc-message=m"])
        #expect(again == storage, "the first trailers' storage took the second trailers")
    }

    @Test func theLastStreamOfAClientConnectionIsNotKept() throws {
        let p = try ClientPair()
        let id = try p.client.request(method: "GET", authority: "a", path: "/", endStream: true)
        p.pump()
        try p.server.respond(id, status: 204, endStream: true)
        p.pump()
        #expect(p.server.openStreams == 0 && p.server.spareStreams.isEmpty)
        #expect(p.client.openStreams == 0 && p.client.spareStreams.count == 1, "the backend side keeps it")
        let next = try p.client.request(method: "GET", authority: "a", path: "/", endStream: true)
        #expect(p.client.spareStreams.isEmpty && p.client.streams[next]?.id == next)
    }

    @Test func idleSweepDropsSpares() throws {
        let p = try ClientPair()
        let keep = try p.client.request(method: "GET", authority: "a", path: "/keep", endStream: true)
        let id = try p.client.request(method: "GET", authority: "a", path: "/", endStream: true)
        p.pump()
        try p.server.respond(id, status: 204, endStream: true)
        p.pump()
        try p.server.respond(keep, status: 204, endStream: true)   // the last one: freed, not kept
        p.pump()
        #expect(p.server.openStreams == 0 && p.server.spareStreams.count == 1 && p.client.spareStreams.count == 2)
        _ = p.server.releaseIdleMemory()
        _ = p.server.releaseIdleMemory()
        #expect(p.server.spareStreams.isEmpty)
        // The backend side (a `protocol h2` connection, swept by BackendPool.releaseIdleHTTP2Memory).
        _ = p.client.releaseIdleMemory()
        _ = p.client.releaseIdleMemory()
        #expect(p.client.spareStreams.isEmpty)
    }
}
