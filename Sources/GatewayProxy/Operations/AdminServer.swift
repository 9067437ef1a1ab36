import Glibc
import GatewayConfig
import GatewayHTTP
import GatewaySystem

/// The admin endpoint (SPEC §7.1): plain HTTP/1.1 on its own thread and event loop, so a slow
/// or hostile admin client only ever occupies this thread, never a worker's loop. One request
/// per connection; each connection has 5 s and 16 KiB to send its head.
final class AdminServer: EventHandler, @unchecked Sendable {
    // @unchecked: every field is touched on the admin loop's thread only (start hands over
    // through `loop.execute`); the status and the workers are reached through their own locks.
    let loop: EventLoop
    let routes: AdminRoutes
    private var listenFD: Int32 = -1
    private var address: AdminAddress?
    private var connections = 0
    private var thread: pthread_t?
    static let maxConnections = 64

    init(routes: AdminRoutes) throws(SystemError) {
        loop = try EventLoop()
        self.routes = routes
    }

    /// Binds the address (on the calling thread, so a bad address fails the start) and runs the loop.
    func start(_ address: AdminAddress) throws(SystemError) {
        try bind(address)
        let loop = self.loop
        thread = try startThread { loop.run() }
    }

    /// After a reload: a changed `admin` address is bound anew (a failure keeps the old one).
    func update(_ address: AdminAddress?, log: ErrorLog) {
        loop.execute { [self] in
            guard address != self.address else { return }
            if listenFD >= 0 { loop.closeAndDeregister(fd: listenFD, shared: true); listenFD = -1 }
            self.address = nil
            guard let address else { return }
            do { try bind(address) } catch {
                log.log(.error, "admin_bind_failed", "\(error)")
            }
        }
    }

    func stop() {
        loop.execute { [self] in
            if listenFD >= 0 { loop.closeAndDeregister(fd: listenFD, shared: true); listenFD = -1 }
            loop.stop()
        }
        if let thread { pthread_join(thread, nil) }
    }

    private func bind(_ address: AdminAddress) throws(SystemError) {
        let fd: Int32
        switch address {
        case .tcp(let ip, let port):
            guard let a = SocketAddress(ip: ip, port: port) else { throw SystemError("listen", errno: EINVAL, context: "admin \(ip):\(port)") }
            fd = try Socket.listen(on: a, reusePort: false, backlog: 64)
        case .unix(let path):
            fd = try Socket.listen(unixPath: path, backlog: 64)
        }
        try loop.register(fd: fd, handler: self, interest: .read)
        listenFD = fd
        self.address = address
    }

    override func handleEvent(readable: Bool, writable: Bool) {
        for _ in 0..<16 {
            guard let (fd, _) = (try? Socket.accept(listenFD)) ?? nil else { return }
            guard connections < Self.maxConnections else { Descriptor.close(fd); continue }
            connections += 1
            let c = AdminConnection(fd: fd, server: self)
            do { try loop.register(fd: fd, handler: c, interest: .read) } catch { Descriptor.close(fd); connections -= 1; continue }
            c.deadline = loop.now + 5_000
            loop.schedule(c)
        }
    }

    func closed(_ c: AdminConnection) {
        connections -= 1
        loop.closeAndDeregister(fd: c.fd)
    }
}

/// One admin client: read a head, answer, close.
final class AdminConnection: EventHandler, TimerTarget {
    let fd: Int32
    unowned let server: AdminServer
    private var input = ByteBuffer()
    private var output: [UInt8] = []
    private var written = 0
    private var parser = HTTPRequestParser(limits: HTTPHeadLimits(maxURISize: 4096, maxHeaderSize: 16 * 1024, maxHeaders: 64))
    private var done = false
    var deadline: UInt64 = 0
    var timerSlot = 0

    init(fd: Int32, server: AdminServer) { self.fd = fd; self.server = server }

    override func handleEvent(readable: Bool, writable: Bool) {
        if output.isEmpty { readRequest() }
        if !output.isEmpty { flush() }
    }

    func deadlineExpired(now: UInt64) { finish() }

    private func readRequest() {
        while !done {
            switch Descriptor.read(fd, into: input.writableSpace(minimum: 4096)) {
            case .done(let n): input.didWrite(n)
            case .wouldBlock: return
            case .closed, .failed: finish(); return
            }
            do {
                guard let head = try parser.parse(input.readable) else { continue }
                output = server.routes.respond(to: head, input.readable)
            } catch {
                output = AdminRoutes.page(status: error.status, body: "\(error.reason)\n")
            }
            return
        }
    }

    private func flush() {
        while written < output.count {
            let r = output.withUnsafeBytes { Descriptor.write(fd, UnsafeRawBufferPointer(rebasing: $0[written...])) }
            guard case .done(let n) = r else {
                if r == .wouldBlock { server.loop.setInterest(fd: fd, .write); return }
                break
            }
            written += n
        }
        finish()
    }

    private func finish() {
        guard !done else { return }
        done = true
        server.loop.cancel(self)
        server.closed(self)
    }
}
