// nghttp2's callbacks on the client side: each one only records into the stream table and the
// event queue (the shared ones, DATA and stream close, are HTTP2Session's). Capture-free
// @convention(c) closures; the session arrives through user_data.
import CNGHTTP2

/// `body` with the session at +0. Invariant: user_data is the HTTP2ClientSession that owns the
/// nghttp2 session (deleted in its deinit); nghttp2 calls back only inside a session method,
/// whose `self` keeps it alive.
@inline(__always)
func withClientSession<R>(_ ud: UnsafeMutableRawPointer?, _ body: (HTTP2ClientSession) -> R) -> R {
    Unmanaged<HTTP2ClientSession>.fromOpaque(ud!)._withUnsafeGuaranteedRef(body)
}

extension HTTP2ClientSession {
    func installClientCallbacks(_ cbs: OpaquePointer?) {
        Self.installSharedCallbacks(cbs)
        nghttp2_session_callbacks_set_on_begin_frame_callback(cbs) { _, hd, ud in withClientSession(ud) { s in
            s.lastFrameType = hd!.pointee.type
            return 0
        } }
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs) { _, frame, ud in withClientSession(ud) { s in
            // Before the final response every block is a head (1xx ones first); after it, trailers.
            _ = s.streams.withValue(frame!.pointee.hd.stream_id) { st in
                st.beginHeaders(trailer: st.delivered)
                st.status = 0
                s.decoding = Unmanaged.passUnretained(st)
            }
            return 0
        } }
        nghttp2_session_callbacks_set_on_header_callback(cbs) { _, frame, name, namelen, value, valuelen, _, ud in
            Unmanaged<HTTP2ClientSession>.fromOpaque(ud!)._withUnsafeGuaranteedRef { s in
                s.headerField(frame!.pointee.hd.stream_id, fatalListSize: s.config.fatalHeaderListSize) { st in
                    guard !st.discarding else { return }
                    st.addResponseField(name: UnsafeRawBufferPointer(start: name, count: namelen),
                                        value: UnsafeRawBufferPointer(start: value, count: valuelen), config: s.config)
                }
            }
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs) { _, frame, ud in withClientSession(ud) { s in
            s.clientFrameReceived(frame!.pointee)
            return 0
        } }
        nghttp2_session_callbacks_set_before_frame_send_callback(cbs) { _, frame, ud in withClientSession(ud) { s in
            s.clientFrameSending(frame!.pointee)
            return 0
        } }
    }

    func clientFrameReceived(_ frame: nghttp2_frame) {
        let id = frame.hd.stream_id
        let endStream = frame.hd.flags & flagEndStream != 0
        switch UInt32(frame.hd.type) {
        case NGHTTP2_HEADERS.rawValue:
            // At +0: the table holds the stream; `emit` only queues events.
            _ = streams.withValue(id) { headersReceived($0, id, endStream: endStream) }
        case NGHTTP2_DATA.rawValue:
            if endStream, streams.withValue(id, { $0.delivered && !$0.discarding }) == true { emit(.endStream(stream: id)) }
        case NGHTTP2_RST_STREAM.rawValue:
            if streams.contains(id) { emit(.reset(stream: id, code: frame.rst_stream.error_code)) }
        case NGHTTP2_GOAWAY.rawValue:
            // nghttp2 closes the streams above last_stream_id with REFUSED_STREAM right after this.
            recordPeerGoaway(frame.goaway.last_stream_id)
            emit(.goaway(code: frame.goaway.error_code, lastStream: frame.goaway.last_stream_id))
        default:
            break
        }
    }

    /// A HEADERS frame's block ended on a stream the caller opened: its response head, or trailers.
    private func headersReceived(_ st: HTTP2Stream, _ id: Int32, endStream: Bool) {
        guard !st.discarding else { return }
        if st.tooLarge {
            // A head or trailers over our limits: the caller cannot pass it on whole.
            st.discarding = true
            emit(.malformed(stream: id, reason: "header list too large"))
            _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, HTTP2ErrorCode.internalError)
            return
        }
        if let t = st.trailers {
            st.trailers = nil
            st.spareTrailers = t   // shared, as the head is: storage for the object's next trailers
            emit(.trailers(stream: id, fields: t))
        } else {
            // Shared, not moved: the stream keeps the storage for its object's next head.
            let fields = st.head.fields
            // nghttp2 has checked :status (present, three digits, 101 refused, no END_STREAM on 1xx).
            if st.status < 200 {
                emit(.informational(stream: id, status: st.status, fields: fields))
                return
            }
            st.delivered = true
            emit(.response(stream: id, status: st.status, fields: fields))
        }
        if endStream { emit(.endStream(stream: id)) }
    }

    func clientFrameSending(_ frame: nghttp2_frame) {
        switch UInt32(frame.hd.type) {
        case NGHTTP2_RST_STREAM.rawValue where frame.rst_stream.error_code == HTTP2ErrorCode.protocolError:
            reportIfContentLengthReset(frame.hd.stream_id)
        case NGHTTP2_GOAWAY.rawValue:
            // A GOAWAY with an error that neither we nor the caller queued: nghttp2 closed the
            // connection on its own (a protocol violation by the backend).
            let code = frame.goaway.error_code
            guard ownGoawayFailure(code) else { return }
            let e = HTTP2Error(Self.reason(goawayCode: code))
            failure = e
            emit(.connectionError(e))
        default:
            break
        }
    }
}

extension HTTP2Stream {
    /// Records one decoded response field: `:status` as a number (nghttp2 has checked it is the
    /// only pseudo-header and three digits), regular fields in order, trailers as the server
    /// side records them. Over `maxHeaderListSize` or `maxHeaders` the block is dropped (`tooLarge`).
    func addResponseField(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, config: HTTP2Config) {
        if trailers != nil { addField(name: name, value: value, config: config); return }
        headerListSize += name.count + value.count + 32
        if tooLarge { return }
        if name.first == UInt8(ascii: ":") {
            status = value.reduce(0) { $0 * 10 + Int($1) - 48 }
            return
        }
        if headerListSize > config.maxHeaderListSize || head.fields.count >= config.maxHeaders {
            tooLarge = true
            head = HTTP2RequestHead()
            return
        }
        appendRegular(name, value)
    }
}
