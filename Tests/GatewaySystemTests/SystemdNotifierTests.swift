import Glibc
import Testing
import GatewaySystem

@Suite struct SystemdNotifierTests {
    @Test func sendsEachStateToAPathSocket() throws {
        let dir = makeTempDirectory("notify")
        defer { removeTree(dir) }
        let path = dir + "/notify.sock"
        let receiver = DatagramReceiver(pathBytes: Array(path.utf8))
        let n = try SystemdNotifier(notifySocket: path)
        #expect(n.isEnabled)

        try n.ready()
        #expect(receiver.receive() == "READY=1")

        let before = monotonicMicroseconds()
        try n.reloading()
        let after = monotonicMicroseconds()
        let reload = try #require(receiver.receive())
        let lines = reload.split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        #expect(lines.first == "RELOADING=1")
        let usec = try #require(lines.last.flatMap { $0.hasPrefix("MONOTONIC_USEC=") ? UInt64($0.dropFirst(15)) : nil })
        #expect(usec >= before && usec <= after)
        // Plausible against the clock systemd compares it with: CLOCK_MONOTONIC of this machine.
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        #expect(usec / 1_000_000 <= UInt64(ts.tv_sec) && usec / 1_000_000 + 5 >= UInt64(ts.tv_sec))

        try n.ready()
        #expect(receiver.receive() == "READY=1")
        try n.watchdog()
        #expect(receiver.receive() == "WATCHDOG=1")
        try n.status("serving 3 hosts\non 1 port")
        #expect(receiver.receive() == "STATUS=serving 3 hosts on 1 port")
        try n.stopping()
        #expect(receiver.receive() == "STOPPING=1")
    }

    @Test func sendsToAnAbstractSocket() throws {
        let name = "tls-gateway-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let receiver = DatagramReceiver(pathBytes: [0] + Array(name.utf8))
        let n = try SystemdNotifier(notifySocket: "@" + name)
        try n.ready()
        #expect(receiver.receive() == "READY=1")
    }

    @Test func withoutNotifySocketEverythingIsANoOp() throws {
        let n = try SystemdNotifier(notifySocket: nil, watchdogUsec: "30000000")
        #expect(!n.isEnabled)
        #expect(n.watchdogIntervalMs == nil)
        try n.ready()
        try n.reloading()
        try n.stopping()
        let empty = try SystemdNotifier(notifySocket: "")
        #expect(!empty.isEnabled)
        let disabled = SystemdNotifier()
        #expect(!disabled.isEnabled && disabled.watchdogIntervalMs == nil)
        try disabled.watchdog()
    }

    @Test func refusesARelativeOrOverlongSocketPath() {
        #expect(throws: SystemError.self) { try SystemdNotifier(notifySocket: "run/notify") }
        #expect(throws: SystemError.self) { try SystemdNotifier(notifySocket: "/" + String(repeating: "x", count: 200)) }
    }

    @Test func aVanishedReceiverIsAnErrorNotACrash() throws {
        let dir = makeTempDirectory("notify")
        defer { removeTree(dir) }
        let n = try SystemdNotifier(notifySocket: dir + "/nobody.sock")
        #expect(throws: SystemError.self) { try n.ready() }
    }

    @Test func watchdogIntervalIsHalfOfWatchdogUsec() throws {
        let me = getpid()
        #expect(SystemdNotifier.watchdogInterval(usec: "30000000", pid: nil) == 15_000)
        #expect(SystemdNotifier.watchdogInterval(usec: "30000000", pid: String(me)) == 15_000)
        #expect(SystemdNotifier.watchdogInterval(usec: "30000000", pid: String(me + 1)) == nil)
        #expect(SystemdNotifier.watchdogInterval(usec: "1000", pid: nil) == 1)
        #expect(SystemdNotifier.watchdogInterval(usec: "0", pid: nil) == nil)
        #expect(SystemdNotifier.watchdogInterval(usec: "thirty", pid: nil) == nil)
        #expect(SystemdNotifier.watchdogInterval(usec: nil, pid: String(me)) == nil)

        let dir = makeTempDirectory("notify")
        defer { removeTree(dir) }
        let path = dir + "/notify.sock"
        _ = DatagramReceiver(pathBytes: Array(path.utf8))
        #expect(try SystemdNotifier(notifySocket: path, watchdogUsec: "10000000").watchdogIntervalMs == 5_000)
        #expect(try SystemdNotifier(notifySocket: path, watchdogUsec: "10000000", watchdogPID: "1").watchdogIntervalMs == nil)
    }

    @Test func reloadingMessageFormat() {
        #expect(SystemdNotifier.reloadingMessage(monotonicUsec: 42) == "RELOADING=1\nMONOTONIC_USEC=42")
    }
}
