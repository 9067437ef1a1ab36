import GatewayHTTP
import GatewayHTTP2
import GatewaySystem

/// HTTP/1.1 toward the client: the server codec for what it sends (one request at a time, on
/// stream 1) and HTTP/1 framing for what goes back — the status line and headers, chunked or
/// length-delimited or close-delimited bodies, `Connection: close`.
struct HTTP1Downstream: DownstreamCodec {
    static let stream: StreamID = 1

    private var codec: HTTP1ServerCodec
    /// The current request's HTTP minor version: a 1.0 client gets no chunked body.
    private var versionMinor = 1
    private var framing = Framing.asIs
    private enum Framing { case asIs, chunked, close }

    init(limits: HTTPHeadLimits) { codec = HTTP1ServerCodec(limits: limits) }

    /// Ready for the next request on the connection.
    mutating func reset() {
        codec.reset()
        framing = .asIs
    }

    mutating func next(_ bytes: UnsafeRawBufferPointer) throws(HTTPParseError) -> (stream: StreamID, part: RequestPart?, consumed: Int) {
        let step = try codec.next(bytes)
        let part: RequestPart?
        switch step.part {
        case .head(let h)?: versionMinor = h.versionMinor; part = .head(h)
        case .body(let r)?: part = .body(r)
        case .end?: part = .end
        case nil: part = nil
        }
        return (Self.stream, part, step.consumed)
    }

    /// 100 Continue and 103 pass through to HTTP/1.1 clients; a 101 nobody asked for does not.
    func writeInterim(_ stream: StreamID, _ b: UnsafeRawBufferPointer, _ head: HTTPResponseHead, into out: inout ByteBuffer) {
        guard head.status != 101, versionMinor >= 1 else { return }
        HeadWriter.response(b, head: head, chunked: false, close: false, into: &out)
    }

    /// The backend's 101: its head goes as it is, then the connection is a byte tunnel.
    func writeSwitch(_ b: UnsafeRawBufferPointer, _ head: HTTPResponseHead, into out: inout ByteBuffer) {
        HeadWriter.response(b, head: head, chunked: false, close: false, into: &out)
    }

    mutating func writeHead(_ stream: StreamID, _ b: UnsafeRawBufferPointer, _ head: HTTPResponseHead, _ edits: ResponseEdits,
                            endStream: Bool, close: Bool, into out: inout ByteBuffer) -> Bool {
        // A body of unknown length (or one the gateway compresses) is re-chunked for HTTP/1.1
        // and delimited by the close for HTTP/1.0; a known length passes as it is.
        let unknownLength: Bool
        switch head.framing {
        case .none, .contentLength: unknownLength = edits.gzip
        case .chunked, .untilClose: unknownLength = true
        }
        framing = !unknownLength ? .asIs : versionMinor >= 1 ? .chunked : .close
        HeadWriter.response(b, head: head, chunked: framing == .chunked, close: close || framing == .close,
                            gzip: edits.gzip, vary: edits.vary, into: &out)
        return framing == .close
    }

    mutating func writeBody(_ stream: StreamID, _ bytes: UnsafeRawBufferPointer, into out: inout ByteBuffer) {
        guard bytes.count > 0 else { return }
        if framing == .chunked {
            out.append(hex: bytes.count)
            out.append("\r\n")
            out.append(bytes)
            out.append("\r\n")
        } else {
            out.append(bytes)
        }
    }

    mutating func writeEnd(_ stream: StreamID, into out: inout ByteBuffer) {
        if framing == .chunked { out.append("0\r\n\r\n") }
        framing = .asIs
    }

    mutating func writeTrailers(_ stream: StreamID, _ fields: HTTP2Fields, accepted: Bool, into out: inout ByteBuffer) {
        guard framing == .chunked, accepted else { writeEnd(stream, into: &out); return }
        out.append("0\r\n")
        HeadWriter.trailerFields(fields, into: &out)
        out.append("\r\n")
        framing = .asIs
    }

    /// gRPC needs HTTP/2: an HTTP/1.1 client gets the plain answer.
    func writeLocal(_ stream: StreamID, status: Int, message: String, header: (name: StaticString, value: String)?, grpc: Int?,
                    close: Bool, into out: inout ByteBuffer) -> Int {
        HeadWriter.errorResponse(status: status, message: message, header: header, close: close, into: &out)
    }
}
