import Foundation
import GatehouseCore
import GatehouseHTTP
import Testing

@Suite("HTTP pieces without sockets")
struct HTTPUnitTests {
    @Test("request targets: segments decoded after splitting, query + and %XX decoded")
    func requestTarget() {
        let request = HTTPRequest(method: .get, target: "/devices/a%2Fb/x%20y?q=1+2&name=%C3%A9t%C3%A9&flag&q=3")
        #expect(request.path == "/devices/a%2Fb/x%20y")
        #expect(request.pathSegments == ["devices", "a/b", "x y"])
        #expect(request.query("q") == "1 2")
        #expect(request.query("name") == "été")
        #expect(request.query("flag") == "")
        #expect(request.queryItems.count == 4)
        #expect(request.queryParameters["q"] == "1 2")
        let bad = HTTPRequest(method: .get, target: "/x%zz")
        #expect(bad.pathSegments == ["x%zz"])
        #expect(HTTPRequest(method: .get, target: "").path == "/")
        let absolute = HTTPRequest(method: .get, target: "http://gatehouse:8080/healthz?x=1")
        #expect(absolute.pathSegments == ["healthz"])
        #expect(absolute.query("x") == "1")
        #expect(HTTPRequest(method: .get, target: "/a?next=http://b/c").pathSegments == ["a"])
        let fragment = HTTPRequest(method: .get, target: "//été/%C3%A9//b#frag/x?y=1")
        #expect(fragment.path == "//été/%C3%A9//b")
        #expect(fragment.pathSegments == ["été", "é", "b"])
        #expect(fragment.queryItems.isEmpty)
        let equals = HTTPRequest(method: .get, target: "/a?k=v=w&=x&e=&&z#k=no")
        #expect(equals.queryItems.map { [$0.name, $0.value] } == [["k", "v=w"], ["", "x"], ["e", ""], ["z", ""]])
    }

    @Test("headers are case-insensitive")
    func headers() {
        var headers: HTTPHeaders = ["Content-Type": "application/json"]
        headers.add("X-A", "1")
        headers.add("x-a", "2")
        #expect(headers["content-type"] == "application/json")
        #expect(headers.values(for: "X-a") == ["1", "2"])
        headers.set("X-A", "3")
        #expect(headers.values(for: "x-a") == ["3"])
    }

    @Test("router: literal segments beat parameters; HEAD uses GET; 405 lists methods")
    func router() throws {
        var router = Router(authenticator: nil, logger: .disabled)
        router.get("/devices/{id}", access: .public) { .text("id=\($0.pathParameters["id"]!)") }
        router.get("/devices/search", access: .public) { _ in .text("search") }
        router.post("/devices/{id}", access: .public) { _ in HTTPResponse(status: .accepted) }
        #expect(router.respond(to: HTTPRequest(method: .get, target: "/devices/search")).body == Array("search".utf8))
        #expect(router.respond(to: HTTPRequest(method: .get, target: "/devices/7")).body == Array("id=7".utf8))
        #expect(router.respond(to: HTTPRequest(method: .head, target: "/devices/7")).status == .ok)
        let wrong = router.respond(to: HTTPRequest(method: .put, target: "/devices/7"))
        #expect(wrong.status == .methodNotAllowed)
        #expect(wrong.headers["Allow"] == "GET, HEAD, POST")
        #expect(router.respond(to: HTTPRequest(method: .get, target: "/devices/7/x")).status == .notFound)
    }

    @Test("routes that need a scope fail closed without an authenticator")
    func failClosed() {
        var router = Router(authenticator: nil, logger: .disabled)
        router.get("/secret", access: .requires(.read)) { _ in .text("no") }
        let response = router.respond(
            to: HTTPRequest(method: .get, target: "/secret", headers: ["Authorization": "Bearer anything"]))
        #expect(response.status == .unauthorized)
    }

