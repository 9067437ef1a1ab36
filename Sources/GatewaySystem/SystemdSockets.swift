import Glibc
import CGatewayShims

/// One listening socket passed by systemd (socket activation).
public struct InheritedSocket: Sendable, CustomStringConvertible {
    public let fd: Int32
    /// From `LISTEN_FDNAMES` (`FileDescriptorName=` in the socket unit), else "unknown".
    public let name: String
    /// What the socket is bound to (getsockname).
    public let address: SocketAddress

    public var description: String { "fd \(fd) \(name) \(address)" }

    /// True when a `listen` block for `other` would have bound exactly this address: same family,
    /// same port, same address bytes (so `0.0.0.0:8443` matches only a socket on `0.0.0.0:8443`,
    /// not one on `127.0.0.1:8443` nor a dual-stack `[::]:8443`).
    public func matches(_ other: SocketAddress) -> Bool {
        address.family == other.family && address.port == other.port
            && bindingBytes(address) == bindingBytes(other)
    }

    /// A new descriptor for the same socket (close-on-exec, non-blocking like the original since the
    /// flag lives on the shared file description). The caller owns it and may close it on its own.
    public func duplicate() throws(SystemError) -> Int32 {
        guard let d = try retryingSyscall("fcntl", context: "F_DUPFD_CLOEXEC fd \(fd)", {
            fcntl(fd, F_DUPFD_CLOEXEC, Int32(3))
        }) else { throw SystemError("fcntl", errno: EAGAIN, context: "F_DUPFD_CLOEXEC fd \(fd)") }
        return d
    }

    /// One descriptor per worker, all for this one socket. Every worker owns and closes its own
    /// copy, so a worker's `closeAndDeregister` never pulls the socket from under another; the
    /// original stays open (systemd holds the socket anyway), so a later reload can hand out more.
    /// Register each with `[.read, .exclusive]` so one connection wakes one worker, not all.
    public func workerDescriptors(count: Int) throws(SystemError) -> [Int32] {
        var out: [Int32] = []
        do throws(SystemError) {
            for _ in 0..<count { out.append(try duplicate()) }
        } catch {
            for d in out { close(d) }
            throw error
        }
        return out
    }
}

extension EventLoop.Interest {
    /// `EPOLLEXCLUSIVE`: among the epoll instances waiting on the same socket, one is woken per
    /// event. Only valid at `register`; `setInterest` on such a registration fails (EINVAL), so
    /// deregister and register again instead.
    public static let exclusive = EventLoop.Interest(rawValue: EPOLLEXCLUSIVE.rawValue)
}

/// The sockets of `LISTEN_FDS`, as `sd_listen_fds_with_names(unset_environment=1)` reads them.
public struct SocketActivation: Sendable {
    /// `SD_LISTEN_FDS_START`.
    public static let firstDescriptor: Int32 = 3

    public let sockets: [InheritedSocket]

    public init(sockets: [InheritedSocket] = []) { self.sockets = sockets }

    /// Reads `LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`, then unsets all three (also on error),
    /// so no child process takes the sockets for its own.
    public static func fromEnvironment() throws(SystemError) -> SocketActivation {
        defer { unsetenv("LISTEN_PID"); unsetenv("LISTEN_FDS"); unsetenv("LISTEN_FDNAMES") }
        return try parse(listenPID: environment("LISTEN_PID"), listenFDs: environment("LISTEN_FDS"),
                         listenFDNames: environment("LISTEN_FDNAMES"))
    }

