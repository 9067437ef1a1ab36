import Glibc
import CGatewayShims

/// The `sd_notify` protocol without libsystemd: one datagram per state change to the
/// `AF_UNIX` socket named by `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).
/// Without the variable every call is a no-op, so the gateway calls it unconditionally.
/// Immutable after init and `sendto` on a datagram socket is atomic, so any thread may call it.
public final class SystemdNotifier: Sendable {
    /// The datagram socket, nil when `$NOTIFY_SOCKET` is absent.
    private let fd: Int32?
    /// `sun_path` bytes: the path, or a NUL then the abstract name.
    private let path: [UInt8]
    /// Half of `WATCHDOG_USEC` in ms (systemd's advice: ping at half the timeout); nil when no
    /// watchdog is asked for, or it is meant for another process (`WATCHDOG_PID`).
    public let watchdogIntervalMs: UInt64?

    public var isEnabled: Bool { fd != nil }

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID` once.
    public static func fromEnvironment() throws(SystemError) -> SystemdNotifier {
        try SystemdNotifier(notifySocket: environment("NOTIFY_SOCKET"),
                            watchdogUsec: environment("WATCHDOG_USEC"),
                            watchdogPID: environment("WATCHDOG_PID"))
    }

    /// A notifier that sends nothing: for a caller that logged an unusable `$NOTIFY_SOCKET` and goes on.
    public init() { fd = nil; path = []; watchdogIntervalMs = nil }

    /// The values of the three variables given explicitly (tests, or a caller with its own environment).
    /// An unusable `notifySocket` (relative, too long) throws `EINVAL`, as `sd_notify` refuses it.
    public init(notifySocket: String?, watchdogUsec: String? = nil, watchdogPID: String? = nil,
                pid: Int32 = getpid()) throws(SystemError) {
        guard let spec = notifySocket, !spec.isEmpty else {
            fd = nil; path = []; watchdogIntervalMs = nil
            return
        }
        var bytes = Array(spec.utf8)
        if bytes.first == UInt8(ascii: "@") {
            bytes[0] = 0
        } else if bytes.first != UInt8(ascii: "/") {
            throw SystemError("NOTIFY_SOCKET", errno: EINVAL, context: "\"\(spec)\" is neither an absolute path nor @name")
        }
        guard bytes.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else {
            throw SystemError("NOTIFY_SOCKET", errno: ENAMETOOLONG, context: spec)
        }
        guard let s = try retryingSyscall("socket", context: "NOTIFY_SOCKET", {
            socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        }) else { throw SystemError("socket", errno: EAGAIN, context: "NOTIFY_SOCKET") }
        fd = s
        path = bytes
        watchdogIntervalMs = Self.watchdogInterval(usec: watchdogUsec, pid: watchdogPID, ownPID: pid)
    }

    deinit { if let fd { close(fd) } }

    /// `WATCHDOG_USEC` halved, in ms (at least 1); nil when absent, not a positive number, or
    /// `WATCHDOG_PID` names another process.
    public static func watchdogInterval(usec: String?, pid: String?, ownPID: Int32 = getpid()) -> UInt64? {
        guard let usec, let us = UInt64(usec), us > 0 else { return nil }
        if let pid, Int32(pid) != ownPID { return nil }
        return max(1, us / 2 / 1000)
    }

    /// Sends one datagram, e.g. `READY=1`. Never blocks: a full receive queue is `EAGAIN`.
    public func send(_ state: String) throws(SystemError) {
        guard let fd else { return }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: path) }
        // Abstract names count exactly their bytes; a path gets its terminating NUL.
        let len = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + path.count + (path[0] == 0 ? 0 : 1))
        let message = Array(state.utf8)
        let sent = try withUnsafePointer(to: &addr) { p throws(SystemError) in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa throws(SystemError) in
                try retryingSyscall("sendto", context: "NOTIFY_SOCKET") {
                    sendto(fd, message, message.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT), sa, len)
                }
            }
        }
        if sent == nil { throw SystemError("sendto", errno: EAGAIN, context: "NOTIFY_SOCKET") }
    }

    /// Every listener accepts (startup), or a reload finished (either outcome).
    public func ready() throws(SystemError) { try send("READY=1") }
    /// A reload starts; systemd wants the monotonic time with it to order it against READY=1.
    public func reloading() throws(SystemError) { try send(Self.reloadingMessage(monotonicUsec: monotonicMicroseconds())) }
    public func stopping() throws(SystemError) { try send("STOPPING=1") }
    public func watchdog() throws(SystemError) { try send("WATCHDOG=1") }
    /// Free text for `systemctl status`; newlines would start new assignments, so they become spaces.
    public func status(_ text: String) throws(SystemError) {
        try send("STATUS=" + String(text.map { $0 == "\n" ? " " : $0 }))
    }

    public static func reloadingMessage(monotonicUsec: UInt64) -> String {
        "RELOADING=1\nMONOTONIC_USEC=\(monotonicUsec)"
    }
}

/// CLOCK_MONOTONIC in microseconds, the clock of `MONOTONIC_USEC`.
public func monotonicMicroseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
}

func environment(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}
