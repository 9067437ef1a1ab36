import Glibc
import GatewayConfig
import GatewaySystem
import GatewayTLS

/// The running gateway: N workers, each an event loop on its own thread with its own
/// SO_REUSEPORT listeners; the main thread only waits for signals.
public final class Gateway {
    private var snapshot: RuntimeSnapshot
    private let logs: Logs
    private var loops: [EventLoop] = []
    private var threads: [pthread_t] = []
    private let stopped = LockedCounter()
    /// Builds a new snapshot from the configuration file (for SIGHUP).
    private let reload: () -> Result<RuntimeSnapshot, ConfigLoadError>
    /// Used while no `ticket_key_file` is configured.
    private var ticketRotation = TicketKeyRotation(now: monotonicMilliseconds())

    public init(snapshot: RuntimeSnapshot, logs: Logs, reload: @escaping () -> Result<RuntimeSnapshot, ConfigLoadError>) {
        self.snapshot = snapshot
        self.logs = logs
        self.reload = reload
    }

    public static var cpuCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Binds every listener for every worker first (so a bad address fails before anything runs),
    /// then starts the workers. Throws on a bind failure.
    public func start() throws(SystemError) {
        Signals.blockForWaiting([SIGTERM, SIGINT, SIGHUP, SIGUSR1])
        Allocator.tuneForServer()
        TicketKeys.install(snapshot.ticketKeys ?? ticketRotation.keys)
        let count = snapshot.config.workers ?? Self.cpuCount
        var perWorker: [[(Int32, Int)]] = []
        for _ in 0..<count {
            var fds: [(Int32, Int)] = []
            for (i, l) in snapshot.config.listeners.enumerated() {
                guard let addr = SocketAddress(ip: l.address, port: l.port) else {
                    throw SystemError("listen", errno: EINVAL, context: "\(l.address):\(l.port)")
                }
                fds.append((try Socket.listen(on: addr, reusePort: true), i))
            }
            perWorker.append(fds)
        }
        for (i, fds) in perWorker.enumerated() {
            let snap = snapshot, logs = self.logs, stopped = self.stopped
            let box = LoopBox()
            let ready = LockedCounter()
            let tid = try startThread {
                do {
                    let w = try Worker(id: i, snapshot: snap, logs: logs, listenFDs: fds)
                    w.onStopped = { stopped.add(1) }
                    box.set(w.loop, WorkerHandle(w))
                    ready.add(1)
                    w.startHealthChecks()
                    w.loop.run()
                } catch {
                    logs.error.log(.error, "worker_failed", "\(error)")
                    ready.add(1)
                    stopped.add(1)
                }
            }
            threads.append(tid)
            while ready.value == 0 { usleep(1000) }
            if let l = box.loop { loops.append(l); handles.append(box.handle!) }
        }
        logs.error.log(.info, "started", "listening", [("workers", String(count)),
            ("listeners", snapshot.config.listeners.map { "\($0.address):\($0.port)" }.joined(separator: " "))])
    }

    private var handles: [WorkerHandle] = []

    /// Waits for signals until shutdown; returns the exit status.
    public func waitForShutdown() -> Int32 {
        while true {
            guard let sig = Signals.wait([SIGTERM, SIGINT, SIGHUP, SIGUSR1], timeoutMs: 1000) else {
                if stopped.value >= threads.count { break }
                if snapshot.ticketKeys == nil && ticketRotation.rotateIfDue(now: monotonicMilliseconds()) {
                    TicketKeys.install(ticketRotation.keys)
                }
                continue
            }
            if sig == SIGHUP { applyReload(); continue }
            if sig == SIGUSR1 { continue }   // log files are opened per write target; nothing to reopen yet
            break
        }
        shutdown()
        return 0
    }

    private func applyReload() {
        switch reload() {
        case .failure(let e):
            logs.error.log(.error, "reload_failed", "configuration rejected; still serving the previous one",
                           [("errors", e.description)])
        case .success(let next):
            let sameListeners = next.config.listeners.map { "\($0.address):\($0.port)" } == snapshot.config.listeners.map { "\($0.address):\($0.port)" }
            if !sameListeners {
                logs.error.log(.warn, "reload_listeners", "listener changes take effect at restart; other changes applied")
            }
            snapshot = next
            TicketKeys.install(next.ticketKeys ?? ticketRotation.keys)
            for h in handles { h.loop.execute { h.worker.snapshot = next } }
            logs.error.log(.info, "reloaded", "new configuration in use for new connections")
        }
    }

    private func shutdown() {
        logs.error.log(.info, "shutdown", "stopping: no new connections, finishing in-flight requests")
        for h in handles { h.loop.execute { h.worker.beginDrain() } }
        let deadline = monotonicMilliseconds() + UInt64(snapshot.config.shutdownTimeoutMs)
        while stopped.value < threads.count && monotonicMilliseconds() < deadline { usleep(20_000) }
        if stopped.value < threads.count {
            let closed = LockedCounter()
            for h in handles { h.loop.execute { closed.add(h.worker.forceClose()) } }
            while stopped.value < threads.count { usleep(10_000) }
            logs.error.log(.warn, "shutdown_timeout", "closed connections still open after shutdown_timeout",
                           [("connections", String(closed.value))])
        }
        for t in threads { pthread_join(t, nil) }
        logs.error.log(.info, "stopped", "clean shutdown")
    }
}

/// A worker as seen from the main thread: touched only inside `loop.execute` blocks, which run on its own thread.
final class WorkerHandle: @unchecked Sendable {
    let worker: Worker
    let loop: EventLoop
    init(_ w: Worker) { worker = w; loop = w.loop }
}

/// Hands the worker's loop from its thread back to the starter (published before `ready`).
final class LoopBox: @unchecked Sendable {
    // @unchecked: written once by the worker thread before it signals `ready`; read after.
    private(set) var loop: EventLoop?
    private(set) var handle: WorkerHandle?
    func set(_ l: EventLoop, _ h: WorkerHandle) { loop = l; handle = h }
}

final class LockedCounter: @unchecked Sendable {
    // @unchecked: every access goes through the mutex.
    private let m = Mutex()
    private var n = 0
    func add(_ v: Int) { m.withLock { n += v } }
    var value: Int { m.withLock { n } }
}
