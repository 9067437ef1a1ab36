import Glibc

/// A failed system call: which call, on what, and the errno text. The rest of the code
/// never reads `errno` itself.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let errno: Int32
    public let context: String
    public init(_ call: String, errno: Int32, context: String = "") {
        self.call = call; self.errno = errno; self.context = context
    }
    public var description: String {
        let what = context.isEmpty ? call : "\(call) \(context)"
        return "\(what): \(String(cString: strerror(errno)))"
    }
}

/// Runs a syscall that returns -1 on failure, retrying `EINTR`.
/// `EAGAIN`/`EWOULDBLOCK` come back as nil so callers treat "would block" as a value, not an error.
@inline(__always)
public func retryingSyscall<T: FixedWidthInteger>(
    _ name: @autoclosure () -> String, context: @autoclosure () -> String = "", _ body: () -> T
) throws(SystemError) -> T? {
    while true {
        let r = body()
        if r != -1 { return r }
        let e = Glibc.errno
        switch e {
        case EINTR: continue
        case EAGAIN, EWOULDBLOCK: return nil
        case EBADF, EFAULT:
            // A closed or bogus descriptor here is a bug in the loop, never a runtime condition.
            fatalError("\(name()): \(String(cString: strerror(e))) (bug)")
        default: throw SystemError(name(), errno: e, context: context())
        }
    }
}

/// Monotonic clock in milliseconds: the time base of every timeout.
@inline(__always)
public func monotonicMilliseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
}
