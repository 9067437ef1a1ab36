// The stable short reasons of connection failures (log field and metric label), from nghttp2's
// fatal return codes and from the error code of a GOAWAY nghttp2 queued by itself.
import CNGHTTP2

extension HTTP2Session {
    /// A fatal `nghttp2_session_mem_recv`/`mem_send` code → (reason, GOAWAY error code to send).
    /// `frameType` is the frame being read when it happened; `callbackFailure` what our own
    /// callback said when it returned NGHTTP2_ERR_CALLBACK_FAILURE.
    static func classify(libraryCode code: Int32, frameType: UInt8, callbackFailure: (reason: String, code: UInt32)?) -> (String, UInt32) {
        switch code {
        case Int32(NGHTTP2_ERR_BAD_CLIENT_MAGIC.rawValue):
            return ("bad preface", HTTP2ErrorCode.protocolError)
        case Int32(NGHTTP2_ERR_FLOODED.rawValue):
            // Too many SETTINGS or PING ACKs queued unsent (max_outbound_ack).
            switch UInt32(frameType) {
            case NGHTTP2_SETTINGS.rawValue: return ("settings flood", HTTP2ErrorCode.enhanceYourCalm)
            case NGHTTP2_PING.rawValue: return ("ping flood", HTTP2ErrorCode.enhanceYourCalm)
            default: return ("flood", HTTP2ErrorCode.enhanceYourCalm)
            }
        case Int32(NGHTTP2_ERR_TOO_MANY_CONTINUATIONS.rawValue):
            return ("continuation flood", HTTP2ErrorCode.enhanceYourCalm)
        case Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue):
            return callbackFailure.map { ($0.reason, $0.code) } ?? ("callback failure", HTTP2ErrorCode.internalError)
        case Int32(NGHTTP2_ERR_NOMEM.rawValue):
            return ("out of memory", HTTP2ErrorCode.internalError)
        default:
            return ("protocol error", HTTP2ErrorCode.protocolError)
        }
    }

    /// The error code of a GOAWAY nghttp2 sent without a fatal return → reason. In 1.52.0-1+deb12u3
    /// its only INTERNAL_ERROR GOAWAY is the RST_STREAM rate limit (the CVE-2023-44487 backport:
    /// `session_update_stream_reset_ratelim`), now only a backstop behind `takeResetToken`; the others come from
    /// `session_handle_invalid_connection` and friends.
    static func reason(goawayCode code: UInt32) -> String {
        switch code {
        case HTTP2ErrorCode.internalError: return "rapid reset"
        case HTTP2ErrorCode.flowControlError: return "flow control"
        case 0x5: return "stream closed"
        case 0x6: return "frame size"
        case HTTP2ErrorCode.compressionError: return "compression error"
        default: return "protocol error"
        }
    }
}
