import GatewayHTTP
import GatewayHTTP2
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

/// The response side of a client connection's protocol, after hummingbird's and Pingora's
/// shape: exchanges hand response parts per stream, the codec frames them. Heads, chunking,
/// `Connection` headers (HTTP/1) or HEADERS/DATA frames (HTTP/2) are the codec's, never the
/// exchange's. HTTP/1.1 writes its framing into `out`, the connection's output; HTTP/2 queues
/// each part on its nghttp2 stream and frames it when the connection flushes. Both hand request
/// parts to exchanges the same way: a head (`HTTPRequestHead` over bytes that outlive the step),
/// body runs, the end.
protocol DownstreamCodec {
    /// An interim (1xx) response head from the backend, where the protocol carries it.
    func writeInterim(_ stream: StreamID, _ b: UnsafeRawBufferPointer, _ head: HTTPResponseHead, into out: inout ByteBuffer)

    /// The final response head. `endStream`: no body follows (HTTP/2 ends the stream with the
    /// head). `close`: the connection ends after this response. Returns true when the body can
    /// only be delimited by closing the connection.
    mutating func writeHead(_ stream: StreamID, _ b: UnsafeRawBufferPointer, _ head: HTTPResponseHead, _ edits: ResponseEdits,
                            endStream: Bool, close: Bool, into out: inout ByteBuffer) -> Bool

    /// Mutating though it changes nothing: the connection calls it on its codec property with
    /// `into: &io.output`, and a non-mutating call copied the whole codec (a retain and a release
    /// per response) to keep the two accesses apart.
    mutating func writeBody(_ stream: StreamID, _ bytes: UnsafeRawBufferPointer, into out: inout ByteBuffer)

    mutating func writeEnd(_ stream: StreamID, into out: inout ByteBuffer)

    /// The end of the body with trailers; `accepted`: the client said `TE: trailers` (HTTP/1.1
    /// drops them otherwise).
    mutating func writeTrailers(_ stream: StreamID, _ fields: HTTP2Fields, accepted: Bool, into out: inout ByteBuffer)

    /// A response of the gateway's own (an error page); returns the bytes it added. `header`: one
    /// more field (WWW-Authenticate); `grpc`: the request is gRPC and this is its grpc-status
    /// (HTTP/2 answers in gRPC's form).
    func writeLocal(_ stream: StreamID, status: Int, message: String, header: (name: StaticString, value: String)?, grpc: Int?,
                    close: Bool, into out: inout ByteBuffer) -> Int
}

/// What the gateway changes in a backend's response head on its way to the client, whatever
/// the protocol: gzip (length dropped, encoding added) and `Vary: Accept-Encoding`.
struct ResponseEdits {
    var gzip = false
    var vary = false
}
