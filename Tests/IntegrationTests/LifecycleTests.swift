import Foundation
import Testing

/// reload_on_change, systemd notify and watchdog, socket activation (SPEC §7.1).
@Suite(.serialized)
struct LifecycleTests {
    /// "EC" or "RSA": the key type of the certificate a no-SNI handshake gets.
    static func servedKey(_ port: UInt16) throws -> String {
        let r = try run(["openssl", "s_client", "-connect", "127.0.0.1:\(port)", "-servername", "api.example.test"], stdin: Data())
        if r.out.contains("Server public key is 2048 bit") { return "RSA" }
        if r.out.contains("Server public key is 256 bit") { return "EC" }
        return "none: \(r.out.suffix(300))"
    }

    static func audit(_ g: ServerProcess, _ trigger: String) -> [[String: Any]] {
        jsonLines(g.stderr).filter { ["config_loaded", "config_rejected"].contains($0["event"] as? String ?? "") && $0["trigger"] as? String == trigger }
    }

    func copy(_ name: String, to path: String) throws {
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.copyItem(atPath: Repo.cert(name), toPath: path)
        chmod(path, 0o600)
    }

    @Test func certificateRenamedOverIsReloaded() throws {
        let s = try Stack()
        try s.startEcho()
        let crt = "\(s.dir)/api.crt", key = "\(s.dir)/api.key"
        try copy("api.example.test.pem", to: crt)
        try copy("api.example.test.key", to: key)
        try s.startGateway(s.config().replacingOccurrences(of: "\(Repo.certs)/api.example.test.pem \(Repo.certs)/api.example.test.key", with: "\(crt) \(key)"))
        #expect(try Self.servedKey(s.gatewayPort) == "EC")
        // The way certbot and `mv` replace files: write aside, rename over.
        try copy("api.example.test-rsa.pem", to: crt + ".new")
        try copy("api.example.test-rsa.key", to: key + ".new")
        rename(crt + ".new", crt)
        rename(key + ".new", key)
        #expect(eventually(5) { Self.audit(s.gateway!, "file_change").contains { $0["event"] as? String == "config_loaded" } }, "\(s.gateway!.stderr.suffix(600))")
        #expect(Self.audit(s.gateway!, "file_change").count == 1, "two renames within a second: one reload")
        #expect(try Self.servedKey(s.gatewayPort) == "RSA")

        // A broken certificate: rejected, the old one still served.
        try "not a certificate\n".write(toFile: crt + ".new", atomically: false, encoding: .utf8)
        rename(crt + ".new", crt)
        #expect(eventually(5) { Self.audit(s.gateway!, "file_change").contains { $0["event"] as? String == "config_rejected" } })
        #expect(try Self.servedKey(s.gatewayPort) == "RSA")
    }

    /// A Kubernetes Secret volume: files are symlinks through `..data`, which is swapped atomically.
    @Test func kubernetesDataSymlinkSwapIsReloaded() throws {
        let s = try Stack()
        try s.startEcho()
        let vol = "\(s.dir)/secret"
        try FileManager.default.createDirectory(atPath: "\(vol)/..2026_12_01_a", withIntermediateDirectories: true)
        try copy("api.example.test.pem", to: "\(vol)/..2026_12_01_a/tls.crt")
        try copy("api.example.test.key", to: "\(vol)/..2026_12_01_a/tls.key")
        symlink("..2026_12_01_a", "\(vol)/..data")
        symlink("..data/tls.crt", "\(vol)/tls.crt")
        symlink("..data/tls.key", "\(vol)/tls.key")
        try s.startGateway(s.config().replacingOccurrences(of: "\(Repo.certs)/api.example.test.pem \(Repo.certs)/api.example.test.key",
                                                           with: "\(vol)/tls.crt \(vol)/tls.key"))
        #expect(try Self.servedKey(s.gatewayPort) == "EC")
        try FileManager.default.createDirectory(atPath: "\(vol)/..2026_12_01_b", withIntermediateDirectories: true)
        try copy("api.example.test-rsa.pem", to: "\(vol)/..2026_12_01_b/tls.crt")
        try copy("api.example.test-rsa.key", to: "\(vol)/..2026_12_01_b/tls.key")
        symlink("..2026_12_01_b", "\(vol)/..data_tmp")
        rename("\(vol)/..data_tmp", "\(vol)/..data")
        #expect(eventually(5) { Self.audit(s.gateway!, "file_change").contains { $0["event"] as? String == "config_loaded" } }, "\(s.gateway!.stderr.suffix(600))")
        #expect(try Self.servedKey(s.gatewayPort) == "RSA")
    }

