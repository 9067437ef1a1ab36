import Foundation
import Testing
import TestSupport
@testable import GatewayHTTP

// The HTTP/1 codecs on byte streams captured from curl (requests) and nginx (responses),
// committed under Captures/: fed whole, byte by byte and in random splits, each way must give
// the same parts, and every byte must be accounted for.

func capture(_ name: String) -> [UInt8] {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Captures/\(name)")
    return [UInt8](try! Data(contentsOf: url))
}

/// Parts as text, body runs joined (their boundaries depend on the split, the bytes must not).
struct Transcript: Equatable, CustomStringConvertible {
    var parts: [String] = []
    var bodies: [[UInt8]] = []
    var leftover = 0
    var description: String { parts.joined(separator: " | ") + " (leftover \(leftover))" }

    mutating func body(_ bytes: UnsafeRawBufferPointer) {
        if parts.last != "body" { parts.append("body"); bodies.append([]) }
        bodies[bodies.count - 1] += bytes
    }
}

/// Feeds `stream` in the pieces `cuts` make to a codec step function, the way a connection does:
/// bytes accumulate in a buffer, each part's bytes are consumed, unconsumed bytes wait for more.
func feed(_ stream: [UInt8], cuts: [Int], step: (UnsafeRawBufferPointer, inout Transcript) throws(HTTPParseError) -> (progress: Bool, consumed: Int)) -> Transcript {
    var t = Transcript()
    var buffer: [UInt8] = []
    var start = 0
    for end in cuts + [stream.count] where end > start {
        buffer += stream[start..<end]
        start = end
        var progress = true
        while progress {
            let result: Result<(progress: Bool, consumed: Int), HTTPParseError> = buffer.withUnsafeBytes { b in
                do throws(HTTPParseError) { return .success(try step(b, &t)) } catch { return .failure(error) }
            }
            switch result {
            case .failure(let error): t.parts.append("error \(error.status)"); return t
            case .success(let r): buffer.removeFirst(r.consumed); progress = r.progress
            }
        }
    }
    t.leftover = buffer.count
    return t
}

func requestTranscript(_ stream: [UInt8], cuts: [Int]) -> Transcript {
    var codec = HTTP1ServerCodec(limits: limits)
    return feed(stream, cuts: cuts) { b, t throws(HTTPParseError) in
        let (part, used) = try codec.next(b)
        switch part {
        case .head(let h)?: t.parts.append("head " + String(decoding: b[h.method], as: UTF8.self) + " " + String(decoding: b[h.target], as: UTF8.self))
        case .body(let r)?: t.body(UnsafeRawBufferPointer(rebasing: b[r]))
        case .end?: t.parts.append("end"); codec.reset()
        case nil: return (used > 0, used)
        }
        return (true, used)
    }
}

func responseTranscript(_ stream: [UInt8], cuts: [Int], toHEAD: Bool = false, upgrade: Bool = false) -> Transcript {
    var codec = HTTP1ClientCodec()
    codec.expectResponse(toHEAD: toHEAD, upgradeRequested: upgrade)
    var t = feed(stream, cuts: cuts) { b, t throws(HTTPParseError) in
        let (part, used) = try codec.next(b)
        switch part {
        case .interim(let h)?: t.parts.append("interim \(h.status)")
        case .head(let h)?: t.parts.append("head \(h.status)")
        case .switched(let h)?: t.parts.append("switched \(h.status)"); return (false, used)
        case .body(let r)?: t.body(UnsafeRawBufferPointer(rebasing: b[r]))
        case .end?: t.parts.append("end"); codec.expectResponse(toHEAD: toHEAD, upgradeRequested: upgrade)
        case nil: return (used > 0, used)
        }
        return (true, used)
    }
    if codec.inputEnded() != nil { t.parts.append("end at close") }
    return t
}

/// Whole, byte by byte, and 200 random splits (seeded: a failure names its seed) agree.
func expectSplitIndependent(_ stream: [UInt8], _ transcript: ([UInt8], [Int]) -> Transcript,
                            sourceLocation: SourceLocation = #_sourceLocation) -> Transcript {
    let whole = transcript(stream, [])
    #expect(transcript(stream, Array(1..<stream.count)) == whole, "byte by byte", sourceLocation: sourceLocation)
    for seed in UInt64(1)...200 {
        var rng = SplitMix(seed: seed)
        let cuts = (0..<Int(rng.next() % 8)).map { _ in Int(rng.next() % UInt64(stream.count)) }.sorted()
        let split = transcript(stream, cuts)
        #expect(split == whole, "seed \(seed), cuts \(cuts)", sourceLocation: sourceLocation)
        if split != whole { break }
    }
    return whole
}

