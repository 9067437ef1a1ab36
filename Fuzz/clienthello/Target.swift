// libFuzzer target: the ClientHello path through real OpenSSL. Compiled into the GatewayTLS
// module (scripts/fuzz) so it reaches the listener's SSL_CTX: a server SSL from the gateway's
// real TLSServerContexts (a policy table built by the real loader from fuzz-config.conf with
// the dev certificates), with the real ClientHello callback, driven through memory BIOs.
// The fuzzed bytes are the client's first flight; a TLS record header is added when the
// input does not start with one. Properties: no crash, no sanitizer report, no leak.

import COpenSSL
import Glibc
import GatewayConfig

/// Built once per process: the loader and TLSServerContexts are what `gateway run` uses.
final class FuzzServer: @unchecked Sendable {
    // @unchecked: libFuzzer calls the target from one thread.
    let listener: TLSListener
    let contexts: TLSServerContexts
    /// The ticket keys every fuzzed SSL carries, as a connection's do.
    let tickets = TicketKeyRing([[UInt8](repeating: 7, count: TicketKeys.keySize)])

    init() {
        guard let root = getenv("GATEWAY_FUZZ_ROOT").map({ String(cString: $0) }) else {
            fatalError("set GATEWAY_FUZZ_ROOT to the repository (scripts/fuzz does)")
        }
        do {
            let config = try ConfigLoader.load(path: "\(root)/Fuzz/clienthello/fuzz-config.conf")
            contexts = try TLSServerContexts(config: config)
        } catch {
            fatalError("fuzz-config.conf does not load (run scripts/gen-certs): \(error)")
        }
        listener = contexts.listeners[0]
    }
}

let server = FuzzServer()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzClientHello(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = UnsafeBufferPointer(start: data, count: size)
    let flight = isRecord(input) ? Array(input) : records(input)
    guard let ssl = SSL_new(server.listener.ctx) else { fatalError("SSL_new") }
    defer { SSL_free(ssl); ERR_clear_error() }
    guard let rbio = BIO_new(BIO_s_mem()), let wbio = BIO_new(BIO_s_mem()) else { fatalError("BIO_new") }
    SSL_set_bio(ssl, rbio, wbio)  // the SSL owns both BIOs now
    SSL_set_accept_state(ssl)
    server.tickets.attach(to: ssl)
    _ = flight.withUnsafeBytes { BIO_write(rbio, $0.baseAddress, Int32($0.count)) }
    // A few turns: OpenSSL answers (ServerHello ... or an alert) and then wants the client's next flight.
    for _ in 0..<4 {
        let r = SSL_do_handshake(ssl)
        if r == 1 { break }
        let e = SSL_get_error(ssl, r)
        if e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE { break }
        if BIO_ctrl_pending(rbio) == 0 { break }
    }
    return 0
}

/// A TLS record header: handshake (22) or alert/ccs/appdata, version 3.x.
private func isRecord(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
    b.count >= 5 && (20...23).contains(b[0]) && b[1] == 3 && b[2] <= 4
}

/// The input as the body of handshake records of at most 2^14 bytes (a long input spans several,
/// which exercises OpenSSL's reassembly before the callback).
private func records(_ b: UnsafeBufferPointer<UInt8>) -> [UInt8] {
    var out: [UInt8] = []
    var i = 0
    repeat {
        let n = min(16384, b.count - i)
        out += [22, 3, 1, UInt8(n >> 8), UInt8(n & 0xFF)]
        out += b[i..<i + n]
        i += n
    } while i < b.count
    return out
}
