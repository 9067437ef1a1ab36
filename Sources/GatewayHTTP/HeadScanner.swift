// Finds where a head ends, incrementally, and splits it into header fields. Shared by the
// request and the response parser: both heads are a start line, field lines, a blank line.
//
// Every check that can fail before the head is complete runs once per byte, in byte order,
// so the verdict is a function of the bytes alone, never of how TCP segmented them: the
// first failing byte decides (a parser that sees only a prefix can answer no other way).

#if canImport(Glibc)
import Glibc
#endif

/// The first LF in `bytes[from..<to]` (memchr: field lines are scanned for their end only), or `to`.
@inline(__always) func nextLF(_ bytes: UnsafeRawBufferPointer, from: Int, to: Int) -> Int {
    guard from < to, let base = bytes.baseAddress, let p = memchr(base + from, Int32(ASCII.lf), to - from) else { return to }
    return UnsafeRawPointer(p) - base
}

/// Checks a start line as its bytes arrive (the request line: 414 before the line ends).
protocol StartLineChecker {
    /// Whether `byte` wants every byte of the start line; when not, the scan jumps to its LF.
    static var checksBytes: Bool { get }
    /// One byte of the start line, in order; a CR only when the next byte showed it is not a line end.
    mutating func byte(_ c: UInt8, at index: Int) throws(HTTPParseError)
    /// The start line `bytes[line]` is complete (its CRLF excluded).
    mutating func end(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) throws(HTTPParseError)
    /// `byte` for each of `bytes[range]` in order (a checker may do it faster).
    mutating func bytes(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) throws(HTTPParseError)
}

extension StartLineChecker {
    mutating func bytes(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) throws(HTTPParseError) {
        for i in range { try byte(bytes[i], at: i) }
    }
}

/// Limits applied while scanning: the head's size counts from the first byte of the buffer
/// (empty lines before a request line included, so a stream of CRLFs cannot grow the buffer).
struct HeadScanLimits {
    var maxHeadSize: Int
    var maxFields: Int
    /// The status for either limit: 431 for a request, 502 for a response.
    var status: Int
    var what: String
}

/// Scans bytes as they arrive; each call looks only at bytes it has not seen before.
struct HeadScanner: Sendable {
    /// Where the head starts (after blank lines a client may send between requests).
    private(set) var headStart = 0
    /// Index of the CR that ends the start line, once seen.
    private(set) var startLineEnd: Int?
    private var scanned = 0
    private var lineStart = 0
    private var fieldLines = 0

    mutating func reset() { self = HeadScanner() }

    /// Returns the head's length (through the blank line) once complete, nil while incomplete.
    /// A line must end in CRLF; more than `maxFields` field lines or a head over `maxHeadSize` bytes
    /// fails with the limits' status.
    mutating func scan<C: StartLineChecker>(_ bytes: UnsafeRawBufferPointer, _ limits: HeadScanLimits,
                                            _ checker: inout C) throws(HTTPParseError) -> Int? {
        var i = scanned
        let count = bytes.count
        while i < count {
            guard i < limits.maxHeadSize else {
                throw HTTPParseError(limits.status, "\(limits.what) head over \(limits.maxHeadSize) bytes")
            }
            let c = bytes[i]
            if c == ASCII.lf {
                guard i > lineStart, bytes[i - 1] == ASCII.cr else { throw .bad("bare LF in the head") }
                if i - 1 == lineStart {
                    if startLineEnd != nil { scanned = i + 1; return i + 1 }
                    headStart = i + 1 // RFC 9112 §2.2: ignore empty lines before a request line
                } else if startLineEnd == nil {
                    startLineEnd = i - 1
                    try checker.end(bytes, headStart..<i - 1)
                } else {
                    fieldLines += 1
                    if fieldLines > limits.maxFields {
                        throw HTTPParseError(limits.status, "more than \(limits.maxFields) header fields")
                    }
                }
                lineStart = i + 1
            } else if startLineEnd == nil && C.checksBytes && i == lineStart,
                      case let limit = min(count, limits.maxHeadSize), case let lf = nextLF(bytes, from: i, to: limit), lf < limit {
                // The whole start line is here: its bytes go to the checker in one tight loop,
                // in the same order and with the same verdicts as one at a time (the CR before
                // the LF is the line end; the LF itself is handled above, next).
                try checker.bytes(bytes, i..<(bytes[lf - 1] == ASCII.cr ? lf - 1 : lf))
                i = lf
                continue
            } else if startLineEnd == nil && C.checksBytes {
                // A CR is a line end only if LF follows: until then it is held back.
                if i > lineStart && bytes[i - 1] == ASCII.cr { try checker.byte(ASCII.cr, at: i - 1) }
                if c != ASCII.cr { try checker.byte(c, at: i) }
            } else {
                // Inside a field line (or a start line checked only once complete) only its end
                // matters here (fields() checks its bytes): jump to the next LF, or to the size
                // limit, where the check above throws.
                i = nextLF(bytes, from: i + 1, to: min(count, limits.maxHeadSize))
                continue
            }
            i += 1
        }
        scanned = count
        return nil
    }

