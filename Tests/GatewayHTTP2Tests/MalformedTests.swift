// RFC 9113 §8 malformed requests (stream reset with PROTOCOL_ERROR, the connection serves the
// next stream), header-list limits (431 on the stream; past 4x the connection ends), and
// segmentation: byte-by-byte feeding gives the events whole feeding gives.
import Testing
@testable import GatewayHTTP2

let post = [(":method", "POST"), (":scheme", "https"), (":authority", "a"), (":path", "/")]

@Suite struct Malformed {
    static let cases: [(String, [(String, String)])] = [
        ("missing :method", [(":scheme", "https"), (":authority", "a"), (":path", "/")]),
        ("missing :scheme", [(":method", "GET"), (":authority", "a"), (":path", "/")]),
        ("missing :path", [(":method", "GET"), (":scheme", "https"), (":authority", "a")]),
        ("repeated :path", getFields + [(":path", "/again")]),
        ("unknown pseudo-header", getFields + [(":foo", "x")]),
        ("pseudo-header after a regular field", [(":method", "GET"), ("accept", "*/*"), (":scheme", "https"), (":path", "/")]),
        ("connection", getFields + [("connection", "close")]),
        ("transfer-encoding", getFields + [("transfer-encoding", "chunked")]),
        ("upgrade", getFields + [("upgrade", "h2c")]),
        ("keep-alive", getFields + [("keep-alive", "timeout=5")]),
        ("proxy-connection", getFields + [("proxy-connection", "keep-alive")]),
        ("te other than trailers", getFields + [("te", "gzip")]),
        ("upper-case name", getFields + [("X-Foo", "1")]),
        ("newline in a value", getFields + [("x-foo", "a\nb")]),
        ("space in a name", getFields + [("x foo", "1")]),
    ]

    @Test(arguments: cases.indices)
    func resetWithProtocolErrorAndConnectionGoesOn(_ i: Int) throws {
        let (name, fields) = Self.cases[i]
        let s = try openSession()
        let r = feed(s, headersFrame(1, fields) + headersFrame(3, getFields))
        #expect(r.error == nil, "\(name)")
        #expect(r.frames.contains { $0.type == FrameType.rstStream.rawValue && $0.stream == 1 && $0.u32 == 0x1 }, "\(name)")
        #expect(r.events.first == .malformed(stream: 1, reason: "malformed header")
                || r.events.first == .malformed(stream: 1, reason: "malformed message"), "\(name): \(r.events)")
        #expect(requests(r.events).map(\.0) == [3], "\(name): the next stream is served")
        #expect(s.failure == nil && s.wantsRead, "\(name)")
    }

    @Test(arguments: [(5, [UInt8]("abc".utf8)), (1, [UInt8]("abc".utf8))])
    func contentLengthDisagreesWithData(_ length: Int, _ body: [UInt8]) throws {
        let s = try openSession()
        let r = feed(s, headersFrame(1, post + [("content-length", "\(length)")], endStream: false)
                     + frame(.data, flags: 0x1, stream: 1, body) + headersFrame(3, getFields))
        #expect(requests(r.events).map(\.0) == [1, 3])
        #expect(r.events.contains(.malformed(stream: 1, reason: "malformed message")))
        #expect(!r.events.contains(.endStream(stream: 1)))
        #expect(r.frames.contains { $0.type == FrameType.rstStream.rawValue && $0.stream == 1 && $0.u32 == 0x1 })
        #expect(s.failure == nil)
    }

    @Test func headerListOverTheLimitIs431OnTheStream() throws {
        var config = HTTP2Config()
        config.maxHeaderListSize = 1000
        let s = try openSession(config)
        let r = feed(s, headersFrame(1, getFields + [("x-big", String(repeating: "v", count: 1200))]) + headersFrame(3, getFields))
        #expect(r.error == nil)
        #expect(r.events.first == .headersTooLarge(stream: 1) && requests(r.events).map(\.0) == [3])
        try s.respond(1, status: 431, endStream: true)
        let after = parseFrames(drain(s))
        #expect(after.contains { $0.type == FrameType.headers.rawValue && $0.stream == 1 && $0.flags & 1 == 1 })
        #expect(s.failure == nil && s.wantsRead)
    }

    @Test func tooManyFieldsIs431() throws {
        var config = HTTP2Config()
        config.maxHeaders = 10
        let s = try openSession(config)
        let r = feed(s, headersFrame(1, getFields + (0..<11).map { ("x-\($0)", "1") }))
        #expect(r.events == [.headersTooLarge(stream: 1)])
    }

    /// An HPACK bomb: one 900-byte field indexed once, then referenced by one byte each. The
    /// compressed block stays small; the decoded list passes 4x the limit: connection error.
    @Test func decodedListFarOverTheLimitEndsTheConnection() throws {
        var config = HTTP2Config()
        config.maxHeaderListSize = 1000
        let s = try openSession(config)
        let big = String(repeating: "b", count: 900)
        var block = hpack(getFields) + [0x40] + hpackInt(5, prefix: 7) + Array("x-big".utf8) + hpackInt(900, prefix: 7) + Array(big.utf8)
        block += [UInt8](repeating: 0x80 | 62, count: 10)
        let r = feed(s, frame(.headers, flags: 0x5, stream: 1, block))
        #expect(r.error == HTTP2Error("header list too large", libraryCode: -902))
        let g = try #require(r.frames.last)
        #expect(g.type == FrameType.goaway.rawValue && g.goaway.code == 0xb)
        #expect(!s.wantsRead)
    }

    @Test func byteByByteGivesTheSameEvents() throws {
        // A transcript from the real client: a GET, a POST with body and trailers, a reset stream.
        let c = TestClient()
        c.request()
        c.request(post + [("content-type", "text/plain")], body: Array(repeating: 7, count: 3000), trailers: [("x-t", "1")])
        let third = c.request(post, body: Array(repeating: 1, count: 10))
        var bytes = c.send()
        bytes += frame(.rstStream, stream: third, be32(0x8))

        func run(_ pieces: [[UInt8]]) throws -> [String] {
            let s = try HTTP2ServerSession()
            var events: [HTTP2Event] = [], body: [Int32: Int] = [:]
            for p in pieces {
                #expect(receive(s, p) == nil)
                _ = drain(s)
                for e in drainEvents(s) {
                    if case .data(let id, let n) = e { body[id, default: 0] += n } else { events.append(e) }
                }
            }
            return events.map { "\($0)" } + body.sorted { $0.key < $1.key }.map { "body \($0.key) \($0.value)" }
        }
        let whole = try run([bytes])
        #expect(whole.count > 8)
        #expect(try run(bytes.map { [$0] }) == whole)
    }
}
