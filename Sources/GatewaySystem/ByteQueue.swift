/// Bytes waiting to be sent, in up to four buffers drained in order. One buffer appended at
/// the back and drained at the front has to move the bytes it still holds whenever it runs out
/// of room (a second copy of most of a large body); here nothing is moved. A whole buffer handed
/// over (`take`: a backend read that is all body) goes in without a copy while a place is free,
/// so a body read one TLS record at a time up to a stream's 64 KiB is queued by swaps alone.
/// Bytes appended go to the last buffer in use.
public struct ByteQueue: ~Copyable {
    public static let places = 4
    private var p0, p1, p2, p3: ByteBuffer
    /// The place being drained, and how many are in use from it on (0: the queue is empty).
    private var first = 0, used = 0
    public private(set) var readableCount = 0

    public init(pool: BufferPool? = nil) {
        p0 = ByteBuffer(pool: pool); p1 = ByteBuffer(pool: pool)
        p2 = ByteBuffer(pool: pool); p3 = ByteBuffer(pool: pool)
    }

    public var isEmpty: Bool { readableCount == 0 }
    /// Every place is in use: a `take` now would copy.
    public var isFull: Bool { used == Self.places }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        if used == 0 { used = 1 }
        place(first + used - 1) { $0.append(bytes) }
        readableCount += bytes.count
    }

    /// Queues all of `buffer`'s bytes and leaves it empty: its memory is swapped with a free
    /// place's when there is one (same pool), else its bytes are copied.
    public mutating func take(_ buffer: inout ByteBuffer) {
        let n = buffer.readableCount
        guard n > 0 else { return }
        if used < Self.places, place(first + used, { $0.exchangeContents(with: &buffer) }) {
            used += 1
            readableCount += n
            return
        }
        append(buffer.readable)
        buffer.clear()
    }

    /// Moves the first `count` bytes (at most `readableCount`) to the end of `sink`.
    public mutating func move(_ count: Int, into sink: inout ByteBuffer) {
        drain(count) { piece in sink.append(piece) }
    }

    /// Copies the first `count` bytes (at most `readableCount`) to `destination` and drops them.
    public mutating func move(_ count: Int, to destination: UnsafeMutableRawPointer) {
        var done = 0
        drain(count) { piece in
            (destination + done).copyMemory(from: piece.baseAddress!, byteCount: piece.count)
            done += piece.count
        }
    }

    /// Drops everything and gives the memory back (a stream object about to be reused).
    public mutating func removeAll() {
        for i in 0..<Self.places { place(i) { $0.clear(); $0.releaseIfEmpty() } }
        first = 0; used = 0; readableCount = 0
    }

    private mutating func drain(_ count: Int, _ take: (UnsafeRawBufferPointer) -> Void) {
        var left = count
        while left > 0 {
            let (n, emptied): (Int, Bool) = place(first) { b in
                let n = min(left, b.readableCount)
                take(UnsafeRawBufferPointer(rebasing: b.readable[0..<n]))
                b.consume(n)
                guard b.isEmpty else { return (n, false) }
                b.releaseIfEmpty()
                return (n, true)
            }
            left -= n
            readableCount -= n
            if emptied { first = (first + 1) % Self.places; used -= 1 }
        }
    }

    private mutating func place<R>(_ i: Int, _ body: (inout ByteBuffer) -> R) -> R {
        switch i % Self.places {
        case 0: return body(&p0)
        case 1: return body(&p1)
        case 2: return body(&p2)
        default: return body(&p3)
        }
    }
}
