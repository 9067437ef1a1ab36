// libFuzzer target: the configuration loader (lexer, parser, directive tables, validation)
// on fuzzed text written to a file in a scratch directory whose `certs` is the repo's dev
// PKI, so real configurations load all the way. Properties: no crash or hang; a rejected
// file has at least one error and every diagnostic has a place (file, line >= 1, column >= 1).

import Glibc

final class Scratch: @unchecked Sendable {
    // @unchecked: libFuzzer calls the target from one thread.
    let path: String
    init() {
        guard let root = getenv("GATEWAY_FUZZ_ROOT").map({ String(cString: $0) }) else {
            fatalError("set GATEWAY_FUZZ_ROOT to the repository (scripts/fuzz does)")
        }
        var template = Array("/tmp/gw-fuzz-config-XXXXXX".utf8CString)
        guard let dir = mkdtemp(&template) else { fatalError("mkdtemp") }
        let d = String(cString: dir)
        _ = symlink("\(root)/certs", "\(d)/certs")
        path = "\(d)/gateway.conf"
    }
}

let scratch = Scratch()

/// Paths that turn a loader test into a test of the machine: pseudo-files (the loader refuses
/// devices and FIFOs, see FileSystem), and globs or `..` that reach every file of the system.
let skipped: [[UInt8]] = ["/dev", "/proc", "/sys", "/*", "/?", "/[", ".."].map { Array($0.utf8) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = UnsafeBufferPointer(start: data, count: size)
    for s in skipped where contains(input, s) { return -1 }
    let fd = open(scratch.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    precondition(fd >= 0, "cannot write \(scratch.path)")
    _ = write(fd, data, size)
    close(fd)
    do {
        let config = try ConfigLoader.load(path: scratch.path)
        for w in config.warnings { checkPlace(w) }
    } catch {
        precondition(!error.diagnostics.isEmpty, "a rejected configuration without a single error")
        for d in error.diagnostics { checkPlace(d) }
    }
    return 0
}

private func checkPlace(_ d: ConfigDiagnostic) {
    precondition(!d.location.file.isEmpty && d.location.line >= 1 && d.location.column >= 1, "diagnostic without a place: \(d)")
    precondition(!d.message.isEmpty, "diagnostic without a message at \(d.location)")
}

private func contains(_ hay: UnsafeBufferPointer<UInt8>, _ needle: [UInt8]) -> Bool {
    guard hay.count >= needle.count else { return false }
    for i in 0...(hay.count - needle.count) where hay[i] == needle[0] {
        if (1..<needle.count).allSatisfy({ hay[i + $0] == needle[$0] }) { return true }
    }
    return false
}
