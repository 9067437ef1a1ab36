// What both sides submit the same way: header blocks as nghttp2_nv arrays (names lower-cased,
// connection-specific fields dropped), bodies through one data provider that drains the
// stream's outgoing buffer, and the callbacks whose work is the same for a request body
// received by the server and a response body received by the client.
import CNGHTTP2
import GatewayHTTP

@inline(__always)
private func equals(_ n: UnsafeRawBufferPointer, _ s: StaticString) -> Bool { bytesEqual(n, s) }

/// Fields HTTP/2 forbids (RFC 9113 §8.2.2): dropped instead of sent.
private func isConnectionSpecific(_ n: UnsafeRawBufferPointer) -> Bool {
    equals(n, "connection") || equals(n, "keep-alive") || equals(n, "proxy-connection") || equals(n, "transfer-encoding")
        || equals(n, "upgrade")
}

/// nghttp2's flags for a field: the two the gateway gives a new value on every request are sent
/// as literals never indexed (RFC 7541 §6.2.3). Indexed, each went into HPACK's dynamic table
/// (an nghttp2 allocation) only to push out the fields that do repeat.
@inline(__always)
private func indexFlags(_ n: UnsafeRawBufferPointer) -> UInt8 {
    equals(n, "x-request-id") || equals(n, "traceparent")
        ? UInt8(NGHTTP2_NV_FLAG_NO_INDEX.rawValue) : UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)
}

/// `body` with the session at +0. Invariant: user_data is the session object that owns the
/// nghttp2 session (deleted in its deinit), and nghttp2 calls back only inside a session method,
/// whose `self` keeps the session alive.
@inline(__always)
func withBaseSession<R>(_ ud: UnsafeMutableRawPointer?, _ body: (HTTP2Session) -> R) -> R {
    Unmanaged<HTTP2Session>.fromOpaque(ud!)._withUnsafeGuaranteedRef(body)
}

extension HTTP2Session {
    /// Calls `body` with the `pseudo` fields, then `fields`, as an nghttp2_nv array on the stack,
    /// names lower-cased into `nameScratch`. nghttp2 copies the fields while submitting.
    func withFieldArray(_ fields: HTTP2Fields, pseudo: [(StaticString, UnsafeRawBufferPointer)],
                        _ body: (UnsafePointer<nghttp2_nv>, Int) -> Int32) -> Int32 {
        fields.bytes.withUnsafeBytes { raw in
            fields.fields.withUnsafeBufferPointer { withFieldArray(raw, $0, pseudo: pseudo, body) }
        }
    }