    /// Splits the complete head's field lines (after the start line) into fields, rejecting what
    /// could be read two ways: obsolete folding, whitespace before the colon, bad names, bare CR, controls.
    /// The field lines go into `fields`, which is scratch a parser reuses for every head: it only
    /// grows (to the most field lines a head had), and the fields are written over its elements
    /// in place (emptying it and appending cost a generic replaceSubrange and a uniqueness check
    /// per field). Returns a view of the head's fields, its first elements (see `HeadFields`).
    func fields(_ bytes: UnsafeRawBufferPointer, headLength: Int, into fields: inout [HTTPHeaderField]) throws(HTTPParseError) -> HeadFields {
        if fields.count < fieldLines {
            fields.append(contentsOf: repeatElement(HTTPHeaderField(name: 0..<0, value: 0..<0), count: fieldLines - fields.count))
        }
        var failure: HTTPParseError?
        let view = fields.withUnsafeMutableBufferPointer { out -> HeadFields in
            do throws(HTTPParseError) { return try split(bytes, headLength: headLength, into: out) } catch {
                failure = error
                return HeadFields(start: nil, count: 0)
            }
        }
        if let failure { throw failure }
        return view
    }

    private func split(_ bytes: UnsafeRawBufferPointer, headLength: Int,
                       into out: UnsafeMutableBufferPointer<HTTPHeaderField>) throws(HTTPParseError) -> HeadFields {
        var n = 0
        var ls = startLineEnd! + 2
        let end = headLength - 2
        while ls < end && n < out.count {
            var le = nextLF(bytes, from: ls, to: headLength)
            le -= 1 // the CR (the scanner checked it)
            if ASCII.isWhitespace(bytes[ls]) { throw .bad("obsolete line folding") }
            var colon = ls
            while le - colon >= 8 {   // eight name bytes at a time, while they are letters, digits and "-"
                let k = ASCII.nameBytePrefix(bytes.loadUnaligned(fromByteOffset: colon, as: UInt64.self))
                colon += k
                if k < 8 { break }
            }
            while colon < le && ASCII.isToken(bytes[colon]) { colon += 1 }
            guard colon < le, bytes[colon] == ASCII.colon else {
                if colon < le && ASCII.isWhitespace(bytes[colon]) { throw .bad("whitespace before the colon of a header") }
                throw .bad("invalid header name")
            }
            guard colon > ls else { throw .bad("empty header name") }
            var lo = colon + 1, hi = le
            if !ASCII.allFieldBytes(bytes, lo..<hi) {
                for i in lo..<hi where !ASCII.isFieldByte(bytes[i]) {
                    throw .bad(bytes[i] == ASCII.cr ? "bare CR in a header value" : "invalid byte in a header value")
                }
            }
            while lo < hi && ASCII.isWhitespace(bytes[lo]) { lo += 1 }
            while hi > lo && ASCII.isWhitespace(bytes[hi - 1]) { hi -= 1 }
            out[n] = HTTPHeaderField(name: ls..<colon, value: lo..<hi)
            n += 1
            ls = le + 2
        }
        return UnsafeBufferPointer(rebasing: out[0..<n])
    }
}

/// What the framing-relevant headers of a head say, gathered in one pass.
struct FramingHeaders {
    var contentLength: Int?
    var transferEncoding = false
    var chunkedLast = false
    var otherCoding = false
    var connectionClose = false
    var connectionKeepAlive = false
    var connectionUpgrade = false
    var upgradeHeader = false
    var expectContinue = false
    var host: Range<Int>?
    var hostCount = 0

    init(_ bytes: UnsafeRawBufferPointer, _ fields: HeadFields) throws(HTTPParseError) {
        for f in fields {
            let n = f.name
            switch n.count {
            case 4 where asciiEqualsIgnoringCase(bytes, n, "host"):
                hostCount += 1; host = f.value
            case 6 where asciiEqualsIgnoringCase(bytes, n, "expect"):
                if asciiEqualsIgnoringCase(bytes, f.value, "100-continue") { expectContinue = true }
            case 7 where asciiEqualsIgnoringCase(bytes, n, "upgrade"):
                upgradeHeader = true
            case 10 where asciiEqualsIgnoringCase(bytes, n, "connection"):
                // A backend's usual one-word value decides without the list walk (a closure
                // call per element; callgrind: ~130 instructions per response).
                if asciiEqualsIgnoringCase(bytes, f.value, "keep-alive") { connectionKeepAlive = true; continue }
                if asciiEqualsIgnoringCase(bytes, f.value, "close") { connectionClose = true; continue }
                forEachListElement(bytes, f.value) { t in
                    if asciiEqualsIgnoringCase(bytes, t, "close") { connectionClose = true }
                    else if asciiEqualsIgnoringCase(bytes, t, "keep-alive") { connectionKeepAlive = true }
                    else if asciiEqualsIgnoringCase(bytes, t, "upgrade") { connectionUpgrade = true }
                }
            case 14 where asciiEqualsIgnoringCase(bytes, n, "content-length"):
                guard let v = ASCII.decimal(bytes, f.value) else { throw .bad("malformed Content-Length") }
                if let c = contentLength, c != v { throw .bad("differing Content-Length values") }
                contentLength = v
            case 17 where asciiEqualsIgnoringCase(bytes, n, "transfer-encoding"):
                var elements = 0
                var failure: HTTPParseError?
                forEachListElement(bytes, f.value) { t in
                    elements += 1
                    if chunkedLast { failure = .bad("chunked is not the last transfer coding") }
                    if asciiEqualsIgnoringCase(bytes, t, "chunked") { chunkedLast = true } else { otherCoding = true }
                }
                if let failure { throw failure }
                guard elements > 0 else { throw .bad("empty Transfer-Encoding") }
                transferEncoding = true
            default: break
            }
        }
    }
}
