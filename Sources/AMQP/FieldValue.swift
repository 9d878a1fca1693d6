/// A value in an AMQP field table: message headers and queue, exchange or consumer arguments.
///
/// The cases are the field types of AMQP 0-9-1 as rabbitmq-c encodes them. Literals work where a
/// table is expected: `["x-queue-type": "quorum", "x-max-length": 1000, "x-single-active-consumer": true]`.
public enum FieldValue: Sendable, Hashable {
    case bool(Bool)
    case int8(Int8)
    case uint8(UInt8)
    case int16(Int16)
    case uint16(UInt16)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
    case uint64(UInt64)
    case float(Float)
    case double(Double)
    /// A decimal: `value` × 10^-`scale`.
    case decimal(scale: UInt8, value: UInt32)
    /// A long string holding UTF-8 text.
    case string(String)
    /// A long string holding arbitrary bytes.
    case bytes([UInt8])
    case array([FieldValue])
    case table(FieldTable)
    /// Seconds since the Unix epoch.
    case timestamp(UInt64)
    case void
}

/// A field table: the headers of a message or the arguments of a declaration.
public typealias FieldTable = [String: FieldValue]

extension FieldValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByFloatLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    /// Integer literals become signed 64-bit values, which RabbitMQ reads for every numeric argument.
    public init(integerLiteral value: Int64) { self = .int64(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(arrayLiteral elements: FieldValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, FieldValue)...) {
        self = .table(FieldTable(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .void }
}

extension FieldValue {
    /// The text of a `.string` (or UTF-8 `.bytes`) value, else `nil`.
    public var stringValue: String? {
        switch self {
        case .string(let s): return s
        case .bytes(let b): return String(validating: b, as: UTF8.self)
        default: return nil
        }
    }

    /// The value of any integer case that fits an `Int64`, else `nil`.
    public var int64Value: Int64? {
        switch self {
        case .int8(let v): return Int64(v)
        case .uint8(let v): return Int64(v)
        case .int16(let v): return Int64(v)
        case .uint16(let v): return Int64(v)
        case .int32(let v): return Int64(v)
        case .uint32(let v): return Int64(v)
        case .int64(let v): return v
        case .uint64(let v): return Int64(exactly: v)
        default: return nil
        }
    }
}
