import Glibc

extension Socket {
    public enum Received {
        case bytes(Int)
        case wouldBlock
        /// The peer closed its side (recv returned 0).
        case closed
        case failed(SystemError)
    }

    /// One non-blocking recv; `peek` leaves the bytes in the socket (MSG_PEEK), so another
    /// reader (OpenSSL's socket BIO) still gets them.
    public static func receive(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, peek: Bool) -> Received {
        do {
            guard let n = try retryingSyscall("recv", { recv(fd, buffer.baseAddress, buffer.count, peek ? Int32(MSG_PEEK) : 0) }) else {
                return .wouldBlock
            }
            return n == 0 ? .closed : .bytes(n)
        } catch {
            return .failed(error)
        }
    }
}
