// The client side of one HTTP/1.1 backend connection as a value state machine: the
// response bytes the backend sent go in, response parts come out. No I/O, no copies:
// parts are ranges of the buffer passed to `next`, and the caller consumes what it used.

public struct HTTP1ClientCodec: Sendable {
    public enum Part: Sendable {
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
        case length(remaining: Int)
        case chunked(ChunkedDecoder)
        case untilClose
        case endPending
        /// `.end` (or `.switched`) was given.
        case ended
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
    public var responseEnded: Bool { if case .ended = state { return true }; return false }
    /// The body runs until the backend closes (no length, not chunked).
    public var delimitedByClose: Bool { if case .untilClose = state { return true }; return false }

    public mutating func next(_ bytes: UnsafeRawBufferPointer) throws(HTTPParseError) -> (part: Part?, consumed: Int) {
        switch state {
        case .head:
            guard let head = try parser.parse(bytes, requestWasHEAD: requestWasHEAD) else { return (nil, 0) }
            if head.status == 101 && upgradeRequested {
                state = .ended
                return (.switched(head), head.headLength)
            }
            if head.status < 200 {
                parser.reset()
                return (.interim(head), head.headLength)
            }
            switch head.framing {
            case .none, .contentLength(0): state = .endPending
            case .contentLength(let n): state = .length(remaining: n)
            case .chunked: state = .chunked(ChunkedDecoder())
            case .untilClose: state = .untilClose
            }
            return (.head(head), head.headLength)
        case .length(let remaining):
            guard bytes.count > 0 else { return (nil, 0) }
            let n = min(remaining, bytes.count)
            state = remaining == n ? .endPending : .length(remaining: remaining - n)
            return (.body(0..<n), n)
        case .chunked(var decoder):
            let r = try decoder.nextRun(bytes)
            if let data = r.data { state = .chunked(decoder); return (.body(data), r.consumed) }
            state = r.done ? .ended : .chunked(decoder)
            return (r.done ? .end : nil, r.consumed)
        case .untilClose:
            guard bytes.count > 0 else { return (nil, 0) }
            return (.body(0..<bytes.count), bytes.count)
        case .endPending:
            state = .ended
            return (.end, 0)
        case .ended:
            return (nil, 0)
        }
    }

    /// The backend closed its connection: the end of a close-delimited body, otherwise nil
    /// (the response was cut short, or never came).
    public mutating func inputEnded() -> Part? {
        guard case .untilClose = state else { return nil }
        state = .ended
        return .end
    }
}
