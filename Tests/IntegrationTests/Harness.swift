import Foundation
import Testing

/// Paths and processes for tests that run the real binaries over real sockets.
enum Repo {
    static let root: URL = {
        var u = URL(fileURLWithPath: #filePath)
        while u.path != "/" {
            u.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: u.appendingPathComponent("Package.swift").path) { return u }
        }
        fatalError("no Package.swift above \(#filePath)")
    }()
    static let certs = root.appendingPathComponent("certs").path
    static func cert(_ name: String) -> String { "\(certs)/\(name)" }

    static func binary(_ name: String) throws -> String {
        // scripts/test --sanitize builds into its own scratch path and names the directory here.
        if let dir = ProcessInfo.processInfo.environment["GATEWAY_BIN_DIR"] {
            let p = "\(dir)/\(name)"
            guard FileManager.default.isExecutableFile(atPath: p) else { throw HarnessError("\(p) is not built") }
            return p
        }
        for config in ["debug", "release"] {
            let p = root.appendingPathComponent(".build/\(config)/\(name)").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        throw HarnessError("\(name) is not built: run scripts/test (it builds the binaries, then runs swift test)")
    }

    static func requireCerts() throws {
        guard FileManager.default.fileExists(atPath: cert("echo.internal.test.pem")) else {
            throw HarnessError("certs/ is empty: run scripts/gen-certs (scripts/test does)")
        }
    }
}

/// The sanitizer the binaries under test were built with: scripts/lib/sanitize.sh exports
/// GATEWAY_SANITIZER (`address` or `thread`); nil for a plain build. Only memory bounds use it:
/// under ASan a process that leaks nothing still holds freed blocks in the quarantine and pays
/// for shadow memory, redzones and the runtime's own tables. Every other check (descriptor
/// counts included) is the same in every build.
enum Sanitizer {
    static let kind: String? = ProcessInfo.processInfo.environment["GATEWAY_SANITIZER"].flatMap { $0.isEmpty ? nil : $0 }
    static var address: Bool { kind == "address" }

    /// ASan's quarantine (`quarantine_size_mb` in ASAN_OPTIONS, as sanitize.sh sets it; ASan's
    /// default of 256 MB otherwise), with its shadow (one byte per eight).
    static var quarantineBytes: Int {
        let options = ProcessInfo.processInfo.environment["ASAN_OPTIONS"] ?? ""
        let mb = options.split(separator: ":").first { $0.hasPrefix("quarantine_size_mb=") }.flatMap { Int($0.dropFirst(19)) } ?? 256
        return (mb << 20) + (mb << 20) / 8
    }

    /// How much more a process's RSS may grow over a run that frees what it allocates (1,000
    /// reloads, say): under ASan, freed memory fills the quarantine before ASan reuses it; under
    /// TSan, its shadow and metadata of the memory the run touched (+3.6 MB measured over the
    /// 1,000 reloads on 2026-12-02, no race reported), rounded up. 0 in a plain build.
    static var rssGrowthSlack: Int {
        switch kind {
        case "address": quarantineBytes
        case "thread": tsanGrowthBytes
        default: 0
        }
    }
    static let tsanGrowthBytes = 6 << 20

    /// How much higher a process's peak RSS may be: the quarantine, and ASan's runtime (the
    /// instrumented code, shadow of live memory, its allocator and stack-trace tables). 0 without ASan.
    static var rssPeakSlack: Int { address ? quarantineBytes + asanRuntimeBytes : 0 }
    /// The gateway's RSS at start was 48 MB under ASan against 22 MB in a plain build (measured
    /// 2026-12-02 in the slow-reader test, whose peak was then 81 MB and 23 MB): 26 MB, rounded up.
    static let asanRuntimeBytes = 32 << 20

    /// The environment of a process a test starts: under a sanitizer, with the options meant for
    /// the product (GATEWAY_SANITIZER_OPTIONS: sanitize.sh gives the test runner itself a copy
    /// whose reports cannot fail the run); nil, inherit everything, otherwise.
    static let childEnvironment: [String: String]? = {
        var env = ProcessInfo.processInfo.environment
        guard let kind, let options = env["GATEWAY_SANITIZER_OPTIONS"] else { return nil }
        env[kind == "thread" ? "TSAN_OPTIONS" : "ASAN_OPTIONS"] = options
        return env
    }()
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Tests write to sockets the gateway may already have closed (refused handshakes, drained
/// errors): that must be an error return, not SIGPIPE killing the whole test process.
enum ProcessSetup {
    static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN); return () }()
}

/// A free TCP port on 127.0.0.1 (bound to 0, read back, released).
/// A port for a test server. Not one the kernel picks for `bind(0)`: that comes from the
/// ephemeral range, where any outgoing connection (curl, the gateway's backend connects) can
/// take it before the server binds it. Ports below that range, handed out once per process
/// (tests run in parallel threads) from an offset that differs between processes, and checked
/// to bind.
func freePort() -> UInt16 {
    ProcessSetup.ignoreSIGPIPE
    while true {
        let candidate = PortCounter.next()
        let (fd, ok) = loopbackSocket(candidate, bind)
        close(fd)
        if ok { return candidate }
    }
}

/// A TCP socket and whether `call` (bind or connect) to 127.0.0.1:port succeeded on it.
private func loopbackSocket(_ port: UInt16, _ call: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32) -> (Int32, Bool) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_addr.s_addr = inet_addr("127.0.0.1")
    a.sin_port = port.bigEndian
    let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        call(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 } }
    return (fd, ok)
}

