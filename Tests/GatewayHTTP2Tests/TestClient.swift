// A real nghttp2 client session, test-only: it checks our output the way a client library
// does (HPACK, stream states, flow control), and records what it received.
import CNGHTTP2
import GatewayHTTP2
import GatewaySystem

final class TestClient {
    struct Response { var status = "", headers: [(String, String)] = [], body: [UInt8] = [], trailers: [(String, String)] = [], closed: UInt32? }
    var session: OpaquePointer?
    var responses: [Int32: Response] = [:]
    var windowUpdates: [(stream: Int32, increment: Int32)] = []
    var goaways: [(last: Int32, code: UInt32)] = []
    var resets: [(stream: Int32, code: UInt32)] = []
    /// Request bodies still to send, and trailers to end them with.
    var bodies: [Int32: [UInt8]] = [:]
    var requestTrailers: [Int32: [(String, String)]] = [:]

    /// `window`: SETTINGS_INITIAL_WINDOW_SIZE; `autoWindowUpdate` false: the client never
    /// opens its window again (a client that stops reading).
    init(window: Int32 = 65535, autoWindowUpdate: Bool = true) {
        var cbs: OpaquePointer?
        nghttp2_session_callbacks_new(&cbs)
        defer { nghttp2_session_callbacks_del(cbs) }
        nghttp2_session_callbacks_set_on_header_callback(cbs) { _, frame, name, nl, value, vl, _, ud in
            let c = client(ud), id = frame!.pointee.hd.stream_id
            let n = String(decoding: UnsafeBufferPointer(start: name, count: nl), as: UTF8.self)
            let v = String(decoding: UnsafeBufferPointer(start: value, count: vl), as: UTF8.self)
            var r = c.responses[id] ?? Response()
            if n == ":status" { r.status = v } else if r.status.isEmpty || frame!.pointee.headers.cat == NGHTTP2_HCAT_RESPONSE {
                r.headers.append((n, v))
            } else { r.trailers.append((n, v)) }
            c.responses[id] = r
            return 0
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs) { _, _, id, data, len, ud in
            client(ud).responses[id, default: Response()].body += UnsafeBufferPointer(start: data, count: len)
            return 0
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs) { _, frame, ud in
            let c = client(ud), f = frame!.pointee
            switch UInt32(f.hd.type) {
            case NGHTTP2_WINDOW_UPDATE.rawValue: c.windowUpdates.append((f.hd.stream_id, f.window_update.window_size_increment))
            case NGHTTP2_GOAWAY.rawValue: c.goaways.append((f.goaway.last_stream_id, f.goaway.error_code))
            case NGHTTP2_RST_STREAM.rawValue: c.resets.append((f.hd.stream_id, f.rst_stream.error_code))
            default: break
            }
            return 0
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs) { _, id, code, ud in
            client(ud).responses[id, default: Response()].closed = code
            return 0
        }
        let me = Unmanaged.passUnretained(self).toOpaque()
        var option: OpaquePointer?
        nghttp2_option_new(&option)
        defer { nghttp2_option_del(option) }
        nghttp2_option_set_no_auto_window_update(option, autoWindowUpdate ? 0 : 1)
        nghttp2_session_client_new2(&session, cbs, me, option)
        var iv = [nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: UInt32(window))]
        nghttp2_submit_settings(session, 0, &iv, 1)
    }
    deinit { nghttp2_session_del(session) }

    /// Submits a request; `body` nil means END_STREAM on the HEADERS.
    @discardableResult
    func request(_ fields: [(String, String)] = getFields, body: [UInt8]? = nil, trailers: [(String, String)]? = nil) -> Int32 {
        withNV(fields) { nva, n in
            guard body != nil || trailers != nil else { return nghttp2_submit_request(session, nil, nva, n, nil, nil) }
            var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: clientReadBody)
            let id = nghttp2_submit_request(session, nil, nva, n, &provider, nil)
            bodies[id] = body ?? []
            requestTrailers[id] = trailers
            return id
        }
    }

    func withNV<R>(_ fields: [(String, String)], _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        // One allocation per field, freed after the call (nghttp2 copies the fields).
        var nva: [nghttp2_nv] = []
        var owned: [UnsafeMutablePointer<UInt8>] = []
        defer { owned.forEach { $0.deallocate() } }
        func copy(_ s: String) -> UnsafeMutablePointer<UInt8> {
            let b = Array(s.utf8), p = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, b.count))
            p.initialize(from: b, count: b.count)
            owned.append(p)
            return p
        }
        for (n, v) in fields {
            nva.append(nghttp2_nv(name: copy(n), value: copy(v), namelen: n.utf8.count, valuelen: v.utf8.count, flags: 0))
        }
        return body(nva, nva.count)
    }

    func send() -> [UInt8] {
        var out: [UInt8] = []
        while true {
            var p: UnsafePointer<UInt8>?
            let n = nghttp2_session_mem_send(session, &p)
            guard n > 0, let p else { return out }
            out += UnsafeBufferPointer(start: p, count: n)
        }
    }

    func receive(_ bytes: [UInt8]) {
        let n = bytes.withUnsafeBufferPointer { nghttp2_session_mem_recv(session, $0.baseAddress, $0.count) }
        precondition(n == bytes.count, "client mem_recv: \(n)")
    }
}

private func client(_ ud: UnsafeMutableRawPointer?) -> TestClient { Unmanaged<TestClient>.fromOpaque(ud!).takeUnretainedValue() }

private let clientReadBody: nghttp2_data_source_read_callback = { session, id, buf, length, flags, _, ud in
    let c = client(ud)
    let body = c.bodies[id] ?? []
    let n = min(length, body.count)
    body.withUnsafeBufferPointer { UnsafeMutableRawPointer(buf!).copyMemory(from: $0.baseAddress!, byteCount: n) }
    c.bodies[id] = Array(body.dropFirst(n))
    if n == body.count {
        flags!.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
        if let t = c.requestTrailers[id] {
            flags!.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
            _ = c.withNV(t) { nghttp2_submit_trailer(session, id, $0, $1) }
        }
    }
    return n
}

/// Moves bytes both ways until neither side has anything to say. Returns the events and any
/// error the server threw.
@discardableResult
func pump(_ c: TestClient, _ s: HTTP2ServerSession, events: inout [HTTP2Event]) -> HTTP2Error? {
    for _ in 0..<10_000 {
        let out = c.send()
        if !out.isEmpty {
            if let e = receive(s, out) { return e }
        }
        let back = drain(s)
        events += drainEvents(s)
        if !back.isEmpty { c.receive(back) }
        if out.isEmpty && back.isEmpty { return nil }
    }
    return HTTP2Error("pump did not settle")
}