    @Test(
        "Authorization header forms: scheme case and blanks around the token",
        arguments: [
            ("Bearer \(TestTokens.reader)", HTTPStatus.ok), ("bearer \(TestTokens.reader)", .ok),
            ("BEARER   \(TestTokens.reader)  ", .ok), ("  Bearer\t\(TestTokens.reader)", .ok),
            ("Bearer", .unauthorized), ("Bearer   ", .unauthorized), ("Basic \(TestTokens.reader)", .unauthorized),
            ("Bearerx \(TestTokens.reader)", .unauthorized), ("\(TestTokens.reader)", .unauthorized),
            ("Bearer \(TestTokens.reader) extra", .unauthorized), ("", .unauthorized),
        ])
    func bearerForms(header: String, expected: HTTPStatus) {
        var router = Router(authenticator: TestTokens.authenticator, logger: .disabled)
        router.get("/secret", access: .requires(.read)) { _ in .text("yes") }
        let response = router.respond(
            to: HTTPRequest(method: .get, target: "/secret", headers: ["Authorization": header]))
        #expect(response.status == expected, "\(header.debugDescription)")
    }

    @Test("the one error mapping")
    func errorMapping() {
        func status(_ error: any Error) -> Int { HTTPError(mapping: error).status.code }
        #expect(status(GatehouseError(.invalidInput, "x")) == 400)
        #expect(status(HTTPError.invalidInput("x", field: "device_id")) == 422)
        #expect(status(GatehouseError(.notFound, "x")) == 404)
        #expect(status(GatehouseError(.conflict, "x")) == 409)
        #expect(status(GatehouseError(.authentication, "x")) == 401)
        #expect(status(GatehouseError(.forbidden, "x")) == 403)
        #expect(status(GatehouseError(.unavailable, "x")) == 503)
        #expect(status(GatehouseError(.database, "x")) == 500)
        #expect(status(CocoaError(.fileNoSuchFile)) == 500)
        #expect(HTTPError(mapping: GatehouseError(.unavailable, "x")).headers["Retry-After"] == "5")
        #expect(HTTPError(mapping: GatehouseError(.crypto, "key 0011")).message.contains("0011") == false)
        #expect(HTTPError(mapping: GatehouseError(.authentication, "x")).headers["WWW-Authenticate"] != nil)

        let body = HTTPError.invalidInput("bad \"quote\"", field: "end").response(requestID: "r1").body
        let json = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: [String: String]]
        #expect(
            json?["error"] == ["code": "invalid_input", "message": "bad \"quote\"", "field": "end", "request_id": "r1"])
    }

    @Test("decodeJSON names the failing field, never the body")
    func decodeJSON() {
        struct Grant: Decodable {
            var product: UInt16
            var device: String
        }
        let missing = HTTPRequest(
            method: .post, target: "/", headers: ["Content-Type": "application/json"],
            body: Array(#"{"product": 5}"#.utf8))
        #expect(throws: HTTPError.invalidInput("a required field is missing", field: "device")) {
            _ = try missing.decodeJSON(Grant.self)
        }
        let overflow = HTTPRequest(method: .post, target: "/", body: Array(#"{"product": 70000, "device": "a"}"#.utf8))
        #expect(throws: HTTPError.self) { _ = try overflow.decodeJSON(Grant.self) }
        let garbage = HTTPRequest(method: .post, target: "/", body: Array("secret-key-material".utf8))
        do {
            _ = try garbage.decodeJSON(Grant.self)
            Issue.record("expected an error")
        } catch {
            #expect(error.status == .badRequest)
            #expect(!error.message.contains("secret"))
        }
        let form = HTTPRequest(method: .post, target: "/", headers: ["Content-Type": "text/plain"], body: [])
        #expect(throws: HTTPError.self) { _ = try form.decodeJSON(Grant.self) }
    }

    @Test("constant-time compare and the static authenticator")
    func tokens() throws {
        #expect(ConstantTime.equals([1, 2, 3], [1, 2, 3]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2, 4]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2]))
        #expect(ConstantTime.equals([], []))
        let authenticator = TestTokens.authenticator
        #expect(
            authenticator.authenticate(token: TestTokens.reader)
                == AuthenticatedCaller(name: "sms-reader", scopes: [.read]))
        #expect(authenticator.authenticate(token: TestTokens.writer)?.has(.write) == true)
        #expect(authenticator.authenticate(token: "guess") == nil)
        #expect(authenticator.authenticate(token: "") == nil)
        #expect(throws: GatehouseError.self) {
            _ = try StaticTokenAuthenticator(
                entries: [.init(name: "x", hashHex: "zz", scopes: [])], hash: TestTokens.hash)
        }
        #expect(try Scope.parseList("read, write,keys") == [.read, .write, .keys])
        #expect(throws: GatehouseError.self) { _ = try Scope.parseList("read,,write") }
    }

    @Test("addresses: IPv4, bracketed IPv6, errors that name the problem")
    func addresses() throws {
        #expect(try HTTPServerAddress.parse("127.0.0.1:8080") == HTTPServerAddress(host: "127.0.0.1", port: 8080))
        #expect(try HTTPServerAddress.parse("[::1]:0") == HTTPServerAddress(host: "::1", port: 0))
        #expect(try HTTPServerAddress.parse("localhost:80").host == "127.0.0.1")
        #expect(HTTPServerAddress(host: "::1", port: 9).description == "[::1]:9")
        for bad in ["127.0.0.1", "::1:80", "[::1]80", "host.example:80", "1.2.3.4:70000", "1.2.3.4:x"] {
            #expect(throws: GatehouseError.self, "\(bad)") { _ = try HTTPServerAddress.parse(bad) }
        }
    }

    @Test("configuration: defaults, environment, validation")
    func configuration() throws {
        let defaults = HTTPServerConfiguration()
        #expect(defaults.address.description == "127.0.0.1:8080")
        #expect(defaults.maximumBodySize == 65536)
        #expect(defaults.connectionTimeoutSeconds == 30)
        #expect(defaults.threadCount == min(64, 4 * ProcessInfo.processInfo.activeProcessorCount))
        // The environment's default is the struct's (GATEHOUSE_HTTP_THREADS once defaulted to the core count).
        #expect(try HTTPServerConfiguration.load(from: ConfigSource(environment: [:])).threadCount == defaults.threadCount)
        // Unset, it stays within a lowered connection limit (set, validation names the conflict).
        #expect(
            try HTTPServerConfiguration.load(from: ConfigSource(environment: ["GATEHOUSE_HTTP_CONNECTION_LIMIT": "1"]))
                .threadCount == 1)
        let loaded = try HTTPServerConfiguration.load(
            from: ConfigSource(environment: [
                "GATEHOUSE_HTTP_ADDR": "[::1]:9090", "GATEHOUSE_HTTP_MAX_BODY_BYTES": "1024",
                "GATEHOUSE_HTTP_THREADS": "3",
            ]))
        #expect(loaded.address == HTTPServerAddress(host: "::1", port: 9090))
        #expect(loaded.maximumBodySize == 1024)
        #expect(loaded.threadCount == 3)
        do {
            _ = try HTTPServerConfiguration.load(from: ConfigSource(environment: ["GATEHOUSE_HTTP_THREADS": "0"]))
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .configuration)
            #expect(error.message.contains("GATEHOUSE_HTTP_THREADS"))
        }
        #expect(throws: GatehouseError.self) {
            _ = try HTTPServerConfiguration.load(from: ConfigSource(environment: ["GATEHOUSE_HTTP_TLS_CERT": "/x.pem"]))
        }
        do {
            _ = try HTTPServerConfiguration.load(from: ConfigSource(environment: ["GATEHOUSE_HTTP_ADDR": "example:80"]))
            Issue.record("expected an error")
        } catch {
            #expect(error.message.hasPrefix("GATEHOUSE_HTTP_ADDR"))
        }
        var tooFewConnections = HTTPServerConfiguration()
        tooFewConnections.threadCount = 4
        tooFewConnections.connectionLimit = 2
        #expect(throws: GatehouseError.self) { try tooFewConnections.validate() }
    }
}
