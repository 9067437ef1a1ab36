// Raw HTTP/2 frames for the cases a well-behaved client library will not produce (malformed
// requests, floods), a literal-only HPACK encoder (no dynamic table, so a block can be
// replayed), and a parser for what the server wrote.
import GatewayHTTP2
import GatewaySystem

let clientPreface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

enum FrameType: UInt8 { case data = 0, headers = 1, rstStream = 3, settings = 4, ping = 6, goaway = 7, windowUpdate = 8, continuation = 9, origin = 0xc }

struct Frame: Equatable {
    var type: UInt8, flags: UInt8, stream: Int32, payload: [UInt8]
    var u32: UInt32 { payload.prefix(4).reduce(0) { $0 << 8 | UInt32($1) } }
    /// GOAWAY: (last stream, error code).
    var goaway: (last: Int32, code: UInt32) {
        (Int32(bitPattern: u32 & 0x7fff_ffff), payload[4..<8].reduce(0) { $0 << 8 | UInt32($1) })
    }
}

func frame(_ type: FrameType, flags: UInt8 = 0, stream: Int32 = 0, _ payload: [UInt8] = []) -> [UInt8] {
    let n = payload.count
    var out: [UInt8] = [UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff), type.rawValue, flags]
    out += be32(UInt32(stream))
    out += payload
    return out
}

func be32(_ v: UInt32) -> [UInt8] {
    let a = UInt8(v >> 24), b = UInt8((v >> 16) & 0xff), c = UInt8((v >> 8) & 0xff), d = UInt8(v & 0xff)
    return [a, b, c, d]
}

/// HPACK integer with an N-bit prefix (RFC 7541 §5.1), `high` the bits above the prefix.
func hpackInt(_ v: Int, prefix: Int, high: UInt8 = 0) -> [UInt8] {
    let max = (1 << prefix) - 1
    if v < max { return [high | UInt8(v)] }
    var out = [high | UInt8(max)], r = v - max
    while r >= 128 { out.append(UInt8(r & 0x7f) | 0x80); r >>= 7 }
    return out + [UInt8(r)]
}

/// Literal header fields without indexing, new names, no Huffman: the same bytes every time.
func hpack(_ fields: [(String, String)]) -> [UInt8] {
    var out: [UInt8] = []
    for (n, v) in fields {
        out.append(0)
        out += hpackInt(n.utf8.count, prefix: 7)
        out += Array(n.utf8)
        out += hpackInt(v.utf8.count, prefix: 7)
        out += Array(v.utf8)
    }
    return out
}

let getFields = [(":method", "GET"), (":scheme", "https"), (":authority", "api.example.test"), (":path", "/")]

func headersFrame(_ stream: Int32, _ fields: [(String, String)], endStream: Bool = true) -> [UInt8] {
    frame(.headers, flags: 0x4 | (endStream ? 0x1 : 0), stream: stream, hpack(fields))
}

func settingsFrame(_ entries: [(UInt16, UInt32)] = []) -> [UInt8] {
    frame(.settings, payload: entries.flatMap { [UInt8($0.0 >> 8), UInt8($0.0 & 0xff)] + be32($0.1) })
}

extension FrameType {}
private func frame(_ type: FrameType, payload: [UInt8]) -> [UInt8] { frame(type, flags: 0, stream: 0, payload) }

func parseFrames(_ b: [UInt8]) -> [Frame] {
    var out: [Frame] = [], i = 0
    while i + 9 <= b.count {
        let n = Int(b[i]) << 16 | Int(b[i + 1]) << 8 | Int(b[i + 2])
        guard i + 9 + n <= b.count else { break }
        let id = Int32(bitPattern: b[i + 5..<i + 9].reduce(0) { $0 << 8 | UInt32($1) } & 0x7fff_ffff)
        out.append(Frame(type: b[i + 3], flags: b[i + 4], stream: id, payload: Array(b[i + 9..<i + 9 + n])))
        i += 9 + n
    }
    return out
}

/// The server session fed raw bytes: what it threw, wrote, and reported.
struct RawRun {
    var error: HTTP2Error?
    var frames: [Frame]
    var events: [HTTP2Event]
}

func feed(_ s: HTTP2ServerSession, _ bytes: [UInt8]) -> RawRun {
    let error = receive(s, bytes)
    return RawRun(error: error, frames: parseFrames(drain(s)), events: drainEvents(s))
}

/// Feeds bytes; the error the session threw, if any.
func receive(_ s: HTTP2ServerSession, _ bytes: [UInt8]) -> HTTP2Error? {
    bytes.withUnsafeBytes { b -> HTTP2Error? in
        do throws(HTTP2Error) { _ = try s.receive(b); return nil } catch { return error }
    }
}

/// sendData from an array (a typed-throws closure through withUnsafeBytes crashes swiftc 6.3.1).
func sendData(_ s: HTTP2ServerSession, _ id: Int32, _ bytes: [UInt8], endStream: Bool) throws {
    let e = bytes.withUnsafeBytes { b -> HTTP2Error? in
        do throws(HTTP2Error) { try s.sendData(id, b, endStream: endStream); return nil } catch { return error }
    }
    if let e { throw e }
}

func drain(_ s: HTTP2ServerSession) -> [UInt8] {
    var buf = ByteBuffer()
    try? s.write(into: &buf)
    return Array(buf.readable)
}

func drainEvents(_ s: HTTP2ServerSession) -> [HTTP2Event] {
    var out: [HTTP2Event] = []
    while let e = s.nextEvent() { out.append(e) }
    return out
}

/// A session past the handshake: the client's preface and SETTINGS fed, our SETTINGS drained.
func openSession(_ config: HTTP2Config = HTTP2Config()) throws -> HTTP2ServerSession {
    let s = try HTTP2ServerSession(config: config)
    _ = feed(s, clientPreface + settingsFrame())
    return s
}
