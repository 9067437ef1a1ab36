import Testing
@testable import GatewayConfig

/// SPEC §12 `protocol http/1.1 | h2` in a backend block: http/1.1 by default, one value, errors
/// at FILE:LINE:COL.
@Suite struct BackendProtocolTests {
    @Test func defaultAndH2() throws {
        let f = Fixture()
        f.config(minimalConfig)
        #expect(try f.load().backends[0].protocol == .http11)
        f.config(minimalConfig.replacing("    server https://127.0.0.1:9443;", with: "    server https://127.0.0.1:9443;\n    protocol h2;"))
        #expect(try f.load().backends[0].protocol == .h2)
        f.config(minimalConfig.replacing("    server https://127.0.0.1:9443;", with: "    server https://127.0.0.1:9443;\n    protocol http/1.1;"))
        #expect(try f.load().backends[0].protocol == .http11)
    }

    @Test func badValuesNameTheirPlace() {
        let f = Fixture()
        f.config(minimalConfig.replacing("    server https://127.0.0.1:9443;", with: "    server https://127.0.0.1:9443;\n    protocol h2c;"))
        #expect(f.errors() == ["\(f.main):8:14: error: invalid value \"h2c\" for \"protocol\"; expected http/1.1 or h2"])
        f.config(minimalConfig.replacing("    server https://127.0.0.1:9443;", with: "    server https://127.0.0.1:9443;\n    protocol h2;\n    protocol h2;"))
        let repeated = f.errors()
        #expect(repeated.count == 1 && repeated[0].hasPrefix("\(f.main):9:5: error: duplicate \"protocol\""), "\(repeated)")
        f.config(minimalConfig.replacing("    server https://127.0.0.1:9443;", with: "    server https://127.0.0.1:9443;\n    protocol;"))
        #expect(f.errors().first?.hasPrefix("\(f.main):8:5: error: \"protocol\" takes 1 argument") == true, "\(f.errors())")
    }
}
