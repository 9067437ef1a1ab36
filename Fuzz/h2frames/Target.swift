// libFuzzer target: HTTP2ServerSession (nghttp2 underneath) fed the input after the client
// preface. Properties: no crash or sanitizer report; the same events whole and byte by byte
// (body runs summed, since their boundaries follow the segmentation; output written once at
// the end both ways, since what was sent decides some events: a stream closes when its
// RST_STREAM goes out), except that once the session no longer wants to read (the peer's GOAWAY
// with no stream open) nghttp2 drops further input at the next call but still parses the rest
// of the buffer it is in: the byte-by-byte run stops there, as the proxy closes then, and its
// events must begin the whole run's; after a failure `receive` keeps throwing it. A second run
// acts like the proxy (answers every request, consumes bodies, writes) to reach the send paths.
import GatewayHTTP2
import GatewaySystem

let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
var fuzzConfig: HTTP2Config {
    var c = HTTP2Config()
    c.maxHeaderListSize = 2048
    c.maxConcurrentStreams = 16
    return c
}

/// The events, those of reading alone, and whether the run stopped feeding bytes because the
/// session stopped reading.
func run(_ input: [UInt8], pieces: Int) -> (events: [String], read: [String], stoppedEarly: Bool) {
    let s = try! HTTP2ServerSession(config: fuzzConfig)
    var out = ByteBuffer(), events: [String] = [], body: [Int32: Int] = [:]
    let bytes = preface + input
    var at = 0, stoppedEarly = false
    while at < bytes.count {
        if pieces != 1 && !s.wantsRead { stoppedEarly = true; break }
        let end = pieces == 1 ? bytes.count : at + 1
        let failed: HTTP2Error? = bytes[at..<end].withUnsafeBytes { b in
            do throws(HTTP2Error) { _ = try s.receive(b); return nil } catch { return error }
        }
        while let e = s.nextEvent() {
            if case .data(let id, let n) = e { body[id, default: 0] += n } else { events.append("\(e)") }
        }
        if let failed {
            events.append("failed \(failed)")
            break
        }
        at = end
    }
    let read = events
    try? s.write(into: &out)
    while let e = s.nextEvent() {
        if case .data = e { preconditionFailure("data while writing") } else { events.append("\(e)") }
    }
    // A stream reset as malformed keeps whatever DATA nghttp2 delivered before it found the
    // fault, and how much that is follows the segmentation: its content-length check runs per
    // chunk (a DATA frame longer than content-length delivers up to the limit byte by byte, and
    // nothing when the frame arrives at once). Its events must agree; its body count need not.
    let malformed = Set(events.compactMap { e -> Int32? in
        guard e.hasPrefix("malformed(stream: "), let n = Int32(e.dropFirst(18).prefix { $0.isNumber }) else { return nil }
        return n
    })
    return (events + body.filter { !malformed.contains($0.key) }.sorted { $0.key < $1.key }.map { "body \($0.key) \($0.value)" },
            read, stoppedEarly)
}

func act(_ input: [UInt8]) {
    let s = try! HTTP2ServerSession(config: fuzzConfig)
    var out = ByteBuffer()
    let bytes = preface + input
    let failed: HTTP2Error? = bytes.withUnsafeBytes { b in
        do throws(HTTP2Error) { _ = try s.receive(b); return nil } catch { return error }
    }
    var reply = HTTP2Fields()
    reply.append("content-type", "text/plain")
    let payload = [UInt8](repeating: 0x61, count: 300)
    while let e = s.nextEvent() {
        switch e {
        case .request(let id, _):
            try? s.respond(id, status: 200, headers: reply, endStream: false)
            payload.withUnsafeBytes { try? s.sendData(id, $0, endStream: id % 4 == 1) }
            if id % 4 == 3 { try? s.sendTrailers(id, reply) }
        case .headersTooLarge(let id): try? s.respond(id, status: 431, endStream: true)
        case .data(let id, _): s.consume(id, s.receivedBody(id).count)
        case .endStream(let id) where id % 8 == 7: s.reset(id, code: HTTP2ErrorCode.cancel)
        default: break
        }
    }
    try? s.write(into: &out)
    if failed != nil {
        precondition(!s.wantsRead, "a failed session still wants to read")
        let again: HTTP2Error? = [UInt8(0)].withUnsafeBytes { b in
            do throws(HTTP2Error) { _ = try s.receive(b); return nil } catch { return error }
        }
        precondition(again == failed, "a failed session accepted more bytes")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzH2Frames(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let whole = run(input, pieces: 1)
    let split = run(input, pieces: 0)
    if split.stoppedEarly ? !whole.read.starts(with: split.read) : split.events != whole.events {
        fatalError("segmentation changed the events:\n whole: \(whole)\n split: \(split)")
    }
    act(input)
    return 0
}
