import Glibc
import CGatewayShims

/// Thin wrappers over the socket calls the gateway makes. Every socket is non-blocking and close-on-exec.
public enum Socket {
    public static func listen(on address: SocketAddress, reusePort: Bool, backlog: Int32 = 1024) throws(SystemError) -> Int32 {
        let what = address.description
        guard let fd = try retryingSyscall("socket", context: what, {
            socket(address.family, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        }) else { throw SystemError("socket", errno: EAGAIN, context: what) }
        do {
            try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR")
            if reusePort { try setOption(fd, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT") }
            if address.family == AF_INET6 { try setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1, "IPV6_V6ONLY") }
            var st = address.storage
            _ = try withUnsafePointer(to: &st) { p throws(SystemError) in
                try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa throws(SystemError) in
                    try retryingSyscall("bind", context: what) { bind(fd, sa, address.length) }
                }
            }
            _ = try retryingSyscall("listen", context: what) { Glibc.listen(fd, backlog) }
        } catch {
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// Accepts one connection; nil when none is waiting.
    public static func accept(_ listener: Int32) throws(SystemError) -> (fd: Int32, peer: SocketAddress)? {
        var st = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = try withUnsafeMutablePointer(to: &st) { p throws(SystemError) in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa throws(SystemError) in
                try retryingSyscall("accept4") { gw_accept4(listener, sa, &len, Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue)) }
            }
        }
        guard let fd else { return nil }
        return (fd, SocketAddress(storage: st, length: len))
    }

    /// Starts a non-blocking connect; the socket becomes writable when it completes (check `pendingError`).
    public static func connect(to address: SocketAddress) throws(SystemError) -> Int32 {
        let what = address.description
        guard let fd = try retryingSyscall("socket", context: what, {
            socket(address.family, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        }) else { throw SystemError("socket", errno: EAGAIN, context: what) }
        var st = address.storage
        let r = withUnsafePointer(to: &st) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, address.length) }
        }
        if r == -1 && errno != EINPROGRESS && errno != EINTR {
            let e = errno
            Glibc.close(fd)
            throw SystemError("connect", errno: e, context: what)
        }
        try? setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1, "TCP_NODELAY")
        return fd
    }

    /// The result of a non-blocking connect (SO_ERROR): 0 on success, else the errno.
    public static func pendingError(_ fd: Int32) -> Int32 {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 { return errno }
        return err
    }

    /// Ends the sending direction (a FIN after what was written) while reading goes on: the
    /// first half of a lingering close. Errors are not worth reporting: a peer that already
    /// reset the connection (ENOTCONN) is what the drain after this finds out anyway.
    public static func shutdownWrite(_ fd: Int32) {
        _ = try? retryingSyscall("shutdown") { Glibc.shutdown(fd, Int32(SHUT_WR)) }
    }

    public static func setNoDelay(_ fd: Int32) {
        try? setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1, "TCP_NODELAY")
    }

    /// The locally bound address (for listeners started on port 0).
    public static func localAddress(_ fd: Int32) -> SocketAddress? {
        var st = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let r = withUnsafeMutablePointer(to: &st) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return r == 0 ? SocketAddress(storage: st, length: len) : nil
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32, _ label: String) throws(SystemError) {
        var v = value
        _ = try retryingSyscall("setsockopt", context: label) {
            setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
        }
    }
}

extension Socket {
    /// A listening unix stream socket at `path` (a stale socket file left by a previous run is
    /// replaced); mode 0660 so only the owner and its group can connect.
    public static func listen(unixPath path: String, backlog: Int32 = 128) throws(SystemError) -> Int32 {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            throw SystemError("bind", errno: ENAMETOOLONG, context: path)
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes) }
        guard let fd = try retryingSyscall("socket", context: path, {
            socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        }) else { throw SystemError("socket", errno: EAGAIN, context: path) }
        do {
            var st = stat()
            if lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK { unlink(path) }
            _ = try withUnsafePointer(to: &addr) { p throws(SystemError) in
                try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa throws(SystemError) in
                    try retryingSyscall("bind", context: path) { bind(fd, sa, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                }
            }
            chmod(path, 0o660)
            _ = try retryingSyscall("listen", context: path) { Glibc.listen(fd, backlog) }
        } catch {
            Glibc.close(fd)
            throw error
        }
        return fd
    }
}
