// The request head parser: strict where a lenient reading would let a request be framed two
// ways (request smuggling, SPEC §5), and bounded by the limits of SPEC §10.

public struct HTTPRequestParser: Sendable {
    public let limits: HTTPHeadLimits
    private var scanner = HeadScanner()

    public init(limits: HTTPHeadLimits) { self.limits = limits }

    /// Ready for the next request on the connection.
    public mutating func reset() { scanner.reset() }

    /// Parses `bytes` (everything buffered since the head began). nil: the head is not complete yet.
    /// Throws the status to answer: 400, 414, 431, 501, 505.
    public mutating func parse(_ bytes: UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPRequestHead? {
        let end: Int?
        do { end = try scanner.scan(bytes, maxFields: limits.maxHeaders, tooManyStatus: 431) } catch {
            scanner.reset(); throw error
        }
        let start = scanner.headStart
        guard let end else {
            // Incomplete: the request line's limit is checked first, so 414 wins over 431.
            if let lineEnd = scanner.startLineEnd {
                _ = try requestLine(bytes, start..<lineEnd)
            } else if let sp = firstSpace(bytes, from: start), bytes.count - sp - 1 > limits.maxURISize {
                scanner.reset(); throw HTTPParseError(414, "request target over \(limits.maxURISize) bytes")
            }
            if bytes.count - start > limits.maxHeaderSize {
                scanner.reset(); throw HTTPParseError(431, "request head over \(limits.maxHeaderSize) bytes")
            }
            return nil
        }
        defer { scanner.reset() }
        let line = try requestLine(bytes, start..<scanner.startLineEnd!)
        guard end - start <= limits.maxHeaderSize else {
            throw HTTPParseError(431, "request head over \(limits.maxHeaderSize) bytes")
        }
        let fields = try scanner.fields(bytes, headLength: end)
        let h = try FramingHeaders(bytes, fields)

        let framing: BodyFraming
        if h.transferEncoding {
            guard h.contentLength == nil else { throw .bad("both Content-Length and Transfer-Encoding") }
            guard line.versionMinor == 1 else { throw .bad("Transfer-Encoding in an HTTP/1.0 request") }
            guard h.chunkedLast else { throw .bad("Transfer-Encoding other than chunked last") }
            guard !h.otherCoding else { throw HTTPParseError(501, "transfer codings other than chunked are not supported") }
            framing = .chunked
        } else if let n = h.contentLength, n > 0 {
            framing = .contentLength(n)
        } else {
            framing = .none
        }
        if line.versionMinor == 1 {
            guard h.hostCount == 1 else { throw .bad(h.hostCount == 0 ? "missing Host header" : "more than one Host header") }
        } else if h.hostCount > 1 {
            throw .bad("more than one Host header")
        }
        let keepAlive = line.versionMinor == 1 ? !h.connectionClose : (h.connectionKeepAlive && !h.connectionClose)
        return HTTPRequestHead(method: line.method, target: line.target, versionMinor: line.versionMinor,
                               headers: fields, framing: framing, keepAlive: keepAlive,
                               expectContinue: h.expectContinue && line.versionMinor == 1,
                               upgrade: h.connectionUpgrade && h.upgradeHeader, host: h.host,
                               headLength: end, isHEAD: line.isHEAD)
    }

    private struct RequestLine { var method: Range<Int>; var target: Range<Int>; var versionMinor: Int; var isHEAD: Bool }

    /// `method SP request-target SP HTTP/1.x`, single spaces, nothing else.
    private mutating func requestLine(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) throws(HTTPParseError) -> RequestLine {
        do throws(HTTPParseError) {
            var i = r.lowerBound
            while i < r.upperBound && ASCII.isToken(b[i]) { i += 1 }
            guard i > r.lowerBound, i < r.upperBound, b[i] == ASCII.sp else { throw HTTPParseError.bad("malformed request line") }
            let method = r.lowerBound..<i
            i += 1
            let targetStart = i
            while i < r.upperBound && ASCII.isTargetByte(b[i]) { i += 1 }
            let target = targetStart..<i
            if target.count > limits.maxURISize { throw HTTPParseError(414, "request target over \(limits.maxURISize) bytes") }
            guard !target.isEmpty, i < r.upperBound, b[i] == ASCII.sp else { throw HTTPParseError.bad("malformed request target") }
            i += 1
            let version = i..<r.upperBound
            let minor = try Self.version(b, version)
            if asciiEqualsIgnoringCase(b, method, "connect") { throw HTTPParseError(405, "CONNECT is not supported") }
            let first = b[target.lowerBound]
            let isAsterisk = target.count == 1 && first == UInt8(ascii: "*")
            guard first == UInt8(ascii: "/") || isAsterisk || Self.isAbsoluteForm(b, target) else {
                throw HTTPParseError.bad("malformed request target")
            }
            let isHEAD = method.count == 4 && b[method.lowerBound] == UInt8(ascii: "H") && b[method.lowerBound + 1] == UInt8(ascii: "E")
                && b[method.lowerBound + 2] == UInt8(ascii: "A") && b[method.lowerBound + 3] == UInt8(ascii: "D")
            return RequestLine(method: method, target: target, versionMinor: minor, isHEAD: isHEAD)
        } catch {
            scanner.reset(); throw error
        }
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

    /// `http://` or `https://` followed by an authority.
    private static func isAbsoluteForm(_ b: UnsafeRawBufferPointer, _ t: Range<Int>) -> Bool {
        for scheme: StaticString in ["http://", "https://"] {
            let n = scheme.utf8CodeUnitCount
            if t.count > n && asciiEqualsIgnoringCase(b, t.lowerBound..<t.lowerBound + n, scheme) { return true }
        }
        return false
    }

    private func firstSpace(_ b: UnsafeRawBufferPointer, from: Int) -> Int? {
        var i = from
        while i < b.count && i - from < 64 {
            if b[i] == ASCII.sp { return i }
            i += 1
        }
        return nil
    }
}
