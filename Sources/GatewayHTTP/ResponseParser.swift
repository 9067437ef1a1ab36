// The backend's response head. The backend is trusted less than it seems (a compromised or
// confused origin must not split responses), so field lines get the request side's rules.

public struct HTTPResponseParser: Sendable {
    public let maxHeadSize: Int
    private var scanner = HeadScanner()
    /// Reused for every head (see `HeadScanner.fields`).
    private var fields: [HTTPHeaderField] = []

    public init(maxHeadSize: Int) { self.maxHeadSize = maxHeadSize }

    public mutating func reset() { scanner.reset() }

    /// nil: incomplete. Throws (status 502) when the backend's response cannot be framed.
    public mutating func parse(_ bytes: UnsafeRawBufferPointer, requestWasHEAD: Bool) throws(HTTPParseError) -> HTTPResponseHead? {
        do throws(HTTPParseError) {
            var noCheck = NoStartLineCheck()
            let limits = HeadScanLimits(maxHeadSize: maxHeadSize, maxFields: 1000, status: 502, what: "response")
            guard let end = try scanner.scan(bytes, limits, &noCheck) else { return nil }
            defer { scanner.reset() }
            let (minor, status) = try Self.statusLine(bytes, scanner.headStart..<scanner.startLineEnd!)
            let view = try scanner.fields(bytes, headLength: end, into: &fields)
            let h = try FramingHeaders(bytes, view)
            var keepAlive = minor == 1 ? !h.connectionClose : (h.connectionKeepAlive && !h.connectionClose)
            let framing: BodyFraming
            if requestWasHEAD || status < 200 || status == 204 || status == 304 {
                framing = .none
            } else if h.transferEncoding {
                guard h.contentLength == nil else { throw HTTPParseError.bad("both Content-Length and Transfer-Encoding") }
                if h.chunkedLast && !h.otherCoding { framing = .chunked } else { framing = .untilClose }
            } else if let n = h.contentLength {
                framing = .contentLength(n)
            } else {
                framing = .untilClose
            }
            if framing == .untilClose { keepAlive = false }
            return HTTPResponseHead(status: status, versionMinor: minor, headers: view, framing: framing,
                                    keepAlive: keepAlive, headLength: end)
        } catch {
            scanner.reset()
            throw HTTPParseError(502, error.reason)
        }
    }

    /// `HTTP/1.x SP 3DIGIT SP reason`.
    private static func statusLine(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) throws(HTTPParseError) -> (Int, Int) {
        guard r.count >= 12, b[r.lowerBound + 8] == ASCII.sp,
              let status = ASCII.decimal(b, r.lowerBound + 9..<r.lowerBound + 12), (100...599).contains(status),
              r.count == 12 || b[r.lowerBound + 12] == ASCII.sp
        else { throw .bad("malformed status line") }
        let minor = try HTTPRequestParser.version(b, r.lowerBound..<r.lowerBound + 8)
        for i in r.lowerBound + 12..<r.upperBound where !ASCII.isFieldByte(b[i]) { throw .bad("invalid byte in the status line") }
        return (minor, status)
    }
}
