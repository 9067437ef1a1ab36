// What the caller asks the session to send: responses, body bytes, trailers, resets, GOAWAY,
// ORIGIN. Each submits to nghttp2; the frames come out of the next `write(into:)`.
import CNGHTTP2

/// Response fields HTTP/2 forbids (RFC 9113 §8.2.2): dropped instead of sent.
private func isConnectionSpecific(_ n: UnsafeRawBufferPointer) -> Bool {
    func eq(_ s: StaticString) -> Bool {
        n.count == s.utf8CodeUnitCount && n.elementsEqual(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }
    return eq("connection") || eq("keep-alive") || eq("proxy-connection") || eq("transfer-encoding") || eq("upgrade")
}

extension HTTP2ServerSession {
    /// Sends the response head on `stream`. Names are lower-cased and connection-specific fields
    /// dropped. With `endStream` false a body follows through `sendData` and/or `sendTrailers`.
    public func respond(_ stream: Int32, status: Int, headers: HTTP2Fields = HTTP2Fields(), endStream: Bool) throws(HTTP2Error) {
        guard let st = streams[stream] else { throw HTTP2Error("respond: stream \(stream) is not open") }
        guard (100...999).contains(status) else { throw HTTP2Error("respond: status \(status) is not three digits") }
        var digits: (UInt8, UInt8, UInt8) = (UInt8(48 + status / 100), UInt8(48 + status / 10 % 10), UInt8(48 + status % 10))
        let rv = withUnsafeMutableBytes(of: &digits) { d in
            withFieldArray(headers, first: (":status", UnsafeRawBufferPointer(d))) { nva, count in
                if endStream { return nghttp2_submit_response(session, stream, nva, count, nil) }
                var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: readBody)
                return nghttp2_submit_response(session, stream, nva, count, &provider)
            }
        }
        guard rv == 0 else { throw HTTP2Error("nghttp2_submit_response failed", libraryCode: rv) }
        st.hasProvider = !endStream
        st.outgoingEnd = endStream
    }

    /// Queues response body bytes (copied into the stream's outgoing buffer, which nghttp2 drains
    /// as the client's flow-control window allows). Keep `outgoingBuffered` bounded: stop reading
    /// the backend while it is over your limit.
    public func sendData(_ stream: Int32, _ bytes: UnsafeRawBufferPointer, endStream: Bool) throws(HTTP2Error) {
        guard let st = streams[stream], st.hasProvider, !st.outgoingEnd else {
            throw HTTP2Error("sendData: stream \(stream) has no open response body")
        }
        st.outgoing.append(bytes)
        st.outgoingEnd = endStream
        resumeIfDeferred(st)
    }

    /// Ends the response body with trailers (gRPC's grpc-status); a trailers-only response is
    /// `respond(endStream: false)` followed by this.
    public func sendTrailers(_ stream: Int32, _ fields: HTTP2Fields) throws(HTTP2Error) {
        guard let st = streams[stream], st.hasProvider, !st.outgoingEnd else {
            throw HTTP2Error("sendTrailers: stream \(stream) has no open response body")
        }
        st.pendingTrailers = fields
        st.outgoingEnd = true
        resumeIfDeferred(st)
    }

    /// Response bytes queued on the stream that nghttp2 has not taken yet (0 for a closed stream).
    public func outgoingBuffered(_ stream: Int32) -> Int { streams[stream]?.outgoing.readableCount ?? 0 }

    /// Resets the stream (RST_STREAM with `code`); its later DATA is dropped.
    public func reset(_ stream: Int32, code: UInt32) {
        streams[stream]?.discarding = true
        _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream, code)
    }

    /// First step of a graceful shutdown (RFC 9113 §6.8): GOAWAY with last stream 2^31-1, so
    /// requests in flight still land. After about one round trip, call `goaway`.
    public func shutdownNotice() throws(HTTP2Error) {
        let rv = nghttp2_submit_shutdown_notice(session)
        guard rv == 0 else { throw HTTP2Error("nghttp2_submit_shutdown_notice failed", libraryCode: rv) }
    }

    /// GOAWAY with `lastStream` (default: the last stream nghttp2 handed to us). Streams up to it
    /// finish; then `wantsRead` and `wantsWrite` turn false and the caller closes.
    public func goaway(code: UInt32 = HTTP2ErrorCode.noError, lastStream: Int32? = nil) throws(HTTP2Error) {
        submittedGoaway = true
        let last = lastStream ?? nghttp2_session_get_last_proc_stream_id(session)
        let rv = nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), last, code, nil, 0)
        guard rv == 0 else { throw HTTP2Error("nghttp2_submit_goaway failed", libraryCode: rv) }
    }

    /// Queues an ORIGIN frame (RFC 8336) listing `origins` (`https://name[:port]`); called right
    /// after init it follows our SETTINGS on the wire.
    public func submitOrigin(_ origins: [String]) throws(HTTP2Error) {
        var bytes = origins.map { Array($0.utf8) }
        let rv = bytes.withUnsafeMutableBufferPointer { b in
            withUnsafeTemporaryAllocation(of: nghttp2_origin_entry.self, capacity: b.count) { ov in
                for i in 0..<b.count {
                    ov[i] = b[i].withUnsafeMutableBufferPointer { nghttp2_origin_entry(origin: $0.baseAddress, origin_len: $0.count) }
                }
                return nghttp2_submit_origin(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), ov.baseAddress, b.count)
            }
        }
        guard rv == 0 else { throw HTTP2Error("nghttp2_submit_origin failed", libraryCode: rv) }
    }

    func resumeIfDeferred(_ st: HTTP2Stream) {
        guard st.deferred else { return }
        st.deferred = false
        _ = nghttp2_session_resume_data(session, st.id)
    }

    /// Calls `body` with `fields` (after `first`) as an nghttp2_nv array on the stack, names
    /// lower-cased into `nameScratch`. nghttp2 copies the fields while submitting.
    func withFieldArray(_ fields: HTTP2Fields, first: (StaticString, UnsafeRawBufferPointer)?,
                        _ body: (UnsafePointer<nghttp2_nv>, Int) -> Int32) -> Int32 {
        nameScratch.removeAll(keepingCapacity: true)
        for f in fields.fields { for c in fields.bytes[f.name] { nameScratch.append(c >= 65 && c <= 90 ? c | 0x20 : c) } }
        let cap = fields.count + 1
        return fields.bytes.withUnsafeBytes { raw in
            nameScratch.withUnsafeBytes { names in
                withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: cap) { nva in
                    var n = 0
                    func add(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
                        nva[n] = nghttp2_nv(name: mutableBytes(name), value: mutableBytes(value), namelen: name.count,
                                            valuelen: value.count, flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
                        n += 1
                    }
                    if let (name, value) = first {
                        add(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount), value)
                    }
                    var at = 0
                    for f in fields.fields {
                        let name = UnsafeRawBufferPointer(rebasing: names[at..<at + f.name.count])
                        at += f.name.count
                        if isConnectionSpecific(name) { continue }
                        add(name, UnsafeRawBufferPointer(rebasing: raw[f.value]))
                    }
                    return body(UnsafePointer(nva.baseAddress!), n)
                }
            }
        }
    }
}

