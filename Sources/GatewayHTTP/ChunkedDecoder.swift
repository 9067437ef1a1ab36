// Decodes a chunked body as it streams by: payload is handed out as ranges of the input
// (no copy), sizes and extensions are checked byte by byte, trailers are read and dropped.

public struct ChunkedDecoder: Sendable {
    private enum State: Sendable {
        case size(value: Int, digits: Int)
        case extensions(Int)
        case sizeLF(Int)
        case data(Int)
        case dataCR, dataLF
        case trailerLineStart
        case trailerLine
        case trailerLF(emptyLine: Bool)
        case done
    }
    private var state = State.size(value: 0, digits: 0)
    private var trailerBytes = 0
    static let maxTrailerBytes = 16 * 1024

    public init() {}

    /// Consumes what it can of `bytes`, calling `onData` with each run of payload.
    /// Returns the bytes consumed and whether the last chunk and trailers are complete;
    /// the caller keeps unconsumed bytes and calls again when more arrive.
    public mutating func decode(_ bytes: UnsafeRawBufferPointer, onData: (Range<Int>) -> Void) throws(HTTPParseError) -> (consumed: Int, done: Bool) {
        var offset = 0
        while true {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            let r = try nextRun(rest)
            if let data = r.data { onData(data.lowerBound + offset..<data.upperBound + offset) }
            offset += r.consumed
            if r.done || r.data == nil { return (offset, r.done) }
        }
    }

    /// Consumes framing up to and including the next run of payload, which it returns as a
    /// range of `bytes`: one step for a caller that handles each run before reading on.
    /// `data` is nil when `bytes` ran out (or the body ended) first.
    public mutating func nextRun(_ bytes: UnsafeRawBufferPointer) throws(HTTPParseError) -> (consumed: Int, data: Range<Int>?, done: Bool) {
        var i = 0
        let count = bytes.count
        while i < count {
            if case .data(let remaining) = state {
                let take = min(remaining, count - i)
                state = remaining == take ? .dataCR : .data(remaining - take)
                return (i + take, i..<i + take, false)
            }
            let c = bytes[i]
            switch state {
            case .size(let value, let digits):
                if let d = ASCII.hexValue(c) {
                    guard digits < 15 else { throw .bad("chunk size too large") }
                    state = .size(value: value << 4 | d, digits: digits + 1)
                } else if digits > 0 && c == ASCII.semicolon {
                    state = .extensions(value)
                } else if digits > 0 && c == ASCII.cr {
                    state = .sizeLF(value)
                } else {
                    throw .bad("bad chunk size")
                }
            case .extensions(let size):
                // `;name=value` carries nothing we use; bounded like trailers.
                if c == ASCII.cr { state = .sizeLF(size) } else {
                    guard ASCII.isFieldByte(c) else { throw .bad("invalid byte in a chunk extension") }
                    try countTrailer()
                }
            case .sizeLF(let size):
                guard c == ASCII.lf else { throw .bad("bad chunk size line ending") }
                state = size == 0 ? .trailerLineStart : .data(size)
            case .data:
                break
            case .dataCR:
                guard c == ASCII.cr else { throw .bad("chunk data longer than its size") }
                state = .dataLF
            case .dataLF:
                guard c == ASCII.lf else { throw .bad("bad line ending after chunk data") }
                state = .size(value: 0, digits: 0)
            case .trailerLineStart:
                if c == ASCII.cr { state = .trailerLF(emptyLine: true) } else {
                    guard ASCII.isFieldByte(c) else { throw .bad("invalid byte in a trailer") }
                    state = .trailerLine
                    try countTrailer()
                }
            case .trailerLine:
                if c == ASCII.cr { state = .trailerLF(emptyLine: false) } else {
                    guard ASCII.isFieldByte(c) else { throw .bad("invalid byte in a trailer") }
                    try countTrailer()
                }
            case .trailerLF(let emptyLine):
                guard c == ASCII.lf else { throw .bad("bare CR in a trailer") }
                if emptyLine { state = .done; return (i + 1, nil, true) }
                state = .trailerLineStart
            case .done:
                return (i, nil, true)
            }
            i += 1
        }
        if case .done = state { return (i, nil, true) }
        return (i, nil, false)
    }

    private mutating func countTrailer() throws(HTTPParseError) {
        trailerBytes += 1
        if trailerBytes > Self.maxTrailerBytes { throw .bad("chunk extensions or trailers over \(Self.maxTrailerBytes) bytes") }
    }
}