@Suite struct ServerCodecTests {
    @Test func curlGetIsAHeadAndAnEnd() {
        let t = expectSplitIndependent(capture("curl-get.bin"), requestTranscript)
        #expect(t.parts == ["head GET /upload?x=1", "end"])
        #expect(t.leftover == 0)
    }

    @Test func curlPostWithLengthGivesItsBody() {
        let t = expectSplitIndependent(capture("curl-post-length.bin"), requestTranscript)
        #expect(t.parts == ["head POST /upload?x=1", "body", "end"])
        #expect(t.bodies == [Array("a=1&b=2".utf8)])
    }

    @Test func curlChunkedUploadIsDechunked() {
        let t = expectSplitIndependent(capture("curl-post-chunked.bin"), requestTranscript)
        #expect(t.parts == ["head PUT /upload?x=1", "body", "end"])
        #expect(t.bodies == [Array("hello chunked body\n".utf8)])
        #expect(t.leftover == 0)
    }

    @Test func pipelinedRequestsComeOutInOrder() {
        let stream = capture("curl-post-chunked.bin") + capture("curl-get.bin") + capture("curl-post-length.bin")
        let t = expectSplitIndependent(stream, requestTranscript)
        #expect(t.parts == ["head PUT /upload?x=1", "body", "end", "head GET /upload?x=1", "end",
                            "head POST /upload?x=1", "body", "end"])
    }

    @Test func aBadChunkIsAnErrorWhereverTheSplitFalls() {
        let stream = Array("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcdefg\r\n0\r\n\r\n".utf8)
        let t = expectSplitIndependent(stream, requestTranscript)
        #expect(t.parts == ["head POST /", "body", "error 400"])
    }
}

@Suite struct ClientCodecTests {
    @Test func nginxGzipChunkedResponseIsDechunked() {
        let t = expectSplitIndependent(capture("nginx-chunked-gzip.bin"), { responseTranscript($0, cuts: $1) })
        #expect(t.parts == ["head 200", "body", "end"])
        #expect(t.bodies[0].prefix(2) == [0x1F, 0x8B])   // the gzip member, chunk framing gone
        #expect(t.leftover == 0)
    }

    @Test func pipelinedLengthDelimitedResponses() {
        let t = expectSplitIndependent(capture("nginx-length-pipelined.bin"), { responseTranscript($0, cuts: $1) })
        #expect(t.parts == ["head 200", "body", "end", "head 301", "body", "end"])
        #expect(t.bodies[0] == Array("ok\n".utf8))
        #expect(t.leftover == 0)
    }

    @Test func http10ResponseWithLength() {
        let t = expectSplitIndependent(capture("nginx-http10.bin"), { responseTranscript($0, cuts: $1) })
        #expect(t.parts == ["head 200", "body", "end"])
    }

    @Test func interimResponsesComeBeforeTheFinalHead() {
        let stream = Array("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n".utf8) + capture("nginx-http10.bin")
        let t = expectSplitIndependent(stream, { responseTranscript($0, cuts: $1) })
        #expect(t.parts == ["interim 100", "interim 103", "head 200", "body", "end"])
    }

    @Test func aCloseDelimitedBodyEndsAtClose() {
        let stream = Array("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end".utf8)
        let t = expectSplitIndependent(stream, { responseTranscript($0, cuts: $1) })
        #expect(t.parts == ["head 200", "body", "end at close"])
        #expect(t.bodies == [Array("until the end".utf8)])
    }

    @Test func aHEADResponseHasNoBody() {
        let t = expectSplitIndependent(Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".utf8), { responseTranscript($0, cuts: $1, toHEAD: true) })
        #expect(t.parts == ["head 200", "end"])
    }

    @Test func switchingProtocolsOnlyWhenAnUpgradeWasAsked() {
        let stream = Array("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\u{81}\u{05}hello".utf8)
        let asked = expectSplitIndependent(stream, { responseTranscript($0, cuts: $1, upgrade: true) })
        #expect(asked.parts == ["switched 101"])
        #expect(asked.leftover == 8)   // the tunnel's first bytes stay for the tunnel
        let unasked = responseTranscript(stream, cuts: [])
        #expect(unasked.parts.first == "interim 101")
    }

    @Test func aResponseCutShortIsNoEnd() {
        var codec = HTTP1ClientCodec()
        codec.expectResponse(toHEAD: false, upgradeRequested: false)
        let bytes = Array("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".utf8)
        _ = bytes.withUnsafeBytes { try? codec.next($0) }
        #expect(codec.inputEnded() == nil)
        #expect(!codec.awaitingHead)
    }
}
