import Foundation
import PropertyBased
import Testing
@testable import WarrenStore

@Suite("JSON")
struct JSONValueTests {
    @Test(arguments: [
        (#"{"b": [1, -2.5, true, false, null], "a": "x\"y\\z\n\u00e9\ud83d\ude00/"}"#, #"{"a":"x\"y\\z\né😀/","b":[1,-2.5,true,false,null]}"#),
        (" 42 ", "42"), ("-0", "0"), ("1e3", "1000.0"), (#""\u0001""#, #""\u0001""#), ("[]", "[]"), ("{}", "{}"),
        ("9223372036854775807", "9223372036854775807"), ("9223372036854775808", "9.223372036854776e+18"),
    ])
    func parsesAndWritesCompactSortedJSON(text: String, written: String) throws {
        #expect(try JSONValue.parse(text).jsonText == written)
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "-", "tru", "\"abc", "\"\\x\"", "\"\\ud800\"", "1 2", "nul", "[1e999]",
                      "\"a\u{01}\"", String(repeating: "[", count: 200) + String(repeating: "]", count: 200)])
    func refusesWhatIsNotJSON(text: String) {
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(text) }
    }

    @Test func agreesWithFoundationOnRandomStrings() async {
        await propertyCheck(input: Gen<Character>.character(in: "\u{0}"..."\u{D7FF}").string(of: 0...40)) { s in
            let quoted = JSONValue.quote(s)
            // Foundation reads back what Warren writes, and Warren reads what Foundation writes.
            let back = try? JSONDecoder().decode(String.self, from: Data(quoted.utf8))
            #expect(back == s)
            let foundation = String(decoding: try! JSONEncoder().encode(s), as: UTF8.self)
            #expect((try? JSONValue.parse(foundation)) == .string(s))
        }
    }

    @Test func aPromiseRecordIsWrittenAsItsCodableFormReads() throws {
        let p = PromiseRecord(id: "wf.1", state: .resolved, param: PromiseValue(headers: ["h": "1"], data: #"{"a":1}"#),
                              value: PromiseValue(data: "\"ok\""), timeout: 5, idempotencyKeyForCreate: "k",
                              createdOn: 1, completedOn: 2, tags: ["warren:kind": "run:a"])
        #expect(try JSONDecoder().decode(PromiseRecord.self, from: Data(p.jsonText.utf8)) == p)
        let pending = PromiseRecord(id: "p", timeout: 9, createdOn: 1)
        #expect(try JSONDecoder().decode(PromiseRecord.self, from: Data(pending.jsonText.utf8)) == pending)
    }
}
