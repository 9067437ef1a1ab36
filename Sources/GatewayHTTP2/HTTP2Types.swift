// The values HTTP2ServerSession takes and produces. Heads and trailers own their bytes (one
// array per block, fields are ranges into it), so they outlive nghttp2's buffers and the
// connection's input buffer; nothing here is a String on the request path.
import GatewayHTTP

/// Limits of one HTTP/2 server connection (SPEC §10 and §12). Each maps to a SETTINGS value we
/// announce or to an nghttp2 option; the README's "HTTP/2 framing" section lists which.
public struct HTTP2Config: Sendable, Equatable {
    /// SETTINGS_MAX_CONCURRENT_STREAMS; nghttp2 answers extra streams with RST_STREAM REFUSED_STREAM.
    public var maxConcurrentStreams: UInt32 = 128
    /// `max_header_size`: announced as SETTINGS_MAX_HEADER_LIST_SIZE and enforced here (nghttp2
    /// 1.52 only announces it); over it the stream gets `.headersTooLarge` (answer 431).
    public var maxHeaderListSize: Int = 16384
    /// `max_headers`: more regular fields than this is `.headersTooLarge` too.
    public var maxHeaders: Int = 100
    /// SETTINGS_INITIAL_WINDOW_SIZE: the request body one stream may have unconsumed.
    public var initialWindowSize: Int32 = 65535
    /// The connection-level receive window (sum over streams), raised from RFC 9113's 65,535.
    public var connectionWindowSize: Int32 = 1 << 20
    /// Rapid reset (CVE-2023-44487): RST_STREAM token bucket, burst and tokens per second.
    public var resetBurst: UInt64 = 1000
    public var resetRate: UInt64 = 33
    /// CONTINUATION flood (CVE-2024-28182): frames after one HEADERS.
    public var maxContinuations: Int = 8
    /// SETTINGS and PING floods: ACKs nghttp2 may queue unsent before it gives up.
    public var maxOutboundAck: Int = 1000
    /// Entries accepted in one SETTINGS frame (nghttp2's default).
    public var maxSettingsEntries: Int = 32

    public init() {}

    /// The compressed header block (HEADERS + CONTINUATION payloads) one request may send.
    public var maxHeaderBlockSize: Int { 4 * maxHeaderListSize }
    /// A decoded header list past this closes the connection (an HPACK bomb), not only the stream.
    public var fatalHeaderListSize: Int { 4 * maxHeaderListSize }
}

/// A connection-level failure: the short, stable reason logged and used as the metric label
/// (`rapid reset`, `continuation flood`, `settings flood`, `ping flood`, `header list too large`,
/// `protocol error`, `flow control`, `compression error`, `bad preface`, ...), and the nghttp2
/// library error code it came from (0 when the reason is ours).
public struct HTTP2Error: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public var libraryCode: Int32
    public init(_ reason: String, libraryCode: Int32 = 0) { self.reason = reason; self.libraryCode = libraryCode }
    public var description: String { libraryCode == 0 ? reason : "\(reason) (nghttp2 \(libraryCode))" }
}

/// RFC 9113 §7 error codes used by the gateway.
public enum HTTP2ErrorCode {
    public static let noError: UInt32 = 0x0
    public static let protocolError: UInt32 = 0x1
    public static let internalError: UInt32 = 0x2
    public static let flowControlError: UInt32 = 0x3
    public static let refusedStream: UInt32 = 0x7
    public static let cancel: UInt32 = 0x8
    public static let compressionError: UInt32 = 0x9
    public static let enhanceYourCalm: UInt32 = 0xb
}

/// A header block's fields: every name and value is a range of `bytes`.
public struct HTTP2Fields: Sendable, Equatable {
    public private(set) var bytes: [UInt8] = []
    public private(set) var fields: [HTTPHeaderField] = []

    public init() {}

    public var count: Int { fields.count }

    /// Empty again, keeping the storage: a connection reuses one for every response head.
    public mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        fields.removeAll(keepingCapacity: true)
    }

    public mutating func append(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        let n = appendRaw(name)
        let v = appendRaw(value)
        fields.append(HTTPHeaderField(name: n, value: v))
    }

    public mutating func append(_ name: StaticString, _ value: StaticString) {
        append(name: UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount),
               value: UnsafeRawBufferPointer(start: value.utf8Start, count: value.utf8CodeUnitCount))
    }

    public mutating func append(_ name: [UInt8], _ value: [UInt8]) {
        name.withUnsafeBytes { n in value.withUnsafeBytes { v in append(name: n, value: v) } }
    }

    /// Room for a typical head at once: decoding one field at a time otherwise regrew (and
    /// copied) both arrays several times per head.
    mutating func reserveForHead() {
        bytes.reserveCapacity(512)
        fields.reserveCapacity(16)
    }

    /// Appends one byte range of this storage as a field range (used while decoding a head).
    /// As typed UInt8 memory, so the append is one copy: a raw buffer has no contiguous-storage
    /// path and was appended byte by byte.
    mutating func appendRaw(_ p: UnsafeRawBufferPointer) -> Range<Int> {
        let start = bytes.count
        bytes.append(contentsOf: UnsafeBufferPointer(start: p.baseAddress?.assumingMemoryBound(to: UInt8.self), count: p.count))
        return start..<bytes.count
    }

    mutating func addField(name: Range<Int>, value: Range<Int>) {
        fields.append(HTTPHeaderField(name: name, value: value))
    }

    public subscript(_ r: Range<Int>) -> ArraySlice<UInt8> { bytes[r] }

    /// The value of the first field named `name` (lower case), if any.
    public func value(_ name: StaticString) -> ArraySlice<UInt8>? {
        bytes.withUnsafeBytes { b in
            fields.first { bytesEqual(UnsafeRawBufferPointer(rebasing: b[$0.name]), name) }.map { bytes[$0.value] }
        }
    }
}

