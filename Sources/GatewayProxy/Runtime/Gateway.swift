import Glibc
import GatewayConfig
import GatewaySystem
import GatewayTLS

/// The running gateway: N workers, each an event loop on its own thread with its own
/// SO_REUSEPORT listeners, the admin endpoint on a thread of its own; the main thread only
/// waits for signals.
public final class Gateway {
    private var snapshot: RuntimeSnapshot
    private var loops: [EventLoop] = []
    private var threads: [pthread_t] = []
    private var handles: [WorkerHandle] = []
    private let stopped = LockedCounter()
    /// Loads and validates the configuration again (SIGHUP); nil when it was rejected (the loader
    /// has logged why, with the `config_rejected` audit line).
    private let reload: (_ trigger: String, _ current: RuntimeSnapshot) -> RuntimeSnapshot?
    /// Writes the `config_loaded` audit line of a load that takes effect. Called by the gateway
    /// only once the file watches cover the loaded configuration: an edit made after the line
    /// was written is always seen (the watches are armed before it), never lost in between.
    private let audit: (_ snapshot: RuntimeSnapshot, _ trigger: String) -> Void
    /// Used while no `ticket_key_file` is configured.
    private var ticketRotation = TicketKeyRotation(now: monotonicMilliseconds())
    public let status: GatewayStatus
    private let build: BuildInfo
    private var admin: AdminServer?
    private var logs: Logs { snapshot.logs }
    private var supervision: Supervision!
    /// Sockets passed by systemd (`LISTEN_FDS`), used for the `listen` blocks with their address.
    private var activation = SocketActivation()

    public init(snapshot: RuntimeSnapshot, build: BuildInfo,
                reload: @escaping (_ trigger: String, _ current: RuntimeSnapshot) -> RuntimeSnapshot?,
                audit: @escaping (_ snapshot: RuntimeSnapshot, _ trigger: String) -> Void) {
        self.snapshot = snapshot
        self.build = build
        self.reload = reload
        self.audit = audit
        status = GatewayStatus(snapshot: snapshot)
    }