    /// The reload race: an edit made right after a reload's `config_loaded` line, to a file in a
    /// directory only the new configuration names, is seen (the watches are re-armed before the
    /// audit line is written) and reloads again.
    @Test func editRightAfterAReloadIsSeen() throws {
        let s = try Stack()
        try s.startEcho()
        let v1 = "\(s.dir)/v1", v2 = "\(s.dir)/v2"
        for d in [v1, v2] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        for d in [v1, v2] {
            try copy("api.example.test.pem", to: "\(d)/api.crt")
            try copy("api.example.test.key", to: "\(d)/api.key")
        }
        let certs = "\(Repo.certs)/api.example.test.pem \(Repo.certs)/api.example.test.key"
        try s.startGateway(s.config().replacingOccurrences(of: certs, with: "\(v1)/api.crt \(v1)/api.key"))
        let loaded = { Self.audit(s.gateway!, "file_change").filter { $0["event"] as? String == "config_loaded" }.count }
        // The first reload (the main file changed) moves the certificate to v2, watched by nobody so far.
        try s.config().replacingOccurrences(of: certs, with: "\(v2)/api.crt \(v2)/api.key").write(toFile: s.configPath, atomically: true, encoding: .utf8)
        #expect(eventually(5) { loaded() == 1 }, "\(s.gateway!.stderr.suffix(600))")
        try copy("api.example.test-rsa.pem", to: "\(v2)/api.crt.new")
        try copy("api.example.test-rsa.key", to: "\(v2)/api.key.new")
        rename("\(v2)/api.crt.new", "\(v2)/api.crt")
        rename("\(v2)/api.key.new", "\(v2)/api.key")
        #expect(eventually(5) { loaded() == 2 }, "a second reload: \(s.gateway!.stderr.suffix(600))")
        #expect(try Self.servedKey(s.gatewayPort) == "RSA")
    }

    @Test func reloadOnChangeOff() throws {
        let s = try Stack()
        try s.startEcho()
        try s.startGateway(s.config(topExtra: "reload_on_change off;"))
        try (s.config(topExtra: "reload_on_change off;") + "\n# touched\n").write(toFile: s.configPath, atomically: true, encoding: .utf8)
        usleep(2_500_000)
        #expect(Self.audit(s.gateway!, "file_change").isEmpty, "\(s.gateway!.stderr)")
        // The main file itself is watched when on: an edit reloads.
        try (s.config() + "\n# on again\n").write(toFile: s.configPath, atomically: true, encoding: .utf8)
        s.gateway!.signal(SIGHUP)
        #expect(eventually { !Self.audit(s.gateway!, "signal").isEmpty })
        try (s.config() + "\n# edited\n").write(toFile: s.configPath, atomically: true, encoding: .utf8)
        #expect(eventually(5) { !Self.audit(s.gateway!, "file_change").isEmpty })
    }

    @Test func systemdNotifyAndWatchdog() throws {
        let s = try Stack()
        try s.startEcho()
        let path = "\(s.dir)/notify.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        #expect(bound == 0)
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var messages: [String] = []
        func receive(until: (String) -> Bool, seconds: Double = 5) -> Bool {
            let end = Date().addingTimeInterval(seconds)
            var buf = [UInt8](repeating: 0, count: 4096)
            while Date() < end {
                let n = recv(fd, &buf, buf.count, 0)
                if n > 0 {
                    let m = String(decoding: buf[0..<n], as: UTF8.self)
                    messages.append(m)
                    if until(m) { return true }
                }
            }
            return false
        }
        try s.config().write(toFile: s.configPath, atomically: true, encoding: .utf8)
        let g = try ServerProcess("/usr/bin/env", ["NOTIFY_SOCKET=\(path)", "WATCHDOG_USEC=400000", try Repo.binary("gateway"), "run", "-c", s.configPath], dir: s.dir)
        s.gateway = g
        #expect(receive { $0 == "READY=1" })
        #expect(portIsOpen(s.gatewayPort), "READY=1 only once the listeners accept")
        #expect(receive { $0 == "WATCHDOG=1" }, "a ping every half WATCHDOG_USEC")
        messages.removeAll()
        g.signal(SIGHUP)
        #expect(receive { $0 == "READY=1" })
        let reloading = messages.first { $0.hasPrefix("RELOADING=1") }
        #expect(reloading != nil, "\(messages)")
        let usec = reloading?.split(separator: "\n").first { $0.hasPrefix("MONOTONIC_USEC=") }.flatMap { UInt64($0.dropFirst(15)) }
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let now = UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
        #expect(usec.map { $0 <= now && now - $0 < 10_000_000 } == true, "MONOTONIC_USEC on CLOCK_MONOTONIC: \(reloading ?? "")")
        #expect(messages.firstIndex { $0.hasPrefix("RELOADING=1") }! < messages.lastIndex(of: "READY=1")!)
        g.signal(SIGTERM)
        #expect(receive { $0 == "STOPPING=1" })
        #expect(g.waitForExit(timeout: 10) == 0)
    }

    /// A socket the test binds (without SO_REUSEPORT, so the gateway could not bind the port
    /// itself) is passed as fd 3 with LISTEN_FDS=1, as systemd does.
    @Test func socketActivation() throws {
        let s = try Stack()
        try s.startEcho()
        try s.config().replacingOccurrences(of: "workers 1;", with: "workers 2;").write(toFile: s.configPath, atomically: true, encoding: .utf8)
        let launcher = """
        import os, socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", \(s.gatewayPort)))
        s.listen(128)
        os.dup2(s.fileno(), 3)
        os.set_inheritable(3, True)
        os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1", LISTEN_FDNAMES="https")
        os.execv(sys.argv[1], [sys.argv[1], "run", "-c", sys.argv[2]])
        """
        let g = try ServerProcess("/usr/bin/env", ["python3", "-c", launcher, try Repo.binary("gateway"), s.configPath], dir: s.dir)
        s.gateway = g
        try g.waitForPort(s.gatewayPort)
        for _ in 0..<6 { #expect(try s.curl("/ok").out == "ok\n", "\(g.stderr.suffix(400))") }
        #expect(!g.stderr.contains("start_failed"))
    }
}
