import GatewayConfig
import GatewaySystem

/// What the main thread does besides signals: systemd notifications and watchdog pings, and
/// `reload_on_change` (inotify on the configuration's files, reload one second after the last
/// change). Used by the main thread only.
final class Supervision {
    private let notifier: SystemdNotifier
    private var nextWatchdog: UInt64?
    private var watcher: FileWatcher?
    private var debounce = Debouncer(delayMs: 1000)
    private let log: () -> ErrorLog

    init(log: @escaping () -> ErrorLog) {
        self.log = log
        do { notifier = try SystemdNotifier.fromEnvironment() } catch {
            log().log(.error, "systemd_notify_failed", "NOTIFY_SOCKET unusable: \(error)")
            notifier = SystemdNotifier()
        }
        if let ms = notifier.watchdogIntervalMs { nextWatchdog = monotonicMilliseconds() + ms }
    }

    /// The gateway accepts on every listener: `READY=1`.
    func ready() { notify("READY=1") }
    /// Before a reload: `RELOADING=1` with `MONOTONIC_USEC`; after it (taken or not): `READY=1`.
    func reloading() { notify(SystemdNotifier.reloadingMessage(monotonicUsec: monotonicMicroseconds())) }
    func stopping() { notify("STOPPING=1") }

    private func notify(_ state: String) {
        guard notifier.isEnabled else { return }
        do { try notifier.send(state) } catch { log().log(.warn, "systemd_notify_failed", "\(error)") }
    }

    /// Watches what `config` reads when it asks for `reload_on_change` (after every load).
    func watch(_ config: GatewayConfiguration) {
        guard config.reloadOnChange else { watcher = nil; return }
        if let w = watcher { w.rewatch(paths: config.watchedFiles) } else {
            do { watcher = try FileWatcher(paths: config.watchedFiles) } catch {
                log().log(.error, "watch_failed", "reload_on_change: \(error)")
                return
            }
        }
        for f in watcher?.failures ?? [] { log().log(.warn, "watch_failed", "reload_on_change: \(f)") }
    }

    /// Called every tick: pings the watchdog when due; true when files changed and have been
    /// quiet for a second (time to reload).
    func tick() -> Bool {
        let now = monotonicMilliseconds()
        if let due = nextWatchdog, now >= due, let ms = notifier.watchdogIntervalMs {
            notify("WATCHDOG=1")
            nextWatchdog = now + ms
        }
        if let w = watcher, w.drain() { debounce.changed(now: now) }
        return debounce.fire(now: now)
    }

    /// How long the main thread may wait for a signal before the next `tick`.
    var tickMs: Int {
        var ms: UInt64 = 1000
        if watcher != nil { ms = 100 }
        if let w = notifier.watchdogIntervalMs { ms = min(ms, max(10, w / 4)) }
        return Int(ms)
    }
}
