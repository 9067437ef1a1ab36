import Glibc
import Testing
import GatewaySystem

/// Socket activation with real listening sockets moved to high descriptors, as systemd would
/// place them at 3, 4, ... (the tests pass their first descriptor explicitly).
@Suite(.serialized) struct SocketActivationTests {
    /// Descriptors far above any the other tests of this process open (the integration tests
    /// hold hundreds while they run): dup2 onto a low number could close another test's socket.
    static let high: Int32 = {
        var r = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &r)
        return Int32(min(r.rlim_cur, 16_384)) - 100
    }()

    /// Moves `fd` to `target` without close-on-exec and blocking, as an exec'd child would find it.
    func place(_ fd: Int32, at target: Int32) -> Int32 {
        precondition(dup2(fd, target) == target)
        close(fd)
        _ = fcntl(target, F_SETFL, fcntl(target, F_GETFL) & ~O_NONBLOCK)
        return target
    }

    @Test func adoptsListeningSocketsWithNamesAndAddresses() throws {
        let base = Self.high
        let a = place(try makeListener("127.0.0.1"), at: base)
        let b = place(try makeListener("0.0.0.0"), at: base + 1)
        defer { close(a); close(b) }
        let act = try SocketActivation.parse(listenPID: String(getpid()), listenFDs: "2",
                                             listenFDNames: "https:other", firstFD: base)
        #expect(act.sockets.count == 2)
        let first = act.sockets[0], second = act.sockets[1]
        #expect(first.fd == base && first.name == "https")
        #expect(second.fd == base + 1 && second.name == "other")
        #expect(first.address.ipString == "127.0.0.1" && first.address.port != 0)
        #expect(second.address.ipString == "0.0.0.0")
        for s in act.sockets {
            #expect(fcntl(s.fd, F_GETFL) & O_NONBLOCK != 0)
            #expect(fcntl(s.fd, F_GETFD) & FD_CLOEXEC != 0)
        }

        // Lookup as a `listen` block binds: exact address and port, 0.0.0.0 only for 0.0.0.0.
        #expect(act.socket(ip: "127.0.0.1", port: first.address.port)?.fd == base)
        #expect(act.socket(ip: "0.0.0.0", port: second.address.port)?.fd == base + 1)
        #expect(act.socket(ip: "127.0.0.1", port: second.address.port) == nil)
        #expect(act.socket(ip: "0.0.0.0", port: first.address.port) == nil)
        #expect(act.socket(ip: "::", port: second.address.port) == nil)
        #expect(act.socket(ip: "127.0.0.1", port: first.address.port &+ 1) == nil)
        #expect(act.socket(named: "other")?.fd == base + 1)
        let used = [SocketAddress(ip: "127.0.0.1", port: first.address.port)!]
        #expect(act.unmatched(by: used).map(\.fd) == [base + 1])
    }

    @Test func namesDefaultToUnknownAndMustMatchTheCount() throws {
        let base = Self.high + 10
        let a = place(try makeListener("127.0.0.1"), at: base)
        defer { close(a) }
        let act = try SocketActivation.parse(listenPID: String(getpid()), listenFDs: "1", listenFDNames: nil, firstFD: base)
        #expect(act.sockets.map(\.name) == ["unknown"])
        #expect(throws: SystemError.self) {
            try SocketActivation.parse(listenPID: String(getpid()), listenFDs: "1", listenFDNames: "a:b", firstFD: base)
        }
    }

    @Test func anotherProcessesSocketsAreIgnored() throws {
        let act = try SocketActivation.parse(listenPID: String(getpid() + 1), listenFDs: "1", listenFDNames: "https", firstFD: 320)
        #expect(act.sockets.isEmpty)
        let none = try SocketActivation.parse(listenPID: nil, listenFDs: "1", listenFDNames: nil, firstFD: 320)
        #expect(none.sockets.isEmpty)
    }

    @Test func badValuesAndBadDescriptorsThrow() throws {
        let me = String(getpid())
        #expect(throws: SystemError.self) { try SocketActivation.parse(listenPID: "x", listenFDs: "1", listenFDNames: nil) }
        #expect(throws: SystemError.self) { try SocketActivation.parse(listenPID: me, listenFDs: "-1", listenFDNames: nil) }
        #expect(throws: SystemError.self) { try SocketActivation.parse(listenPID: me, listenFDs: nil, listenFDNames: nil) }
        // Not open at all: EBADF is reported, not treated as a bug of the loop.
        #expect(throws: SystemError.self) { try SocketActivation.parse(listenPID: me, listenFDs: "1", listenFDNames: nil, firstFD: 330) }
        // A stream socket that does not listen, and a datagram socket.
        let s = place(socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0), at: 331)
        let u = place(socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0), at: 332)
        defer { close(s); close(u) }
        #expect(throws: SystemError.self) { try SocketActivation.parse(listenPID: me, listenFDs: "1", listenFDNames: nil, firstFD: 331) }
        #expect(throws: SystemError.self) { try SocketActivation.parse(listenPID: me, listenFDs: "1", listenFDNames: nil, firstFD: 332) }
    }

    @Test func fromEnvironmentUnsetsTheVariables() throws {
        setenv("LISTEN_PID", String(getpid() + 1), 1)
        setenv("LISTEN_FDS", "1", 1)
        setenv("LISTEN_FDNAMES", "https", 1)
        let act = try SocketActivation.fromEnvironment()
        #expect(act.sockets.isEmpty)
        #expect(getenv("LISTEN_PID") == nil && getenv("LISTEN_FDS") == nil && getenv("LISTEN_FDNAMES") == nil)
    }

    final class Counter: EventHandler {
        var events = 0
        override func handleEvent(readable: Bool, writable: Bool) { events += 1 }
    }

    @Test func workerCopiesShareTheSocketAndRegisterExclusively() throws {
        let base = Self.high + 40
        let a = place(try makeListener("127.0.0.1"), at: base)
        defer { close(a) }
        let act = try SocketActivation.parse(listenPID: String(getpid()), listenFDs: "1", listenFDNames: "https", firstFD: base)
        let inherited = try #require(act.sockets.first)
        let copies = try inherited.workerDescriptors(count: 3)
        #expect(Set(copies).count == 3 && !copies.contains(base))
        for c in copies { #expect(fcntl(c, F_GETFD) & FD_CLOEXEC != 0) }

        // Every worker's epoll instance may hold its own copy with EPOLLEXCLUSIVE.
        let loops = try (0..<3).map { _ in try EventLoop() }
        for (loop, fd) in zip(loops, copies) { try loop.register(fd: fd, handler: Counter(), interest: [.read, .exclusive]) }

        // One copy closed (a worker gone): the others still accept on the same socket.
        loops[0].closeAndDeregister(fd: copies[0])
        let client = try Socket.connect(to: inherited.address)
        defer { close(client) }
        var p = pollfd(fd: copies[1], events: Int16(POLLIN), revents: 0)
        #expect(poll(&p, 1, 1000) == 1)
        let accepted = try Socket.accept(copies[2])
        #expect(accepted != nil)
        if let accepted { close(accepted.fd) }
        loops[1].closeAndDeregister(fd: copies[1])
        loops[2].closeAndDeregister(fd: copies[2])
    }
}
