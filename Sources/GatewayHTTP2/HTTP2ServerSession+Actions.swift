// What the caller asks the server session to send: responses, GOAWAY, ORIGIN (body bytes,
// trailers and resets are HTTP2Session's). The frames come out of the next `write(into:)`.
import CNGHTTP2
import GatewayHTTP

extension HTTP2ServerSession {
    /// Sends the response head on `stream`. Names are lower-cased and connection-specific fields
    /// dropped. With `endStream` false a body follows through `sendData` and/or `sendTrailers`.
    public func respond(_ stream: Int32, status: Int, headers: HTTP2Fields = HTTP2Fields(), endStream: Bool) throws(HTTP2Error) {
        var h = headers
        try respond(stream, status: status, headers: &h, endStream: endStream)
    }

    /// The same with `headers` borrowed in place (inout, not changed): a caller's reused field
    /// storage, read from a class property, would otherwise be retained around the call.
    public func respond(_ stream: Int32, status: Int, headers: inout HTTP2Fields, endStream: Bool) throws(HTTP2Error) {
        try respond(stream, status: status, endStream: endStream) { pseudo, body in withFieldArray(headers, pseudo: pseudo, body) }
    }

    /// The same with the fields as ranges of `raw` (a backend's HTTP/1 response head, sent on
    /// without a copy): those `drop` says stay behind (hop-by-hop fields go in any case), then `extra`.
    public func respond(_ stream: Int32, status: Int, raw: UnsafeRawBufferPointer, fields: HeadFields,
                        extra: [(StaticString, StaticString)] = [], endStream: Bool,
                        drop: (HTTPHeaderField) -> Bool) throws(HTTP2Error) {
        try respond(stream, status: status, endStream: endStream) { pseudo, body in
            withFieldArray(raw, fields, pseudo: pseudo, extra: extra, drop: drop, body)
        }
    }

    /// `fieldArray` gives the pseudo-header fields and then the head's as an nghttp2_nv array to its body.
    private func respond(_ stream: Int32, status: Int, endStream: Bool,
                         _ fieldArray: ([(StaticString, UnsafeRawBufferPointer)], (UnsafePointer<nghttp2_nv>, Int) -> Int32) -> Int32)
        throws(HTTP2Error) {
        guard streams.contains(stream) else { throw HTTP2Error("respond: stream \(stream) is not open") }
        guard (100...999).contains(status) else { throw HTTP2Error("respond: status \(status) is not three digits") }
        var digits: (UInt8, UInt8, UInt8) = (UInt8(48 + status / 100), UInt8(48 + status / 10 % 10), UInt8(48 + status % 10))
        let rv = withUnsafeMutableBytes(of: &digits) { d in
            fieldArray([(":status", UnsafeRawBufferPointer(d))]) { nva, count in
                if endStream { return nghttp2_submit_response(session, stream, nva, count, nil) }
                var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: readBody)
                return nghttp2_submit_response(session, stream, nva, count, &provider)
            }
        }
        guard rv == 0 else { throw HTTP2Error("nghttp2_submit_response failed", libraryCode: rv) }
        _ = streams.withValue(stream) { st in
            st.hasProvider = !endStream
            st.outgoingEnd = endStream
        }
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
}