enum PortCounter {
    static let range: Range<Int> = 20_000..<32_000
    // nonisolated(unsafe): only read and written under `lock`.
    nonisolated(unsafe) private static var offset = Int(getpid()) * 613 % range.count
    private static let lock = NSLock()
    static func next() -> UInt16 {
        lock.lock(); defer { lock.unlock() }
        offset = (offset + 1) % range.count
        return UInt16(range.lowerBound + offset)
    }
}

/// Waits up to `seconds` for `condition` (log lines are written just after a response is sent).
func eventually(_ seconds: Double = 2, _ condition: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}

/// A blocking TCP socket connected to 127.0.0.1:port, or nil (the caller closes it).
func connectLoopback(_ port: UInt16) -> Int32? {
    ProcessSetup.ignoreSIGPIPE
    let (fd, ok) = loopbackSocket(port, connect)
    if !ok { close(fd); return nil }
    return fd
}

func portIsOpen(_ port: UInt16) -> Bool {
    guard let fd = connectLoopback(port) else { return false }
    close(fd)
    return true
}

/// A process started by a test and stopped by it (SIGTERM, then SIGKILL), with its output kept in files.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    let stdoutPath: String
    let stderrPath: String

    init(_ executable: String, _ args: [String], dir: String) throws {
        stdoutPath = "\(dir)/\(URL(fileURLWithPath: executable).lastPathComponent)-\(UUID().uuidString.prefix(8)).out"
        stderrPath = stdoutPath.replacingOccurrences(of: ".out", with: ".err")
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = args
        process.environment = Sanitizer.childEnvironment
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        try process.run()
    }

    func waitForPort(_ port: UInt16, timeout: Double = 15) throws {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if portIsOpen(port) { return }
            if !process.isRunning { throw HarnessError("process exited (\(process.terminationStatus)): \(stderr)") }
            usleep(20_000)
        }
        throw HarnessError("port \(port) not open after \(timeout)s: \(stderr)")
    }

    /// Waits until the process has written `text` to stderr. The gateway's `"event":"started"`
    /// line comes once every listen block is bound, where `waitForPort` sees one port only.
    func waitForStderr(_ text: String, timeout: Double = 15) throws {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if stderr.contains(text) { return }
            if !process.isRunning { throw HarnessError("process exited (\(process.terminationStatus)): \(stderr)") }
            usleep(20_000)
        }
        throw HarnessError("\(text) not on stderr after \(timeout)s: \(stderr)")
    }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits for exit; nil on timeout.
    func waitForExit(timeout: Double) -> Int32? {
        let end = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < end { usleep(20_000) }
        return process.isRunning ? nil : process.terminationStatus
    }

    func stop() {
        guard process.isRunning else { return }
        signal(SIGTERM)
        if waitForExit(timeout: 5) == nil { signal(SIGKILL); _ = waitForExit(timeout: 5) }
    }

    deinit { stop() }
}

/// Runs a command to completion and returns its status and output.
@discardableResult
func run(_ args: [String], stdin: Data? = nil, timeout: Double = 60) throws -> (status: Int32, out: String, err: String, outData: Data) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    p.environment = Sanitizer.childEnvironment
    let dir = NSTemporaryDirectory()
    let id = UUID().uuidString
    let outPath = "\(dir)/run-\(id).out", errPath = "\(dir)/run-\(id).err"
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: outPath); try? FileManager.default.removeItem(atPath: errPath) }
    p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
    p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    let inPipe = Pipe()
    p.standardInput = stdin == nil ? FileHandle.nullDevice : inPipe
    try p.run()
    if let stdin {
        // A child that exits before reading all of it (s_client after a refused handshake) makes
        // the write fail with EPIPE: its exit status and output are the result, not the write.
        try? inPipe.fileHandleForWriting.write(contentsOf: stdin)
        try? inPipe.fileHandleForWriting.close()
    }
    let end = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < end { usleep(10_000) }
    if p.isRunning { p.terminate(); throw HarnessError("\(args.joined(separator: " ")) timed out") }
    let outData = (try? Data(contentsOf: URL(fileURLWithPath: outPath))) ?? Data()
    let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
    return (p.terminationStatus, String(decoding: outData, as: UTF8.self), err, outData)
}

