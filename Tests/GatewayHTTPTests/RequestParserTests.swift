import Testing
@testable import GatewayHTTP

let limits = HTTPHeadLimits(maxURISize: 64, maxHeaderSize: 256, maxHeaders: 8)

enum Outcome: Equatable {
    case head(String)   // a summary of the parsed head
    case incomplete
    case error(Int)
}

/// Feeds `text` to a fresh parser in pieces of `step` bytes (growing prefixes, as the proxy's
/// buffer grows) and summarises what came out first.
func parseRequest(_ text: String, step: Int? = nil) -> Outcome {
    let bytes = Array(text.utf8)
    var parser = HTTPRequestParser(limits: limits)
    let step = step ?? bytes.count
    var end = 0
    while end < bytes.count {
        end = min(bytes.count, end + step)
        let r: Result<HTTPRequestHead?, HTTPParseError> = bytes[0..<end].withUnsafeBytes { b in
            do throws(HTTPParseError) { return .success(try parser.parse(b)) } catch { return .failure(error) }
        }
        switch r {
        case .failure(let e): return .error(e.status)
        case .success(.some(let h)): return .head(bytes.withUnsafeBytes { summary(h, $0) })
        case .success(.none): continue
        }
    }
    return .incomplete
}

func summary(_ h: HTTPRequestHead, _ b: UnsafeRawBufferPointer) -> String {
    func s(_ r: Range<Int>) -> String { String(decoding: b[r], as: UTF8.self) }
    // "len=all": the head is the whole input (most cases); else the number.
    let len = h.headLength == b.count ? "all" : String(h.headLength)
    var parts = ["\(s(h.method)) \(s(h.target)) 1.\(h.versionMinor)", "len=\(len)"]
    switch h.framing {
    case .none: parts.append("none")
    case .contentLength(let n): parts.append("cl=\(n)")
    case .chunked: parts.append("chunked")
    case .untilClose: parts.append("close")
    }
    if h.keepAlive { parts.append("ka") }
    if h.expectContinue { parts.append("100") }
    if h.upgrade { parts.append("upgrade") }
    if h.isHEAD { parts.append("HEAD") }
    if let host = h.host { parts.append("host=\(s(host))") }
    parts.append(h.headers.map { "\(s($0.name))=\(s($0.value))" }.joined(separator: "|"))
    return parts.joined(separator: " ")
}

/// The same input must give the same outcome whole, byte by byte and in 7-byte pieces.
func expectEverySplit(_ text: String, _ expected: Outcome, sourceLocation: SourceLocation = #_sourceLocation) {
    for step in [nil, 1, 7] as [Int?] {
        #expect(parseRequest(text, step: step) == expected, "step \(step.map(String.init) ?? "whole")", sourceLocation: sourceLocation)
    }
}

@Suite struct ValidRequests {
    @Test func simpleGet() {
        let t = "GET /a?b=c HTTP/1.1\r\nHost: api.example.test\r\nAccept:  */*  \r\n\r\n"
        expectEverySplit(t, .head("GET /a?b=c 1.1 len=all none ka host=api.example.test Host=api.example.test|Accept=*/*"))
    }

    @Test func contentLengthBodyIsNotPartOfTheHead() {
        let head = "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n"
        expectEverySplit(head + "hello", .head("POST /u 1.1 len=\(head.utf8.count) cl=5 ka host=h Host=h|Content-Length=5"))
    }

    @Test func chunkedAndZeroLength() {
        expectEverySplit("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
                         .head("POST / 1.1 len=all chunked ka host=h Host=h|Transfer-Encoding=chunked"))
        expectEverySplit("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
                         .head("POST / 1.1 len=all none ka host=h Host=h|Content-Length=0"))
    }

    @Test func identicalDuplicateContentLengthIsOneLength() {
        expectEverySplit("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
                         .head("PUT / 1.1 len=all cl=3 ka host=h Host=h|Content-Length=3|Content-Length=3"))
    }

    @Test func keepAliveRules() throws {
        expectEverySplit("GET / HTTP/1.0\r\n\r\n", .head("GET / 1.0 len=all none "))
        expectEverySplit("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", .head("GET / 1.0 len=all none ka Connection=Keep-Alive"))
        expectEverySplit("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n",
                         .head("GET / 1.1 len=all none host=h Host=h|Connection=foo, close"))
        // One word: decided without the list walk, the same verdicts.
        expectEverySplit("GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n",
                         .head("GET / 1.1 len=all none host=h Host=h|Connection=Close"))
        expectEverySplit("GET / HTTP/1.0\r\nConnection: keep-alives\r\n\r\n", .head("GET / 1.0 len=all none Connection=keep-alives"))
        #expect(try parseResponse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n").get()?.keepAlive == true)
        #expect(try parseResponse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n").get()?.keepAlive == false)
    }

