// The body after a head, as parts: runs of payload (de-chunked) and its end. The one body
// state machine of the server and client codecs; no I/O, no copies.

struct BodyReader: Sendable {
    enum Part: Sendable {
        /// Payload, a range of the bytes passed to `next`.
        case data(Range<Int>)
        case end
    }

    private enum State: Sendable {
        case length(remaining: Int)
        case chunked(ChunkedDecoder)
        /// A response without length: the body ends when the connection closes.
        case untilClose
        /// The body is complete; `.end` is the next part.
        case endPending
        /// `.end` was given.
        case ended
    }

    private var state: State

    init(_ framing: BodyFraming) {
        switch framing {
        case .none, .contentLength(0): state = .endPending
        case .contentLength(let n): state = .length(remaining: n)
        case .chunked: state = .chunked(ChunkedDecoder())
        case .untilClose: state = .untilClose
        }
    }

    /// The next part in `bytes` and how many bytes it used; nil when more are needed (some
    /// chunk framing may still be consumed).
    mutating func next(_ bytes: UnsafeRawBufferPointer) throws(HTTPParseError) -> (part: Part?, consumed: Int) {
        switch state {
        case .length(let remaining):
            guard bytes.count > 0 else { return (nil, 0) }
            let n = min(remaining, bytes.count)
            state = remaining == n ? .endPending : .length(remaining: remaining - n)
            return (.data(0..<n), n)
        case .chunked(var decoder):
            let r = try decoder.nextRun(bytes)
            if let data = r.data { state = .chunked(decoder); return (.data(data), r.consumed) }
            state = r.done ? .ended : .chunked(decoder)
            return (r.done ? .end : nil, r.consumed)
        case .untilClose:
            guard bytes.count > 0 else { return (nil, 0) }
            return (.data(0..<bytes.count), bytes.count)
        case .endPending:
            state = .ended
            return (.end, 0)
        case .ended:
            return (nil, 0)
        }
    }

    /// `next` with its part given as a codec's own part type.
    mutating func next<P>(_ bytes: UnsafeRawBufferPointer, data: (Range<Int>) -> P, end: P) throws(HTTPParseError) -> (part: P?, consumed: Int) {
        let r = try next(bytes)
        switch r.part {
        case .data(let range)?: return (data(range), r.consumed)
        case .end?: return (end, r.consumed)
        case nil: return (nil, r.consumed)
        }
    }

    /// The connection closed: the end of a close-delimited body; false when the body was cut short.
    mutating func inputEnded() -> Bool {
        guard case .untilClose = state else { return false }
        state = .ended
        return true
    }
}
