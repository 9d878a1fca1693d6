import Foundation
import GRDB

/// How records map to rows.
extension SQLiteTransaction {
    // MARK: Rows

    /// Inserts a promise; with `orIgnore`, one whose id exists is left as it is.
    func insert(_ p: PromiseRecord, orIgnore: Bool = false) throws {
        try db.cachedStatement(sql: """
            INSERT \(orIgnore ? "OR IGNORE " : "")INTO promises (id, state, param_headers, param_data, value_headers, value_data, timeout, ikey_create,
                                  ikey_complete, created_on, completed_on, tags, flags)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [
                p.id, p.state.code, Self.encodeMap(p.param.headers), p.param.data, Self.encodeMap(p.value.headers), p.value.data,
                p.timeout, p.idempotencyKeyForCreate, p.idempotencyKeyForComplete, p.createdOn, p.completedOn,
                Self.encodeMap(p.tags), p.isTimer ? 1 : 0,
            ])
    }

    // Rows are read by column index, in the order these lists give: reading by name makes
    // GRDB look each name up (case-insensitively) for every column of every row.
    static let promiseColumns = "id, state, param_headers, param_data, value_headers, value_data, timeout, ikey_create, ikey_complete, created_on, completed_on, tags"
    static let taskColumns = "id, group_name, state, version, worker, updated_on, retry_step, retry_failures, blocked"

    static func promise(from row: Row) -> PromiseRecord {
        PromiseRecord(
            id: row[0], state: PromiseState(code: row[1]) ?? .pending,
            param: PromiseValue(headers: decodeMap(row[2]), data: row[3]),
            value: PromiseValue(headers: decodeMap(row[4]), data: row[5]),
            timeout: row[6], idempotencyKeyForCreate: row[7], idempotencyKeyForComplete: row[8],
            createdOn: row[9], completedOn: row[10], tags: decodeMap(row[11]))
    }

    static func task(from row: Row) -> TaskRecord {
        let retryStep: String? = row[6]
        return TaskRecord(id: row[0], group: row[1], state: TaskRecord.State(rawValue: row[2]) ?? .pending,
                          version: row[3], worker: row[4], updatedOn: row[5],
                          retry: retryStep.map { TaskRetry(step: $0, failures: row[7]) }, blocked: row[8])
    }

    static func encodeMap(_ map: [String: String]) -> String? { ColumnCoding.encodeMap(map) }
    static func decodeMap(_ text: String?) -> [String: String] { ColumnCoding.decodeMap(text) }
    static func encodeList(_ list: [String]) -> String? { ColumnCoding.encodeList(list) }
    static func decodeList(_ text: String?) -> [String] { ColumnCoding.decodeList(text) }
}

/// The outbox messages one transaction wrote. Used on the transaction's own thread only.
final class OutboxCollector: @unchecked Sendable {
    var messages: [OutboxMessage] = []
}