func makeTempDir() throws -> String {
    let d = NSTemporaryDirectory() + "gw-test-" + UUID().uuidString.prefix(8)
    try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

/// An echo origin plus a gateway in front of it, on free ports, with a config written for the test.
final class Stack: @unchecked Sendable {
    let dir: String
    let gatewayPort: UInt16
    let echoPort: UInt16
    var echo: ServerProcess?
    var gateway: ServerProcess?
    var configPath: String { "\(dir)/gateway.conf" }

    init() throws {
        try Repo.requireCerts()
        dir = try makeTempDir()
        gatewayPort = freePort()
        echoPort = freePort()
    }

    /// Starts gateway-echo with the echo certificate (or another one, e.g. the untrusted one).
    func startEcho(cert: String = "echo.internal.test", clientCA: String? = "backend-ca.pem", extra: [String] = []) throws {
        var args = ["--listen", "127.0.0.1:\(echoPort)", "--cert", Repo.cert("\(cert).pem"), "--key", Repo.cert("\(cert).key"), "--name", "echo"]
        if let clientCA { args += ["--client-ca", Repo.cert(clientCA)] }
        let e = try ServerProcess(try Repo.binary("gateway-echo"), args + extra, dir: dir)
        try e.waitForPort(echoPort)
        echo = e
    }

    /// The default test configuration: api.example.test (mTLS optional), *.example.test, backend `echo`.
    func config(hostExtra: String = "", backendExtra: String = "", topExtra: String = "", routes: String? = nil,
                backendTLS: String? = nil, server: String? = nil) -> String {
        let c = Repo.certs
        return """
        workers 1;
        error_log stderr info;
        access_log stdout json;
        \(topExtra)
        limits { header_timeout 2s; idle_timeout 10s; max_body_size 64m; }
        listen 127.0.0.1:\(gatewayPort) { default_host api.example.test; unknown_sni reject; }
        host api.example.test {
            certificate \(c)/api.example.test.pem \(c)/api.example.test.key;
            client_auth optional;
            client_ca \(c)/clients-ca.pem;
            \(routes ?? "route /strip backend echo strip_prefix;\n    route / backend echo;")
            \(hostExtra)
        }
        host *.example.test {
            certificate \(c)/wildcard.example.test.pem \(c)/wildcard.example.test.key;
            route / backend echo;
        }
        backend echo {
            server \(server ?? "https://127.0.0.1:\(echoPort)");
            connect_timeout 2s;
            response_timeout 3s;
            \(backendExtra)
            tls {
                \(backendTLS ?? "ca \(c)/backend-ca.pem;\n        server_name echo.internal.test;\n        certificate \(c)/gateway-client.pem \(c)/gateway-client.key;")
            }
        }
        """
    }

    func startGateway(_ text: String? = nil) throws {
        try (text ?? config()).write(toFile: configPath, atomically: true, encoding: .utf8)
        let g = try ServerProcess(try Repo.binary("gateway"), ["run", "-c", configPath], dir: dir)
        try g.waitForPort(gatewayPort)
        gateway = g
    }

    /// curl through the gateway with the dev CA, resolving NAME to 127.0.0.1.
    func curl(_ path: String, host: String = "api.example.test", _ extra: [String] = []) throws -> (status: Int32, out: String, err: String, outData: Data) {
        try run(["curl", "-sS", "--cacert", Repo.cert("ca.pem"), "--resolve", "\(host):\(gatewayPort):127.0.0.1",
                 "--max-time", "30"] + extra + ["https://\(host):\(gatewayPort)\(path)"])
    }

    func stop() {
        gateway?.stop()
        echo?.stop()
    }

    deinit { stop() }
}

/// The echo origin's JSON reply.
struct EchoReply: Decodable {
    let method: String
    let path: String
    let headers: [String: String]
    let body_length: Int
    let body_sha256: String
}

func decodeEcho(_ s: String) throws -> EchoReply {
    do { return try JSONDecoder().decode(EchoReply.self, from: Data(s.utf8)) } catch {
        throw HarnessError("not an echo reply: \(s.prefix(500))")
    }
}

func sha256Hex(_ data: Data) throws -> String {
    let r = try run(["sha256sum"], stdin: data)
    return String(r.out.prefix(64))
}
