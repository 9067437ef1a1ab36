import Glibc
import GatewayConfig
import GatewaySystem

/// JSON-lines logs: the error/audit log and the access log. One `write` per line, so lines
/// from several worker threads never interleave.
public final class LogSink: @unchecked Sendable {
    // @unchecked: `fd` never changes after init (`reopen` replaces the open file behind it with
    // dup2, which is atomic); writes are single syscalls.
    private let fd: Int32
    public let target: LogTarget
    public let enabled: Bool

    public init(_ target: LogTarget) {
        self.target = target
        switch target {
        case .off: fd = -1; enabled = false
        case .stdout: fd = 1; enabled = true
        case .stderr: fd = 2; enabled = true
        case .file(let path):
            fd = Descriptor.openAppend(path) ?? -1
            enabled = fd >= 0
        }
    }

    deinit { if case .file = target, fd >= 0 { Descriptor.close(fd) } }

    /// SIGUSR1 (logrotate): the file at the configured path is opened anew and takes the place
    /// of the old one under the same descriptor, so every writer moves over at once.
    @discardableResult
    public func reopen() -> Bool {
        guard case .file(let path) = target, fd >= 0 else { return true }
        guard let fresh = Descriptor.openAppend(path) else { return false }
        return Descriptor.replace(fd, with: fresh)
    }

    public func write(_ line: UnsafeRawBufferPointer) {
        guard enabled else { return }
        Descriptor.writeAll(fd, line)
    }

    public func write(_ line: String) {
        var s = line
        s.withUTF8 { write(UnsafeRawBufferPointer($0)) }
    }
}

/// A JSON object built field by field into bytes.
public struct JSONLine {
    public private(set) var bytes: [UInt8] = [UInt8(ascii: "{")]
    public init() {}

    public mutating func field(_ key: StaticString, _ value: String?) {
        appendKey(key)
        guard let value else { bytes += Array("null".utf8); return }
        string(value)
    }
    public mutating func field(_ key: StaticString, _ value: Int) {
        appendKey(key); bytes += Array(String(value).utf8)
    }
    public mutating func field(_ key: StaticString, _ value: Bool) {
        appendKey(key); bytes += Array((value ? "true" : "false").utf8)
    }
    public mutating func field(_ key: StaticString, strings: [String]) {
        appendKey(key); bytes.append(UInt8(ascii: "["))
        for (i, s) in strings.enumerated() { if i > 0 { bytes.append(UInt8(ascii: ",")) }; string(s) }
        bytes.append(UInt8(ascii: "]"))
    }
    public mutating func field(_ key: String, _ value: String) {
        keyText(key); string(value)
    }
    public mutating func field(_ key: String, _ value: LogValue) {
        keyText(key)
        switch value {
        case .string(let s): string(s)
        case .int(let n): bytes += Array(String(n).utf8)
        case .bool(let b): bytes += Array((b ? "true" : "false").utf8)
        }
    }

    public func finished() -> [UInt8] { bytes + [UInt8(ascii: "}"), UInt8(ascii: "\n")] }

    private mutating func appendKey(_ k: StaticString) {
        if bytes.count > 1 { bytes.append(UInt8(ascii: ",")) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeBufferPointer(start: k.utf8Start, count: k.utf8CodeUnitCount))
        bytes += [UInt8(ascii: "\""), UInt8(ascii: ":")]
    }
    private mutating func keyText(_ k: String) {
        if bytes.count > 1 { bytes.append(UInt8(ascii: ",")) }
        string(k); bytes.append(UInt8(ascii: ":"))
    }
    private mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): bytes += [92, 34]
            case 92: bytes += [92, 92]
            case 0x0A: bytes += [92, UInt8(ascii: "n")]
            case 0x0D: bytes += [92, UInt8(ascii: "r")]
            case 0x09: bytes += [92, UInt8(ascii: "t")]
            case 0..<0x20, 0x7F:
                let hex = Array("0123456789abcdef".utf8)
                bytes += [92, UInt8(ascii: "u"), 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]]
            default: bytes.append(b)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

/// ISO 8601 UTC with milliseconds, e.g. 2026-11-22T10:00:00.123Z.
public func timestampNow() -> String {
    var tv = timeval()
    gettimeofday(&tv, nil)
    var t = tv.tv_sec
    var tm = tm()
    gmtime_r(&t, &tm)
    func pad(_ v: Int32, _ w: Int) -> String {
        let s = String(v); return String(repeating: "0", count: max(0, w - s.count)) + s
    }
    return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(tv.tv_usec / 1000), 3))Z"
}

/// Common Log Format time, e.g. 01/Dec/2026:20:42:30 +0000 (the text access log).
public func commonLogTime() -> String { utcTime(Int64(time(nil)), format: "%d/%b/%Y:%H:%M:%S +0000") }

/// Unix seconds in UTC through strftime's `format`.
public func utcTime(_ t: Int64, format: String) -> String {
    var s = time_t(t)
    var tm = tm()
    gmtime_r(&s, &tm)
    var buf = [Int8](repeating: 0, count: 64)
    let n = strftime(&buf, buf.count, format, &tm)
    return String(decoding: buf.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// The error log: JSON lines `{"time","level","event","message",...}` at or above the configured level.
public final class ErrorLog: Sendable {
    public let sink: LogSink
    public let level: LogLevel

    public init(sink: LogSink, level: LogLevel) { self.sink = sink; self.level = level }

    public func log(_ level: LogLevel, _ event: String, _ message: String, _ extra: [(String, LogValue)] = []) {
        guard level >= self.level else { return }
        var j = JSONLine()
        j.field("time", timestampNow())
        j.field("level", "\(level)")
        j.field("event", event)
        j.field("message", message)
        for (k, v) in extra { j.field(k, v) }
        j.finished().withUnsafeBytes { sink.write($0) }
    }
}

/// A field of an error-log or audit line, typed so that a count is written as a JSON number and
/// a flag as a JSON boolean (SPEC §7.2: a pipeline that sums `closed` must see `3`, not `"3"`).
/// Literals pick their case: `("closed", .int(n))`, `("trigger", "signal")`, `("errors", "\(e)")`.
public enum LogValue: Sendable, Equatable, ExpressibleByStringInterpolation, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    case string(String)
    case int(Int)
    case bool(Bool)

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}