    @Test func expectUpgradeHeadAndAbsoluteForm() {
        expectEverySplit("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
                         .head("POST / 1.1 len=all cl=1 ka 100 host=h Host=h|Expect=100-Continue|Content-Length=1"))
        expectEverySplit("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
                         .head("GET /ws 1.1 len=all none ka upgrade host=h Host=h|Connection=Upgrade|Upgrade=websocket"))
        expectEverySplit("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", .head("HEAD / 1.1 len=all none ka HEAD host=h Host=h"))
        expectEverySplit("GET https://a.test/x HTTP/1.1\r\nHost: h\r\n\r\n", .head("GET https://a.test/x 1.1 len=all none ka host=h Host=h"))
    }

    @Test func emptyLinesBeforeTheRequestLineAreSkipped() {
        expectEverySplit("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", .head("GET / 1.1 len=all none ka host=h Host=h"))
    }

    @Test func incompleteHeadWaits() {
        #expect(parseRequest("GET / HTTP/1.1\r\nHost: h\r\n") == .incomplete)
        #expect(parseRequest("GET / HTT") == .incomplete)
    }

    @Test func pipelinedRequestsParseOneAfterTheOther() throws {
        let first = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
        let bytes = Array((first + "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n").utf8)
        var parser = HTTPRequestParser(limits: limits)
        let h1 = try bytes.withUnsafeBytes { b throws(HTTPParseError) in try parser.parse(b) }
        #expect(h1?.headLength == first.utf8.count)
        parser.reset()
        let rest = Array(bytes[first.utf8.count...])
        let h2 = try rest.withUnsafeBytes { b throws(HTTPParseError) in try parser.parse(b) }
        let s2 = h2.map { h in rest.withUnsafeBytes { summary(h, $0) } }
        #expect(s2?.hasPrefix("GET /2 1.1") == true)
    }
}

@Suite struct Smuggling {
    /// Each vector of SPEC §5, whole and fragmented: 400, never a head.
    @Test(arguments: [
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5a\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\n\tX-A: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX-A\t: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX(A): a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\n: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\rX-A: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\u{0}b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\u{7f}\r\n\r\n",
        "GET / HTTP/1.1\nHost: h\n\n",
        "GET / HTTP/1.1\r\nHost: h\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
        "GET /\u{1}x HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET x HTTP/1.1\r\nHost: h\r\n\r\n",
        "G@T / HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET / HTTX/1.1\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.x\r\nHost: h\r\n\r\n",
    ])
    func rejectedWith400(_ text: String) {
        expectEverySplit(text, .error(400))
    }

    @Test func otherCodingsBeforeChunkedAreNotImplemented() {
        expectEverySplit("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", .error(501))
    }

    @Test func unsupportedVersionsAndConnect() {
        expectEverySplit("GET / HTTP/2.0\r\nHost: h\r\n\r\n", .error(505))
        expectEverySplit("GET / HTTP/1.2\r\nHost: h\r\n\r\n", .error(505))
        expectEverySplit("CONNECT a.test:443 HTTP/1.1\r\nHost: a.test\r\n\r\n", .error(405))
    }
}

@Suite struct Limits {
    let longTarget = "/" + String(repeating: "a", count: 64)

    @Test func targetOverMaxURISizeIs414() {
        expectEverySplit("GET \(longTarget) HTTP/1.1\r\nHost: h\r\n\r\n", .error(414))
        #expect(parseRequest("GET \(longTarget)") == .error(414)) // before the line even ends
        #expect(parseRequest("GET /" + String(repeating: "a", count: 63) + " HTTP/1.1\r\nHost: h\r\n\r\n") != .error(414))
    }

    @Test func longTargetWins414OverLargeHead() {
        let big = "X-Big: " + String(repeating: "b", count: 300) + "\r\n"
        expectEverySplit("GET \(longTarget) HTTP/1.1\r\nHost: h\r\n\(big)\r\n", .error(414))
    }

