// The server side of one HTTP/1.1 connection as a value state machine: bytes the client
// sent go in, request parts come out (head, body runs, end). It does no I/O and keeps no
// bytes: every part is a range of the buffer it was given, and the caller consumes what
// `next` says was used. The same parts an HTTP/2 codec would produce for one stream.

public struct HTTP1ServerCodec: Sendable {
    public enum Part {   // not Sendable: heads hold views
        case head(HTTPRequestHead)
        /// Body payload (de-chunked), a range of the bytes passed to `next`.
        case body(Range<Int>)
        /// The request is complete; the next one starts after `reset`.
        case end
    }

    private enum State: Sendable {
        case head
        case body(BodyReader)
    }

    private var parser: HTTPRequestParser
    private var state = State.head

    public init(limits: HTTPHeadLimits) { parser = HTTPRequestParser(limits: limits) }

    /// Ready for the next request on the connection.
    public mutating func reset() {
        parser.reset()
        state = .head
    }

    /// The next part found in `bytes` (everything unconsumed so far) and how many bytes it
    /// used; the part is nil when more bytes are needed (some framing may still be consumed).
    /// Throws the status and reason to answer with; the connection's framing is lost then.
    /// After `.end`, nothing more comes until `reset` (bytes that follow belong to the next request).
    public mutating func next(_ bytes: UnsafeRawBufferPointer) throws(HTTPParseError) -> (part: Part?, consumed: Int) {
        switch state {
        case .head:
            guard let head = try parser.parse(bytes) else { return (nil, 0) }
            state = .body(BodyReader(head.framing))
            return (.head(head), head.headLength)
        case .body(var body):
            let r = try body.next(bytes, data: Part.body, end: .end)
            state = .body(body)
            return r
        }
    }
}
