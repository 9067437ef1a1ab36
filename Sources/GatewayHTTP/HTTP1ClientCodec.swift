// The client side of one HTTP/1.1 backend connection as a value state machine: the
// response bytes the backend sent go in, response parts come out. No I/O, no copies:
// parts are ranges of the buffer passed to `next`, and the caller consumes what it used.

public struct HTTP1ClientCodec: Sendable {
    public enum Part {   // not Sendable: heads hold views
        /// A 1xx other than an accepted 101 (100 Continue, 103 Early Hints); the final head follows.
        case interim(HTTPResponseHead)
        case head(HTTPResponseHead)
        /// 101 to a request that asked to upgrade: from here on the bytes are another protocol's.
        case switched(HTTPResponseHead)
        /// Body payload (de-chunked), a range of the bytes passed to `next`.
        case body(Range<Int>)
        case end
    }

    private enum State: Sendable {
        case head
        case body(BodyReader)
        /// `.switched` was given: the bytes are the tunnel's.
        case switched
    }

    private var parser: HTTPResponseParser
    private var state = State.head
    private var requestWasHEAD = false
    private var upgradeRequested = false

    public init(maxHeadSize: Int = 64 * 1024) { parser = HTTPResponseParser(maxHeadSize: maxHeadSize) }

    /// Before each request: how the response will be framed depends on it.
    public mutating func expectResponse(toHEAD: Bool, upgradeRequested: Bool) {
        parser.reset()
        state = .head
        requestWasHEAD = toHEAD
        self.upgradeRequested = upgradeRequested
    }

    /// No byte of the final response head was used yet (a retry on another server is clean).
    public var awaitingHead: Bool { if case .head = state { return true }; return false }

    public mutating func next(_ bytes: UnsafeRawBufferPointer) throws(HTTPParseError) -> (part: Part?, consumed: Int) {
        switch state {
        case .head:
            guard let head = try parser.parse(bytes, requestWasHEAD: requestWasHEAD) else { return (nil, 0) }
            if head.status == 101 && upgradeRequested {
                state = .switched
                return (.switched(head), head.headLength)
            }
            if head.status < 200 {
                parser.reset()
                return (.interim(head), head.headLength)
            }
            state = .body(BodyReader(head.framing))
            return (.head(head), head.headLength)
        case .body(var body):
            let r = try body.next(bytes, data: Part.body, end: .end)
            state = .body(body)
            return r
        case .switched:
            return (nil, 0)
        }
    }

    /// The backend closed its connection: the end of a close-delimited body, otherwise nil
    /// (the response was cut short, or never came).
    public mutating func inputEnded() -> Part? {
        guard case .body(var body) = state, body.inputEnded() else { return nil }
        state = .body(body)
        return .end
    }
}