/// A request head as nghttp2 validated it (RFC 9113 §8.3): the pseudo-header fields as ranges
/// of `fields.bytes`, and the regular fields in order. `scheme` and `path` are nil only for
/// CONNECT; `authority` is nil when the client sent only `host` (or neither).
public struct HTTP2RequestHead: Sendable, Equatable {
    public internal(set) var fields = HTTP2Fields()
    // The pseudo-header fields' ranges in eight bytes each (a head is far below 2 GiB: its
    // decoded size is bounded by max_header_size): the event carrying a head is moved several
    // times per request, and its size is what a move copies.
    private var _method = CompactRange(0..<0), _scheme = CompactRange(nil), _authority = CompactRange(nil)
    private var _path = CompactRange(nil), _connectProtocol = CompactRange(nil)

    public internal(set) var method: Range<Int> { get { _method.range ?? 0..<0 } set { _method = CompactRange(newValue) } }
    public internal(set) var scheme: Range<Int>? { get { _scheme.range } set { _scheme = CompactRange(newValue) } }
    public internal(set) var authority: Range<Int>? { get { _authority.range } set { _authority = CompactRange(newValue) } }
    public internal(set) var path: Range<Int>? { get { _path.range } set { _path = CompactRange(newValue) } }
    /// `:protocol` of an extended CONNECT (RFC 8441), if any.
    public internal(set) var connectProtocol: Range<Int>? { get { _connectProtocol.range } set { _connectProtocol = CompactRange(newValue) } }

    public subscript(_ r: Range<Int>) -> ArraySlice<UInt8> { fields[r] }

    /// Empty again, keeping the storage: no allocation when nothing else holds it any more
    /// (the caller let the last head go), else new storage of the same size, as before.
    mutating func removeAll() {
        fields.removeAll()
        _method = CompactRange(0..<0); _scheme = CompactRange(nil); _authority = CompactRange(nil)
        _path = CompactRange(nil); _connectProtocol = CompactRange(nil)
    }
}

/// A range of Int32 bounds, nil as a negative lower bound.
struct CompactRange: Sendable, Equatable {
    private var lower: Int32 = -1, upper: Int32 = -1
    @inline(__always) init(_ r: Range<Int>?) {
        if let r { lower = Int32(r.lowerBound); upper = Int32(r.upperBound) }
    }
    @inline(__always) var range: Range<Int>? { lower < 0 ? nil : Int(lower)..<Int(upper) }
}

/// What happened on the connection, in order. The session only records; the caller acts.
public enum HTTP2Event: Sendable, Equatable {
    /// A complete, valid request head (END_STREAM follows as `.endStream` if it had no body).
    case request(stream: Int32, head: HTTP2RequestHead)
    /// The head was over `maxHeaderListSize` or `maxHeaders`: answer 431 on this stream.
    case headersTooLarge(stream: Int32)
    /// nghttp2 reset the stream with PROTOCOL_ERROR (RFC 9113 §8.1.1 malformed request); the
    /// reason is `malformed header` (a field: pseudo-header, connection-specific, te, upper
    /// case, bad character) or `malformed message` (missing pseudo-header, content-length).
    case malformed(stream: Int32, reason: String)
    /// `count` more body bytes wait in the stream's receive buffer (`receivedBody`).
    case data(stream: Int32, count: Int)
    case trailers(stream: Int32, fields: HTTP2Fields)
    /// The client finished its request (END_STREAM).
    case endStream(stream: Int32)
    /// The client reset the stream (RST_STREAM with this error code).
    case reset(stream: Int32, code: UInt32)
    /// The stream is gone (after which its id is never reported again).
    case streamClosed(stream: Int32, code: UInt32)
    /// The client sent GOAWAY.
    case goaway(code: UInt32, lastStream: Int32)
    /// nghttp2 closed the connection itself (its GOAWAY is in the output): log, flush, close.
    /// After a failure (this event, or `receive` throwing) open streams get no `.streamClosed`:
    /// the caller drops them all.
    case connectionError(HTTP2Error)
}