    /// The same with the fields as ranges of `raw` (an HTTP/1 head: a request toward an h2
    /// backend, a backend's response toward an h2 client, without a copy into an HTTP2Fields
    /// first): `te: trailers` right after the pseudo-header fields when `te`, the fields `drop`
    /// does not take, then `extra`.
    func withFieldArray(_ raw: UnsafeRawBufferPointer, _ fields: UnsafeBufferPointer<HTTPHeaderField>,
                        pseudo: [(StaticString, UnsafeRawBufferPointer)], te: Bool = false,
                        extra: [(StaticString, StaticString)] = [], drop: (HTTPHeaderField) -> Bool = { _ in false },
                        _ body: (UnsafePointer<nghttp2_nv>, Int) -> Int32) -> Int32 {
        // Lower-cased names into the scratch in one pass over raw memory (appending byte by byte
        // cost a uniqueness check per byte).
        var total = 0
        for f in fields { total += f.name.count }
        let dst = nameScratch(atLeast: total)
        do {
            // Eight bytes at a time (byte by byte cost ~9 instructions each), the last word
            // overlapping the one before it; four for a name of 4 to 7 bytes.
            var at = 0
            for f in fields {
                let from = f.name.lowerBound, count = f.name.count
                func word(_ i: Int) {
                    dst.storeBytes(of: asciiLowercased(raw.loadUnaligned(fromByteOffset: from + i, as: UInt64.self)), toByteOffset: at + i, as: UInt64.self)
                }
                func half(_ i: Int) {
                    let w = asciiLowercased(UInt64(raw.loadUnaligned(fromByteOffset: from + i, as: UInt32.self)))
                    dst.storeBytes(of: UInt32(truncatingIfNeeded: w), toByteOffset: at + i, as: UInt32.self)
                }
                if count >= 8 {
                    var i = 0
                    while count - i > 8 { word(i); i += 8 }
                    word(count - 8)
                } else if count >= 4 {
                    half(0); half(count - 4)
                } else {
                    for i in 0..<count { let c = raw[from + i]; dst[at + i] = c &- 65 < 26 ? c | 0x20 : c }
                }
                at += count
            }
        }
        let cap = fields.count + pseudo.count + extra.count + 1
        let names = UnsafeRawBufferPointer(dst)
        return withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: max(cap, 1)) { nva in
            var n = 0
            func add(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, _ flags: UInt8) {
                nva[n] = nghttp2_nv(name: mutableBytes(name), value: mutableBytes(value), namelen: name.count,
                                    valuelen: value.count, flags: flags)
                n += 1
            }
            // A literal name (lower case, in the binary for good) goes uncopied: nghttp2 keeps the
            // pointer until it encodes the frame, and skips its copy and lower-casing of it.
            func add(_ name: StaticString, _ value: UnsafeRawBufferPointer, _ flags: UInt8 = 0) {
                add(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount), value,
                    flags | UInt8(NGHTTP2_NV_FLAG_NO_COPY_NAME.rawValue))
            }
            func add(_ name: StaticString, _ value: StaticString) {
                add(name, UnsafeRawBufferPointer(start: value.utf8Start, count: value.utf8CodeUnitCount),
                    UInt8(NGHTTP2_NV_FLAG_NO_COPY_VALUE.rawValue))
            }
            for (name, value) in pseudo { add(name, value) }
            if te { add("te", "trailers") }
            var at = 0
            for f in fields {
                let name = UnsafeRawBufferPointer(rebasing: names[at..<at + f.name.count])
                at += f.name.count
                if isConnectionSpecific(name) || drop(f) { continue }
                add(name, UnsafeRawBufferPointer(rebasing: raw[f.value]), indexFlags(name))
            }
            for (name, value) in extra { add(name, value) }
            return body(UnsafePointer(nva.baseAddress!), n)
        }
    }

    /// The callbacks both sides need unchanged: received DATA into the stream's buffer, stream
    /// close, fields nghttp2 would silently drop, and DATA frames written without a copy.
    static func installSharedCallbacks(_ cbs: OpaquePointer?) {
        // A DATA frame readBody marked NO_COPY: its 9-byte header, then the payload straight from
        // the stream's outgoing buffer into the sink of the running `write(into:)` (no padding is
        // ever asked for).
        nghttp2_session_callbacks_set_send_data_callback(cbs) { _, frame, framehd, length, _, ud in withBaseSession(ud) { s in
            guard let out = s.sink else { return Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
            return s.streams.withValue(frame!.pointee.hd.stream_id) { st in
                guard st.outgoing.readableCount >= length else { return Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
                out.pointee.append(UnsafeRawBufferPointer(start: framehd, count: 9))
                st.outgoing.move(length, into: &out.pointee)
                return 0
            } ?? Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue)
        } }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs) { session, _, id, data, len, ud in withBaseSession(ud) { s in
            let taken = s.streams.withValue(id) { st in
                guard st.delivered, !st.discarding else { return false }
                st.incoming.append(UnsafeRawBufferPointer(start: data, count: len))
                return true
            } ?? false
            guard taken else {
                // Nobody will take these bytes: give the window back now.
                _ = nghttp2_session_consume(session, id, len)
                return 0
            }
            s.dataReceived(id, count: len)
            return 0
        } }
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs) { session, id, code, ud in withBaseSession(ud) { s in
            if let d = s.decoding, d._withUnsafeGuaranteedRef({ $0.id == id }) { s.decoding = nil }
            guard let st = s.streams.removeValue(forKey: id) else { return 0 }
            // Bytes the caller never consumed still count against the connection window.
            let left = st.incoming.readableCount
            if left > 0 { _ = nghttp2_session_consume_connection(session, left) }
            if !s.streamClosed(st, code: code) { s.recycle(st) }
            return 0
        } }
        // Only the two HTTP messaging errors (RFC 9113 §8) are ours to report per stream, once;
        // nghttp2 has queued RST_STREAM PROTOCOL_ERROR for them. Connection errors show as its GOAWAY.
        nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs) { _, frame, code, ud in withBaseSession(ud) { s in
            let id = frame!.pointee.hd.stream_id
            let reason: String
            switch code {
            case Int32(NGHTTP2_ERR_HTTP_HEADER.rawValue): reason = "malformed header"
            case Int32(NGHTTP2_ERR_HTTP_MESSAGING.rawValue): reason = "malformed message"
            default: return 0
            }
            if id > 0, let st = s.streams[id], !st.discarding {
                st.discarding = true
                s.malformed(id, reason: reason)
            }
            return 0
        } }
        // A field nghttp2 would silently drop (a bad character in a regular field's name or
        // value): RFC 9113 §8.2.1 calls the message malformed, so make nghttp2 reset the stream.
        nghttp2_session_callbacks_set_on_invalid_header_callback(cbs) { _, _, _, _, _, _, _, _ in
            Int32(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
    }
}

