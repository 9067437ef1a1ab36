import Glibc

/// Plain descriptors (files, the admin endpoint's sockets, log files) behind one wrapper: `EINTR`
/// retried, "would block" a value, and no caller reads `errno`.
public enum Descriptor {
    public enum IO: Equatable {
        case done(Int)
        case wouldBlock
        /// End of file (read) or a peer that is gone.
        case closed
        case failed(Int32)
    }

    /// One `read` into `buffer`.
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> IO {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n > 0 { return .done(n) }
            if n == 0 { return .closed }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            case ECONNRESET, EPIPE: return .closed
            case let e: return .failed(e)
            }
        }
    }

    /// One `write` of `bytes` (part of them may be written).
    public static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> IO {
        while true {
            let n = Glibc.write(fd, bytes.baseAddress, bytes.count)
            if n >= 0 { return .done(n) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            case ECONNRESET, EPIPE: return .closed
            case let e: return .failed(e)
            }
        }
    }

    /// Writes all of `bytes` to a blocking descriptor (a log file): false when it failed.
    @discardableResult
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var off = 0
        while off < bytes.count {
            guard case .done(let n) = write(fd, UnsafeRawBufferPointer(rebasing: bytes[off...])), n > 0 else { return false }
            off += n
        }
        return true
    }

    /// `s` and a newline to standard error (a command's message; nothing to do if it fails).
    public static func printError(_ s: String) {
        var line = s + "\n"
        _ = line.withUTF8 { writeAll(2, UnsafeRawBufferPointer($0)) }
    }

    /// Closes a descriptor the caller owns (an error path, a refused connection).
    public static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// Opens `path` for appending, creating it (mode 0640); nil when it cannot be opened.
    public static func openAppend(_ path: String) -> Int32? {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        return fd >= 0 ? fd : nil
    }

    /// Makes `fd` refer to what `other` refers to (atomically for every writer of `fd`), then
    /// closes `other`: a log file reopened under the same descriptor.
    public static func replace(_ fd: Int32, with other: Int32) -> Bool {
        defer { _ = Glibc.close(other) }
        return dup2(other, fd) >= 0
    }

    /// The text of an errno value (`Connection refused`).
    public static func describe(_ code: Int32) -> String { String(cString: strerror(code)) }
}
