import Glibc

/// Why a file could not be used, as `strerror` words ("No such file or directory").
public struct FileProblem: Error, Equatable, Sendable {
    public var reason: String
    public init(errno code: Int32) { reason = Descriptor.describe(code) }
    public init(reason: String) { self.reason = reason }
}

/// The few file-system questions the configuration loader asks, off the event loops. Every
/// failure comes back as a problem fit for a diagnostic, never as a crash.
public enum Files {
    /// The whole file, or the reason it could not be read.
    public static func read(_ path: String) -> Result<[UInt8], FileProblem> {
        // O_NONBLOCK: opening a FIFO must not wait for a writer (notRegularFile then refuses it).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return .failure(FileProblem(errno: errno)) }
        defer { Descriptor.close(fd) }
        if let problem = notRegularFile(fd) { return .failure(problem) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let r = chunk.withUnsafeMutableBytes { Descriptor.read(fd, into: $0) }
            switch r {
            case .done(let n): bytes.append(contentsOf: chunk[0..<n])
            case .closed: return .success(bytes)
            case .wouldBlock: return .failure(FileProblem(errno: EAGAIN))
            case .failed(let e): return .failure(FileProblem(errno: e))
            }
        }
    }

    /// Whether the file can be opened for reading now (the TLS layer reads it later).
    /// Opening, rather than `access(R_OK)`, gives the same answer the TLS layer will get.
    public static func checkReadable(_ path: String) -> FileProblem? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return FileProblem(errno: errno) }
        defer { Descriptor.close(fd) }
        return notRegularFile(fd)
    }

    /// Permission bits (`st_mode & 0o777`), nil if the file cannot be stat'ed.
    public static func permissions(_ path: String) -> UInt32? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return UInt32(st.st_mode) & 0o777
    }

    /// Canonical path used to recognise one file reached by two spellings (include cycles).
    public static func canonical(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Paths matching a shell pattern, sorted; empty when nothing matches.
    public static func glob(_ pattern: String) -> [String] {
        var g = glob_t()
        defer { globfree(&g) }
        guard Glibc.glob(pattern, 0, nil, &g) == 0 else { return [] }
        var paths: [String] = []
        for i in 0..<Int(g.gl_pathc) {
            if let p = g.gl_pathv[i] { paths.append(String(cString: p)) }
        }
        return paths.sorted()
    }

    /// The first line of a small secret file (at most 4 KiB), without its line end and trailing
    /// blanks; nil if unreadable.
    public static func firstLine(_ path: String) -> [UInt8]? {
        guard case .success(let bytes) = read(path) else { return nil }
        var line = Array(bytes.prefix(4096).prefix { $0 != 0x0A })
        while line.last == 0x0D || line.last == 0x20 || line.last == 0x09 { line.removeLast() }
        return line
    }

    private static func notRegularFile(_ fd: Int32) -> FileProblem? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return FileProblem(errno: errno) }
        if (st.st_mode & S_IFMT) == S_IFDIR { return FileProblem(errno: EISDIR) }
        // A device or FIFO never ends (`include /dev/zero;` hung the loader and grew without bound).
        if (st.st_mode & S_IFMT) != S_IFREG { return FileProblem(reason: "not a regular file") }
        return nil
    }
}
