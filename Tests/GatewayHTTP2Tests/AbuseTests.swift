// The floods of SPEC §12 "Abuse", each closing the connection with GOAWAY and a stable reason;
// what nghttp2 1.52.0-1+deb12u3 does by itself is what these measure.
import Testing
@testable import GatewayHTTP2

func lastGoaway(_ frames: [Frame]) -> (last: Int32, code: UInt32)? {
    frames.last { $0.type == FrameType.goaway.rawValue }?.goaway
}

@Suite struct Abuse {
    /// CVE-2023-44487: streams opened and reset at once. Our token bucket (burst 1,000, 33/s) is
    /// checked before nghttp2's (which would queue GOAWAY INTERNAL_ERROR): the 1,001st reset fails
    /// mem_recv with GOAWAY ENHANCE_YOUR_CALM, named `rapid reset`.
    @Test func rapidResetFlood() throws {
        let s = try openSession()
        var flood: [UInt8] = []
        for i in 0..<1100 {
            let id = Int32(1 + 2 * i)
            flood += headersFrame(id, getFields, endStream: false) + frame(.rstStream, stream: id, be32(0x8))
        }
        let r = feed(s, flood)
        #expect(r.error?.reason == "rapid reset")
        let g = try #require(lastGoaway(r.frames))
        // ENHANCE_YOUR_CALM at the 1,001st reset (stream 2,001), or up to 33 resets later for each
        // whole second the feed straddles (the bucket refills on the clock's second boundary).
        #expect(g.code == 0xb && (2001...2001 + 2 * 66).contains(g.last), "\(g)")
        #expect(requests(r.events).count >= 1000)
    }

    @Test func resetsWithinTheBudgetAreFine() throws {
        let s = try openSession()
        var burst: [UInt8] = []
        for i in 0..<900 {
            let id = Int32(1 + 2 * i)
            burst += headersFrame(id, getFields, endStream: false) + frame(.rstStream, stream: id, be32(0x8))
        }
        let r = feed(s, burst)
        #expect(r.error == nil && s.failure == nil && lastGoaway(r.frames) == nil)
    }

    /// CVE-2024-28182: more than 8 CONTINUATION frames. Counted by us per frame (nghttp2's own
    /// count is per read: see legalContinuationsFedByteByByte).
    @Test func continuationFlood() throws {
        let s = try openSession()
        let block = hpack(getFields + [("x-pad", String(repeating: "p", count: 200))])
        let pieces = stride(from: 0, to: block.count, by: 20).map { Array(block[$0..<min(block.count, $0 + 20)]) }
        #expect(pieces.count > 10)
        var bytes = frame(.headers, flags: 0x1, stream: 1, pieces[0])
        for (i, p) in pieces.dropFirst().enumerated() { bytes += frame(.continuation, flags: i == pieces.count - 2 ? 0x4 : 0, stream: 1, p) }
        let r = feed(s, bytes)
        #expect(r.error == HTTP2Error("continuation flood", libraryCode: -902))
        #expect(lastGoaway(r.frames)?.code == 0xb && !s.wantsRead)
    }

    /// Found by the h2frames fuzz target: 1.52.0-1+deb12u3 increments its CONTINUATION count
    /// on every read that ends inside a CONTINUATION frame header, so 7 legal frames fed byte
    /// by byte tripped max_continuations 8. Whatever the segmentation, 8 frames are legal.
    @Test func legalContinuationsFedByteByByte() throws {
        let block = hpack(getFields + [("x-pad", String(repeating: "p", count: 150))])
        let size = (block.count + 8) / 9
        let pieces = stride(from: 0, to: block.count, by: size).map { Array(block[$0..<min(block.count, $0 + size)]) }
        try #require(pieces.count == 9)   // HEADERS + 8 CONTINUATION
        var bytes = frame(.headers, flags: 0x1, stream: 1, pieces[0])
        for (i, p) in pieces.dropFirst().enumerated() { bytes += frame(.continuation, flags: i == pieces.count - 2 ? 0x4 : 0, stream: 1, p) }
        let s = try openSession()
        var events: [HTTP2Event] = []
        for b in bytes {
            #expect(receive(s, [b]) == nil)
            events += drainEvents(s)
        }
        #expect(requests(events).map(\.0) == [1] && s.failure == nil)
    }

