import Glibc
@testable import GatewayConfig

/// A temporary directory holding a configuration and dummy certificate/key files
/// (the loader checks that they can be read and how keys are protected, not their contents).
final class Fixture {
    let dir: String
    private var created: [String] = []
    private var directories: [String] = []

    init() {
        var template = Array("/tmp/gwconfig-test.XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        dir = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        for (name, mode) in [("certs/api.pem", 0o644), ("certs/api.key", 0o600), ("certs/ca.pem", 0o644),
                             ("certs/clients-ca.pem", 0o644), ("certs/client.pem", 0o644),
                             ("certs/client.key", 0o600), ("certs/tickets.key", 0o600), ("token", 0o600)] {
            write(name, "dummy\n", mode: mode_t(mode))
        }
    }

    deinit {
        for path in created.reversed() { unlink(path) }
        for path in directories.reversed() { rmdir(path) }
        rmdir(dir)
    }

    var main: String { dir + "/gateway.conf" }

    func path(_ name: String) -> String { dir + "/" + name }

    /// Writes `name` (relative to the fixture directory, creating directories) with `mode`.
    @discardableResult
    func write(_ name: String, _ text: String, mode: mode_t = 0o644) -> String {
        var sub = dir
        for part in name.split(separator: "/").dropLast() {
            sub += "/" + part
            if mkdir(sub, 0o755) == 0 { directories.append(sub) }
        }
        let full = path(name)
        let fd = open(full, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(fd >= 0, "cannot create \(full)")
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        chmod(full, mode)
        if !created.contains(full) { created.append(full) }
        return full
    }

    func config(_ text: String) { write("gateway.conf", text) }

    func load() throws(ConfigLoadError) -> GatewayConfiguration { try ConfigLoader.load(path: main) }

    /// The printed diagnostics of a load expected to fail (empty if it loaded).
    func errors() -> [String] {
        do {
            _ = try load()
            return []
        } catch {
            return error.diagnostics.map(\.description)
        }
    }
}

/// A complete, valid configuration for tests that change one thing.
let minimalConfig = """
listen 127.0.0.1:8443;
host api.example.test {
    certificate certs/api.pem certs/api.key;
    route / backend echo;
}
backend echo {
    server https://127.0.0.1:9443;
}

"""
