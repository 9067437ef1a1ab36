import Glibc
import Testing
@testable import GatewayConfig

/// A device or FIFO named where a file belongs is a load error, not a hang: `include /dev/zero;`
/// read forever and grew without bound, and opening a FIFO waited for a writer (found while
/// writing the config fuzz target, Fuzz/config).
@Suite struct SpecialFileTests {
    @Test func deviceAndFIFOAreNotFiles() {
        let f = Fixture()
        let fifo = f.path("pipe.conf")
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        f.config(minimalConfig + "include /dev/zero;\ninclude pipe.conf;\n")
        #expect(f.errors() == [
            "\(f.main):9:9: error: cannot read included file \"/dev/zero\": not a regular file",
            "\(f.main):10:9: error: cannot read included file \"\(fifo)\": not a regular file",
        ])
    }

    @Test func aFIFOCertificateIsRefused() {
        let f = Fixture()
        let fifo = f.path("certs/fifo.pem")
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        f.config(minimalConfig + "host b.test {\n    certificate certs/fifo.pem certs/api.key;\n    route / backend echo;\n}\n")
        #expect(f.errors().count == 1)
        #expect(f.errors().first?.hasSuffix("not a regular file") == true, "\(f.errors())")
    }
}
