import CZlib
import GatewayHTTP
import CGatewayShims

/// Streaming gzip of a response body through zlib: bytes in, compressed bytes out as they
/// come, never the whole body in memory.
final class GzipStream {
    private var stream = z_stream()
    private let out = UnsafeMutablePointer<UInt8>.allocate(capacity: 32 * 1024)
    private var open = false

    init?() {
        // windowBits 15 + 16: the gzip wrapper; memLevel 8; level 1: CPU matters more than the last percent.
        guard gw_deflate_init2(&stream, 1, 15 + 16, 8) == Z_OK else { return nil }
        open = true
    }

    deinit {
        if open { deflateEnd(&stream) }
        out.deallocate()
    }

    /// Compresses `input`, handing each piece of output to `emit`.
    func compress(_ input: UnsafeRawBufferPointer, _ emit: (UnsafeRawBufferPointer) -> Void) {
        run(input, flush: Z_NO_FLUSH, emit)
    }

    /// Ends the stream (gzip trailer included).
    func finish(_ emit: (UnsafeRawBufferPointer) -> Void) {
        run(UnsafeRawBufferPointer(start: nil, count: 0), flush: Z_FINISH, emit)
    }

    private func run(_ input: UnsafeRawBufferPointer, flush: Int32, _ emit: (UnsafeRawBufferPointer) -> Void) {
        guard open else { return }
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
        stream.avail_in = UInt32(input.count)
        repeat {
            stream.next_out = out
            stream.avail_out = 32 * 1024
            let r = deflate(&stream, flush)
            let n = 32 * 1024 - Int(stream.avail_out)
            if n > 0 { emit(UnsafeRawBufferPointer(start: out, count: n)) }
            if r == Z_STREAM_END || r == Z_STREAM_ERROR { break }
        } while stream.avail_out == 0 || stream.avail_in > 0
        if flush == Z_FINISH { deflateEnd(&stream); open = false }
    }
}

/// Whether a response may be gzipped for this request (SPEC §5): the host has `compress on`,
/// the client accepts gzip, the backend did not encode the body, the type is listed, and the
/// length (when known) reaches `compress_min_length`.
enum CompressionDecision {
    static func clientAcceptsGzip(_ b: UnsafeRawBufferPointer, _ value: Range<Int>) -> Bool {
        var ok = false
        forEachListElement(b, value) { e in
            // "gzip" or "gzip;q=..." with q not zero; "*" counts too.
            let s = String(decoding: b[e], as: UTF8.self).lowercased().replacingSpaces()
            let parts = s.split(separator: ";")
            guard let coding = parts.first, coding == "gzip" || coding == "*" else { return }
            if parts.dropFirst().contains(where: { $0 == "q=0" || $0 == "q=0.0" || $0 == "q=0.00" || $0 == "q=0.000" }) { return }
            ok = true
        }
        return ok
    }

    static func typeListed(_ contentType: String, in types: [String]) -> Bool {
        let base = contentType.split(separator: ";").first.map { String($0).lowercased().replacingSpaces() } ?? ""
        return types.contains(base)
    }
}

private extension String {
    func replacingSpaces() -> String { String(filter { $0 != " " && $0 != "\t" }) }
}