/// nghttp2 wants bytes, but nghttp2_nv is declared with mutable pointers (it never writes).
private func mutableBytes(_ b: UnsafeRawBufferPointer) -> UnsafeMutablePointer<UInt8>? {
    b.baseAddress.map { UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: UInt8.self)) }
        ?? UnsafeMutablePointer(mutating: emptyByte)
}
nonisolated(unsafe) private let emptyByte = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)

/// The data provider of every response body: pulls from the stream's outgoing buffer. Empty
/// and not ended: DEFERRED until sendData/sendTrailers resume it. At the end with trailers:
/// NO_END_STREAM, and the trailers go as the stream's last HEADERS.
let readBody: nghttp2_data_source_read_callback = { session, id, buf, length, flags, _, ud in
    let s = sessionFrom(ud)
    guard let st = s.streams[id] else { return ssize_t(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
    let n = min(length, st.outgoing.readableCount)
    if n > 0 {
        UnsafeMutableRawPointer(buf!).copyMemory(from: st.outgoing.readable.baseAddress!, byteCount: n)
        st.outgoing.consume(n)
        st.outgoing.releaseIfEmpty()
    }
    guard st.outgoing.isEmpty else { return n }
    if !st.outgoingEnd {
        if n > 0 { return n }
        st.deferred = true
        return ssize_t(NGHTTP2_ERR_DEFERRED.rawValue)
    }
    flags!.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
    if let t = st.pendingTrailers {
        st.pendingTrailers = nil
        flags!.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
        let rv = s.withFieldArray(t, first: nil) { nva, count in nghttp2_submit_trailer(session, id, nva, count) }
        if rv != 0 { return ssize_t(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
    }
    return n
}
