import GatewaySystem

/// The response body on its way to the client: passed on as it is (the backend's length
/// holds), re-chunked, or gzipped (then chunked, or close-delimited for HTTP/1.0). The
/// gzip filter sits here, between the client codec's body parts and the client's bytes.
struct BodyEncoder {
    enum Framing { case asIs, chunked, close }
    var framing: Framing = .asIs
    /// The compressor while the body is being gzipped.
    var gzip: GzipStream?

    func write(_ bytes: UnsafeRawBufferPointer, into out: inout ByteBuffer) {
        guard bytes.count > 0 else { return }
        let framing = framing
        if let gzip {
            gzip.compress(bytes) { Self.frame($0, framing, into: &out) }
        } else {
            Self.frame(bytes, framing, into: &out)
        }
    }

    /// The last bytes of the body: the gzip trailer, then the last chunk.
    mutating func finish(into out: inout ByteBuffer) {
        let framing = framing
        if let gzip {
            gzip.finish { Self.frame($0, framing, into: &out) }
            self.gzip = nil
        }
        if framing == .chunked { out.append("0\r\n\r\n") }
    }

    private static func frame(_ bytes: UnsafeRawBufferPointer, _ framing: Framing, into out: inout ByteBuffer) {
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
}
