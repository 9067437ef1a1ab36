// The request head parser: strict where a lenient reading would let a request be framed two
// ways (request smuggling, SPEC §5), and bounded by the limits of SPEC §10.

public struct HTTPRequestParser: Sendable {
    public let limits: HTTPHeadLimits
    private var scanner = HeadScanner()
    /// Reused for every head (see `HeadScanner.fields`).
    private var fields: [HTTPHeaderField] = []
    private var line: RequestLineChecker

    public init(limits: HTTPHeadLimits) {
        self.limits = limits
        line = RequestLineChecker(maxURISize: limits.maxURISize)
    }

    /// Ready for the next request on the connection.
    public mutating func reset() {
        scanner.reset()
        line = RequestLineChecker(maxURISize: limits.maxURISize)
    }

    /// Parses `bytes` (everything buffered since the head began). nil: the head is not complete yet.
    /// Throws the status to answer: 400, 405, 414, 431, 501, 505. The first failing byte decides,
    /// so `PUT /x HTTP/0.1` is a 505 even when a bad header line follows: the line was complete first.
    public mutating func parse(_ bytes: UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPRequestHead? {
        do throws(HTTPParseError) {
            let scanLimits = HeadScanLimits(maxHeadSize: limits.maxHeaderSize, maxFields: limits.maxHeaders,
                                            status: 431, what: "request")
            guard let end = try scanner.scan(bytes, scanLimits, &line) else { return nil }
            let head = try complete(bytes, end: end)
            reset()
            return head
        } catch {
            reset(); throw error
        }
    }

    /// The head is complete and its request line valid: the field lines and the framing rules.
    private mutating func complete(_ bytes: UnsafeRawBufferPointer, end: Int) throws(HTTPParseError) -> HTTPRequestHead {
        let view = try scanner.fields(bytes, headLength: end, into: &fields)
        let h = try FramingHeaders(bytes, view)
        let minor = line.versionMinor

        let framing: BodyFraming
        if h.transferEncoding {
            guard h.contentLength == nil else { throw .bad("both Content-Length and Transfer-Encoding") }
            guard minor == 1 else { throw .bad("Transfer-Encoding in an HTTP/1.0 request") }
            guard h.chunkedLast else { throw .bad("Transfer-Encoding other than chunked last") }
            guard !h.otherCoding else { throw HTTPParseError(501, "transfer codings other than chunked are not supported") }
            framing = .chunked
        } else if let n = h.contentLength, n > 0 {
            framing = .contentLength(n)
        } else {
            framing = .none
        }
        if minor == 1 {
            guard h.hostCount == 1 else { throw .bad(h.hostCount == 0 ? "missing Host header" : "more than one Host header") }
        } else if h.hostCount > 1 {
            throw .bad("more than one Host header")
        }
        let keepAlive = minor == 1 ? !h.connectionClose : (h.connectionKeepAlive && !h.connectionClose)
        return HTTPRequestHead(method: line.method, target: line.target, versionMinor: minor,
                               headers: view, framing: framing, keepAlive: keepAlive,
                               expectContinue: h.expectContinue && minor == 1,
                               upgrade: h.connectionUpgrade && h.upgradeHeader, host: h.host,
                               headLength: end, isHEAD: line.isHEAD)
    }

    static func version(_ b: UnsafeRawBufferPointer, _ v: Range<Int>) throws(HTTPParseError) -> Int {
        guard v.count == 8, b[v.lowerBound] == UInt8(ascii: "H"), b[v.lowerBound + 1] == UInt8(ascii: "T"),
              b[v.lowerBound + 2] == UInt8(ascii: "T"), b[v.lowerBound + 3] == UInt8(ascii: "P"),
              b[v.lowerBound + 4] == UInt8(ascii: "/"), b[v.lowerBound + 6] == UInt8(ascii: "."),
              let major = ASCII.decimal(b, v.lowerBound + 5..<v.lowerBound + 6),
              let minor = ASCII.decimal(b, v.lowerBound + 7..<v.lowerBound + 8)
        else { throw .bad("malformed HTTP version") }
        guard major == 1, minor <= 1 else { throw HTTPParseError(505, "HTTP version \(major).\(minor) not supported") }
        return minor
    }
}
