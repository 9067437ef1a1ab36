import GatewayHTTP
import GatewayTLS

/// SPEC §11 trace context on the request path: the client's `traceparent` when it is valid
/// (exactly one, version 00), else a new one from the worker's generator.
enum TraceHeaders {
    /// The client's valid traceparent; nil when absent, repeated or invalid (then it is replaced).
    static func incoming(_ b: UnsafeRawBufferPointer, _ headers: HeadFields) -> TraceContext? {
        var found: TraceContext?
        var count = 0
        for h in headers where asciiEqualsIgnoringCase(b, h.name, "traceparent") {
            count += 1
            found = TraceContext.parse(UnsafeRawBufferPointer(rebasing: b[h.value]))
        }
        return count == 1 ? found : nil
    }

    static func isTraceHeader(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Bool {
        asciiEqualsIgnoringCase(b, r, "traceparent") || asciiEqualsIgnoringCase(b, r, "tracestate")
    }
}

/// New trace contexts for one worker, from OpenSSL's CSPRNG (the source of the ticket keys),
/// drawn 64 contexts' worth at a time so a request costs no RAND_bytes call of its own.
struct TraceIDGenerator {
    private var pool = [UInt8](repeating: 0, count: TraceContext.randomByteCount * 64)
    /// Bytes of `pool` already handed out; starts spent, so the first call fills it.
    private var used = TraceContext.randomByteCount * 64

    mutating func next() -> TraceContext {
        if pool.count - used < TraceContext.randomByteCount {
            let ok = pool.withUnsafeMutableBytes { SecureRandom.fill($0) }
            // RAND_bytes fails only when the CSPRNG cannot be seeded; fall back to the system generator.
            if !ok {
                var rng = SystemRandomNumberGenerator()
                for i in pool.indices { pool[i] = UInt8.random(in: 0...255, using: &rng) }
            }
            used = 0
        }
        let t = pool.withUnsafeBytes { TraceContext.generate(random: UnsafeRawBufferPointer(rebasing: $0[used..<used + TraceContext.randomByteCount])) }
        used += TraceContext.randomByteCount
        return t
    }
}
