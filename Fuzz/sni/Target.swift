// libFuzzer target: ServerNameParser on raw server_name extension bytes, then the name
// through HostTable as the ClientHello callback uses it. Properties: no crash; a name that
// comes out is what SPEC §10 allows (1-255 visible bytes, lower case, no trailing dot).

let table = HostTable(names: [["api.example.test"], ["*.example.test"], ["other.test", "*.other.test"]])

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzServerName(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    switch ServerNameParser.parse(UnsafeRawBufferPointer(start: data, count: size)) {
    case .malformed(let why, _):
        precondition(!why.isEmpty, "a malformed name needs a reason for the log")
    case .name(let name):
        let u = Array(name.utf8)
        precondition(!u.isEmpty && u.count <= 255, "name length \(u.count)")
        precondition(u.allSatisfy { $0 > 0x20 && $0 < 0x7F && !($0 >= 65 && $0 <= 90) }, "byte outside lower-case visible ASCII")
        precondition(u.last != UInt8(ascii: "."), "trailing dot kept")
        precondition(HostTable.normalise(name) == name, "the parser and HostTable normalise differently")
        if let i = table.lookup(name) { precondition((0..<3).contains(i), "lookup out of range") }
    }
    return 0
}