    @Test func headOverMaxHeaderSizeIs431() {
        let big = "X-Big: " + String(repeating: "b", count: 300) + "\r\n"
        expectEverySplit("GET / HTTP/1.1\r\nHost: h\r\n\(big)\r\n", .error(431))
        #expect(parseRequest("GET / HTTP/1.1\r\nHost: h\r\n\(big)") == .error(431)) // never completes
    }

    @Test func moreThanMaxHeadersIs431() {
        let eight = (1...7).map { "X-\($0): v\r\n" }.joined()
        #expect(parseRequest("GET / HTTP/1.1\r\nHost: h\r\n\(eight)\r\n") != .error(431))
        expectEverySplit("GET / HTTP/1.1\r\nHost: h\r\n\(eight)X-9: v\r\n\r\n", .error(431))
    }
}

@Suite struct Helpers {
    @Test func tokensAndCaseInsensitiveCompare() {
        let v = Array("Keep-Alive ,  UPGRADE,,close".utf8)
        v.withUnsafeBytes { b in
            #expect(headerHasToken(b, 0..<b.count, "upgrade"))
            #expect(headerHasToken(b, 0..<b.count, "keep-alive"))
            #expect(headerHasToken(b, 0..<b.count, "close"))
            #expect(!headerHasToken(b, 0..<b.count, "clos"))
            #expect(asciiEqualsIgnoringCase(b, 0..<10, "keep-alive"))
            #expect(!asciiEqualsIgnoringCase(b, 0..<9, "keep-alive"))
        }
    }
}

@Suite struct ByteClassTests {
    /// The token bit words are exactly RFC 9110's tchar, for all 256 byte values.
    @Test func tokenBytesAreTchar() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for c in 0...255 { #expect(ASCII.isToken(UInt8(c)) == tchar.contains(UInt8(c)), "byte \(c)") }
    }

    /// The word-at-a-time value check agrees with the byte rule for every byte value at every
    /// position of a run (two whole words and a tail), and next to a tab or obs-text.
    @Test func fieldValueWordsAgreeWithTheByteRule() {
        for neighbour: UInt8 in [0x61, 0x09, 0xFF] {
            for c in 0...255 {
                for at in 0..<19 {
                    var run = [UInt8](repeating: neighbour, count: 19)
                    run[at] = UInt8(c)
                    let ok = run.withUnsafeBytes { ASCII.allFieldBytes($0, 0..<19) }
                    #expect(ok == run.allSatisfy(ASCII.isFieldByte), "byte \(c) at \(at) beside \(neighbour)")
                }
            }
        }
        let offset = Array("x: abc\u{7F}defgh".utf8)   // a range that starts mid-buffer
        #expect(offset.withUnsafeBytes { ASCII.allFieldBytes($0, 3..<offset.count) } == false)
        #expect(offset.withUnsafeBytes { ASCII.allFieldBytes($0, 3..<6) } == true)
        // A short last run is read as the top of the word ending with the range: the bytes below
        // it, outside the range, may be anything (controls, DEL) without deciding the answer.
        for outside: UInt8 in [0x00, 0x01, 0x1F, 0x7F, 0x0D, 0x20] {
            for start in 0..<12 {
                for count in 1..<(20 - start) {
                    var buffer = [UInt8](repeating: outside, count: 20)
                    for k in start..<(start + count) { buffer[k] = UInt8(ascii: "a") }
                    #expect(buffer.withUnsafeBytes { ASCII.allFieldBytes($0, start..<(start + count)) }, "\(start) +\(count) in \(outside)")
                    for bad in start..<(start + count) {
                        var b = buffer
                        b[bad] = 0x7F
                        #expect(!b.withUnsafeBytes { ASCII.allFieldBytes($0, start..<(start + count)) }, "DEL at \(bad) of \(start) +\(count)")
                    }
                }
            }
        }
    }

