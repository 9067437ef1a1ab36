// Responses a well-behaved server library will not produce, written as raw frames to our
// client session: RFC 9113 §8 malformed responses reset the stream (PROTOCOL_ERROR, one
// `.malformed` event) and the connection goes on; interim 1xx heads come before the response.
import Testing
@testable import GatewayHTTP2

/// A client with one GET on stream 1 written out, then `bytes` from the "server" after its SETTINGS.
func rawClient(_ bytes: [UInt8], config: HTTP2Config = HTTP2Config()) throws -> (HTTP2ClientSession, [Frame], [HTTP2ClientEvent], HTTP2Error?) {
    let c = try HTTP2ClientSession(config: config)
    _ = try c.request(method: "GET", authority: "a", path: "/", endStream: true)
    _ = drainClient(c)
    let e = feedClient(c, settingsFrame() + bytes)
    return (c, parseFrames(drainClient(c)), drainClientEvents(c), e)
}

@Suite struct ClientMalformed {
    static let cases: [(String, [UInt8])] = [
        ("upper-case name", headersFrame(1, [(":status", "200"), ("X-Foo", "1")])),
        ("connection", headersFrame(1, [(":status", "200"), ("connection", "close")])),
        ("missing :status", headersFrame(1, [("content-type", "text/plain")])),
        ("request pseudo-header", headersFrame(1, [(":status", "200"), (":path", "/")])),
        ("status not three digits", headersFrame(1, [(":status", "20")])),
        ("newline in a value", headersFrame(1, [(":status", "200"), ("x-foo", "a\nb")])),
        ("content-length against DATA", headersFrame(1, [(":status", "200"), ("content-length", "10")], endStream: false)
            + frame(.data, flags: 0x1, stream: 1, [1, 2, 3])),
    ]

    @Test(arguments: cases.indices)
    func resetWithProtocolError(_ i: Int) throws {
        let (name, bytes) = Self.cases[i]
        let (c, frames, events, error) = try rawClient(bytes)
        #expect(error == nil && c.failure == nil, "\(name)")
        #expect(frames.contains { $0.type == FrameType.rstStream.rawValue && $0.stream == 1 && $0.u32 == 0x1 }, "\(name): \(frames)")
        #expect(events.filter { if case .malformed(1, _) = $0 { true } else { false } }.count == 1, "\(name): \(events)")
        #expect(responses(events).isEmpty || name == "content-length against DATA", "\(name): no head reaches the caller")
        #expect(events.last == .streamClosed(stream: 1, code: HTTP2ErrorCode.protocolError), "\(name): \(events)")
        #expect(c.canOpenStream && c.wantsRead, "\(name): the connection goes on")
    }

    @Test func interimResponsesComeFirst() throws {
        let (_, _, events, error) = try rawClient(headersFrame(1, [(":status", "103"), ("link", "</a.css>")], endStream: false)
                                                  + headersFrame(1, [(":status", "200"), ("x", "1")]))
        #expect(error == nil)
        #expect(events == [.informational(stream: 1, status: 103, fields: fields([("link", "</a.css>")])),
                           .response(stream: 1, status: 200, fields: fields([("x", "1")])), .endStream(stream: 1),
                           .streamClosed(stream: 1, code: 0)])
    }

    @Test func aResponseHeadOverTheLimitResetsTheStream() throws {
        var config = HTTP2Config()
        config.maxHeaderListSize = 200
        let big = String(repeating: "v", count: 300)
        let (c, frames, events, error) = try rawClient(headersFrame(1, [(":status", "200"), ("x-big", big)]), config: config)
        #expect(error == nil && c.failure == nil)
        #expect(events.first == .malformed(stream: 1, reason: "header list too large"))
        #expect(frames.contains { $0.type == FrameType.rstStream.rawValue && $0.stream == 1 })
    }

    @Test func aProtocolViolationEndsTheConnectionWithAReason() throws {
        // WINDOW_UPDATE with increment 0 on the connection: a connection error (RFC 9113 §6.9).
        let (c, frames, events, _) = try rawClient(frame(.windowUpdate, stream: 0, be32(0)))
        #expect(frames.contains { $0.type == FrameType.goaway.rawValue && $0.goaway.code == 0x1 })
        #expect(events.contains(.connectionError(HTTP2Error("protocol error"))) && c.failure == HTTP2Error("protocol error"), "\(events)")
        #expect(!c.canOpenStream)
    }
}
