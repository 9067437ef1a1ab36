import GatewayHTTP
import GatewaySystem

/// A stream on a client connection: HTTP/1 has one at a time (always 1), HTTP/2 many.
typealias StreamID = UInt32

/// A request as its connection's codec hands it on, one stream's part at a time. Byte ranges
/// refer to the buffer the codec was given, valid until the caller consumes it.
enum RequestPart {
    case head(HTTPRequestHead)
    /// Body payload, with the protocol's framing already removed.
    case body(Range<Int>)
    case end
}

/// The protocol side of a client connection, after hummingbird's and Pingora's shape: the
/// client's bytes become request parts per stream, and response parts per stream are written
/// in the protocol's framing. Exchanges see only parts; heads, chunking and `Connection`
/// headers are the codec's. HTTP/1.1 is `HTTP1Downstream`; HTTP/2 is the second implementation.
protocol DownstreamCodec {
    /// The next request part in `bytes` (what is unconsumed so far) and how many bytes it used.
    /// Throws the status to answer when the client's framing is lost.
    mutating func next(_ bytes: UnsafeRawBufferPointer) throws(HTTPParseError) -> (stream: StreamID, part: RequestPart?, consumed: Int)

    /// An interim (1xx) response head from the backend, where the protocol carries it.
    func writeInterim(_ stream: StreamID, _ b: UnsafeRawBufferPointer, _ head: HTTPResponseHead, into out: inout ByteBuffer)

    /// The final response head. `close`: the connection ends after this response. Returns true
    /// when the body can only be delimited by closing the connection.
    mutating func writeHead(_ stream: StreamID, _ b: UnsafeRawBufferPointer, _ head: HTTPResponseHead, _ edits: ResponseEdits,
                            close: Bool, into out: inout ByteBuffer) -> Bool

    func writeBody(_ stream: StreamID, _ bytes: UnsafeRawBufferPointer, into out: inout ByteBuffer)

    mutating func writeEnd(_ stream: StreamID, into out: inout ByteBuffer)

    /// A response of the gateway's own (an error page); returns the bytes it added.
    func writeLocal(_ stream: StreamID, status: Int, message: String, close: Bool, into out: inout ByteBuffer) -> Int
}

/// What the gateway changes in a backend's response head on its way to the client, whatever
/// the protocol: gzip (length dropped, encoding added) and `Vary: Accept-Encoding`.
struct ResponseEdits {
    var gzip = false
    var vary = false
}
