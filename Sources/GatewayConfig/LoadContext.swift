// What one load accumulates while the rule tables run: the diagnostics, the
// private keys whose permissions are judged once the whole file is read, and
// typed readers for arguments that report a bad value in the same words everywhere.

final class LoadContext {
    private(set) var errors: [ConfigDiagnostic] = []
    private(set) var warnings: [ConfigDiagnostic] = []
    /// Keys are judged at the end: `allow_insecure_key_permissions` may come after the hosts.
    private(set) var privateKeys: [(path: String, location: SourceLocation)] = []

    func error(_ location: SourceLocation, _ message: String) {
        errors.append(ConfigDiagnostic(location, message))
    }

    func warning(_ location: SourceLocation, _ message: String) {
        warnings.append(.warning(location, message))
    }

    func add(_ diagnostics: [ConfigDiagnostic]) { errors += diagnostics }

    // MARK: - Typed arguments (nil after reporting a bad value)

    func durationMs(_ d: Directive, _ i: Int = 0) -> Int? {
        value(d, i, Values.durationMs, expected: "a duration such as 250ms, 5s, 2m or 1h")
    }

    func size(_ d: Directive, _ i: Int = 0) -> Int? {
        value(d, i, Values.size, expected: "a size such as 512, 16k, 1m or 1g")
    }

    func integer(_ d: Directive, _ i: Int = 0, in range: ClosedRange<Int>) -> Int? {
        let expected = range.upperBound == Int.max ? "an integer >= \(range.lowerBound)"
                                                   : "an integer from \(range.lowerBound) to \(range.upperBound)"
        return value(d, i, { Values.integer($0, in: range) }, expected: expected)
    }

    func flag(_ d: Directive, _ i: Int = 0) -> Bool? {
        value(d, i, Values.flag, expected: "on or off")
    }

    func tlsVersion(_ d: Directive, _ i: Int = 0) -> TLSVersion? {
        value(d, i, Values.tlsVersion, expected: "TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3")
    }

    /// One of `choices` (written as in the file), mapped through `make`.
    func choice<T>(_ d: Directive, _ i: Int = 0, _ choices: [String], _ make: (String) -> T?) -> T? {
        value(d, i, { choices.contains($0) ? make($0) : nil }, expected: Self.list(choices))
    }

    func value<T>(_ d: Directive, _ i: Int, _ parse: (String) -> T?, expected: String) -> T? {
        let arg = d.args[i]
        if let v = parse(arg.text) { return v }
        badValue(d, arg, expected: expected)
        return nil
    }

    func badValue(_ d: Directive, _ arg: Argument, expected: String) {
        error(arg.location, "invalid value \"\(arg.text)\" for \"\(d.name)\"; expected \(expected)")
    }

    /// The argument at `i` as a path relative to the file naming it.
    func path(_ d: Directive, _ i: Int = 0) -> String {
        FileSystem.resolve(d.args[i].text, relativeTo: d.args[i].location.file)
    }

    /// The path, after checking the file can be read now; `what` names it in the error
    /// ("certificate", "client CA"...). Still returns the path so checks go on.
    func readablePath(_ d: Directive, _ i: Int = 0, what: String) -> String {
        let path = path(d, i)
        if let problem = FileSystem.checkReadable(path) {
            error(d.args[i].location, "cannot read \(what) file \"\(path)\": \(problem.reason)")
        }
        return path
    }

    /// `certificate CERT KEY`: both readable; the key's permissions are judged later.
    func certificateFiles(_ d: Directive, at first: Int = 0) -> CertificateFiles {
        let cert = readablePath(d, first, what: "certificate")
        let key = readablePath(d, first + 1, what: "private key")
        privateKeys.append((key, d.args[first + 1].location))
        return CertificateFiles(certificate: cert, key: key, location: d.location)
    }

    /// `a, b or c`, as the user would type them.
    static func list(_ words: [String]) -> String {
        guard let last = words.last, words.count > 1 else { return words.first ?? "" }
        return words.dropLast().joined(separator: ", ") + " or " + last
    }
}
