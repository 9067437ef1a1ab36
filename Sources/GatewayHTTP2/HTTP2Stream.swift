// One stream's state on the Swift side, for either end: the head being decoded, the received
// body the caller has not consumed yet (bounded by the stream's flow-control window, since we
// only open the window as the caller consumes), and the body bytes nghttp2 has not pulled yet.
import GatewaySystem

final class HTTP2Stream {
    /// Set again when the session reuses the object for another stream (`reuse`).
    private(set) var id: Int32
    /// The head or trailers being decoded (HEADERS + CONTINUATION), handed out at END_HEADERS.
    var head = HTTP2RequestHead()
    /// Client side: the response head's `:status` (the head's `fields` hold its regular fields).
    var status = 0
    var trailers: HTTP2Fields?
    /// The last trailers' storage, for the next trailers this object decodes (gRPC ends every
    /// response with trailers: new storage each time cost two allocations per call).
    var spareTrailers = HTTP2Fields()
    /// Decoded header list size as RFC 9113 §6.5.2 counts it (name + value + 32 per field).
    var headerListSize = 0
    var tooLarge = false
    /// Length of the request's `:path`, kept when the head is dropped for being too large: a
    /// target over max_uri_size is 414 even when the head is over max_header_size too (SPEC §10).
    var pathLength = 0
    /// Server: a request head was delivered (so body, trailers, end and close events make sense
    /// to the caller). Client: the final (non-1xx) response head was delivered.
    var delivered = false
    /// The stream was answered 431, reset by the caller or found malformed: its DATA is
    /// consumed and dropped here.
    var discarding = false

    var incoming: ByteBuffer
    var outgoing: ByteQueue
    /// The caller has said the response body ends after `outgoing` (sendData endStream or sendTrailers).
    var outgoingEnd = false
    var pendingTrailers: HTTP2Fields?
    /// nghttp2 asked for data while `outgoing` was empty; `resume_data` wakes it.
    var deferred = false
    /// `respond` (server) or `request` (client) was called with a body to follow (a data provider is attached).
    var hasProvider = false

    init(id: Int32, pool: BufferPool?) {
        self.id = id
        incoming = ByteBuffer(pool: pool)
        outgoing = ByteQueue(pool: pool)
    }

    /// Back to the state `init` gives, for stream `id`: a closed stream's object serves the
    /// session's next stream (HTTP2Session.makeStream), so a request costs no allocation here.
    /// `clear` already let its buffers and fields go when it was closed.
    func reuse(id: Int32) {
        self.id = id
        status = 0; headerListSize = 0; tooLarge = false; pathLength = 0
        delivered = false; discarding = false
        outgoingEnd = false; deferred = false; hasProvider = false
    }

    /// Lets go of what a closed stream still holds (unconsumed bytes, trailers), so a spare kept
    /// for reuse holds only the object and its head storage (for the next stream's head).
    func clear() {
        incoming.clear(); incoming.releaseIfEmpty()
        outgoing.removeAll()
        if let t = trailers { spareTrailers = t; trailers = nil }
        if pendingTrailers != nil { pendingTrailers = nil }
    }

    /// Starts decoding a new header block (the request head, or trailers after it).
    func beginHeaders(trailer: Bool) {
        headerListSize = 0
        // A head goes into the storage of the stream object's last head (HTTP2Session.makeStream
        // reuses objects): handed out by sharing, it is unique again once the caller dropped it.
        // Trailers likewise take the storage of the object's last trailers.
        if trailer {
            var t = spareTrailers
            spareTrailers = HTTP2Fields()
            t.removeAll()
            trailers = t
        } else {
            head.removeAll(); head.fields.reserveForHead()
        }
    }

    /// Records one decoded field; pseudo-header fields land in the head's named ranges
    /// (nghttp2 has already checked their names, order and uniqueness).
    func addField(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, config: HTTP2Config) {
        headerListSize += name.count + value.count + 32
        if trailers == nil && name.count == 5 && name.first == UInt8(ascii: ":") { pathLength = value.count }
        if tooLarge { return }
        if var t = trailers {
            trailers = nil   // uniquely referenced while appended to
            if t.count >= config.maxHeaders || headerListSize > config.maxHeaderListSize {
                tooLarge = true
            } else {
                t.append(name: name, value: value)
            }
            trailers = t
            return
        }
        if headerListSize > config.maxHeaderListSize {
            tooLarge = true
            head = HTTP2RequestHead()   // the bytes are no longer needed: free them now
            return
        }
        if name.first == UInt8(ascii: ":") {
            let v = head.fields.appendRaw(value)
            switch name.count {
            case 7 where name[1] == UInt8(ascii: "m"): head.method = v
            case 7 where name[1] == UInt8(ascii: "s"): head.scheme = v
            case 5: head.path = v
            case 10: head.authority = v
            case 9: head.connectProtocol = v
            default: break   // nghttp2 rejects any other pseudo-header before we see it
            }
            return
        }
        if head.fields.count >= config.maxHeaders {
            tooLarge = true
            head = HTTP2RequestHead()
            return
        }
        appendRegular(name, value)
    }

    /// A regular field into the head's storage, in order.
    func appendRegular(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
        let n = head.fields.appendRaw(name)
        let v = head.fields.appendRaw(value)
        head.fields.addField(name: n, value: v)
    }
}