    /// The other half of the CVE: few frames, but a compressed block over 4x max_header_size.
    @Test func headerBlockOverFourTimesTheLimit() throws {
        var config = HTTP2Config()
        config.maxHeaderListSize = 1000
        let s = try openSession(config)
        let block = hpack(getFields + [("x-pad", String(repeating: "p", count: 5000))])
        let r = feed(s, frame(.headers, flags: 0x1, stream: 1, Array(block[..<3000])) + frame(.continuation, flags: 0x4, stream: 1, Array(block[3000...])))
        #expect(r.error == HTTP2Error("continuation flood", libraryCode: -902))
        #expect(lastGoaway(r.frames)?.code == 0xb)
    }

    /// SETTINGS and PING ACKs nghttp2 must queue: over max_outbound_ack (1,000) unsent, fatal.
    @Test(arguments: [("settings flood", settingsFrame()), ("ping flood", frame(.ping, stream: 0, [UInt8](repeating: 1, count: 8)))])
    func ackFlood(_ reason: String, _ one: [UInt8]) throws {
        let s = try openSession()
        let r = feed(s, Array((0..<1100).map { _ in one }.joined()))
        #expect(r.error == HTTP2Error(reason, libraryCode: -904))
        #expect(lastGoaway(r.frames)?.code == 0xb)
    }

    /// The same frames answered as they come (the caller writes after each read) are no flood.
    @Test func answeredPingsAreNoFlood() throws {
        let s = try openSession()
        let ping = frame(.ping, stream: 0, [UInt8](repeating: 1, count: 8))
        for _ in 0..<4 {
            let r = feed(s, Array((0..<900).map { _ in ping }.joined()))
            #expect(r.error == nil && r.frames.count == 900)
        }
    }

    @Test func badPreface() throws {
        let s = try HTTP2ServerSession()
        let r = feed(s, Array("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8))
        #expect(r.error == HTTP2Error("bad preface", libraryCode: -903))
        #expect(lastGoaway(r.frames)?.code == 0x1 && !s.wantsRead)
        #expect(receive(s, [0]) == r.error)   // stays failed
    }

    /// nghttp2 1.52 silently ignores this HEADERS (it might be late trailers); without
    /// END_STREAM it cannot be, so we end the connection.
    @Test func streamIdGoingBackwards() throws {
        let s = try openSession()
        let r = feed(s, headersFrame(5, getFields) + headersFrame(3, getFields, endStream: false))
        #expect(r.error == HTTP2Error("stream id backwards", libraryCode: -902))
        #expect(requests(r.events).map(\.0) == [5] && lastGoaway(r.frames)?.code == 0x1)
    }

    @Test func lateTrailersOnAClosedStreamAreIgnored() throws {
        let s = try openSession()
        _ = feed(s, headersFrame(1, getFields, endStream: false))
        s.reset(1, code: HTTP2ErrorCode.cancel)
        let r = feed(s, headersFrame(1, [("x-t", "1")]) + headersFrame(3, getFields))
        #expect(r.error == nil && requests(r.events).map(\.0) == [3] && s.failure == nil)
    }

    @Test func windowOverflowIsFlowControl() throws {
        let s = try openSession()
        let r = feed(s, frame(.windowUpdate, stream: 0, be32(0x7fff_ffff)))
        #expect(r.events.last == .connectionError(HTTP2Error("flow control")))
        #expect(lastGoaway(r.frames)?.code == 0x3)
    }
}
