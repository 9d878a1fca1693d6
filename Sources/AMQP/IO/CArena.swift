import CRabbitMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Scratch memory for the C structures one rabbitmq-c call reads (names, tables, properties).
///
/// Owned by the connection's I/O thread and reset after each call: the library copies what it
/// sends into its own buffers, so nothing here needs to outlive the call. Memory comes from
/// chunks that are kept between calls, so steady-state publishing allocates nothing here.
final class CArena {
    private var chunks: [UnsafeMutableRawPointer] = []
    private var large: [UnsafeMutableRawPointer] = []
    private var offset = 0
    private let chunkSize = 64 * 1024

    init() {}

    deinit {
        reset()
        for c in chunks { free(c) }
    }

    /// Raw memory for `count` bytes, aligned to 16.
    func allocate(_ count: Int) -> UnsafeMutableRawPointer {
        let size = (count + 15) & ~15
        if size > chunkSize / 4 {
            let p = malloc(max(size, 1))!
            large.append(p)
            return p
        }
        if chunks.isEmpty || offset + size > chunkSize {
            if chunks.isEmpty || offset != 0 {
                chunks.append(malloc(chunkSize)!)
            }
            offset = 0
        }
        let p = chunks[chunks.count - 1] + offset
        offset += size
        return p
    }

    func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        allocate(MemoryLayout<T>.stride * max(count, 1)).bindMemory(to: T.self, capacity: max(count, 1))
    }

    /// Frees what the last call used; keeps the first chunk for the next one.
    func reset() {
        for p in large { free(p) }
        large.removeAll(keepingCapacity: true)
        if chunks.count > 1 {
            for c in chunks[1...] { free(c) }
            chunks.removeSubrange(1...)
        }
        offset = 0
    }

    /// A copy of `string`'s UTF-8 bytes as `amqp_bytes_t`.
    func bytes(_ string: String) -> amqp_bytes_t {
        var s = string
        return s.withUTF8 { bytes($0) }
    }

    func bytes(_ buffer: UnsafeBufferPointer<UInt8>) -> amqp_bytes_t {
        guard buffer.count > 0 else { return amqp_bytes_t(len: 0, bytes: nil) }
        let p = allocate(buffer.count)
        p.copyMemory(from: buffer.baseAddress!, byteCount: buffer.count)
        return amqp_bytes_t(len: buffer.count, bytes: p)
    }

    func bytes(_ array: [UInt8]) -> amqp_bytes_t {
        array.withUnsafeBufferPointer { bytes($0) }
    }

    /// A C field table holding `table`.
    func table(_ table: FieldTable) -> amqp_table_t {
        guard !table.isEmpty else { return amqp_table_t(num_entries: 0, entries: nil) }
        let entries = allocate(amqp_table_entry_t.self, count: table.count)
        for (i, (key, value)) in table.enumerated() {
            entries[i] = amqp_table_entry_t(key: bytes(key), value: field(value))
        }
        return amqp_table_t(num_entries: Int32(table.count), entries: entries)
    }

    func field(_ value: FieldValue) -> amqp_field_value_t {
        var f = amqp_field_value_t()
        func kind(_ c: Character) -> UInt8 { c.asciiValue! }
        switch value {
        case .bool(let v): f.kind = kind("t"); f.value.boolean = v ? 1 : 0
        case .int8(let v): f.kind = kind("b"); f.value.i8 = v
        case .uint8(let v): f.kind = kind("B"); f.value.u8 = v
        case .int16(let v): f.kind = kind("s"); f.value.i16 = v
        case .uint16(let v): f.kind = kind("u"); f.value.u16 = v
        case .int32(let v): f.kind = kind("I"); f.value.i32 = v
        case .uint32(let v): f.kind = kind("i"); f.value.u32 = v
        case .int64(let v): f.kind = kind("l"); f.value.i64 = v
        case .uint64(let v): f.kind = kind("L"); f.value.u64 = v
        case .float(let v): f.kind = kind("f"); f.value.f32 = v
        case .double(let v): f.kind = kind("d"); f.value.f64 = v
        case .decimal(let scale, let v): f.kind = kind("D"); f.value.decimal = amqp_decimal_t(decimals: scale, value: v)
        case .string(let s): f.kind = kind("S"); f.value.bytes = bytes(s)
        case .bytes(let b): f.kind = kind("x"); f.value.bytes = bytes(b)
        case .array(let items):
            f.kind = kind("A")
            let entries = allocate(amqp_field_value_t.self, count: items.count)
            for (i, item) in items.enumerated() { entries[i] = field(item) }
            f.value.array = amqp_array_t(num_entries: Int32(items.count), entries: items.isEmpty ? nil : entries)
        case .table(let t): f.kind = kind("F"); f.value.table = table(t)
        case .timestamp(let v): f.kind = kind("T"); f.value.u64 = v
        case .void: f.kind = kind("V")
        }
        return f
    }

    /// C basic properties holding `properties`.
    func properties(_ p: BasicProperties) -> amqp_basic_properties_t {
        var c = amqp_basic_properties_t()
        var flags: UInt32 = 0
        if let v = p.contentType { c.content_type = bytes(v); flags |= UInt32(AMQP_BASIC_CONTENT_TYPE_FLAG) }
        if let v = p.contentEncoding { c.content_encoding = bytes(v); flags |= UInt32(AMQP_BASIC_CONTENT_ENCODING_FLAG) }
        if let v = p.headers { c.headers = table(v); flags |= UInt32(AMQP_BASIC_HEADERS_FLAG) }
        if let v = p.deliveryMode { c.delivery_mode = v.rawValue; flags |= UInt32(AMQP_BASIC_DELIVERY_MODE_FLAG) }
        if let v = p.priority { c.priority = v; flags |= UInt32(AMQP_BASIC_PRIORITY_FLAG) }
        if let v = p.correlationID { c.correlation_id = bytes(v); flags |= UInt32(AMQP_BASIC_CORRELATION_ID_FLAG) }
        if let v = p.replyTo { c.reply_to = bytes(v); flags |= UInt32(AMQP_BASIC_REPLY_TO_FLAG) }
        if let v = p.expiration { c.expiration = bytes(v); flags |= UInt32(AMQP_BASIC_EXPIRATION_FLAG) }
        if let v = p.messageID { c.message_id = bytes(v); flags |= UInt32(AMQP_BASIC_MESSAGE_ID_FLAG) }
        if let v = p.timestamp { c.timestamp = v; flags |= UInt32(AMQP_BASIC_TIMESTAMP_FLAG) }
        if let v = p.type { c.type = bytes(v); flags |= UInt32(AMQP_BASIC_TYPE_FLAG) }
        if let v = p.userID { c.user_id = bytes(v); flags |= UInt32(AMQP_BASIC_USER_ID_FLAG) }
        if let v = p.appID { c.app_id = bytes(v); flags |= UInt32(AMQP_BASIC_APP_ID_FLAG) }
        if let v = p.clusterID { c.cluster_id = bytes(v); flags |= UInt32(AMQP_BASIC_CLUSTER_ID_FLAG) }
        c._flags = flags
        return c
    }
}