/// nghttp2 wants bytes, but nghttp2_nv is declared with mutable pointers (it never writes).
private func mutableBytes(_ b: UnsafeRawBufferPointer) -> UnsafeMutablePointer<UInt8>? {
    b.baseAddress.map { UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: UInt8.self)) }
        ?? UnsafeMutablePointer(mutating: emptyByte)
}
nonisolated(unsafe) private let emptyByte = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)

/// The data provider of every body we send: pulls from the stream's outgoing buffer. Empty and
/// not ended: DEFERRED until sendData/sendTrailers resume it. At the end with trailers:
/// NO_END_STREAM, and the trailers go as the stream's last HEADERS.
let readBody: nghttp2_data_source_read_callback = { session, id, buf, length, flags, _, ud in
    // The session and the stream at +0 (the table holds it; nothing here changes the table).
    return withBaseSession(ud) { s in
        s.streams.withValue(id) { readBody(s, $0, session, id, buf, length, flags!) } ?? ssize_t(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
    }
}

private func readBody(_ s: HTTP2Session, _ st: HTTP2Stream, _ session: OpaquePointer?, _ id: Int32, _ buf: UnsafeMutablePointer<UInt8>?,
                      _ length: Int, _ flags: UnsafeMutablePointer<UInt32>) -> ssize_t {
    let n = min(length, st.outgoing.readableCount)
    // The payload is not copied here: sendDataFrame writes it from `outgoing` straight into the
    // caller's sink when nghttp2 sends the frame (one copy less per byte of every body).
    // (nghttp2 sends the frame before it asks for the next one.)
    let rest = st.outgoing.readableCount - n
    if n > 0 && s.sink != nil {
        flags.pointee |= NGHTTP2_DATA_FLAG_NO_COPY.rawValue
    } else if n > 0 {
        st.outgoing.move(n, to: UnsafeMutableRawPointer(buf!))
    }
    guard rest == 0 else { return n }
    if !st.outgoingEnd {
        if n > 0 { return n }
        st.deferred = true
        return ssize_t(NGHTTP2_ERR_DEFERRED.rawValue)
    }
    flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
    if let t = st.pendingTrailers {
        st.pendingTrailers = nil
        flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
        let rv = s.withFieldArray(t, pseudo: []) { nva, count in nghttp2_submit_trailer(session, id, nva, count) }
        if rv != 0 { return ssize_t(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
    }
    return n
}