    public static var cpuCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Binds every listener for every worker first (so a bad address fails before anything runs),
    /// then starts the workers and the admin endpoint. Throws on a bind failure.
    public func start() throws(SystemError) {
        Signals.blockForWaiting([SIGTERM, SIGINT, SIGHUP, SIGUSR1])
        Allocator.tuneForServer()
        workerCount = snapshot.config.workers ?? Self.cpuCount
        supervision = Supervision(log: { [unowned self] in self.logs.error })
        supervision.watch(snapshot.config)
        audit(snapshot, "start")
        activation = try SocketActivation.fromEnvironment()   // a bad LISTEN_FDS fails the start
        let perWorker = try bindListeners(snapshot.config.listeners.map(ListenKey.init))
        let addresses = snapshot.config.listeners.compactMap { SocketAddress(ip: $0.address, port: $0.port) }
        for s in activation.unmatched(by: addresses) {
            logs.error.log(.warn, "socket_unused", "a socket passed by systemd matches no listen block", [("socket", .string(s.description))])
        }
        if let address = snapshot.config.admin {
            let list = workerList
            let routes = AdminRoutes(status: status, build: build, scrape: { list.scrape() })
            let a = try AdminServer(routes: routes)
            try a.start(address)
            admin = a
        }
        for (i, fds) in perWorker.enumerated() {
            let snap = snapshot, logs = self.logs, stopped = self.stopped, tickets = ticketRotation.ring
            let box = LoopBox()
            let ready = LockedCounter()
            let tid = try startThread {
                do {
                    let w = try Worker(id: i, snapshot: snap, tickets: tickets, listenFDs: fds)
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
        workerList.set(handles)
        refreshCertificates()
        status.markReady()
        supervision.ready()
        logs.error.log(.info, "started", "listening", [("workers", .int(workerCount)),
            ("listeners", .string(snapshot.config.listeners.map { "\($0.address):\($0.port)" }.joined(separator: " ")))])
    }

    private var workerCount = 0

    /// One socket per worker for each address (SO_REUSEPORT), all bound before any is used:
    /// on a failure every socket bound so far is closed and the error thrown.
    /// A socket passed by systemd for that address is used instead of binding: each worker gets
    /// its own descriptor of it and waits on it with EPOLLEXCLUSIVE (one wake-up per connection).
    private func bindListeners(_ keys: [ListenKey]) throws(SystemError) -> [[WorkerSocket]] {
        var perWorker: [[WorkerSocket]] = Array(repeating: [], count: workerCount)
        do throws(SystemError) {
            for key in keys {
                guard let addr = SocketAddress(ip: key.address, port: key.port) else {
                    throw SystemError("listen", errno: EINVAL, context: key.description)
                }
                if let inherited = activation.socket(for: addr) {
                    for (w, fd) in try inherited.workerDescriptors(count: workerCount).enumerated() {
                        perWorker[w].append(WorkerSocket(fd: fd, key: key, shared: true))
                    }
                    continue
                }
                for w in 0..<workerCount {
                    perWorker[w].append(WorkerSocket(fd: try Socket.listen(on: addr, reusePort: true), key: key, shared: false))
                }
            }
        } catch {
            for socks in perWorker { for s in socks { Descriptor.close(s.fd) } }
            throw error
        }
        return perWorker
    }

    /// The workers as the admin thread sees them (set once, after they all started).
    private let workerList = WorkerList()

    /// Waits for signals until shutdown; returns the exit status.
    public func waitForShutdown() -> Int32 {
        while true {
            guard let sig = Signals.wait([SIGTERM, SIGINT, SIGHUP, SIGUSR1], timeoutMs: supervision.tickMs) else {
                if stopped.value >= threads.count { break }
                if supervision.tick() { applyReload(trigger: "file_change") }
                if ticketRotation.rotateIfDue(now: monotonicMilliseconds()) {
                    let ring = ticketRotation.ring
                    for h in handles { h.loop.execute { h.worker.generatedTickets = ring } }
                }
                if monotonicMilliseconds() >= lastCertificateCheck + 86_400_000 { refreshCertificates() }
                continue
            }
            if sig == SIGHUP { applyReload(trigger: "signal"); continue }
            if sig == SIGUSR1 {
                let ok = logs.reopen()
                logs.error.log(ok ? .info : .error, "logs_reopened", ok ? "log files reopened" : "a log file could not be reopened")
                continue
            }
            break
        }
        shutdown()
        return 0
    }

    /// Validates and builds the new snapshot (the loader), binds the addresses it adds on every
    /// worker, then hands each worker the snapshot, its new sockets and the addresses to close in
    /// one task: a listener is matched by address, so a changed block keeps its sockets and
    /// connections and serves the new settings. Any failure keeps the old configuration whole.
    private func applyReload(trigger: String) {
        supervision.reloading()
        defer { supervision.ready() }
        guard let next = reload(trigger, snapshot) else { status.reloadFailed(); return }
        // Watches first: a file changed once the audit line is out must not fall in a gap.
        supervision.watch(next.config)
        let before = Set(snapshot.listeners.keys), after = Set(next.listeners.keys)
        let added = next.config.listeners.map(ListenKey.init).filter { !before.contains($0) }
        let removed = before.subtracting(after)
        let fds: [[WorkerSocket]]
        do { fds = try bindListeners(added) } catch {
            supervision.watch(snapshot.config)
            next.logs.error.log(.error, "config_rejected", "reload rejected: a new listen address cannot be bound; still serving the previous configuration",
                                [("file", .string(next.config.files.first ?? "")), ("sha256", .string(next.config.sha256)), ("trigger", .string(trigger)), ("errors", "\(error)")])
            status.reloadFailed()
            return
        }
        audit(next, trigger)
        if (next.config.workers ?? Self.cpuCount) != workerCount {
            next.logs.error.log(.warn, "workers_unchanged", "a change of `workers` takes effect at restart",
                                [("running", .int(workerCount)), ("configured", next.config.workers.map(LogValue.int) ?? "auto")])
        }
        snapshot = next
        for (i, h) in handles.enumerated() {
            let mine = fds[i]
            h.loop.execute {
                h.worker.snapshot = next
                h.worker.drainChangedHosts(reloadingTo: next)
                h.worker.removeListeners(removed)
                do { try h.worker.addListeners(mine) } catch { next.logs.error.log(.error, "listen_failed", "\(error)") }
            }
        }
        admin?.update(next.config.admin, log: next.logs.error)
        status.reloaded(next)
        refreshCertificates()
        next.logs.error.log(.info, "reloaded", "new configuration in use for new connections", [("trigger", .string(trigger)),
            ("listeners_added", .string(added.map(\.description).joined(separator: " "))),
            ("listeners_removed", .string(removed.map(\.description).sorted().joined(separator: " ")))])
    }

    private var lastCertificateCheck: UInt64 = 0

    /// Expiry warnings and the expiry metric: at start, after each reload, and once a day.
    private func refreshCertificates() {
        lastCertificateCheck = monotonicMilliseconds()
        status.setCertificates(CertificateExpiryWatch.check(snapshot.config, log: logs.error))
    }

    private func shutdown() {
        status.markDraining()
        supervision.stopping()
        logs.error.log(.info, "shutdown", "stopping: no new connections, finishing in-flight requests")
        for h in handles { h.loop.execute { h.worker.beginDrain() } }
        let deadline = monotonicMilliseconds() + UInt64(snapshot.config.shutdownTimeoutMs)
        while stopped.value < threads.count && monotonicMilliseconds() < deadline { usleep(20_000) }
        if stopped.value < threads.count {
            let closed = LockedCounter()
            for h in handles { h.loop.execute { closed.add(h.worker.forceClose()) } }
            while stopped.value < threads.count { usleep(10_000) }
            logs.error.log(.warn, "shutdown_forced", "closed connections still open after shutdown_timeout",
                           [("closed", .int(closed.value))])
        }
        for t in threads { pthread_join(t, nil) }
        admin?.stop()
        logs.error.log(.info, "stopped", "clean shutdown")
    }
}

/// A listening descriptor for one worker: its own SO_REUSEPORT socket, or its copy of a socket
/// systemd passed (`shared`: every worker waits on the same socket, with EPOLLEXCLUSIVE).
struct WorkerSocket: Sendable {
    let fd: Int32
    let key: ListenKey
    let shared: Bool
}

/// A worker as seen from the main thread: touched only inside `loop.execute` blocks, which run on its own thread.
final class WorkerHandle: @unchecked Sendable {
    let worker: Worker
    let loop: EventLoop
    init(_ w: Worker) { worker = w; loop = w.loop }
}

/// The workers, for a metrics scrape from the admin thread: each worker copies its own counters
/// on its own thread (through `loop.execute`), so the request path never takes a lock.
final class WorkerList: @unchecked Sendable {
    // @unchecked: `handles` is written once under the lock before the admin thread can scrape.
    private let lock = Mutex()
    private var handles: [WorkerHandle] = []
    func set(_ h: [WorkerHandle]) { lock.withLock { handles = h } }

    func scrape() -> MetricsSample {
        let workers = lock.withLock { handles }
        let results = SampleCollector()
        for h in workers { h.loop.execute { results.put(h.worker.sampleMetrics()) } }
        // A worker answers within one loop turn; one that is stuck for a second is left out.
        let end = monotonicMilliseconds() + 1_000
        while results.count < workers.count && monotonicMilliseconds() < end { usleep(500) }
        return results.total
    }
}

final class SampleCollector: @unchecked Sendable {
    // @unchecked: every access goes through the mutex.
    private let lock = Mutex()
    private var samples: [MetricsSample] = []
    func put(_ s: MetricsSample) { lock.withLock { samples.append(s) } }
    var count: Int { lock.withLock { samples.count } }
    var total: MetricsSample {
        lock.withLock { samples.reduce(into: MetricsSample()) { $0.add($1) } }
    }
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