// Reading C values back into Swift: everything is copied, since rabbitmq-c reuses its buffers.
extension amqp_bytes_t {
    var array: [UInt8] {
        guard len > 0, let bytes else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: len))
    }

    var string: String {
        guard len > 0, let bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: bytes, count: len), as: UTF8.self)
    }
}

extension FieldTable {
    init(_ c: amqp_table_t) {
        self.init(minimumCapacity: Int(c.num_entries))
        for i in 0..<Int(c.num_entries) {
            let e = c.entries[i]
            self[e.key.string] = FieldValue(e.value)
        }
    }
}

extension FieldValue {
    init(_ f: amqp_field_value_t) {
        switch Character(Unicode.Scalar(f.kind)) {
        case "t": self = .bool(f.value.boolean != 0)
        case "b": self = .int8(f.value.i8)
        case "B": self = .uint8(f.value.u8)
        case "s": self = .int16(f.value.i16)
        case "u": self = .uint16(f.value.u16)
        case "I": self = .int32(f.value.i32)
        case "i": self = .uint32(f.value.u32)
        case "l": self = .int64(f.value.i64)
        case "L": self = .uint64(f.value.u64)
        case "f": self = .float(f.value.f32)
        case "d": self = .double(f.value.f64)
        case "D": self = .decimal(scale: f.value.decimal.decimals, value: f.value.decimal.value)
        case "S": self = .string(f.value.bytes.string)
        case "x": self = .bytes(f.value.bytes.array)
        case "A":
            let a = f.value.array
            self = .array((0..<Int(a.num_entries)).map { FieldValue(a.entries[$0]) })
        case "F": self = .table(FieldTable(f.value.table))
        case "T": self = .timestamp(f.value.u64)
        default: self = .void
        }
    }
}

extension BasicProperties {
    init(_ c: amqp_basic_properties_t) {
        self.init()
        let flags = c._flags
        func has(_ flag: Int32) -> Bool { flags & UInt32(flag) != 0 }
        if has(AMQP_BASIC_CONTENT_TYPE_FLAG) { contentType = c.content_type.string }
        if has(AMQP_BASIC_CONTENT_ENCODING_FLAG) { contentEncoding = c.content_encoding.string }
        if has(AMQP_BASIC_HEADERS_FLAG) { headers = FieldTable(c.headers) }
        if has(AMQP_BASIC_DELIVERY_MODE_FLAG) { deliveryMode = DeliveryMode(rawValue: c.delivery_mode) }
        if has(AMQP_BASIC_PRIORITY_FLAG) { priority = c.priority }
        if has(AMQP_BASIC_CORRELATION_ID_FLAG) { correlationID = c.correlation_id.string }
        if has(AMQP_BASIC_REPLY_TO_FLAG) { replyTo = c.reply_to.string }
        if has(AMQP_BASIC_EXPIRATION_FLAG) { expiration = c.expiration.string }
        if has(AMQP_BASIC_MESSAGE_ID_FLAG) { messageID = c.message_id.string }
        if has(AMQP_BASIC_TIMESTAMP_FLAG) { timestamp = c.timestamp }
        if has(AMQP_BASIC_TYPE_FLAG) { type = c.type.string }
        if has(AMQP_BASIC_USER_ID_FLAG) { userID = c.user_id.string }
        if has(AMQP_BASIC_APP_ID_FLAG) { appID = c.app_id.string }
        if has(AMQP_BASIC_CLUSTER_ID_FLAG) { clusterID = c.cluster_id.string }
    }
}

extension timeval {
    /// A duration as the `timeval` rabbitmq-c's waits take.
    init(_ d: Duration) {
        let c = d.components
        self.init(tv_sec: Int(c.seconds), tv_usec: Int(c.attoseconds / 1_000_000_000_000))
    }
}
