// nghttp2's callbacks: each one only records into the session's stream table and event queue.
// They are capture-free @convention(c) closures (a capturing one crashes the 6.3.1 compiler and
// could not be a C function pointer anyway); the session arrives through user_data.
import CNGHTTP2

/// `body` with the session at +0 (no retain and release per callback). Invariant: user_data is
/// the session object that owns the nghttp2 session (deleted in its deinit), and nghttp2 calls
/// back only inside a session method (receive, write, a submit), whose `self` keeps it alive.
@inline(__always)
func withServer<R>(_ ud: UnsafeMutableRawPointer?, _ body: (HTTP2ServerSession) -> R) -> R {
    Unmanaged<HTTP2ServerSession>.fromOpaque(ud!)._withUnsafeGuaranteedRef(body)
}

let failCallback = Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue)
let frameHeaders = UInt8(NGHTTP2_HEADERS.rawValue)
let frameContinuation = UInt8(NGHTTP2_CONTINUATION.rawValue)
let frameRstStream = UInt8(NGHTTP2_RST_STREAM.rawValue)
let flagEndStream = UInt8(NGHTTP2_FLAG_END_STREAM.rawValue)

extension HTTP2ServerSession {
    func installCallbacks(_ cbs: OpaquePointer?) {
        Self.installSharedCallbacks(cbs)
        // Frame headers: the type names a flood; HEADERS + CONTINUATION sizes bound the block.
        nghttp2_session_callbacks_set_on_begin_frame_callback(cbs) { _, hd, ud in withServer(ud) { s in
            let hd = hd!.pointee
            s.lastFrameType = hd.type
            if hd.type == frameHeaders {
                // RFC 9113 §5.1.1: a new stream below the highest is a connection error, which
                // nghttp2 1.52 does not detect (it ignores the block; the stream hangs unanswered).
                if hd.stream_id & 1 == 1 && !s.checkStreamOrder(hd.stream_id) {
                    s.callbackFailure = ("stream id backwards", HTTP2ErrorCode.protocolError)
                    return failCallback
                }
                s.headerBlockSize = hd.length
                s.continuations = 0
            } else if hd.type == frameContinuation {
                s.headerBlockSize += hd.length
                s.continuations += 1
                if s.continuations > s.config.maxContinuations {
                    s.callbackFailure = ("continuation flood", HTTP2ErrorCode.enhanceYourCalm)
                    return failCallback
                }
            } else {
                return 0
            }
            if s.headerBlockSize > s.config.maxHeaderBlockSize {
                s.callbackFailure = ("continuation flood", HTTP2ErrorCode.enhanceYourCalm)
                return failCallback
            }
            return 0
        } }
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs) { _, frame, ud in withServer(ud) { s in
            let id = frame!.pointee.hd.stream_id
            if frame!.pointee.headers.cat == NGHTTP2_HCAT_REQUEST {
                let st = s.makeStream(id)
                st.beginHeaders(trailer: false)
                s.decoding = Unmanaged.passUnretained(st)
                s.streams.insert(id, consume st)   // the spare's reference moves into the table
            } else {
                _ = s.streams.withValue(id) { st in
                    st.beginHeaders(trailer: true)
                    s.decoding = Unmanaged.passUnretained(st)
                }
            }
            return 0
        } }
        nghttp2_session_callbacks_set_on_header_callback(cbs) { _, frame, name, namelen, value, valuelen, _, ud in
            // The session by Unmanaged at +0 (the callback runs once per field).
            Unmanaged<HTTP2ServerSession>.fromOpaque(ud!)._withUnsafeGuaranteedRef { s in
                s.headerField(frame!.pointee.hd.stream_id, fatalListSize: s.config.fatalHeaderListSize) { st in
                    st.addField(name: UnsafeRawBufferPointer(start: name, count: namelen),
                                value: UnsafeRawBufferPointer(start: value, count: valuelen), config: s.config)
                }
            }
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs) { _, frame, ud in withServer(ud) { s in
            // Rapid reset: past the budget the connection ends (ENHANCE_YOUR_CALM, "rapid reset").
            if frame!.pointee.hd.type == frameRstStream && !s.takeResetToken() {
                s.callbackFailure = ("rapid reset", HTTP2ErrorCode.enhanceYourCalm)
                return failCallback
            }
            s.frameReceived(frame!.pointee)
            return 0
        } }
        nghttp2_session_callbacks_set_before_frame_send_callback(cbs) { _, frame, ud in withServer(ud) { s in
            s.frameSending(frame!.pointee)
            return 0
        } }
    }

    func frameReceived(_ frame: nghttp2_frame) {
        let id = frame.hd.stream_id
        lastFrameType = frame.hd.type
        switch UInt32(frame.hd.type) {
        case NGHTTP2_HEADERS.rawValue:
            // At +0: the table holds the stream; `emit` only queues events.
            let request = frame.headers.cat == NGHTTP2_HCAT_REQUEST, endStream = frame.hd.flags & flagEndStream != 0
            _ = streams.withValue(id) { headersReceived($0, id, request: request, endStream: endStream) }
        case NGHTTP2_DATA.rawValue:
            if frame.hd.flags & flagEndStream != 0, streams.withValue(id, { $0.delivered && !$0.discarding }) == true {
                emit(.endStream(stream: id))
            }
        case NGHTTP2_RST_STREAM.rawValue:
            if streams.withValue(id, { $0.delivered }) == true { emit(.reset(stream: id, code: frame.rst_stream.error_code)) }
        case NGHTTP2_GOAWAY.rawValue:
            emit(.goaway(code: frame.goaway.error_code, lastStream: frame.goaway.last_stream_id))
        default:
            break
        }
    }

    /// A HEADERS frame's block ended: a request head, or trailers.
    private func headersReceived(_ st: HTTP2Stream, _ id: Int32, request: Bool, endStream: Bool) {
        if request {
            st.delivered = true
            if st.tooLarge {
                st.discarding = true
                emit(.headersTooLarge(stream: id))
                return
            }
            // Shared, not moved: the stream keeps the storage for its object's next head.
            emit(.request(stream: id, head: st.head))
        } else if let t = st.trailers, !st.discarding {
            st.trailers = nil
            st.spareTrailers = t   // shared, as the head is: storage for the object's next trailers
            if st.tooLarge {
                st.discarding = true
                emit(.headersTooLarge(stream: id))
                return
            }
            emit(.trailers(stream: id, fields: t))
        }
        if endStream, !st.discarding { emit(.endStream(stream: id)) }
    }

    func frameSending(_ frame: nghttp2_frame) {
        switch UInt32(frame.hd.type) {
        case NGHTTP2_RST_STREAM.rawValue where frame.rst_stream.error_code == HTTP2ErrorCode.refusedStream:
            refusedStreams += 1
        case NGHTTP2_RST_STREAM.rawValue where frame.rst_stream.error_code == HTTP2ErrorCode.protocolError:
            reportIfContentLengthReset(frame.hd.stream_id)
        case NGHTTP2_GOAWAY.rawValue:
            // A GOAWAY with an error that neither we nor the caller queued: nghttp2 closed the
            // connection on its own (a protocol violation, or the RST_STREAM rate limit).
            let code = frame.goaway.error_code
            guard ownGoawayFailure(code) else { return }
            // nghttp2 1.52 answers a new stream over our ACKed SETTINGS_MAX_CONCURRENT_STREAMS
            // with GOAWAY PROTOCOL_ERROR (before the ACK, with REFUSED_STREAM).
            let overLimit = code == HTTP2ErrorCode.protocolError && lastFrameType == frameHeaders
                && streams.count >= Int(config.maxConcurrentStreams)
            let e = HTTP2Error(overLimit ? "too many streams" : HTTP2ServerSession.reason(goawayCode: code))
            failure = e
            emit(.connectionError(e))
        default:
            break
        }
    }
}
