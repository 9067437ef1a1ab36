import Glibc

/// Starts a joinable POSIX thread running `body`.
public func startThread(_ body: @escaping @Sendable () -> Void) throws(SystemError) -> pthread_t {
    final class Box { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
    let arg = Unmanaged.passRetained(Box(body)).toOpaque()
    var tid = pthread_t()
    let r = pthread_create(&tid, nil, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        box.body()
        return nil
    }, arg)
    if r != 0 {
        Unmanaged<Box>.fromOpaque(arg).release()
        throw SystemError("pthread_create", errno: r)
    }
    return tid
}

/// Signal handling by waiting: the signals are blocked in every thread and the main thread
/// takes them with `sigtimedwait`, so no handler runs at an arbitrary point.
public enum Signals {
    public static func blockForWaiting(_ signals: [Int32]) {
        signal(SIGPIPE, SIG_IGN)   // OpenSSL writes with write(2): a reset peer must not kill the process
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// The next of `signals`, or nil after `timeoutMs`.
    public static func wait(_ signals: [Int32], timeoutMs: Int) -> Int32? {
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        var ts = timespec(tv_sec: timeoutMs / 1000, tv_nsec: (timeoutMs % 1000) * 1_000_000)
        let r = sigtimedwait(&set, nil, &ts)
        return r > 0 ? r : nil
    }
}
