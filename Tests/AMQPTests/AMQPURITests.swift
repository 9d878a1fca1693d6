import AMQP
import Testing
import WarrenTestSupport

@Suite("AMQP URIs")
struct AMQPURITests {
    @Test func parsesEveryPartWithPercentDecoding() throws {
        let uri = try AMQPURI("amqp://us%40er:p%3Ass@broker.example:5673/my%2fvhost?heartbeat=5")
        #expect(uri.user == "us@er")
        #expect(uri.password == "p:ss")
        #expect(uri.host == "broker.example")
        #expect(uri.port == 5673)
        #expect(uri.vhost == "my/vhost")
        #expect(uri.query["heartbeat"] == "5")
        #expect(!uri.tls)
    }

    @Test func appliesDefaults() throws {
        let plain = try AMQPURI("amqp://localhost")
        #expect(plain.port == 5672 && plain.vhost == "/" && plain.user == "guest" && plain.password == "guest")
        let tls = try AMQPURI("amqps://h")
        #expect(tls.tls && tls.port == 5671)
        #expect(try AMQPURI("amqp://h/%2f").vhost == "/")
        #expect(try AMQPURI("amqp://h/").vhost == "/")
        #expect(try AMQPURI("amqp://[::1]:5999/v").host == "::1")
    }

    @Test(arguments: [
        ("http://localhost", "scheme"),
        ("amqp://h:notaport/", "port"),
        ("amqp://h:70000/", "port"),
        ("amqp://h/a/b", "one path segment"),
        ("amqp://us%zzer@h/", "percent-escape"),
        ("amqp://[::1/", "IPv6"),
    ])
    func rejectsMalformedURIs(text: String, mentions: String) {
        do {
            _ = try AMQPURI(text)
            Issue.record("\(text) parsed")
        } catch {
            #expect(error.code == .invalidURI)
            #expect(error.message.contains(mentions), "\(error.message)")
        }
    }

    @Test func errorsNeverShowThePassword() {
        do {
            _ = try AMQPURI("amqp://user:secret@h:bad/")
            Issue.record("parsed")
        } catch {
            #expect(!error.message.contains("secret"))
        }
        #expect(try! AMQPURI("amqp://user:secret@h/").description.contains("secret") == false)
    }

    @Test func configurationReadsQueryParameters() throws {
        let c = try AMQPConfiguration(url: "amqps://h/?heartbeat=7&connection_timeout=2500&cacertfile=%2Ftmp%2Fca.pem&verify=verify_none")
        #expect(c.heartbeat == 7)
        #expect(c.connectTimeout == .milliseconds(2500))
        #expect(c.tls?.caCertificatePath == "/tmp/ca.pem")
        #expect(c.tls?.verifyPeer == false)
        #expect(throws: AMQPError.self) { try AMQPConfiguration(url: "amqp://h/?heartbeat=abc") }
    }

    @Test func tlsTrustsTheSystemBundleUnlessACAFileIsGiven() {
        // SSL_CERT_FILE first, as OpenSSL's own tools read it; else the distribution's file.
        #expect(AMQPConfiguration.TLS.systemCABundle(environment: ["SSL_CERT_FILE": "/x/ca.pem"], exists: { _ in false }) == "/x/ca.pem")
        #expect(AMQPConfiguration.TLS.systemCABundle(environment: [:], exists: { $0 == "/etc/pki/tls/certs/ca-bundle.crt" })
                == "/etc/pki/tls/certs/ca-bundle.crt")
        #expect(AMQPConfiguration.TLS.systemCABundle(environment: [:], exists: { _ in true }) == "/etc/ssl/certs/ca-certificates.crt")
        #expect(AMQPConfiguration.TLS.systemCABundle(environment: [:], exists: { _ in false }) == nil)
        var tls = AMQPConfiguration.TLS(caCertificatePath: "/mine.pem")
        #expect(tls.effectiveCACertificatePath == "/mine.pem")
        tls = AMQPConfiguration.TLS(verifyPeer: false)
        #expect(tls.effectiveCACertificatePath == nil)
    }

    @Test func aURINamesTheNodesOfACluster() throws {
        let uri = try AMQPURI("amqp://u:p@n1:5672,n2,[::1]:5674/%2fprod")
        #expect(uri.endpoints == [AMQPEndpoint(host: "n1", port: 5672), AMQPEndpoint(host: "n2", port: 5672), AMQPEndpoint(host: "::1", port: 5674)])
        #expect(uri.host == "n1" && uri.vhost == "/prod" && !uri.description.contains(":p@"))
        #expect(try AMQPConfiguration(url: "amqp://n1,n2/").endpoints.count == 2)
        #expect(throws: AMQPError.self) { try AMQPURI("amqp://n1,,n2/") }
        #expect(throws: AMQPError.self) { try AMQPURI("amqp://n1:99999,n2/") }
        // One URI per node merge into one; they must agree on everything but the hosts.
        #expect(try AMQPURI.merge(["amqp://u:p@a:1/v?heartbeat=5", "amqp://u:p@b:2/v?heartbeat=5"]) == "amqp://u:p@a:1,b:2/v?heartbeat=5")
        #expect(throws: AMQPError.self) { try AMQPURI.merge(["amqp://u:p@a/v", "amqp://x:p@b/v"]) }
        #expect(throws: AMQPError.self) { try AMQPURI.merge([]) }
    }
}
