// The few file-system questions the loader asks, straight on Glibc so the config
// module needs no Foundation. Every failure comes back as a message fit for a
// diagnostic ("No such file or directory"), never as a crash.

import Glibc

enum FileSystem {
    /// The whole file, or the reason it could not be read.
    static func read(_ path: String) -> Result<[UInt8], FileProblem> {
        // O_NONBLOCK: opening a FIFO must not wait for a writer (notRegularFile then refuses it).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return .failure(FileProblem(errno: errno)) }
        defer { close(fd) }
        if let problem = notRegularFile(fd) { return .failure(problem) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(FileProblem(errno: errno))
            }
            if n == 0 { return .success(bytes) }
            bytes.append(contentsOf: chunk[0..<n])
        }
    }

    /// Whether the file can be opened for reading now (the TLS layer reads it later).
    /// Opening, rather than `access(R_OK)`, gives the same answer the TLS layer will get.
    static func checkReadable(_ path: String) -> FileProblem? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return FileProblem(errno: errno) }
        defer { close(fd) }
        return notRegularFile(fd)
    }

    /// Permission bits (`st_mode & 0o777`), nil if the file cannot be stat'ed.
    static func permissions(_ path: String) -> UInt32? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return UInt32(st.st_mode) & 0o777
    }

    /// Canonical path used to recognise one file reached by two spellings (include cycles).
    static func canonical(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Paths matching a shell pattern, sorted; empty when nothing matches.
    static func glob(_ pattern: String) -> [String] {
        var g = glob_t()
        defer { globfree(&g) }
        guard Glibc.glob(pattern, 0, nil, &g) == 0 else { return [] }
        var paths: [String] = []
        for i in 0..<Int(g.gl_pathc) {
            if let p = g.gl_pathv[i] { paths.append(String(cString: p)) }
        }
        return paths.sorted()
    }

    static func isGlobPattern(_ path: String) -> Bool {
        path.contains { $0 == "*" || $0 == "?" || $0 == "[" }
    }

    /// `path` as written when absolute, else joined to the directory of `file`
    /// (`certs/a.pem` named in `conf/gw.conf` is `conf/certs/a.pem`).
    static func resolve(_ path: String, relativeTo file: String) -> String {
        if path.hasPrefix("/") { return path }
        guard let slash = file.lastIndex(of: "/") else { return path }
        return String(file[...slash]) + path
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

/// Why a file could not be used, as `strerror` words.
struct FileProblem: Error, Equatable {
    var reason: String
    init(errno code: Int32) { reason = String(cString: strerror(code)) }
    init(reason: String) { self.reason = reason }
}
