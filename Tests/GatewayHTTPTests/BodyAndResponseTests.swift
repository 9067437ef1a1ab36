import Testing
@testable import GatewayHTTP

/// Decodes `text` fed in pieces of `step` bytes the way the proxy does (unconsumed bytes stay
/// buffered); returns the payload, whether the body ended, and what was left after it.
func dechunk(_ text: String, step: Int) throws(HTTPParseError) -> (payload: String, done: Bool, rest: String) {
    let input = Array(text.utf8)
    var decoder = ChunkedDecoder()
    var buffered: [UInt8] = []
    var payload: [UInt8] = []
    var offset = 0
    var done = false
    while offset < input.count && !done {
        let end = min(input.count, offset + step)
        buffered += input[offset..<end]
        offset = end
        let r: (consumed: Int, done: Bool)
        do {
            r = try buffered.withUnsafeBytes { b in try decoder.decode(b) { range in payload += b[range] } }
        } catch let e as HTTPParseError { throw e } catch { fatalError("\(error)") }
        buffered.removeFirst(r.consumed)
        done = r.done
    }
    return (String(decoding: payload, as: UTF8.self), done, String(decoding: buffered + input[offset...], as: UTF8.self))
}

@Suite struct Chunked {
    @Test(arguments: [1, 2, 5, 1000])
    func decodesAcrossAnySplit(step: Int) throws {
        let r = try dechunk("5\r\nhello\r\nA;ext=\"x y\"\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\nGET /next", step: step)
        #expect(r.payload == "hello0123456789")
        #expect(r.done)
        #expect(r.rest == "GET /next")
    }

    @Test func upperAndLowerHexSizes() throws {
        let body = String(repeating: "z", count: 0x1F)
        #expect(try dechunk("1f\r\n\(body)\r\n0\r\n\r\n", step: 3).payload == body)
        #expect(try dechunk("1F\r\n\(body)\r\n0\r\n\r\n", step: 3).payload == body)
    }

    @Test func incompleteBodyIsNotDone() throws {
        let r = try dechunk("5\r\nhel", step: 100)
        #expect(r.payload == "hel")
        #expect(!r.done)
    }

    @Test(arguments: [
        "g\r\nx\r\n0\r\n\r\n",            // not hex
        "5 \r\nhello\r\n0\r\n\r\n",       // whitespace after the size
        " 5\r\nhello\r\n0\r\n\r\n",       // whitespace before it
        "\r\nhello\r\n0\r\n\r\n",         // empty size
        "-5\r\nhello\r\n0\r\n\r\n",
        "5\r\nhelloX\r\n0\r\n\r\n",       // more data than the size says
        "5\nhello\r\n0\r\n\r\n",          // bare LF after the size
        "5\r\nhello\n0\r\n\r\n",          // bare LF after the data
        "5\rhello\r\n0\r\n\r\n",          // bare CR
        "1000000000000000\r\n",           // 16 hex digits: would overflow
        "5;a\u{0}b\r\nhello\r\n0\r\n\r\n", // control byte in an extension
        "0\r\nX: a\u{1}\r\n\r\n",         // control byte in a trailer
    ])
    func rejectsBadFraming(_ text: String) {
        for step in [1, 4, 1000] {
            #expect(throws: HTTPParseError.self, "step \(step)") { _ = try dechunk(text, step: step) }
        }
    }
}

func parseResponse(_ text: String, head: Bool = false) -> Result<HTTPResponseHead?, HTTPParseError> {
    var p = HTTPResponseParser(maxHeadSize: 1024)
    return Array(text.utf8).withUnsafeBytes { b in
        do throws(HTTPParseError) { return .success(try p.parse(b, requestWasHEAD: head)) } catch { return .failure(error) }
    }
}

@Suite struct Responses {
    @Test func framingOfResponses() throws {
        let cl = try parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc").get()
        #expect(cl?.status == 200 && cl?.framing == .contentLength(3) && cl?.keepAlive == true && cl?.headLength == 38)
        #expect(try parseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").get()?.framing == .chunked)
        let eof = try parseResponse("HTTP/1.1 200 OK\r\n\r\n").get()
        #expect(eof?.framing == .untilClose && eof?.keepAlive == false)
        #expect(try parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", head: true).get()?.framing == BodyFraming.none)
        #expect(try parseResponse("HTTP/1.1 204 No Content\r\n\r\n").get()?.framing == BodyFraming.none)
        #expect(try parseResponse("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n").get()?.framing == BodyFraming.none)
        #expect(try parseResponse("HTTP/1.1 100 Continue\r\n\r\n").get()?.status == 100)
        #expect(try parseResponse("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n").get()?.keepAlive == false)
        #expect(try parseResponse("HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n").get()?.status == 200) // empty reason
        #expect(try parseResponse("HTTP/1.1 200 OK\r\nContent-Le").get() == nil)
    }

    @Test(arguments: [
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 099 X\r\n\r\n",
        "HTTX/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
        "HTTP/1.1 200 OK\nContent-Length: 1\n\n",
    ])
    func badResponsesAre502(_ text: String) {
        guard case .failure(let e) = parseResponse(text) else { Issue.record("accepted: \(text)"); return }
        #expect(e.status == 502)
    }

    @Test func oversizedResponseHeadIs502() {
        let big = "HTTP/1.1 200 OK\r\nX: " + String(repeating: "x", count: 2000)
        guard case .failure(let e) = parseResponse(big) else { Issue.record("accepted"); return }
        #expect(e.status == 502)
    }
}
