/// Values by HTTP/2 stream id, for the lookups a connection makes on every frame and field.
/// Open addressing with linear probing, slotted by the id itself: stream ids are distinct,
/// positive and mostly consecutive odd (or even) numbers, so `id >> 1` spreads them without a
/// hash function — Swift's Dictionary would run SipHash on each of the dozens of lookups one
/// request makes. Deletion shifts the cluster back (no tombstones). Empty until the first
/// insert; emptied again it keeps a table of up to `keptSlots` slots (64 unless the owner says).
@frozen public struct StreamMap<Value> {
    // Inlinable (and so its storage usable from inline code): the callers in other modules
    // specialize it for their value type; unspecialized, every access went through generic
    // metadata lookups and cost more than the hashing it replaces.
    @usableFromInline var keys: [Int32] = []       // 0: empty slot (stream 0 is the connection, never a key)
    @usableFromInline var slots: [Value?] = []
    @usableFromInline var storedCount = 0
    /// Entries not in their home slot. Ids are mostly consecutive, so usually none: then a
    /// removal just clears its slot instead of walking the rest of the cluster.
    @usableFromInline var displaced = 0
    /// The largest table kept when the map empties. A client connection's map stays small when
    /// idle (memory per connection); a backend connection carrying hundreds of streams keeps
    /// its table, or it would reallocate and regrow it every time its streams drain to zero.
    @usableFromInline let keptSlots: Int

    @inlinable public init(keptSlots: Int = 64) { self.keptSlots = keptSlots }

    /// A map that keeps, when emptied, the table `streams` entries at once grew it to (it
    /// doubles at half full).
    @inlinable public init(keepingRoomFor streams: Int) {
        var slots = 64
        while slots < 2 * streams { slots *= 2 }
        self.keptSlots = slots
    }

    @inlinable public var count: Int { storedCount }

    /// Whether `id` has a value (no copy of it: a class value read through the subscript is retained).
    @inlinable public func contains(_ id: Int32) -> Bool { find(id) != nil }

    @inlinable public var isEmpty: Bool { count == 0 }

    @inlinable @inline(__always) func home(_ id: Int32, _ mask: Int) -> Int { Int(UInt32(bitPattern: id) >> 1) & mask }

    @inlinable @inline(__always) func find(_ id: Int32) -> Int? {
        guard count > 0 else { return nil }
        let mask = keys.count - 1
        var i = home(id, mask)
        while true {
            let k = keys[i]
            if k == id { return i }
            if k == 0 { return nil }
            i = (i + 1) & mask
        }
    }

    @inlinable public subscript(id: Int32) -> Value? {
        get { find(id).flatMap { slots[$0] } }
        set {
            if let v = newValue { insert(id, v) } else { removeValue(forKey: id) }
        }
    }

    /// `value` is consumed: a caller's last use of its reference moves into the slot instead of
    /// a retain here and a release there.
    @inlinable public mutating func insert(_ id: Int32, _ value: consuming Value) {
        precondition(id != 0, "stream 0 is not a stream")
        if let i = find(id) { slots[i] = value; return }
        if (count + 1) * 2 > keys.count { grow() }
        let mask = keys.count - 1
        var i = home(id, mask)
        let h = i
        while keys[i] != 0 { i = (i + 1) & mask }
        if i != h { displaced += 1 }
        keys[i] = id
        slots[i] = value
        storedCount += 1
    }

    @inlinable mutating func grow() {
        let oldKeys = keys, oldSlots = slots
        let size = max(16, keys.count * 2)
        keys = Array(repeating: 0, count: size)
        slots = Array(repeating: nil, count: size)
        storedCount = 0
        displaced = 0
        for (k, v) in zip(oldKeys, oldSlots) where k != 0 { insert(k, v!) }
    }

    @inlinable @discardableResult
    public mutating func removeValue(forKey id: Int32) -> Value? {
        guard var hole = find(id) else { return nil }
        // Moved out (take), not copied and then cleared: no retain and release per removal.
        let value = slots[hole].take()
        let mask = keys.count - 1
        if home(id, mask) != hole { displaced -= 1 }
        keys[hole] = 0
        storedCount -= 1
        // Move later members of the cluster back into the hole when their home slot allows it
        // (nothing to move when every entry is at home).
        var j = hole
        while displaced > 0 {
            j = (j + 1) & mask
            let k = keys[j]
            if k == 0 { break }
            let h = home(k, mask)
            let movable = hole <= j ? (h <= hole || h > j) : (h <= hole && h > j)
            if movable {
                if h == hole { displaced -= 1 }
                keys[hole] = k; slots[hole] = slots[j].take()
                keys[j] = 0
                hole = j
            }
        }
        // Emptied, it keeps a table of up to `keptSlots` slots (64: 768 bytes): connections whose
        // streams come and go in waves would otherwise regrow it from nothing each time.
        if count == 0 && keys.count > keptSlots { keys = []; slots = []; displaced = 0 }
        return value
    }

    @inlinable public mutating func removeAll() {
        keys = []; slots = []; storedCount = 0; displaced = 0
    }

    /// Every value, in no particular order.
    @inlinable public func forEach(_ body: (Value) -> Void) {
        for i in keys.indices where keys[i] != 0 { body(slots[i]!) }
    }

    /// Every value, in no particular order (allocates: not for a per-request path).
    @inlinable public var values: [Value] {
        var out: [Value] = []
        out.reserveCapacity(count)
        forEach { out.append($0) }
        return out
    }
}

extension StreamMap where Value: AnyObject {
    /// The value for `id` unretained, nil if there is none; the caller states what keeps it alive.
    @inlinable public func unmanaged(_ id: Int32) -> Unmanaged<Value>? {
        guard let i = find(id) else { return nil }
        return slots.withUnsafeBufferPointer { Unmanaged.passUnretained($0[i].unsafelyUnwrapped) }
    }

    /// `body` with the value for `id` at +0, nil if there is none. Mutating so the map is
    /// borrowed in place, not copied: invariant, the map holds the value for the whole call, and
    /// `body` must not change the map (exclusivity would stop it).
    @inlinable public mutating func withValue<R>(_ id: Int32, _ body: (Value) throws -> R) rethrows -> R? {
        guard let i = find(id) else { return nil }
        return try slots.withUnsafeBufferPointer { p in
            try Unmanaged.passUnretained(p[i].unsafelyUnwrapped)._withUnsafeGuaranteedRef(body)
        }
    }
}
