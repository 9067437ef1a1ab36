// The values the HTTP/1.1 parsers produce. Every field of a head is a byte range into the
// buffer that was parsed, so nothing is copied or decoded into `String` on the request path.

/// A request or response the gateway refuses, with the status to answer and a reason for the log.
public struct HTTPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var reason: String
    public init(_ status: Int, _ reason: String) { self.status = status; self.reason = reason }
    public var description: String { "\(status): \(reason)" }

    static func bad(_ reason: String) -> HTTPParseError { HTTPParseError(400, reason) }
}

/// SPEC §10 limits: `max_uri_size` (414), `max_header_size` and `max_headers` (431).
public struct HTTPHeadLimits: Sendable, Equatable {
    public var maxURISize: Int
    public var maxHeaderSize: Int
    public var maxHeaders: Int
    public init(maxURISize: Int, maxHeaderSize: Int, maxHeaders: Int) {
        self.maxURISize = maxURISize; self.maxHeaderSize = maxHeaderSize; self.maxHeaders = maxHeaders
    }
}

/// One header line: the name and the value with surrounding whitespace trimmed.
public struct HTTPHeaderField: Sendable, Equatable {
    public var name: Range<Int>
    public var value: Range<Int>
    public init(name: Range<Int>, value: Range<Int>) { self.name = name; self.value = value }
}

/// How the body after a head is delimited.
/// A head's fields: a view of the storage of whoever produced the head (a parser's reused
/// array, an HTTP/2 stream's fields), valid until that producer parses again. A head is read in
/// the step that produced it and never kept, so the view needs no reference of its own (an
/// array here was retained and released with every head, request and response).
public typealias HeadFields = UnsafeBufferPointer<HTTPHeaderField>

public enum BodyFraming: Sendable, Equatable {
    case none
    case contentLength(Int)
    case chunked
    /// A response without length: the body ends when the connection closes.
    case untilClose
}

/// Not Sendable: `headers` is a view (see `HeadFields`).
public struct HTTPRequestHead {
    public var method: Range<Int>
    public var target: Range<Int>
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var versionMinor: Int
    public var headers: HeadFields
    public var framing: BodyFraming
    /// Whether the client wants the connection kept after this exchange.
    public var keepAlive: Bool
    public var expectContinue: Bool
    /// `Connection: upgrade` together with an `Upgrade` header.
    public var upgrade: Bool
    /// The value of the single `Host` header, if any.
    public var host: Range<Int>?
    /// Bytes from the start of the buffer to the end of the blank line that ends the head.
    public var headLength: Int
    public var isHEAD: Bool

    public init(method: Range<Int>, target: Range<Int>, versionMinor: Int, headers: HeadFields, framing: BodyFraming,
                keepAlive: Bool, expectContinue: Bool, upgrade: Bool, host: Range<Int>?, headLength: Int, isHEAD: Bool) {
        self.method = method; self.target = target; self.versionMinor = versionMinor; self.headers = headers
        self.framing = framing; self.keepAlive = keepAlive; self.expectContinue = expectContinue; self.upgrade = upgrade
        self.host = host; self.headLength = headLength; self.isHEAD = isHEAD
    }
}

/// Not Sendable: `headers` is a view (see `HeadFields`).
public struct HTTPResponseHead {
    public var status: Int
    public var versionMinor: Int
    public var headers: HeadFields
    public var framing: BodyFraming
    public var keepAlive: Bool
    public var headLength: Int

    public init(status: Int, versionMinor: Int, headers: HeadFields, framing: BodyFraming, keepAlive: Bool, headLength: Int) {
        self.status = status; self.versionMinor = versionMinor; self.headers = headers
        self.framing = framing; self.keepAlive = keepAlive; self.headLength = headLength
    }
}