    /// The environment values and the first descriptor given explicitly (tests pass a high fd).
    /// No `LISTEN_PID`, or one of another process: no sockets (they are not ours). Bad numbers, a
    /// name count that differs from `LISTEN_FDS`, or a descriptor that is not a listening IPv4/IPv6
    /// stream socket throw. Each socket is made non-blocking and close-on-exec.
    public static func parse(listenPID: String?, listenFDs: String?, listenFDNames: String?,
                             pid: Int32 = getpid(), firstFD: Int32 = firstDescriptor) throws(SystemError) -> SocketActivation {
        guard let listenPID else { return SocketActivation() }
        guard let owner = Int32(listenPID), owner > 0 else {
            throw SystemError("LISTEN_PID", errno: EINVAL, context: "\"\(listenPID)\"")
        }
        guard owner == pid else { return SocketActivation() }
        guard let text = listenFDs, let count = Int32(text), count >= 0, count <= Int32.max - firstFD else {
            throw SystemError("LISTEN_FDS", errno: EINVAL, context: "\"\(listenFDs ?? "")\"")
        }
        var names = [String](repeating: "unknown", count: Int(count))
        if let listenFDNames {
            // Empty names are kept (systemd writes "" for a socket without FileDescriptorName).
            let given = listenFDNames.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard given.count == Int(count) else {
                throw SystemError("LISTEN_FDNAMES", errno: EINVAL, context: "\(given.count) names for \(count) descriptors")
            }
            names = given
        }
        var sockets: [InheritedSocket] = []
        for i in 0..<count {
            let fd = firstFD + i
            sockets.append(InheritedSocket(fd: fd, name: names[Int(i)], address: try adopt(fd)))
        }
        return SocketActivation(sockets: sockets)
    }

    /// The inherited socket a `listen ip:port` block uses instead of binding, if any.
    public func socket(for address: SocketAddress) -> InheritedSocket? {
        sockets.first { $0.matches(address) }
    }

    public func socket(ip: String, port: UInt16) -> InheritedSocket? {
        SocketAddress(ip: ip, port: port).flatMap { socket(for: $0) }
    }

    public func socket(named name: String) -> InheritedSocket? { sockets.first { $0.name == name } }

    /// Inherited sockets that no `listen` block uses (worth a warning: connections to them queue up unanswered).
    public func unmatched(by addresses: [SocketAddress]) -> [InheritedSocket] {
        sockets.filter { s in !addresses.contains { s.matches($0) } }
    }

    /// Checks one inherited descriptor and sets its flags. The calls are made directly rather than
    /// through `retryingSyscall`: here `EBADF` means the environment lied, not a bug of ours.
    private static func adopt(_ fd: Int32) throws(SystemError) -> SocketAddress {
        let what = "inherited fd \(fd)"
        func check(_ call: String, _ r: Int32) throws(SystemError) {
            if r == -1 { throw SystemError(call, errno: errno, context: what) }
        }
        var type: Int32 = 0, listening: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        try check("getsockopt SO_TYPE", getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len))
        len = socklen_t(MemoryLayout<Int32>.size)
        try check("getsockopt SO_ACCEPTCONN", getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len))
        guard type == Int32(SOCK_STREAM.rawValue), listening != 0 else {
            throw SystemError("LISTEN_FDS", errno: EINVAL, context: "\(what) is not a listening stream socket")
        }
        guard let address = Socket.localAddress(fd), address.family == AF_INET || address.family == AF_INET6 else {
            throw SystemError("getsockname", errno: EAFNOSUPPORT, context: "\(what) is not an IPv4/IPv6 socket")
        }
        let fl = fcntl(fd, F_GETFL)
        try check("fcntl F_GETFL", fl)
        try check("fcntl F_SETFL O_NONBLOCK", fcntl(fd, F_SETFL, fl | O_NONBLOCK))
        let fdf = fcntl(fd, F_GETFD)
        try check("fcntl F_GETFD", fdf)
        try check("fcntl F_SETFD FD_CLOEXEC", fcntl(fd, F_SETFD, fdf | FD_CLOEXEC))
        return address
    }
}

/// The address bytes as bound (no IPv4-mapped folding, unlike `ipBytes`), plus the IPv6 scope.
private func bindingBytes(_ a: SocketAddress) -> [UInt8] {
    withUnsafeBytes(of: a.storage) { raw in
        if a.family == AF_INET6 {
            let off = MemoryLayout<sockaddr_in6>.offset(of: \sockaddr_in6.sin6_addr)!
            let scope = MemoryLayout<sockaddr_in6>.offset(of: \sockaddr_in6.sin6_scope_id)!
            return Array(raw[off..<off + 16]) + Array(raw[scope..<scope + 4])
        }
        let off = MemoryLayout<sockaddr_in>.offset(of: \sockaddr_in.sin_addr)!
        return Array(raw[off..<off + 4])
    }
}
