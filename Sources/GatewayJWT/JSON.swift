import CCJose

// The few jansson reads the verifier makes. jansson's `json_is_*` are macros Swift cannot
// import, so the type tag is read from the struct. Documents are parsed with
// JSON_REJECT_DUPLICATES: `{"alg":"ES256","alg":"none"}` means different things to different
// parsers, so it is malformed here.

enum JSON {
    /// A parsed document (owned: release it with `json_decref`), nil for bad JSON or a non-object.
    static func object(_ bytes: [UInt8]) -> UnsafeMutablePointer<json_t>? {
        var error = json_error_t()
        let flags = Int(JSON_REJECT_DUPLICATES)
        guard let doc = bytes.withUnsafeBytes({ json_loadb($0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count, flags, &error) }) else {
            return nil
        }
        guard doc.pointee.type == JSON_OBJECT else { json_decref(doc); return nil }
        return doc
    }

    static func member(_ o: UnsafeMutablePointer<json_t>?, _ key: String) -> UnsafeMutablePointer<json_t>? {
        guard let o else { return nil }
        return json_object_get(o, key)
    }

    /// A string member; nil when absent or of another type. Strings with a NUL are refused
    /// (`json_string_value` would cut them short).
    static func string(_ o: UnsafeMutablePointer<json_t>?, _ key: String) -> String? {
        guard let v = member(o, key) else { return nil }
        return string(v)
    }

    static func string(_ v: UnsafeMutablePointer<json_t>) -> String? {
        guard v.pointee.type == JSON_STRING, let p = json_string_value(v) else { return nil }
        let n = json_string_length(v)
        let s = UnsafeRawBufferPointer(start: p, count: n)
        guard !s.contains(0) else { return nil }
        return String(decoding: s, as: UTF8.self)
    }

    /// A number member (integer or real) as seconds; nil when absent or not a number.
    static func number(_ o: UnsafeMutablePointer<json_t>?, _ key: String) -> Double?? {
        guard let v = member(o, key) else { return .some(nil) }
        switch v.pointee.type {
        case JSON_INTEGER: return .some(Double(json_integer_value(v)))
        case JSON_REAL: return .some(json_real_value(v))
        default: return nil
        }
    }

    /// A claim as a header value: strings as they are, numbers and booleans in JSON form;
    /// nil for absent, null, objects and arrays (SPEC §13).
    static func headerValue(_ v: UnsafeMutablePointer<json_t>) -> String? {
        switch v.pointee.type {
        case JSON_STRING: return string(v)
        case JSON_INTEGER: return String(json_integer_value(v))
        case JSON_REAL:
            let d = json_real_value(v)
            return d.isFinite && d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
        case JSON_TRUE: return "true"
        case JSON_FALSE: return "false"
        default: return nil
        }
    }
}
