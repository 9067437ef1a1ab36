// The file-system questions the loader asks: the syscalls are GatewaySystem's (`Files`);
// what is left here is path arithmetic.
import GatewaySystem

typealias FileProblem = GatewaySystem.FileProblem

enum FileSystem {
    static func read(_ path: String) -> Result<[UInt8], FileProblem> { Files.read(path) }
    static func checkReadable(_ path: String) -> FileProblem? { Files.checkReadable(path) }
    static func permissions(_ path: String) -> UInt32? { Files.permissions(path) }
    static func canonical(_ path: String) -> String { Files.canonical(path) }
    static func glob(_ pattern: String) -> [String] { Files.glob(pattern) }

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
}
