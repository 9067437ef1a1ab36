import Glibc

/// Watches the files a configuration names through inotify on their *directories*, so that a
/// file renamed over (editors, `mv`, certbot) and a Kubernetes Secret update (`..data` symlink
/// renamed over, the files being symlinks through it) are seen, not only writes in place.
/// Every symlink met while resolving a path is watched too (the link's own directory and name),
/// and so is the file it finally leads to; other names in those directories are ignored.
/// Used by one thread (the main thread polls `drain`); not `Sendable`.
public final class FileWatcher {
    /// The inotify descriptor (non-blocking, close-on-exec): readable when events wait. Poll it,
    /// or register it with an event loop; then call `drain`.
    public let fd: Int32
    private var paths: [String] = []
    /// Watch descriptor -> the names in that directory that matter.
    private var names: [Int32: Set<String>] = [:]
    /// Directories that could not be watched by the last `rewatch` (e.g. removed), for a log line.
    public private(set) var failures: [SystemError] = []
    /// Reused by every `drain` (the main thread drains ten times a second).
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 8)

    static let mask: UInt32 = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM
                                     | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

    public init(paths: [String]) throws(SystemError) {
        guard let f = try retryingSyscall("inotify_init1", {
            inotify_init1(Int32(IN_NONBLOCK) | Int32(IN_CLOEXEC))
        }) else { throw SystemError("inotify_init1", errno: EAGAIN) }
        fd = f
        rewatch(paths: paths)
    }

    deinit { close(fd); buffer.deallocate() }

    /// Replaces the watched set (after a reload: the files can change) and resolves every symlink
    /// chain again. Directories no longer needed are unwatched.
    public func rewatch(paths newPaths: [String]) {
        paths = newPaths
        var next: [Int32: Set<String>] = [:]
        var errors: [SystemError] = []
        var byDirectory: [String: Set<String>] = [:]
        for p in newPaths {
            for (dir, name) in watchPoints(of: p) { byDirectory[dir, default: []].insert(name) }
        }
        for (dir, wanted) in byDirectory.sorted(by: { $0.key < $1.key }) {
            let wd = inotify_add_watch(fd, dir, Self.mask)
            if wd == -1 {
                errors.append(SystemError("inotify_add_watch", errno: errno, context: dir))
                continue
            }
            // Two paths of one directory (through a symlinked directory) share one watch descriptor.
            next[wd, default: []].formUnion(wanted)
        }
        for wd in names.keys where next[wd] == nil { _ = inotify_rm_watch(fd, wd) }
        names = next
        failures = errors
    }

    /// Reads every pending event; true if one concerned a watched name (or a watched directory
    /// itself went away, or the kernel queue overflowed). After a relevant change the symlink
    /// chains are resolved again, so a `..data` swap moves the watch to the new target directory.
    public func drain() -> Bool {
        var relevant = false
        let size = buffer.count
        while true {
            let n = read(fd, buffer.baseAddress, size)
            if n <= 0 { break }   // EAGAIN: drained (EINTR: the next drain picks the rest up)
            var off = 0
            while off + 16 <= n {
                let wd = buffer.loadUnaligned(fromByteOffset: off, as: Int32.self)
                let mask = buffer.loadUnaligned(fromByteOffset: off + 4, as: UInt32.self)
                let len = Int(buffer.loadUnaligned(fromByteOffset: off + 12, as: UInt32.self))
                let nameBytes = UnsafeRawBufferPointer(rebasing: buffer[(off + 16)..<(off + 16 + len)])
                let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
                off += 16 + len
                if mask & UInt32(IN_Q_OVERFLOW) != 0 { relevant = true; continue }
                // Unknown descriptors: events still queued for a directory dropped by `rewatch`
                // (inotify does not reuse them soon, so a stale one never hits a new watch).
                guard let wanted = names[wd] else { continue }
                if name.isEmpty {
                    // The directory itself: deleted, moved away, or its watch removed by the kernel.
                    if mask & UInt32(IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED) != 0 { relevant = true }
                } else if wanted.contains(name) {
                    relevant = true
                }
            }
        }
        if relevant { rewatch(paths: paths) }
        return relevant
    }

    /// (directory, name) pairs to watch for one path: the path as written, every symlink on the
    /// way, and the file it resolves to. Relative paths are taken from the working directory.
    func watchPoints(of path: String) -> [(String, String)] {
        let absolute = path.hasPrefix("/") ? path : currentDirectory() + "/" + path
        var points: [(String, String)] = []
        let (d0, n0) = split(normalized(absolute))
        points.append((d0, n0))
        var pending = components(absolute)
        var current: [String] = []   // resolved so far, no symlinks in it
        var hops = 0
        while !pending.isEmpty {
            let c = pending.removeFirst()
            if c == "." { continue }
            if c == ".." { if !current.isEmpty { current.removeLast() }; continue }
            let candidate = "/" + (current + [c]).joined(separator: "/")
            var st = stat()
            guard lstat(candidate, &st) == 0 else {
                // Missing from here on: watching the parent for its creation is all we can do.
                points.append((dirPath(current), c))
                return points
            }
            if st.st_mode & S_IFMT == S_IFLNK, hops < 40, let target = readLink(candidate) {
                hops += 1
                points.append((dirPath(current), c))
                if target.hasPrefix("/") { current = [] }
                pending = components(target) + pending
            } else {
                current.append(c)
            }
        }
        if !current.isEmpty {
            let name = current.removeLast()
            points.append((dirPath(current), name))
        }
        return points
    }

    private func components(_ p: String) -> [String] {
        p.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
    }

    private func normalized(_ p: String) -> String { "/" + components(p).joined(separator: "/") }

    private func dirPath(_ parts: [String]) -> String { "/" + parts.joined(separator: "/") }

    private func split(_ p: String) -> (String, String) {
        var parts = components(p)
        let name = parts.popLast() ?? ""
        return (dirPath(parts), name)
    }

    private func readLink(_ p: String) -> String? {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(p, &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private func currentDirectory() -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buf, buf.count) != nil else { return "/" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// "Fire `delayMs` after the last change": every change pushes the deadline; `fire` says once
/// when it has passed. Pure, driven by the caller's monotonic clock.
public struct Debouncer: Sendable {
    public let delayMs: UInt64
    /// Monotonic ms at which to fire; nil when nothing is pending.
    public private(set) var deadline: UInt64?

    public init(delayMs: UInt64 = 1000) { self.delayMs = delayMs }

    public mutating func changed(now: UInt64) { deadline = now + delayMs }

    /// True once, at the first call at or after the deadline.
    public mutating func fire(now: UInt64) -> Bool {
        guard let d = deadline, now >= d else { return false }
        deadline = nil
        return true
    }

    /// How long a caller may sleep before `fire` could say yes (nil: nothing pending).
    public func remainingMs(now: UInt64) -> UInt64? {
        deadline.map { $0 > now ? $0 - now : 0 }
    }
}
