import Testing
import TestSupport
@testable import GatewayHTTP

// A verdict must not depend on TCP segmentation: every input below is parsed whole, split in
// two at every position, and byte by byte, and each way must give the same head or the same
// error (status and reason). Issue #12: `PUT /x HTTP/0.1` with a bad header line after it was
// 400 whole and 505 in 3-byte pieces.

/// The outcome of feeding `bytes` as growing prefixes ending at `cuts` (then the whole input).
func outcome(_ bytes: [UInt8], cuts: [Int], limits: HTTPHeadLimits = limits) -> String {
    var parser = HTTPRequestParser(limits: limits)
    for end in cuts + [bytes.count] where end > 0 {
        let r: Result<HTTPRequestHead?, HTTPParseError> = bytes[0..<end].withUnsafeBytes { b in
            do throws(HTTPParseError) { return .success(try parser.parse(b)) } catch { return .failure(error) }
        }
        switch r {
        case .failure(let e): return "error \(e.status): \(e.reason)"
        case .success(.some(let h)): return bytes.withUnsafeBytes { "head " + summary(h, $0) }
        case .success(.none): continue
        }
    }
    return "incomplete"
}

/// Whole, every two-piece split, byte by byte; returns the whole-input outcome.
@discardableResult
func expectSegmentationIndependent(_ bytes: [UInt8], limits: HTTPHeadLimits = limits,
                                   sourceLocation: SourceLocation = #_sourceLocation) -> String {
    let whole = outcome(bytes, cuts: [], limits: limits)
    for cut in 1..<max(1, bytes.count) {
        let split = outcome(bytes, cuts: [cut], limits: limits)
        if split != whole {
            Issue.record("split at \(cut): \(split) != whole: \(whole) for \(String(decoding: bytes, as: UTF8.self).debugDescription)",
                         sourceLocation: sourceLocation)
            return whole
        }
    }
    let bytewise = outcome(bytes, cuts: Array(0..<bytes.count), limits: limits)
    #expect(bytewise == whole, "byte by byte", sourceLocation: sourceLocation)
    return whole
}

@Suite struct Segmentation {
    let big = String(repeating: "b", count: 300)

    /// The issue's input and its relatives: the request line is complete before the bad bytes, so its error wins.
    @Test func requestLineErrorsWinOverLaterBytes() {
        let cases: [(String, String)] = [
            ("PUT /x HTTP/0.1\r\nHost: h\nX-A: b\r\n\r\n", "error 505"),                  // the issue: bare LF after
            ("PUT /x HTTP/0.1\r\nHost: h\r\nX(A): b\r\n\r\n", "error 505"),               // bad name after
            ("PUT /x HTTP/0.1\r\n" + (1...9).map { "X-\($0): v\r\n" }.joined() + "\r\n", "error 505"), // too many fields
            ("PUT /x HTTP/0.1\r\nX-Big: \(big)\r\n\r\n", "error 505"),                  // too large after
            ("CONNECT a:1 HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", "error 405"),
            ("GET /" + String(repeating: "a", count: 70) + "\nHost: h\r\n\r\n", "error 414"), // 414 before the bare LF
            ("GET /x HTTP/1.1" + String(repeating: "x", count: 80) + "\r\n\r\n", "error 400"), // long version: 400, not 414
            (String(repeating: "M", count: 300) + " / HTTP/0.1\r\n\r\n", "error 431"),   // over the head limit first
            (String(repeating: "\r\n", count: 200) + "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "error 431"), // a CRLF flood is bounded
            ("GET /x HTTP/1.1\r\rHost: h\r\n\r\n", "error 400"),
        ]
        for (text, prefix) in cases {
            let whole = expectSegmentationIndependent(Array(text.utf8))
            #expect(whole.hasPrefix(prefix), "\(text.debugDescription): \(whole)")
        }
    }

    /// Every vector of the other suites, and deterministic mutations of them (bytes replaced,
    /// dropped, doubled): each the same whole and in every split.
    @Test func mutatedRequestsAreSegmentationIndependent() {
        let seeds = [
            "GET /a?b=c HTTP/1.1\r\nHost: api.example.test\r\nAccept:  */*  \r\n\r\n",
            "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
            "\r\nGET https://a.test/x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
            "PUT /x HTTP/0.1\r\nHost: h\r\nX-A: b\r\n\r\n",
            "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        ]
        let alphabet: [UInt8] = Array(" \r\n\t:/0.1HTP\u{0}\u{7f}a,;".utf8)
        var rng = SplitMix(seed: 12)
        var checked = 0
        for seed in seeds {
            let base = Array(seed.utf8)
            expectSegmentationIndependent(base)
            for _ in 0..<40 {
                var m = base
                for _ in 0..<Int(rng.next() % 3) + 1 {
                    let at = Int(rng.next() % UInt64(m.count))
                    switch rng.next() % 3 {
                    case 0: m[at] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                    case 1: if m.count > 1 { m.remove(at: at) }
                    default: m.insert(m[at], at: at)
                    }
                }
                expectSegmentationIndependent(m)
                checked += 1
            }
        }
        #expect(checked == seeds.count * 40)
    }

    /// A chunked body gives the same payload, end and rest, or the same error, in every split.
    @Test(arguments: [
        "5\r\nhello\r\nA;ext=\"x y\"\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\nGET /next",
        "5\r\nhello\r\n0\r\n\r\n",
        "5\r\nhelloX\r\n0\r\n\r\n",
        "g\r\n",
        "5\r\nhello\r\n0\r\nX: \u{1}\r\n\r\n",
        "1000000000000000\r\n",
    ])
    func chunkedBodiesAreSegmentationIndependent(_ text: String) {
        func run(_ step: Int) -> String {
            do { let r = try dechunk(text, step: step); return "\(r.payload)|\(r.done)|\(r.rest)" } catch { return "error \(error)" }
        }
        let whole = run(text.utf8.count)
        for step in 1..<text.utf8.count { #expect(run(step) == whole, "step \(step)") }
    }
}