    /// The eight-at-a-time name scan stops exactly where a byte-by-byte one does: every byte value
    /// at every position, after letters, digits and "-" and before bytes that could carry.
    @Test func nameByteRunStopsAtTheFirstOtherByte() {
        func isNameByte(_ c: UInt8) -> Bool {
            (c >= 0x30 && c <= 0x39) || (c | 0x20 >= 0x61 && c | 0x20 <= 0x7A) || c == 0x2D
        }
        for c in 0...255 {
            for at in 0..<8 {
                for fill: [UInt8] in [Array("aZ-09zA-".utf8), Array("--------".utf8), [0xFF, 0x80, 0x7F, 0xFF, 0x2C, 0x2E, 0x40, 0x5B]] {
                    var w = Array("Content-".utf8)
                    w[at] = UInt8(c)
                    for k in (at + 1)..<8 { w[k] = fill[k] }
                    let expected = w.firstIndex { !isNameByte($0) } ?? 8
                    let got = w.withUnsafeBytes { ASCII.nameBytePrefix($0.loadUnaligned(as: UInt64.self)) }
                    #expect(got == expected, "\(w)")
                }
            }
        }
    }

    /// Eight hex digits at once are the digits `String(radix:)` writes, zero-padded, in order.
    @Test func hexWordsSpellTheNumber() {
        var values: [UInt32] = [0, 1, 9, 10, 15, 16, 0xA0, 0x9F, 0xFFFF_FFFF, 0x1234_5678, 0x89AB_CDEF, 0xF0F0_0F0F]
        var x: UInt32 = 0x9E37_79B9
        for _ in 0..<2000 { x ^= x << 13; x ^= x >> 17; x ^= x << 5; values.append(x) }
        for v in values {
            let want = String(repeating: "0", count: 8 - String(v, radix: 16).count) + String(v, radix: 16)
            let got = withUnsafeBytes(of: asciiHex8(v)) { String(decoding: $0, as: UTF8.self) }
            #expect(got == want)
        }
        var out = [UInt8](repeating: 0, count: 16)
        out.withUnsafeMutableBytes { writeHex16(0x0123_4567_89AB_CDEF, $0, at: 0) }
        #expect(String(decoding: out, as: UTF8.self) == "0123456789abcdef")
    }

    /// The word-wise case-insensitive comparison agrees with a byte-by-byte one for every length
    /// of the names it is used with (short, 4-7, 8, over 8 with an overlapping last word), every
    /// position of a difference, and the bytes next to the letters that case folding could confuse.
    @Test func caseInsensitiveComparisonAgreesByteByByte() {
        let names: [StaticString] = ["", "te", "via", "host", "vary", "close", "expect", "upgrade", "trailer",
                                     "keep-alive", "connection", "x-request-id", "content-length", "proxy-connection",
                                     "transfer-encoding", "x-forwarded-for-abc"]
        func reference(_ a: [UInt8], _ s: StaticString) -> Bool {
            let t = UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount)
            return a.count == t.count && zip(a, t).allSatisfy { ($0 >= 65 && $0 <= 90 ? $0 + 32 : $0) == $1 }
        }
        for name in names {
            let lower = Array(UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            var cases = [lower, lower.map { $0 >= 97 && $0 <= 122 ? $0 - 32 : $0 }, lower + [0x61], Array(lower.dropLast())]
            for at in lower.indices {
                for c: UInt8 in [0x40, 0x5B, 0x60, 0x7B, 0x0D, 0x2D, 0xC1, lower[at] ^ 0x20, lower[at] &+ 1] {
                    var v = lower; v[at] = c; cases.append(v)
                }
            }
            for v in cases {
                let padded = [0x41] + v + [0x5A]   // a range that starts mid-buffer, with a byte after it
                let got = padded.withUnsafeBytes { asciiEqualsIgnoringCase($0, 1..<1 + v.count, name) }
                #expect(got == reference(v, name), "\(v) against \(name)")
            }
        }
    }

    /// HTTP/1.<digit> ends a request line, nothing else in its place; the version pattern is read byte by byte.
    @Test func versionPatternAcceptsDigitsOnly() {
        for (line, ok) in [("HTTP/1.1", true), ("HTTP/1.0", true), ("HTTP/1.x", false), ("HTTQ/1.1", false), ("HTTP/1,1", false), ("HTTP/1.1x", false), ("HTTP/11.1", false), ("http/1.1", false)] {
            var p = HTTPRequestParser(limits: HTTPHeadLimits(maxURISize: 100, maxHeaderSize: 1000, maxHeaders: 10))
            let bytes = Array("GET / \(line)\r\nHost: a\r\n\r\n".utf8)
            let parsed = bytes.withUnsafeBytes { b in Result { () throws(HTTPParseError) in try p.parse(b) } }
            if ok { #expect((try? parsed.get()) != nil, "\(line)") } else { #expect((try? parsed.get()) == nil, "\(line)") }
        }
    }
}
